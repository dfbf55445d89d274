package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// closeRig is a client with commands in flight on a real server (standalone) or a real cluster:
// a BLPOP blocked on the server, and a pipeline whose BLPOP blocks the SET sent behind it.
type closeRig struct {
	c     *client.Client
	ev    *events
	admin redis.UniversalClient // answers the BLPOPs and checks the SET
	blpop chan error
	pipe  chan error
}

const (
	rigList     = "{q}list"
	rigPipeList = "{q}pipe"
	rigAfter    = "{q}after"
)

func newCloseRig(t *testing.T, clusterMode bool) *closeRig {
	t.Helper()
	ctx := testCtx(t)
	r := &closeRig{ev: &events{}, blpop: make(chan error, 1), pipe: make(chan error, 1)}
	var err error
	if clusterMode {
		rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname})
		m, merr := cluster.StaticMap(rc.AddressMap())
		if merr != nil {
			t.Fatal(merr)
		}
		r.c, err = client.NewCluster(ctx, client.ClusterOptions{
			RootNodes: []string{"redis://" + rc.Nodes[0].Announced}, NodeAddressMap: m,
			OnEvent: r.ev.handle, MonitorInterval: 50 * time.Millisecond,
		})
		r.admin = redis.NewClusterClient(rc.ClusterOptions())
	} else {
		srv := redistest.StartServer(t, redistest.ServerOptions{})
		r.c, err = client.NewClient(ctx, client.Options{URL: "redis://" + srv.Addr(), OnEvent: r.ev.handle, MonitorInterval: 50 * time.Millisecond})
		r.admin = srv.Client()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.c.Close(); _ = r.admin.Close() })
	go func() { r.blpop <- r.c.BLPop(context.Background(), 0, rigList).Err() }()
	go func() {
		_, err := r.c.Pipelined(context.Background(), func(p redis.Pipeliner) error {
			p.BLPop(context.Background(), 0, rigPipeList)
			p.Set(context.Background(), rigAfter, "done", 0)
			return nil
		})
		r.pipe <- err
	}()
	waitFor(t, "both BLPOPs blocked on the server", func() error {
		if n := r.blocked(ctx); n != 2 {
			return fmt.Errorf("%w: %d blocked", errNotYet, n)
		}
		return nil
	})
	return r
}

// blocked counts the clients blocked on the node that owns {q} (every node in standalone mode).
func (r *closeRig) blocked(ctx context.Context) int {
	var n *redis.Client
	switch a := r.admin.(type) {
	case *redis.ClusterClient:
		var err error
		if n, err = a.MasterForKey(ctx, rigList); err != nil {
			return -1
		}
	case *redis.Client:
		n = a
	}
	list, err := n.ClientList(ctx).Result()
	if err != nil {
		return -1
	}
	return strings.Count(list, "cmd=blpop")
}

// answer pushes the elements both BLPOPs wait for.
func (r *closeRig) answer(t *testing.T) {
	t.Helper()
	ctx := testCtx(t)
	if err := r.admin.RPush(ctx, rigList, "a").Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.admin.RPush(ctx, rigPipeList, "b").Err(); err != nil {
		t.Fatal(err)
	}
}

func forModes(t *testing.T, f func(t *testing.T, clusterMode bool)) {
	t.Run("standalone", func(t *testing.T) { f(t, false) })
	t.Run("cluster", func(t *testing.T) { f(t, true) })
}

// CloseGraceful (node-redis close/quit): commands already sent get their replies, new ones fail
// with ErrClosed at once, and "end" follows.
func TestCloseGracefulLetsInFlightCommandsFinish(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	forModes(t, func(t *testing.T, clusterMode bool) {
		r := newCloseRig(t, clusterMode)
		done := make(chan error, 1)
		go func() { done <- r.c.CloseGraceful(testCtx(t)) }()
		waitFor(t, "new commands refused", func() error {
			if err := r.c.Get(testCtx(t), "k").Err(); !errors.Is(err, redis.ErrClosed) {
				return fmt.Errorf("%w: GET = %w", errNotYet, err)
			}
			return nil
		})
		select {
		case err := <-done:
			t.Fatalf("CloseGraceful returned %v with two commands in flight", err)
		case err := <-r.blpop:
			t.Fatalf("BLPOP ended (%v) before it was answered", err)
		case <-time.After(300 * time.Millisecond):
		}
		r.answer(t)
		if err := <-r.blpop; err != nil {
			t.Fatalf("in-flight BLPOP: %v", err)
		}
		if err := <-r.pipe; err != nil {
			t.Fatalf("in-flight pipeline: %v", err)
		}
		if err := <-done; err != nil {
			t.Fatalf("CloseGraceful: %v", err)
		}
		if got, err := r.admin.Get(testCtx(t), rigAfter).Result(); err != nil || got != "done" {
			t.Fatalf("the SET queued behind the BLPOP: %q, %v", got, err)
		}
		assertEndOnce(t, r.ev)
		if r.c.IsOpen() || r.c.IsReady() {
			t.Fatal("open after CloseGraceful")
		}
	})
}

