package scale_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/world/managertest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// BenchmarkSentinelFailover: a real 1 master + 2 replicas + 3 sentinels group announcing
// names nothing outside it resolves, RCONN_SENTINEL_CONNECTIONS (default 50) Sentinel-mode
// RedisConnections on it (one shared inspector), health interval RCONN_SCALE_INTERVAL (5s),
// and RCONN_SENTINEL_FAILOVERS (default 10) SENTINEL FAILOVERs, each waited for until the
// group settles. The benchmark subscribes to +switch-master on every sentinel itself, and
// watches the ConfigMaps. Reports, over the failovers:
//
//	ms-p50/p99-after-majority   the moment a majority of the sentinels (2 of 3) announced
//	                            +switch-master -> the first RedisConnection's config.json names
//	                            the new master (the goal: p99 <= 1 s)
//	ms-p50/p99-after-first      the same from the first sentinel's announcement
//	ms-p99-all-rendered         majority announcement -> every RedisConnection's config.json
//	                            names it
//	missed                      failovers whose outputs did not move within 30 s
//
// Side by side: subscription=off (RCONN_DISABLE_SENTINEL_SUBSCRIPTION=true: the periodic probe
// alone), then subscription=on.
func BenchmarkSentinelFailover(b *testing.B) {
	for _, v := range []struct {
		name string
		env  []string
	}{
		{"subscription=off", []string{"RCONN_DISABLE_SENTINEL_SUBSCRIPTION=true"}},
		{"subscription=on", nil},
	} {
		b.Run(v.name, func(b *testing.B) {
			f := setup(b)
			bin := managertest.Build(fixtureTB{b})
			for i := 0; i < b.N; i++ {
				runs++
				f.sentinelRun(b, fmt.Sprintf("sent%d", runs), bin, v.env)
			}
		})
	}
}

