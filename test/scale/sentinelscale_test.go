package scale_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/world/managertest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// BenchmarkSentinelScale: what the Sentinel subscriptions cost the manager and the sentinels
// with RCONN_SENTINEL_SCALE_CONNECTIONS (default 1,000) Sentinel-mode RedisConnections on one
// real 1 master + 2 replicas + 3 sentinels group, health interval RCONN_SCALE_INTERVAL (10s):
//
//	shared    every RedisConnection has the same connection settings: one shared inspector,
//	          one subscription per sentinel root (what most installations look like)
//	unshared  every RedisConnection has its own connectTimeout, so each is its own inspector
//	          with its own subscriptions (the worst case: 3 subscriptions per RedisConnection)
//
// Reports s-to-ready (manager start -> every RedisConnection Ready), the manager's RSS, Go
// heap and goroutines one health interval later, the connections the sentinels serve
// (connected_clients summed over the 3 sentinels, the benchmark's own INFO connection
// excluded), and for one SENTINEL FAILOVER: majority announcement -> every RedisConnection's
// config.json names the new master (ms-all-rendered), and api-writes: the manager's non-GET
// API requests over 3 health intervals of an idle group (0 expected).
func BenchmarkSentinelScale(b *testing.B) {
	for _, shared := range []bool{true, false} {
		name := "unshared"
		if shared {
			name = "shared"
		}
		b.Run(name, func(b *testing.B) {
			f := setup(b)
			bin := managertest.Build(fixtureTB{b})
			for i := 0; i < b.N; i++ {
				runs++
				f.sentinelScaleRun(b, fmt.Sprintf("sscale%d", runs), bin, shared)
			}
		})
	}
}

func (f *fixture) sentinelScaleRun(b *testing.B, run, bin string, shared bool) {
	ctx := context.Background()
	n := envInt("RCONN_SENTINEL_SCALE_CONNECTIONS", 1000)
	interval := envDuration("RCONN_SCALE_INTERVAL", 10*time.Second)
	g := redistest.StartSentinelGroup(b, redistest.SentinelGroupOptions{})
	ns := run
	f.sentinelNamespace(b, ns)
	baseClients := sentinelClients(ctx, b, g)
	start := time.Now()
	m := managertest.StartBinary(b, bin, f.kubecfg, nil, strings.Fields(os.Getenv("RCONN_SCALE_MANAGER_ARGS"))...)
	b.Logf("manager pid %d, log %s", m.Pid(), m.LogPath)
	for i := 0; i < n; i++ {
		rc := sentinelBenchConnection(ns, fmt.Sprintf("s-%04d", i), g, interval)
		rc.Labels = map[string]string{"rconn-bench": run}
		if !shared {
			// connectTimeout is part of the connection key: a distinct value per
			// RedisConnection makes each its own inspector.
			rc.Spec.Defaults = &rconnv1.NodeDefaults{ConnectTimeout: &metav1.Duration{Duration: 5*time.Second + time.Duration(i)*time.Millisecond}}
		}
		must(b, f.k8s.Create(ctx, rc))
	}
	ready, err := f.waitAllReady(ctx, run, n, start, start.Add(10*time.Minute))
	if err != nil {
		b.Fatalf("%v (manager log tail: %s)", err, tail(m.Log(), 3000))
	}
	time.Sleep(interval + interval/10 + time.Second)
	// Steady state: an idle group must cost the API server nothing (as in Cluster mode).
	s1 := f.snapshot(b, m)
	time.Sleep(3*interval + interval/10)
	s2 := f.snapshot(b, m)
	b.ReportMetric(s2.managerWrites-s1.managerWrites, "api-writes")
	b.Logf("API writes by the manager over 3 idle intervals: %.0f (%v -> %v)", s2.managerWrites-s1.managerWrites, s1.writesByVerb, s2.writesByVerb)
	peak, err := m.PeakRSS()
	must(b, err)
	rss, err := m.RSS()
	must(b, err)
	clients := sentinelClients(ctx, b, g) - baseClients
	b.ReportMetric(ready.Seconds(), "s-to-ready")
	b.ReportMetric(float64(peak)/(1<<20), "MiB-peak-rss")
	b.ReportMetric(float64(rss)/(1<<20), "MiB-rss")
	b.ReportMetric(float64(clients), "sentinel-conns")
	var heap, goroutines float64
	if mfs, err := m.Metrics(); err == nil {
		heap = managertest.Sum(mfs, "go_memstats_heap_inuse_bytes", nil) / (1 << 20)
		goroutines = managertest.Sum(mfs, "go_goroutines", nil)
		b.ReportMetric(heap, "MiB-heap-inuse")
		b.ReportMetric(goroutines, "goroutines")
	}
	b.Logf("%d RedisConnections (shared=%v) Ready %s after the manager started; peak RSS %.1f MiB, RSS %.1f MiB, heap in use %.1f MiB, %.0f goroutines, the sentinels serve %d more connections",
		n, shared, ready.Round(time.Millisecond), float64(peak)/(1<<20), float64(rss)/(1<<20), heap, goroutines, clients)

	// One failover: how long until every RedisConnection's outputs name the new master.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	urls := f.watchURLs(wctx, b, ns, n)
	sw := subscribeSwitches(ctx, g)
	old, err := g.Failover(ctx)
	if err != nil {
		b.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	nm, err := g.WaitNewMaster(ctx, old)
	if err != nil {
		b.Fatalf("failover: %v", err)
	}
	all, ok := urls.waitAll("redis://"+g.Data[nm].Addr(), 2*time.Minute)
	ann := sw.stop()
	if !ok || len(ann) < 2 {
		if d := os.Getenv("RCONN_SENTINEL_DUMP_LOG"); d != "" {
			_ = os.WriteFile(d, []byte(m.Log()), 0o600)
		}
		b.Fatalf("failover to %s: every output moved %v (%d did), %d sentinels announced (manager log tail: %s)",
			g.Data[nm].Addr(), ok, urls.count("redis://"+g.Data[nm].Addr()), len(ann), tail(m.Log(), 3000))
	}
	b.ReportMetric(float64(all.Sub(ann[1]))/float64(time.Millisecond), "ms-all-rendered")
	if m.Exited() {
		b.Fatalf("the manager exited (log %s)", m.LogPath)
	}
}

func (t *urlTracker) count(url string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.seen[url])
}

