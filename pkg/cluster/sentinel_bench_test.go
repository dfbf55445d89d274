package cluster_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// subscriptions is how many subscriptions each round holds at once: 1,000 RedisConnections
// that share no inspector (distinct options), the worst case; identical ones share one.
const subscriptions = 1000

// BenchmarkSentinelSubscription measures what 1,000 live subscriptions to a real sentinel
// cost the subscribing process, side by side: SentinelInspector.Subscribe (one goroutine, one
// bounded connection each) against the obvious alternative, go-redis's PubSub.Channel on a
// plain client (its own reader and health-check goroutines). Reported per subscription:
// goroutines, live heap bytes after GC, and setup time (ns/op is one round of 1,000).
// Run it with: go test ./pkg/cluster -run '^$' -bench SentinelSubscription -benchtime 1x.
func BenchmarkSentinelSubscription(b *testing.B) {
	w := startSentinelWorld(b, redistest.SentinelGroupOptions{})
	sentinel := w.g.Sentinels[0]
	channels := []string{"+switch-master", "+sdown", "-sdown", "+odown"}

	measure := func(b *testing.B, start func(ready *atomic.Int64) (stop func())) {
		for i := 0; i < b.N; i++ {
			g0, h0 := settle()
			var ready atomic.Int64
			stop := start(&ready)
			deadline := time.Now().Add(60 * time.Second)
			for ready.Load() < subscriptions && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := ready.Load(); n < subscriptions {
				b.Fatalf("%d of %d subscriptions established", n, subscriptions)
			}
			b.StopTimer()
			g1, h1 := settle()
			b.ReportMetric(float64(g1-g0)/subscriptions, "goroutines/sub")
			b.ReportMetric(float64(int64(h1)-int64(h0))/subscriptions, "heapB/sub")
			stop()
			b.StartTimer()
		}
	}

	b.Run("SentinelInspector.Subscribe", func(b *testing.B) {
		measure(b, func(ready *atomic.Int64) func() {
			var stops []func()
			var ins []*cluster.SentinelInspector
			for j := 0; j < subscriptions; j++ {
				si, err := cluster.NewSentinelInspector(w.options(sentinel.Announced))
				if err != nil {
					b.Fatal(err)
				}
				ins = append(ins, si)
				stops = append(stops, si.Subscribe(func(e cluster.SentinelEvent) {
					if e.Kind == cluster.EventResubscribed {
						ready.Add(1)
					}
				}))
			}
			return func() {
				for j, stop := range stops {
					stop()
					_ = ins[j].Close()
				}
			}
		})
	})

	// What of the above is the inspector itself (its two go-redis clients, built lazily on
	// first use: here by one Discover), without a subscription.
	b.Run("NewSentinelInspector+Discover", func(b *testing.B) {
		measure(b, func(ready *atomic.Int64) func() {
			var ins []*cluster.SentinelInspector
			for j := 0; j < subscriptions; j++ {
				si, err := cluster.NewSentinelInspector(w.options(sentinel.Announced))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := si.Discover(context.Background()); err != nil {
					b.Fatal(err)
				}
				ins = append(ins, si)
				ready.Add(1)
			}
			return func() {
				for _, si := range ins {
					_ = si.Close()
				}
			}
		})
	})

	b.Run("go-redis.PubSub.Channel", func(b *testing.B) {
		measure(b, func(ready *atomic.Int64) func() {
			ctx := context.Background()
			var clients []*redis.Client
			var subs []*redis.PubSub
			for j := 0; j < subscriptions; j++ {
				c := sentinel.Client()
				ps := c.Subscribe(ctx, channels...)
				for k := range channels {
					if _, err := ps.Receive(ctx); err != nil {
						b.Fatalf("subscription %d, confirmation %d: %v", j, k, err)
					}
				}
				ch := ps.Channel()
				go func() {
					for range ch { //nolint:revive // drain
					}
				}()
				ready.Add(1)
				clients, subs = append(clients, c), append(subs, ps)
			}
			return func() {
				for j := range subs {
					_ = subs[j].Close()
					_ = clients[j].Close()
				}
			}
		})
	})
}

// settle collects garbage and returns the goroutine count and live heap.
func settle() (int, uint64) {
	var ms runtime.MemStats
	for i := 0; i < 3; i++ {
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapAlloc
}
