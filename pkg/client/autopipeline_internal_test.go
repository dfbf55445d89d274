package client

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
)

// gate holds every connection Write while it is closed, and reports each held Write, so a test
// can keep an exchange "on the wire" for as long as it needs, without timing anything.
type gate struct {
	mu      sync.Mutex
	wait    chan struct{} // nil: open
	blocked chan struct{}
}

func newGate() *gate { return &gate{blocked: make(chan struct{}, 64)} }

func (g *gate) hold() {
	g.mu.Lock()
	g.wait = make(chan struct{})
	g.mu.Unlock()
}

func (g *gate) release() {
	g.mu.Lock()
	close(g.wait)
	g.wait = nil
	g.mu.Unlock()
}

func (g *gate) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &gatedConn{Conn: c, g: g}, nil
}

type gatedConn struct {
	net.Conn
	g *gate
}

func (c *gatedConn) Write(b []byte) (int, error) {
	c.g.mu.Lock()
	w := c.g.wait
	c.g.mu.Unlock()
	if w != nil {
		c.g.blocked <- struct{}{}
		<-w
	}
	return c.Conn.Write(b)
}

// gatedClient is a standalone go-redis client with the batching hook, dialing through g.
func gatedClient(t *testing.T, g *gate) (*redis.Client, *batcher) {
	t.Helper()
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	rc := redis.NewClient(&redis.Options{
		Addr: srv.Addr(), Dialer: g.dial, MaxRetries: -1,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	t.Cleanup(func() { _ = rc.Close() })
	h := newBatchHook(rc)
	rc.AddHook(h)
	b := h.current(t)
	if err := rc.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	return rc, b
}

// current resolves the batcher of the client's own chain, as the first contended command would.
func (h *batchHook) current(t *testing.T) *batcher {
	t.Helper()
	h.probeMu.Lock()
	b, _ := h.probe()
	h.probeMu.Unlock()
	if b == nil {
		t.Fatal("the probe met no batcher: the client's chain would never batch")
	}
	if h.resolve(b); b.role.Load() != roleMain || b.pipe == nil {
		t.Fatal("the client's own chain did not resolve as the one that batches")
	}
	return b
}

func (b *batcher) queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

func waitQueued(t *testing.T, b *batcher, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); b.queued() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d commands queued, want %d", b.queued(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func goSet(ctx context.Context, rc *redis.Client, key string) <-chan error {
	done := make(chan error, 1)
	go func() { done <- rc.Set(ctx, key, "1", 0).Err() }()
	return done
}

// A caller whose context ends while its command is queued leaves at once with the context's
// error; its command is never written, and the others are not disturbed.
func TestBatchCancelWhileQueued(t *testing.T) {
	ctx := context.Background()
	g := newGate()
	rc, b := gatedClient(t, g)

	g.hold()
	a := goSet(ctx, rc, "a") // runs alone; its write is held
	<-g.blocked
	cctx, cancel := context.WithCancel(ctx)
	canceled := goSet(cctx, rc, "canceled")
	waitQueued(t, b, 1)
	other := goSet(ctx, rc, "other")
	waitQueued(t, b, 2)

	cancel()
	if err := <-canceled; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled caller got %v, want context.Canceled", err)
	}
	select {
	case err := <-a:
		t.Fatalf("the held exchange finished (%v) before the gate opened", err)
	default:
	}
	g.release()
	for name, ch := range map[string]<-chan error{"a": a, "other": other} {
		if err := <-ch; err != nil {
			t.Fatalf("SET %s: %v", name, err)
		}
	}
	if err := rc.Get(ctx, "canceled").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET canceled = %v: the canceled command was written anyway", err)
	}
	if v, err := rc.Get(ctx, "other").Result(); err != nil || v != "1" {
		t.Fatalf("GET other = %q, %v", v, err)
	}
	if n := b.queued(); n != 0 {
		t.Fatalf("%d commands left in the queue", n)
	}
}

// canceledOnceWaiting is a context that is canceled as soon as its caller starts waiting in
// the queue: the first Done (the queued caller's wait) is never closed, every later Done is
// closed and Err says Canceled. If a batch ran on the context of the caller that leads it,
// go-redis would see the cancellation when it takes a connection, and every command of the
// batch would fail.
type canceledOnceWaiting struct {
	context.Context
	calls atomic.Int32
}

var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (c *canceledOnceWaiting) Done() <-chan struct{} {
	if c.calls.Add(1) == 1 {
		return make(chan struct{})
	}
	return closedCh
}

func (c *canceledOnceWaiting) Err() error {
	if c.calls.Load() > 0 {
		return context.Canceled
	}
	return nil
}

