package client

import (
	"sync"
	"sync/atomic"
	"testing"
)

// The gate never reports idle while an admitted command has not left, and admits nothing once
// shut: 64 goroutines enter and leave while another shuts it (run with -race).
func TestInflightGate(t *testing.T) {
	for range 50 {
		var g inflight
		var running atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 64 {
			wg.Go(func() {
				<-start
				for range 100 {
					if !g.enter() {
						return
					}
					running.Add(1)
					running.Add(-1)
					g.leave()
				}
			})
		}
		close(start)
		idle := g.shut()
		<-idle
		if n := running.Load(); n != 0 {
			t.Fatalf("idle with %d commands running", n)
		}
		if g.enter() {
			t.Fatal("admitted after shut")
		}
		wg.Wait()
		if g.count() != 0 {
			t.Fatalf("count %d after all left", g.count())
		}
	}
}

func BenchmarkInflightGate(b *testing.B) {
	var g inflight
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if g.enter() {
				g.leave()
			}
		}
	})
}
