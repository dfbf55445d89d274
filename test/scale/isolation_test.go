package scale_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/testing/hostile"
	"github.com/rconn-dev/redis-connection-operator/internal/world/managertest"
)

// BenchmarkIsolation: how much RedisConnections naming hostile root nodes slow down a healthy
// one served by the same manager process (default flags). Variants, each with its own manager:
//
//	hostile=0     only the healthy "react" RedisConnection (reactConnection, the real cluster)
//	hostile=N     the same plus N/2 RedisConnections whose only root is a hostile.Silent server
//	              (accepts, never answers) and N/2 whose root is hostile.Slow(10s) (a minimal
//	              Redis answering every command 10 s late); every one has its own server (so
//	              no two share an inspector), Cluster mode, spread over 4 namespaces, with the
//	              slowest settings the API allows: connectTimeout 5m, healthCheck timeout 1m,
//	              interval 2m. N is RCONN_SCALE_HOSTILE (default 128).
//
// The healthy RedisConnection is created and Ready first; then the hostile ones are created and
// the benchmark waits (up to 60 s) until every silent server has accepted a connection. Then,
// RCONN_SCALE_CHANGES times (default 50 here), it rotates the react ACL Secret and moves the
// "extra" EndpointSlice, and reports p50/p99/max of
//
//	ms-p50/p99/max-react-secret         ACL Secret update -> output Secret with the new password
//	ms-p50/p99/max-react-endpointslice  EndpointSlice update -> ConfigMap with the new map entry
//	silent-accepted                     silent servers that had accepted a connection when the
//	                                    measurement started
//	MiB-peak-rss                        the manager's VmHWM
//
// A sample that never arrives is recorded as the 30 s limit (so max and p99 are then lower
// bounds). With RCONN_SCALE_BASELINE_REV=<rev> a first variant manager=<rev>,hostile=N runs the
// manager built from that revision; it takes RCONN_SCALE_BASELINE_CHANGES samples (default 10:
// an old manager can take up to the 30 s limit per sample).
func BenchmarkIsolation(b *testing.B) {
	hostileN := envInt("RCONN_SCALE_HOSTILE", 128)
	type variant struct {
		name    string
		rev     string
		hostile int
		changes int
	}
	changes := envInt("RCONN_SCALE_CHANGES", 50)
	var variants []variant
	if rev := os.Getenv("RCONN_SCALE_BASELINE_REV"); rev != "" {
		variants = append(variants, variant{name: fmt.Sprintf("manager=%s,hostile=%d", rev, hostileN), rev: rev, hostile: hostileN,
			changes: envInt("RCONN_SCALE_BASELINE_CHANGES", 10)})
	}
	variants = append(variants,
		variant{name: "hostile=0", changes: changes},
		variant{name: fmt.Sprintf("hostile=%d", hostileN), hostile: hostileN, changes: changes})
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			f := setup(b)
			bin := managertest.Build(fixtureTB{b})
			if v.rev != "" {
				bin = managertest.BuildRevision(fixtureTB{b}, v.rev)
			}
			for i := 0; i < b.N; i++ {
				runs++
				f.isolationRun(b, fmt.Sprintf("iso%d", runs), bin, v.hostile, v.changes)
			}
		})
	}
}

