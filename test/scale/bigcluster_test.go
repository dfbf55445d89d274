package scale_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/testing/managertest"
	"github.com/rconn-dev/redis-connection-operator/internal/testing/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// skipTB is a redistest.TB whose Fatalf skips the benchmark: a machine that cannot start or form
// a big cluster skips this benchmark instead of failing it (and the shared fixture is
// untouched). Cleanups run when the benchmark ends.
type skipTB struct{ b *testing.B }

func (t skipTB) Helper()                         {}
func (t skipTB) Cleanup(f func())                { t.b.Cleanup(f) }
func (t skipTB) Logf(format string, args ...any) { t.b.Logf(format, args...) }
func (t skipTB) Fatalf(format string, args ...any) {
	t.b.Skipf("skipping: this machine could not start or form the big Redis Cluster: "+format, args...)
}

// BenchmarkBigCluster: one RedisConnection against a real Redis Cluster of RCONN_SCALE_BIG_NODES
// redis-server processes on loopback (default 200: half masters, half replicas, one replica per
// master; RCONN_SCALE_BIG_REPLICAS=0 makes them all masters), no persistence, maxmemory 16mb,
// cluster-node-timeout 15s (gossip among 200 nodes on a small shared machine would otherwise
// flag nodes as failing). The manager is the current build with default flags. Reports:
//
//	s-form-cluster     starting the processes + forming the cluster (redistest.StartCluster)
//	s-to-ready         RedisConnection create -> Ready=True (the first discovery + health probe
//	                   of every node, the status write and the outputs)
//	status-bytes       the RedisConnection's JSON (kubectl get -o json size, via the client)
//	status-nodes       len(status.nodes)
//	ms-probe-cold / ms-probe-warm  one discovery + health check of every node with
//	                   pkg/cluster.Inspector (the library the manager's background probe
//	                   runs, same calls, default HealthConcurrency 64), in the benchmark
//	                   process: first with new connections, then with pooled ones. The manager
//	                   exports no probe duration metric.
//	MiB-peak-rss       the manager's VmHWM once Ready and one health interval later
//
// Skipped with a message when the open-file limit is too low or the cluster cannot be formed.
func BenchmarkBigCluster(b *testing.B) {
	nodes := envInt("RCONN_SCALE_BIG_NODES", 200)
	replicas := 1
	if v := os.Getenv("RCONN_SCALE_BIG_REPLICAS"); v == "0" {
		replicas = 0
	}
	b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
		f := setup(b)
		var lim syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < uint64(nodes*8+1024) {
			b.Skipf("skipping: open-file limit %d is too low for %d redis-server processes (want >= %d)", lim.Cur, nodes, nodes*8+1024)
		}
		for i := 0; i < b.N; i++ {
			runs++
			f.bigClusterRun(b, fmt.Sprintf("big%d", runs), nodes, replicas)
		}
	})
}