// A batch never runs on one caller's context: the leader's cancellation does not fail the
// others (its own command, already taken, runs too).
func TestBatchIgnoresLeaderCancellation(t *testing.T) {
	ctx := context.Background()
	g := newGate()
	rc, b := gatedClient(t, g)

	g.hold()
	a := goSet(ctx, rc, "a")
	<-g.blocked
	leader := goSet(&canceledOnceWaiting{Context: ctx}, rc, "leader")
	waitQueued(t, b, 1)
	follower := goSet(ctx, rc, "follower")
	waitQueued(t, b, 2)
	g.release()
	for name, ch := range map[string]<-chan error{"a": a, "leader": leader, "follower": follower} {
		if err := <-ch; err != nil {
			t.Fatalf("SET %s: %v", name, err)
		}
	}
	for _, k := range []string{"leader", "follower"} {
		if v, err := rc.Get(ctx, k).Result(); err != nil || v != "1" {
			t.Fatalf("GET %s = %q, %v", k, v, err)
		}
	}
}

// Commands queued while one exchange is on the wire go out together, in one write, in
// arrival order.
func TestBatchOneWriteInArrivalOrder(t *testing.T) {
	ctx := context.Background()
	g := newGate()
	rc, b := gatedClient(t, g)

	g.hold()
	first := make(chan error, 1)
	go func() { first <- rc.Del(ctx, "list").Err() }()
	<-g.blocked
	var dones []<-chan error
	for i := range 10 {
		done := make(chan error, 1)
		go func() { done <- rc.RPush(ctx, "list", i).Err() }()
		waitQueued(t, b, i+1)
		dones = append(dones, done)
	}
	g.mu.Lock()
	close(g.wait)
	g.wait = make(chan struct{}) // keep holding: count the writes that follow
	g.mu.Unlock()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	<-g.blocked // the batch: one write
	g.release()
	for _, d := range dones {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-g.blocked:
		t.Fatal("the ten queued commands took more than one write")
	default:
	}
	got, err := rc.LRange(ctx, "list", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}; !slices.Equal(got, want) {
		t.Fatalf("list = %v, want %v (arrival order)", got, want)
	}
}

// chainOf returns the batcher of the chain that issue runs its command through: the command
// is the hook's probe, so the batcher records itself and nothing is written.
func chainOf(t *testing.T, h *batchHook, issue func(redis.Cmder)) *batcher {
	t.Helper()
	h.probeMu.Lock()
	defer h.probeMu.Unlock()
	cmd := redis.NewCmd(context.Background(), "rconn-autopipeline-probe")
	h.found = nil
	h.probing.Store(cmd)
	issue(cmd)
	h.probing.Store(nil)
	b := h.found
	h.found = nil
	if b == nil {
		t.Fatal("the command did not pass the batching hook")
	}
	return b
}

// Only the client's own chain batches onto its pool. Tx (Watch) and Conn chains are clones of
// the client's hooks on a sticky connection: a command of theirs queued into the client's
// batch would run on another connection (a WATCH that guards nothing, a GET in the wrong
// database), so they resolve as chains that never batch, however often they are asked.
func TestBatchOnlyTheClientsOwnChain(t *testing.T) {
	ctx := context.Background()
	rc, b := gatedClient(t, newGate())
	h := b.hook
	conn := rc.Conn()
	t.Cleanup(func() { _ = conn.Close() })
	connChain := chainOf(t, h, func(cmd redis.Cmder) { _ = conn.Process(ctx, cmd) })
	var txChain *batcher
	if err := rc.Watch(ctx, func(tx *redis.Tx) error {
		txChain = chainOf(t, h, func(cmd redis.Cmder) { _ = tx.Process(ctx, cmd) })
		return nil
	}, "k"); err != nil {
		t.Fatal(err)
	}
	mainChain := chainOf(t, h, func(cmd redis.Cmder) { _ = rc.Process(ctx, cmd) })
	if mainChain != b {
		t.Fatal("the client's Process did not run through the chain that resolved as the client's own")
	}
	for name, other := range map[string]*batcher{"Conn": connChain, "Tx": txChain} {
		if other == b {
			t.Fatalf("the %s chain is the client's own chain", name)
		}
		for range 2 {
			h.resolve(other)
			if r := other.role.Load(); r != roleOther {
				t.Fatalf("the %s chain resolved as role %d, want roleOther (never batches)", name, r)
			}
		}
	}
	// A hook added later rebuilds the client's chain: the new chain resolves as the client's own.
	rc.AddHook(nopHook{})
	rebuilt := chainOf(t, h, func(cmd redis.Cmder) { _ = rc.Process(ctx, cmd) })
	if rebuilt == b {
		t.Fatal("AddHook did not rebuild the chain")
	}
	if h.resolve(rebuilt); rebuilt.role.Load() != roleMain || rebuilt.pipe == nil {
		t.Fatalf("the rebuilt chain resolved as role %d, want roleMain", rebuilt.role.Load())
	}
	// A Conn's commands, issued while its own chain is busy, run on the Conn's connection.
	if err := conn.Select(ctx, 1).Err(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if err := conn.Set(ctx, "db1", i, 0).Err(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := rc.Get(ctx, "db1").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET db1 in database 0 = %v: a Conn's command ran on the client's pool", err)
	}
}

type nopHook struct{}

func (nopHook) DialHook(next redis.DialHook) redis.DialHook                               { return next }
func (nopHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook                      { return next }
func (nopHook) ProcessPipelineHook(n redis.ProcessPipelineHook) redis.ProcessPipelineHook { return n }
