// Package writeloop is an app that writes through a failover: one write every 50 ms, each
// bounded by 2 s, counting failed writes and the longest time without a successful one. The
// rig's and test/e2e's Sentinel drills measure what a failover or a rollout costs an app with it.
package writeloop

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Loop runs write until Stop.
type Loop struct {
	cancel context.CancelFunc
	done   chan struct{}
	ok     atomic.Int64

	mu       sync.Mutex
	failed   int
	lastOK   time.Time
	maxStall time.Duration
}

// Start calls write(ctx, i) for i = 0, 1, ... every 50 ms until ctx ends or Stop.
func Start(ctx context.Context, write func(ctx context.Context, i int) error) *Loop {
	ctx, cancel := context.WithCancel(ctx)
	l := &Loop{cancel: cancel, done: make(chan struct{}), lastOK: time.Now()}
	go l.run(ctx, write)
	return l
}

func (l *Loop) run(ctx context.Context, write func(context.Context, int) error) {
	defer close(l.done)
	for i := 0; ctx.Err() == nil; i++ {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := write(wctx, i)
		cancel()
		now := time.Now()
		l.mu.Lock()
		if err != nil {
			l.failed++
		} else {
			l.ok.Add(1)
			l.maxStall = max(l.maxStall, now.Sub(l.lastOK))
			l.lastOK = now
		}
		l.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop ends the loop and waits for its last write.
func (l *Loop) Stop() { l.cancel(); <-l.done }

// Reset forgets the failed writes and the longest stall so far (between two faults).
func (l *Loop) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failed, l.maxStall = 0, 0
}

// Stats are the failed writes and the longest stall so far (a stall still going on counts).
func (l *Loop) Stats() (int, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed, max(l.maxStall, time.Since(l.lastOK))
}

// WaitWrites waits for n more successful writes, failing t after timeout.
func (l *Loop) WaitWrites(t testing.TB, n int64, timeout time.Duration) {
	t.Helper()
	want := l.ok.Load() + n
	deadline := time.Now().Add(timeout)
	for l.ok.Load() < want {
		if time.Now().After(deadline) {
			failed, stall := l.Stats()
			t.Fatalf("the app wrote nothing for %s (%d failed writes, stall %s)", timeout, failed, stall)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