func (f *fixture) sentinelRun(b *testing.B, run, bin string, env []string) {
	ctx := context.Background()
	n := envInt("RCONN_SENTINEL_CONNECTIONS", 50)
	failovers := envInt("RCONN_SENTINEL_FAILOVERS", 10)
	interval := envDuration("RCONN_SCALE_INTERVAL", 5*time.Second)
	g := redistest.StartSentinelGroup(b, redistest.SentinelGroupOptions{})
	ns := run
	f.sentinelNamespace(b, ns)
	m := managertest.StartBinary(b, bin, f.kubecfg, env, strings.Fields(os.Getenv("RCONN_SCALE_MANAGER_ARGS"))...)
	if os.Getenv("RCONN_SENTINEL_DUMP_LOG") != "" {
		defer func() {
			raw, _ := os.ReadFile(m.LogPath)
			b.Logf("manager log:\n%s", raw)
		}()
	}
	b.Logf("manager pid %d, log %s", m.Pid(), m.LogPath)
	for i := 0; i < n; i++ {
		must(b, f.k8s.Create(ctx, sentinelBenchConnection(ns, fmt.Sprintf("s-%03d", i), g, interval)))
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	urls := f.watchURLs(wctx, b, ns, n)
	if _, ok := urls.waitAll("redis://"+g.Data[0].Addr(), 2*time.Minute); !ok {
		b.Fatalf("not every RedisConnection rendered the first master within 2 minutes (manager log %s)", m.LogPath)
	}

	var afterMajority, afterFirst, allRendered []time.Duration
	missed := 0
	b.ResetTimer()
	for k := 0; k < failovers; k++ {
		urls.reset()
		sw := subscribeSwitches(ctx, g)
		old, err := g.Failover(ctx)
		if err != nil {
			b.Fatalf("SENTINEL FAILOVER: %v", err)
		}
		nm, err := g.WaitNewMaster(ctx, old)
		if err != nil {
			b.Fatalf("failover %d: %v", k, err)
		}
		want := "redis://" + g.Data[nm].Addr()
		first, ok := urls.waitFirst(want, 30*time.Second)
		all, allOK := urls.waitAll(want, 30*time.Second)
		ann := sw.stop()
		b.Logf("failover %d: announced at %v, first output %v", k, ann, first)
		if !ok || !allOK || len(ann) < 2 {
			missed++
			b.Logf("failover %d: outputs moved %v/%v, %d sentinels announced", k, ok, allOK, len(ann))
		} else {
			afterFirst = append(afterFirst, first.Sub(ann[0]))
			afterMajority = append(afterMajority, first.Sub(ann[1]))
			allRendered = append(allRendered, all.Sub(ann[1]))
		}
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		err = g.WaitSettled(sctx, nm)
		cancel()
		if err != nil {
			b.Fatalf("failover %d: settling: %v", k, err)
		}
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(percentile(afterMajority, 0.5)), "ms-p50-after-majority")
	b.ReportMetric(ms(percentile(afterMajority, 0.99)), "ms-p99-after-majority")
	b.ReportMetric(ms(percentile(afterFirst, 0.5)), "ms-p50-after-first")
	b.ReportMetric(ms(percentile(afterFirst, 0.99)), "ms-p99-after-first")
	b.ReportMetric(ms(percentile(allRendered, 0.99)), "ms-p99-all-rendered")
	b.ReportMetric(float64(missed), "missed")
	b.Logf("after majority %v; after first %v; all rendered %v", afterMajority, afterFirst, allRendered)
}

func sentinelBenchConnection(ns, name string, g *redistest.SentinelGroup, interval time.Duration) *rconnv1.RedisConnection {
	am := g.AddressMap()
	keys := make([]string, 0, len(am))
	for k := range am {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var static []rconnv1.StaticAddressMapping
	for _, k := range keys {
		static = append(static, rconnv1.StaticAddressMapping{Announced: rconnv1.HostPort(k), Reachable: rconnv1.HostPort(am[k])})
	}
	var roots []rconnv1.SentinelNode
	for _, a := range g.SentinelAddrs() {
		ad, _ := cluster.ParseAddress(a)
		roots = append(roots, rconnv1.SentinelNode{Host: ad.Host, Port: int32(ad.Port)})
	}
	return &rconnv1.RedisConnection{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: rconnv1.RedisConnectionSpec{
			Mode:           rconnv1.ModeSentinel,
			Sentinel:       &rconnv1.SentinelSpec{MasterName: g.MasterName(), RootNodes: roots},
			NodeAddressMap: &rconnv1.NodeAddressMap{Static: static},
			HealthCheck:    &rconnv1.HealthCheck{Interval: &metav1.Duration{Duration: interval}, Timeout: &metav1.Duration{Duration: 2 * time.Second}},
		},
	}
}

// urlTracker records, per ConfigMap, when its config.json first named each url.
type urlTracker struct {
	n    int
	mu   sync.Mutex
	cond *sync.Cond
	seen map[string]map[string]time.Time // url -> ConfigMap -> first seen
}

func newURLTracker(n int) *urlTracker {
	t := &urlTracker{n: n, seen: map[string]map[string]time.Time{}}
	t.cond = sync.NewCond(&t.mu)
	return t
}

// reset forgets what was seen (before a failover: its master may have been the master before).
func (t *urlTracker) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seen = map[string]map[string]time.Time{}
}

func (t *urlTracker) set(cm, url string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen[url] == nil {
		t.seen[url] = map[string]time.Time{}
	}
	if _, ok := t.seen[url][cm]; !ok {
		t.seen[url][cm] = at
	}
	t.cond.Broadcast()
}

// wait waits until at least k ConfigMaps named url, and returns the latest of the first k.
func (t *urlTracker) wait(url string, k int, limit time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(limit)
	timer := time.AfterFunc(limit, func() { t.mu.Lock(); t.cond.Broadcast(); t.mu.Unlock() })
	defer timer.Stop()
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.seen[url]) < k {
		if time.Now().After(deadline) {
			return time.Time{}, false
		}
		t.cond.Wait()
	}
	var ats []time.Time
	for _, at := range t.seen[url] {
		ats = append(ats, at)
	}
	sort.Slice(ats, func(i, j int) bool { return ats[i].Before(ats[j]) })
	return ats[k-1], true
}

func (t *urlTracker) waitFirst(url string, limit time.Duration) (time.Time, bool) {
	return t.wait(url, 1, limit)
}

func (t *urlTracker) waitAll(url string, limit time.Duration) (time.Time, bool) {
	return t.wait(url, t.n, limit)
}

// switchWatch subscribes to +switch-master on every sentinel (by its reachable address).
type switchWatch struct {
	mu   sync.Mutex
	at   []time.Time
	subs []*redis.PubSub
	cls  []*redis.Client
	wg   sync.WaitGroup
}

func subscribeSwitches(ctx context.Context, g *redistest.SentinelGroup) *switchWatch {
	sw := &switchWatch{}
	for _, s := range g.Sentinels {
		c := redis.NewClient(&redis.Options{Addr: s.Addr()})
		ps := c.Subscribe(ctx, "+switch-master")
		if _, err := ps.Receive(ctx); err != nil { // the subscription is in place before the failover
			_ = ps.Close()
			_ = c.Close()
			continue
		}
		sw.subs, sw.cls = append(sw.subs, ps), append(sw.cls, c)
		sw.wg.Add(1)
		go func() {
			defer sw.wg.Done()
			for range ps.Channel() {
				sw.mu.Lock()
				sw.at = append(sw.at, time.Now())
				sw.mu.Unlock()
				return
			}
		}()
	}
	return sw
}

// stop ends the subscriptions and returns the announcement times, earliest first.
func (sw *switchWatch) stop() []time.Time {
	for i := range sw.subs {
		_ = sw.subs[i].Close()
		_ = sw.cls[i].Close()
	}
	sw.wg.Wait()
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sort.Slice(sw.at, func(i, j int) bool { return sw.at[i].Before(sw.at[j]) })
	return sw.at
}
