package scale_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/world/managertest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// skipTB is a redistest.TB whose Fatalf skips the benchmark: a machine that cannot start or form
// a big cluster skips this benchmark instead of failing it (and the shared fixture is
// untouched). Cleanups run when the benchmark ends.
type skipTB struct{ b *testing.B }

func (t skipTB) Helper()                         {}
func (t skipTB) Cleanup(f func())                { t.b.Cleanup(f) }
func (t skipTB) Logf(format string, args ...any) { t.b.Logf(format, args...) }
func (t skipTB) TempDir() string                 { return t.b.TempDir() }
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
//	status-shards, s-to-shards-converged  status.shardCount at the end, and create -> the
//	                   status showing one shard per master (-1: not within 2 more minutes)
//
// The cluster is formed here rather than with redistest.StartCluster, whose formation wait is
// 60 s: on this machine 200 nodes need longer to agree (RCONN_SCALE_BIG_FORM_TIMEOUT, default
// 5m). Skipped with a message when the open-file limit is too low or the cluster cannot be formed.
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
	big := startBigCluster(b, masters, replicas)
	formed := time.Since(t0)
	b.Logf("%d masters + %d replicas formed in %s", masters, masters*replicas, formed.Round(time.Millisecond))
	b.ReportMetric(formed.Seconds(), "s-form-cluster")
	var nodeRSS uint64
	for _, n := range big.nodes {
		if c := n.Client(); c != nil {
			if info, err := redistest.Info(ctx, c, "memory"); err == nil {
				var v uint64
				if _, err := fmt.Sscan(info["used_memory_rss"], &v); err == nil {
					nodeRSS += v
				}
			}
			_ = c.Close()
		}
	}
	b.Logf("redis-server RSS: %.1f MiB total, %.1f MiB per node", float64(nodeRSS)/(1<<20), float64(nodeRSS)/(1<<20)/float64(len(big.nodes)))

	ns := run
	must(b, f.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	must(b, f.k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "redis-acl", Namespace: ns},
		Data: map[string][]byte{"username": []byte("app"), "password": []byte("s3cret")}}))
	b.Cleanup(func() { f.deleteRunObjects([]string{ns}) })

	var roots []rconnv1.RootNode
	var libRoots []cluster.RootNode
	for _, mn := range big.nodes[:3] {
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
	// Right after formation a node's CLUSTER SHARDS can still list some replicas as shards of
	// their own (redis 7.0 spreads shard ids by gossip): how long until the status shows one
	// shard per master (up to 2 minutes; -1 if it never does).
	converged := -1.0
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		must(b, f.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "big"}, got))
		if int(got.Status.ShardCount) == len(big.nodes)/(1+replicas) {
			converged = time.Since(start).Seconds()
			break
		}
	}
	b.ReportMetric(float64(got.Status.ShardCount), "status-shards")
	b.ReportMetric(converged, "s-to-shards-converged")
	b.Logf("shardCount %d (one per master after %.1f s from create; -1: not within 2 min of the check)", got.Status.ShardCount, converged)
	if m.Exited() {
		b.Fatalf("the manager exited during the run; log tail:\n%s", tail(m.Log(), 3000))
	}
}

type bigCluster struct {
	nodes []*redistest.Server // masters first, then replicas (replica i follows master i%masters)
}