// Close (node-redis destroy/disconnect): commands in flight fail fast, nothing runs after it.
func TestCloseFailsInFlightCommandsFast(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	forModes(t, func(t *testing.T, clusterMode bool) {
		r := newCloseRig(t, clusterMode)
		start := time.Now()
		if err := r.c.Close(); err != nil {
			t.Fatal(err)
		}
		for what, ch := range map[string]chan error{"BLPOP": r.blpop, "pipeline": r.pipe} {
			select {
			case err := <-ch:
				if err == nil {
					t.Fatalf("in-flight %s succeeded after Close", what)
				}
				t.Logf("in-flight %s failed %v after Close began: %v", what, time.Since(start).Round(time.Millisecond), err)
			case <-time.After(5 * time.Second):
				t.Fatalf("in-flight %s still waiting 5s after Close", what)
			}
		}
		// The server never saw the SET: its connection closed before the BLPOP ahead of it returned.
		r.answer(t)
		if err := r.admin.Get(testCtx(t), rigAfter).Err(); !errors.Is(err, redis.Nil) {
			t.Fatalf("SET behind the BLPOP ran after Close: %v", err)
		}
		assertEndOnce(t, r.ev)
	})
}

// CloseGraceful bounded by its context: what is still in flight is then failed.
func TestCloseGracefulContextEndsClosesTheRest(t *testing.T) {
	r := newCloseRig(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := r.c.CloseGraceful(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("CloseGraceful with BLPOP 0 in flight = %v, want DeadlineExceeded", err)
	}
	select {
	case err := <-r.blpop:
		if err == nil {
			t.Fatal("BLPOP succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("BLPOP still waiting after CloseGraceful gave up")
	}
	assertEndOnce(t, r.ev)
}

// Close and CloseGraceful from many goroutines at once, twice each: one does the work (nil),
// every other call returns ErrClosed after "end" was delivered; "end" is emitted once.
func TestCloseConcurrentAndRepeated(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	var ev events
	c := newStandalone(t, srv, nil, &ev)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 16 {
		wg.Go(func() {
			for range 2 {
				var err error
				if i%2 == 0 {
					err = c.Close()
				} else {
					err = c.CloseGraceful(context.Background())
				}
				// Whoever returns, the close is complete: "end" was delivered.
				if types := ev.types(); len(types) == 0 || types[len(types)-1] != client.EventEnd {
					err = fmt.Errorf("returned %w before end was delivered: %v", err, types)
				}
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	nils := 0
	for err := range errs {
		switch {
		case err == nil:
			nils++
		case !errors.Is(err, redis.ErrClosed) || strings.HasPrefix(err.Error(), "returned"):
			t.Error(err)
		}
	}
	if nils != 1 {
		t.Fatalf("%d calls did the close, want 1", nils)
	}
	assertEndOnce(t, &ev)
}

func assertEndOnce(t *testing.T, ev *events) {
	t.Helper()
	types := ev.types()
	n := 0
	for _, ty := range types {
		if ty == client.EventEnd {
			n++
		}
	}
	if n != 1 || types[len(types)-1] != client.EventEnd {
		t.Fatalf("want exactly one end, last: %v", types)
	}
}

// Close of a client from Open, with its reload running and a new version being applied, from
// many goroutines at once: one does the work, the rest return ErrClosed, "end" once; run with
// -race (the reload goroutine, its source and the monitor all stop under the calls).
func TestCloseConcurrentWithReload(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	ctx := testCtx(t)
	cfg := render(t, plainStandalone(srv.Addr()))
	m := newMount(t, map[string][]byte{client.ConfigFileName: cfg})
	var ev events
	c, err := client.OpenOptions{ReloadInterval: time.Millisecond, Dial: (&recorder{}).Dial, OnEvent: ev.handle}.Open(ctx, m.dir)
	if err != nil {
		t.Fatal(err)
	}
	// A new version (a password appears) keeps the reload busy while Close runs.
	m.update(t, map[string][]byte{client.ConfigFileName: cfg, client.SecretKeyPassword: []byte("p")})
	var wg sync.WaitGroup
	var nils, closed atomic.Int32
	start := make(chan struct{})
	for range 64 {
		wg.Go(func() {
			<-start
			switch err := c.Close(); {
			case err == nil:
				nils.Add(1)
			case errors.Is(err, redis.ErrClosed):
				closed.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	if nils.Load() != 1 || closed.Load() != 63 {
		t.Fatalf("%d closes returned nil and %d ErrClosed, want 1 and 63", nils.Load(), closed.Load())
	}
	assertEndOnce(t, &ev)
}
