package proxy_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
)

// BenchmarkProxyCost measures what the proxy adds, side by side in one run: the same go-redis
// ClusterClient workload (GET or SET of a 16-byte value on keys spread over 3 masters, at
// parallelism 1, 64 and 512) straight to the nodes (a mapping dialer, what pkg/client does)
// and through the proxy (in this process, so its CPU and allocations are counted here).
// Reported per case: ops/s of each and their ratio, p50/p99 latency added by the proxy, CPU
// per command (client + proxy; redis-server is another process) and allocations per command
// the proxy adds. b.N commands go each way.
func BenchmarkProxyCost(b *testing.B) {
	e := startEnv(b, envOptions{})
	for _, op := range []string{"GET", "SET"} {
		for _, par := range []int{1, 64, 512} {
			b.Run(fmt.Sprintf("%s/par%d", op, par), func(b *testing.B) {
				direct := benchClient(b, e, par, false)
				via := benchClient(b, e, par, true)
				ctx := context.Background()
				for _, k := range benchKeys { // every key exists
					_ = direct.Set(ctx, k, "0123456789abcdef", 0).Err()
				}
				// Warm both pools to par connections per node (and the proxy's pipes): only
				// steady forwarding is measured.
				warm := &testing.B{N: par * 30}
				runLoad(warm, direct, op, par)
				runLoad(warm, via, op, par)
				b.ResetTimer()
				d := runLoad(b, direct, op, par)
				p := runLoad(b, via, op, par)
				b.StopTimer()
				b.ReportMetric(d.opsPerSec, "direct-ops/s")
				b.ReportMetric(p.opsPerSec, "proxy-ops/s")
				b.ReportMetric(p.opsPerSec/d.opsPerSec, "ratio")
				b.ReportMetric(float64(p.p50-d.p50)/1e3, "added-p50-us")
				b.ReportMetric(float64(p.p99-d.p99)/1e3, "added-p99-us")
				b.ReportMetric(d.cpuPerOp/1e3, "direct-cpu-us/op")
				b.ReportMetric(p.cpuPerOp/1e3, "proxy-cpu-us/op")
				b.ReportMetric(p.allocsPerOp-d.allocsPerOp, "added-allocs/op")
			})
		}
	}
}

func benchClient(b *testing.B, e *env, par int, viaProxy bool) *redis.ClusterClient {
	var o *redis.ClusterOptions
	if viaProxy {
		o = &redis.ClusterOptions{Addrs: []string{e.p.SeedAddr()}, Dialer: nettest.NewRecorder(nil).Dial, DisableIdentity: true,
			MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}}
	} else {
		o = e.rc.ClusterOptions()
		o.MaxRetries = 0
	}
	o.PoolSize = max(par, 4)
	o.MinIdleConns = 0
	c := redis.NewClusterClient(o)
	b.Cleanup(func() { _ = c.Close() })
	return c
}

type loadResult struct {
	opsPerSec, cpuPerOp, allocsPerOp float64
	p50, p99                         time.Duration
}

func runLoad(b *testing.B, c *redis.ClusterClient, op string, par int) loadResult {
	ctx := context.Background()
	n := max(b.N, par)
	lat := make([][]time.Duration, par)
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuTime()
	start := time.Now()
	var wg sync.WaitGroup
	for g := 0; g < par; g++ {
		per := n / par
		lat[g] = make([]time.Duration, 0, per)
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				key := benchKeys[(g*per+i)%len(benchKeys)]
				t0 := time.Now()
				var err error
				if op == "GET" {
					err = c.Get(ctx, key).Err()
				} else {
					err = c.Set(ctx, key, "0123456789abcdef", 0).Err()
				}
				lat[g] = append(lat[g], time.Since(t0))
				if err != nil {
					b.Error(err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&ms1)
	all := slices.Concat(lat...)
	slices.Sort(all)
	done := float64(len(all))
	return loadResult{
		opsPerSec:   done / elapsed.Seconds(),
		cpuPerOp:    float64(cpu.Nanoseconds()) / done,
		allocsPerOp: float64(ms1.Mallocs-ms0.Mallocs) / done,
		p50:         all[len(all)/2],
		p99:         all[len(all)*99/100],
	}
}

var benchKeys = func() []string {
	out := make([]string, 1000)
	for i := range out {
		out[i] = fmt.Sprintf("bench:%d", i)
	}
	return out
}()

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