func (f *fixture) bigClusterRun(b *testing.B, run string, nodes, replicas int) {
	ctx := context.Background()
	masters := nodes / (1 + replicas)
	t0 := time.Now()
	big := redistest.StartCluster(skipTB{b}, redistest.ClusterOptions{Masters: masters, ReplicasPerMaster: replicas,
		NodeTimeout: 15 * time.Second,
		Server: redistest.ServerOptions{
			Users:  []redistest.User{{Name: "app", Password: "s3cret"}},
			Config: []string{"maxmemory 16mb", "repl-diskless-sync-delay 0", "io-threads 1"}}})
	formed := time.Since(t0)
	b.Logf("%d masters + %d replicas formed in %s", masters, masters*replicas, formed.Round(time.Millisecond))
	b.ReportMetric(formed.Seconds(), "s-form-cluster")
	var nodeRSS uint64
	for _, n := range big.Nodes {
		if c := n.Client(); c != nil {
			if info, err := redistest.Info(ctx, c, "memory"); err == nil {
				var v uint64
				fmt.Sscan(info["used_memory_rss"], &v)
				nodeRSS += v
			}
			_ = c.Close()
		}
	}
	b.Logf("redis-server RSS: %.1f MiB total, %.1f MiB per node", float64(nodeRSS)/(1<<20), float64(nodeRSS)/(1<<20)/float64(len(big.Nodes)))

	ns := run
	must(b, f.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	must(b, f.k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "redis-acl", Namespace: ns},
		Data: map[string][]byte{"username": []byte("app"), "password": []byte("s3cret")}}))
	b.Cleanup(func() { f.deleteRunObjects([]string{ns}) })

	var roots []rconnv1.RootNode
	var libRoots []cluster.RootNode
	for _, mn := range big.Masters()[:3] {
		roots = append(roots, rconnv1.RootNode{URL: rconnv1.RedisURL("redis://" + mn.Addr())})
		libRoots = append(libRoots, cluster.RootNode{URL: "redis://" + mn.Addr()})
	}

	// The library's probe, in this process, before the manager runs.
	in, err := cluster.NewInspector(cluster.Options{RootNodes: libRoots, Defaults: cluster.NodeOptions{Username: "app", Password: "s3cret"}})
	must(b, err)
	probe := func() (time.Duration, int) {
		s := time.Now()
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		topo, err := in.Discover(pctx)
		must(b, err)
		h := in.CheckHealth(pctx, topo, 2*time.Second)
		healthy := 0
		for _, x := range h {
			if x.Healthy() {
				healthy++
			}
		}
		return time.Since(s), healthy
	}
	cold, healthy := probe()
	warm, _ := probe()
	_ = in.Close()
	b.Logf("library probe: cold %s, warm %s, %d healthy nodes", cold.Round(time.Millisecond), warm.Round(time.Millisecond), healthy)
	b.ReportMetric(ms(cold), "ms-probe-cold")
	b.ReportMetric(ms(warm), "ms-probe-warm")

	m := managertest.StartBinary(b, managertest.Build(fixtureTB{b}), f.kubecfg, nil, strings.Fields(os.Getenv("RCONN_SCALE_MANAGER_ARGS"))...)
	b.Logf("manager pid %d, log %s", m.Pid(), m.LogPath)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	_, err = m.WaitForMetric(wctx, "controller_runtime_active_workers")
	cancel()
	must(b, err)
	interval := 10 * time.Second
	rc := scaleConnection(ns, "big", roots, interval)
	rc.Labels = map[string]string{"rconn-bench": run}
	start := time.Now()
	must(b, f.k8s.Create(ctx, rc))
	ready, err := f.waitAllReady(ctx, run, 1, start, start.Add(5*time.Minute))
	if err != nil {
		b.Fatalf("%v (manager log tail: %s)", err, tail(m.Log(), 3000))
	}
	b.ReportMetric(ready.Seconds(), "s-to-ready")
	time.Sleep(interval + 2*time.Second)
	got := &rconnv1.RedisConnection{}
	must(b, f.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "big"}, got))
	got.ManagedFields = nil // kubectl get -o json prints them; the size below is without
	raw, err := json.Marshal(got)
	must(b, err)
	st, err := json.Marshal(got.Status)
	must(b, err)
	b.ReportMetric(float64(len(raw)), "object-bytes")
	b.ReportMetric(float64(len(st)), "status-bytes")
	b.ReportMetric(float64(len(got.Status.Nodes)), "status-nodes")
	peak, err := m.PeakRSS()
	must(b, err)
	b.ReportMetric(float64(peak)/(1<<20), "MiB-peak-rss")
	b.Logf("Ready after %s; status %d bytes (object %d), %d nodes / %d healthy / %d shards; manager peak RSS %.1f MiB",
		ready.Round(time.Millisecond), len(st), len(raw), len(got.Status.Nodes), got.Status.HealthyNodeCount, got.Status.ShardCount, float64(peak)/(1<<20))
	if m.Exited() {
		b.Fatalf("the manager exited during the run; log tail:\n%s", tail(m.Log(), 3000))
	}
}