// startBigCluster starts masters*(1+replicas) cluster-enabled redis-servers (redistest.StartServer
// with the cluster lines as extra config), gives each master an even slot range, meets them all,
// attaches the replicas and waits until every node reports cluster_state:ok and sees every node
// as connected (CLUSTER NODES), and every replica's link is up.
func startBigCluster(b *testing.B, masters, replicas int) *bigCluster {
	tb := skipTB{b}
	total := masters * (1 + replicas)
	c := &bigCluster{}
	for i := 0; i < total; i++ {
		bus, err := redistest.FreePort()
		if err != nil {
			tb.Fatalf("%v", err)
		}
		c.nodes = append(c.nodes, redistest.StartServer(tb, redistest.ServerOptions{
			Users: []redistest.User{{Name: "app", Password: "s3cret"}},
			Config: []string{"cluster-enabled yes", "cluster-config-file nodes.conf", "cluster-node-timeout 15000",
				"cluster-replica-validity-factor 0", "cluster-port " + strconv.Itoa(bus),
				"maxmemory 16mb", "repl-diskless-sync-delay 0", "io-threads 1"}}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), envDuration("RCONN_SCALE_BIG_FORM_TIMEOUT", 5*time.Minute))
	defer cancel()
	clients := make([]*redis.Client, total)
	ids := make([]string, total)
	for i, n := range c.nodes {
		clients[i] = n.Client()
		defer func() { _ = clients[i].Close() }()
		id, err := clients[i].Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			tb.Fatalf("node %d: CLUSTER MYID: %v", i, err)
		}
		ids[i] = id
		if err := clients[i].Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			tb.Fatalf("node %d: SET-CONFIG-EPOCH: %v", i, err)
		}
	}
	for i := 0; i < masters; i++ {
		if err := clients[i].Do(ctx, "CLUSTER", "ADDSLOTSRANGE", i*16384/masters, (i+1)*16384/masters-1).Err(); err != nil {
			tb.Fatalf("node %d: ADDSLOTSRANGE: %v", i, err)
		}
	}
	bus := func(i int) int {
		v, err := clients[i].ConfigGet(ctx, "cluster-port").Result()
		if err != nil {
			tb.Fatalf("node %d: CONFIG GET cluster-port: %v", i, err)
		}
		p, _ := strconv.Atoi(v["cluster-port"])
		return p
	}
	for i := 1; i < total; i++ {
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", c.nodes[i].Port, bus(i)).Err(); err != nil {
			tb.Fatalf("CLUSTER MEET node %d: %v", i, err)
		}
	}
	wait := func(what string, check func(i int) error) {
		for {
			var err error
			for i := range clients {
				if err = check(i); err != nil {
					err = fmt.Errorf("node %d: %w", i, err)
					break
				}
			}
			if err == nil {
				return
			}
			select {
			case <-ctx.Done():
				tb.Fatalf("waiting for %s: %v (last: %v)", what, ctx.Err(), err)
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	knowsAll := func(i int) error {
		nodes, err := clients[i].ClusterNodes(ctx).Result()
		if err != nil {
			return err
		}
		lines := strings.Split(strings.TrimSpace(nodes), "\n")
		if len(lines) != total {
			return fmt.Errorf("knows %d of %d nodes", len(lines), total)
		}
		for _, l := range lines {
			// <id> <ip:port@bus> <flags> <master> <ping-sent> <pong-recv> <epoch> <link-state> <slots...>
			f := strings.Fields(l)
			if len(f) < 8 || f[7] != "connected" || strings.Contains(f[2], "handshake") || strings.Contains(f[2], "noaddr") || strings.Contains(f[2], "fail") {
				return fmt.Errorf("not settled: %s", l)
			}
		}
		return nil
	}
	wait("every node to know every other", knowsAll)
	for i := masters; i < total; i++ {
		if err := clients[i].Do(ctx, "CLUSTER", "REPLICATE", ids[(i-masters)%masters]).Err(); err != nil {
			tb.Fatalf("node %d: CLUSTER REPLICATE: %v", i, err)
		}
	}
	wait("the cluster to be healthy", func(i int) error {
		info, err := clients[i].ClusterInfo(ctx).Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
			return fmt.Errorf("cluster_state not ok")
		}
		if i >= masters {
			repl, err := redistest.Info(ctx, clients[i], "replication")
			if err != nil {
				return err
			}
			if repl["master_link_status"] != "up" {
				return fmt.Errorf("replica link is %s", repl["master_link_status"])
			}
		}
		return knowsAll(i)
	})
	return c
}