// sentinelNamespace creates ns and deletes what the run made in it when the benchmark ends.
func (f *fixture) sentinelNamespace(b *testing.B, ns string) {
	ctx := context.Background()
	must(b, f.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	b.Cleanup(func() {
		_ = f.k8s.DeleteAllOf(ctx, &rconnv1.RedisConnection{}, client.InNamespace(ns))
		_ = f.k8s.DeleteAllOf(ctx, &corev1.ConfigMap{}, client.InNamespace(ns), client.MatchingLabels{"app.kubernetes.io/managed-by": "rconn"})
		_ = f.k8s.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(ns), client.MatchingLabels{"app.kubernetes.io/managed-by": "rconn"})
	})
}

// watchURLs tracks, until ctx ends, when each ConfigMap in ns first named each config.json
// url. The watch is restarted when it ends (envtest's watch cache can refuse a new watch with
// "Too large resource version" for a few seconds); a restart re-lists, which only makes a
// figure later, never earlier.
func (f *fixture) watchURLs(ctx context.Context, b *testing.B, ns string, n int) *urlTracker {
	urls := newURLTracker(n)
	go func() {
		for ctx.Err() == nil {
			w, err := f.cs.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for a := range watchNamed(b, w) {
				if cm, ok := a.obj.(*corev1.ConfigMap); ok {
					var cfg pkgclient.Config
					if json.Unmarshal([]byte(cm.Data[pkgclient.ConfigFileName]), &cfg) == nil {
						urls.set(cm.Name, cfg.URL, a.at)
					}
				}
			}
			w.Stop()
		}
	}()
	return urls
}

// sentinelClients sums connected_clients over the group's sentinels.
func sentinelClients(ctx context.Context, b *testing.B, g *redistest.SentinelGroup) int {
	total := 0
	for _, s := range g.Sentinels {
		c := redis.NewClient(&redis.Options{Addr: s.Addr()})
		info, err := c.Info(ctx, "clients").Result()
		_ = c.Close()
		must(b, err)
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "connected_clients:"); ok {
				k, err := strconv.Atoi(v)
				must(b, err)
				total += k - 1 // this INFO's own connection
			}
		}
	}
	return total
}