func (f *fixture) isolationRun(b *testing.B, run, bin string, hostileN, changes int) {
	ctx := context.Background()
	const hostileNamespaces = 4
	react := run + "-react"
	namespaces := []string{react}
	for i := 0; i < hostileNamespaces && hostileN > 0; i++ {
		namespaces = append(namespaces, fmt.Sprintf("%s-h%d", run, i))
	}
	for _, ns := range namespaces {
		must(b, f.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	}
	f.reactFixtures(b, react)
	b.Cleanup(func() { f.deleteRunObjects(namespaces) })

	// Hostile servers before the manager: their Close (b.Cleanup) then runs after the manager's
	// Stop. Each is its own listener in this process (goroutines, no processes).
	var silent, slow []*hostile.Server
	for i := 0; i < hostileN; i++ {
		if i%2 == 0 {
			silent = append(silent, hostile.Silent(b))
		} else {
			slow = append(slow, hostile.Slow(b, 10*time.Second, nil))
		}
	}

	m := managertest.StartBinary(b, bin, f.kubecfg, nil, strings.Fields(os.Getenv("RCONN_SCALE_MANAGER_ARGS"))...)
	b.Logf("manager pid %d, log %s", m.Pid(), m.LogPath)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	_, err := m.WaitForMetric(wctx, "controller_runtime_active_workers")
	cancel()
	must(b, err)

	// 1. The healthy RedisConnection, Ready before anything hostile exists.
	roots := []rconnv1.RootNode{}
	for _, mn := range f.cluster.Masters() {
		roots = append(roots, rconnv1.RootNode{URL: rconnv1.RedisURL("redis://" + mn.Addr())})
	}
	rc := reactConnection(react, roots, 5*time.Second)
	rc.Labels = map[string]string{"rconn-bench": run}
	must(b, f.k8s.Create(ctx, rc))
	start := time.Now()
	if _, err := f.waitAllReady(ctx, run, 1, start, start.Add(2*time.Minute)); err != nil {
		b.Fatalf("%v (manager log tail: %s)", err, tail(m.Log(), 3000))
	}

	// 2. The hostile RedisConnections.
	create := func(i int, srv *hostile.Server, kind string) {
		h := &rconnv1.RedisConnection{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%03d", kind, i), Namespace: namespaces[1+i%hostileNamespaces],
				Labels: map[string]string{"rconn-bench-hostile": run}},
			Spec: rconnv1.RedisConnectionSpec{
				Mode:        rconnv1.ModeCluster,
				RootNodes:   []rconnv1.RootNode{{URL: rconnv1.RedisURL("redis://" + srv.Addr())}},
				Defaults:    &rconnv1.NodeDefaults{ConnectTimeout: &metav1.Duration{Duration: 5 * time.Minute}},
				HealthCheck: &rconnv1.HealthCheck{Interval: &metav1.Duration{Duration: 2 * time.Minute}, Timeout: &metav1.Duration{Duration: time.Minute}},
			},
		}
		must(b, f.k8s.Create(ctx, h))
	}
	for i := range silent {
		create(i, silent[i], "silent")
		if i < len(slow) {
			create(i, slow[i], "slow")
		}
	}
	accepted := func() int {
		n := 0
		for _, s := range silent {
			if s.Accepted() > 0 {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(time.Minute)
	for accepted() < len(silent) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	b.Logf("%d hostile RedisConnections created; %d of %d silent servers accepted a connection after %s",
		hostileN, accepted(), len(silent), time.Since(start).Round(time.Millisecond))
	b.ReportMetric(float64(accepted()), "silent-accepted")

	// 3. The healthy one's reactions, with the hostile ones still hanging.
	sec := f.reactSecrets(b, react, changes)
	eps := f.reactEndpointSlices(b, react, changes)
	b.ReportMetric(ms(percentile(sec, 0.5)), "ms-p50-react-secret")
	b.ReportMetric(ms(percentile(sec, 0.99)), "ms-p99-react-secret")
	b.ReportMetric(ms(percentile(sec, 1)), "ms-max-react-secret")
	b.ReportMetric(ms(percentile(eps, 0.5)), "ms-p50-react-endpointslice")
	b.ReportMetric(ms(percentile(eps, 0.99)), "ms-p99-react-endpointslice")
	b.ReportMetric(ms(percentile(eps, 1)), "ms-max-react-endpointslice")
	b.Logf("secret rotation: p50 %s p99 %s max %s; endpointslice: p50 %s p99 %s max %s (%d samples each)",
		percentile(sec, 0.5), percentile(sec, 0.99), percentile(sec, 1),
		percentile(eps, 0.5), percentile(eps, 0.99), percentile(eps, 1), changes)
	rss, err := m.PeakRSS()
	must(b, err)
	b.ReportMetric(float64(rss)/(1<<20), "MiB-peak-rss")
	if m.Exited() {
		b.Fatalf("the manager exited during the run; log tail:\n%s", tail(m.Log(), 3000))
	}
}

// deleteRunObjects deletes what a run created in its namespaces, so the next manager does not
// inherit it (envtest has no namespace or garbage collector).
func (f *fixture) deleteRunObjects(namespaces []string) {
	ctx := context.Background()
	for _, ns := range namespaces {
		_ = f.k8s.DeleteAllOf(ctx, &rconnv1.RedisConnection{}, client.InNamespace(ns))
		_ = f.k8s.DeleteAllOf(ctx, &corev1.ConfigMap{}, client.InNamespace(ns), client.MatchingLabels{"app.kubernetes.io/managed-by": "rconn"})
		_ = f.k8s.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(ns), client.MatchingLabels{"app.kubernetes.io/managed-by": "rconn"})
	}
}
