package client_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rconn-dev/redis-connection-operator/internal/world/kubeletmount"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// benchMount is a kubelet-style projected volume (internal/world/kubeletmount) for
// benchmarks: each update swaps in a new version with one rename of "..data", the atomic step
// kubelet takes.
type benchMount struct {
	dir string
}

func (m *benchMount) update(tb testing.TB, files map[string][]byte) {
	if err := kubeletmount.Write(m.dir, files, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// reloadEnv is a 3-master cluster announcing unreachable .invalid hostnames, a kubelet-style
// mount whose config.json maps every node, and two loopback proxies (127.0.1.1, 127.0.1.2) in
// front of one master that the benchmarks move that master's mapping between.
type reloadEnv struct {
	rc     *redistest.Cluster
	cfg    *client.Config
	mount  *benchMount
	moved  *redistest.Node
	key    string // a key served by moved
	probes [2]*nettest.Proxy
	next   int
	token  int
}

func newReloadEnv(b *testing.B) *reloadEnv {
	rc := redistest.StartCluster(b, redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname})
	cfg, _ := mappedConfig(rc)
	e := &reloadEnv{rc: rc, cfg: cfg, mount: &benchMount{dir: b.TempDir()}, moved: rc.Masters()[1]}
	for i := range e.probes {
		e.probes[i] = nettest.StartProxyAt(b, fmt.Sprintf("127.0.1.%d:0", i+1), e.moved.Addr())
	}
	admin := e.moved.Client()
	defer func() { _ = admin.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; e.key == ""; i++ {
		k := fmt.Sprintf("reload:%d", i)
		// The moved master answers for its own keys and redirects the others.
		if err := admin.Get(ctx, k).Err(); err == nil || errors.Is(err, redis.Nil) {
			e.key = k
			if err := admin.Set(ctx, k, "v", 0).Err(); err != nil {
				b.Fatal(err)
			}
		} else if i > 1000 {
			b.Fatalf("no key on %s: %v", e.moved.Announced, err)
		}
	}
	e.write(b)
	return e
}

// write renders the pair as the controller does (client.BindSecret, a new token each time)
// into the one projected volume.
func (e *reloadEnv) write(tb testing.TB) {
	e.token++
	files := map[string][]byte{}
	data, err := client.BindSecret(e.cfg, files, fmt.Sprintf("t%d", e.token))
	if err != nil {
		tb.Fatal(err)
	}
	files[client.ConfigFileName] = data
	e.mount.update(tb, files)
}

// remap writes a config that moves the moved master to the other probe proxy and swaps it in;
// it returns that proxy and its accept count before the swap.
func (e *reloadEnv) remap(tb testing.TB) (*nettest.Proxy, int64) {
	p := e.probes[e.next%len(e.probes)]
	e.next++
	before := p.Accepted.Load()
	e.cfg.NodeAddressMap[e.moved.Announced] = mapped(p.Addr())
	e.write(tb)
	return p, before
}

// untilServedThrough runs GET key on c back to back until one completes after p accepted a
// connection beyond before, i.e. until the first command is served through the new address
// (resolution: one round trip).
func untilServedThrough(ctx context.Context, tb testing.TB, c *client.Client, key string, p *nettest.Proxy, before int64) {
	for {
		if err := c.Get(ctx, key).Err(); err != nil {
			tb.Fatalf("GET %s during the move: %v", key, err)
		}
		if p.Accepted.Load() > before {
			return
		}
	}
}

// latencies collects one duration per remount and reports percentiles.
type latencies []time.Duration

func (l latencies) pct(p float64) float64 {
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(p*float64(len(s)-1) + 0.5)
	return float64(s[i]) / float64(time.Millisecond)
}

func (l latencies) report(b *testing.B, prefix string) {
	if len(l) == 0 {
		return
	}
	var sum time.Duration
	for _, d := range l {
		sum += d
	}
	b.ReportMetric(l.pct(0.5), "ms-p50"+prefix)
	b.ReportMetric(l.pct(0.99), "ms-p99"+prefix)
	b.ReportMetric(float64(len(l)), "samples")
	if prefix == "" {
		// ns/op is the mean time per remount (an op may cover several remounts).
		b.ReportMetric(float64(sum)/float64(len(l)), "ns/op")
	}
}

// BenchmarkRemount measures the time from a remounted config.json with a new node address
// map (one master moved to another reachable address; kubelet-style "..data" swap) to the first
// command served through the new address, for a running client with hot reload (polling every
// ReloadInterval; the swap lands at a random phase of the poll) and, as the obvious
// alternative, for a restart: a fresh client.Open on the new files (process start excluded).
//
//	go test ./pkg/client -run '^$' -bench Remount
//
// Metrics: ms-p50/ms-p99 to the first command through the new address, ms-p50-applied /
// ms-p99-applied to the end of the reload (OnReload), samples = remounts; ns/op is the mean.
// The client keeps a command in flight all the time (GET back to back), as a busy app does.
func BenchmarkRemount(b *testing.B) {
	e := newReloadEnv(b)
	rec := nettest.NewRecorder(nil) // IP literals only: refuses every name without a lookup
	for _, interval := range []time.Duration{client.DefaultReloadInterval, 100 * time.Millisecond, 10 * time.Millisecond} {
		b.Run(fmt.Sprintf("live/interval=%v", interval), func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			applied := make(chan time.Time, 16)
			c, err := client.OpenOptions{ReloadInterval: interval, Dial: rec.Dial, OnReload: func(err error) {
				if err != nil {
					b.Error(err)
				}
				applied <- time.Now()
			}}.Open(ctx, e.mount.dir)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = c.Close() }()
			if err := c.Get(ctx, e.key).Err(); err != nil {
				b.Fatal(err)
			}
			// A poll-bound figure needs enough remounts per op to mean anything at 1s.
			perOp := 1
			if interval >= 500*time.Millisecond {
				perOp = 12
			}
			var served, toApplied latencies
			b.ResetTimer()
			for range b.N {
				for range perOp {
					b.StopTimer()
					// Land the swap at a random phase of the poll ticker.
					time.Sleep(rand.N(interval))
					b.StartTimer()
					start := time.Now()
					p, before := e.remap(b)
					untilServedThrough(ctx, b, c, e.key, p, before)
					served = append(served, time.Since(start))
					select {
					case at := <-applied:
						toApplied = append(toApplied, at.Sub(start))
					case <-ctx.Done():
						b.Fatal("no OnReload")
					}
				}
			}
			b.StopTimer()
			served.report(b, "")
			toApplied.report(b, "-applied")
		})
	}
	b.Run("restart/open", func(b *testing.B) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		var prev *client.Client
		defer func() {
			if prev != nil {
				_ = prev.Close()
			}
		}()
		var served latencies
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			if prev != nil {
				_ = prev.Close() // the old process exits
				prev = nil
			}
			b.StartTimer()
			start := time.Now()
			p, before := e.remap(b)
			c, err := client.OpenOptions{ReloadInterval: -1, Dial: rec.Dial}.Open(ctx, e.mount.dir)
			if err != nil {
				b.Fatal(err)
			}
			prev = c
			untilServedThrough(ctx, b, c, e.key, p, before)
			served = append(served, time.Since(start))
		}
		b.StopTimer()
		served.report(b, "")
	})
	rec.AssertOnly(b, append([]string{e.moved.Addr(), e.probes[0].Addr(), e.probes[1].Addr()}, slices.Collect(maps.Values(e.rc.AddressMap()))...)...)
}

// BenchmarkReloadPollCost measures what watching the mounts costs an idle client: process CPU
// time per second of wall time with hot reload at several intervals and with it disabled
// (ReloadInterval -1; the difference is the polling). One op is 100ms of idling.
//
//	go test ./pkg/client -run '^$' -bench ReloadPollCost
func BenchmarkReloadPollCost(b *testing.B) {
	e := newReloadEnv(b)
	rec := nettest.NewRecorder(nil)
	for _, interval := range []time.Duration{-1, client.DefaultReloadInterval, 100 * time.Millisecond, 10 * time.Millisecond, time.Millisecond} {
		name := "interval=" + interval.String()
		if interval < 0 {
			name = "interval=off"
		}
		b.Run(name, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c, err := client.OpenOptions{ReloadInterval: interval, Dial: rec.Dial}.Open(ctx, e.mount.dir)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = c.Close() }()
			cpu0, wall0 := cpuTime(), time.Now()
			b.ResetTimer()
			for range b.N {
				time.Sleep(100 * time.Millisecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Microsecond)/time.Since(wall0).Seconds(), "us-cpu/s")
		})
	}
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
