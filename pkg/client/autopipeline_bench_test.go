package client

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
)

// BenchmarkBatchLonePath is what a lone caller pays for autoPipeline on top of the plain
// path: the batcher in front of a chain that returns at once (no network), against calling
// that chain directly. The difference is the whole cost of batching when nobody else is
// waiting; compare it with a loopback round trip (tens of µs in bench/).
func BenchmarkBatchLonePath(b *testing.B) {
	ctx := context.Background()
	next := func(context.Context, redis.Cmder) error { return nil }
	pipe := func(context.Context, []redis.Cmder) error { return nil }
	cmd := redis.NewStringCmd(ctx, "get", "k")
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = next(ctx, cmd)
		}
	})
	b.Run("batcher", func(b *testing.B) {
		bt := &batcher{next: next, pipe: pipe, hook: &batchHook{}}
		bt.role.Store(roleMain)
		b.ReportAllocs()
		for b.Loop() {
			_ = bt.process(ctx, cmd)
		}
	})
}
