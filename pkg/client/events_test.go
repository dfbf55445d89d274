package client_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
)

func newStandalone(t *testing.T, srv *redistest.Server, s client.ReconnectStrategy, ev *events) *client.Client {
	t.Helper()
	c, err := client.NewClient(testCtx(t), client.Options{
		URL: "redis://" + srv.Addr(), Dial: (&recorder{}).Dial, ReconnectStrategy: s,
		OnEvent: ev.handle, MonitorInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func waitEvent(t *testing.T, ev *events, typ client.EventType) {
	t.Helper()
	waitFor(t, string(typ)+" event", func() error {
		if slices.Contains(ev.types(), typ) {
			return nil
		}
		return fmt.Errorf("%w: %v", errNotYet, ev.types())
	})
}

func TestEventsReconnectAfterRestart(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	var ev events
	c := newStandalone(t, srv, client.FixedDelay(50*time.Millisecond), &ev)
	ctx := testCtx(t)
	if !c.IsReady() || !c.IsOpen() {
		t.Fatal("not ready after NewClient")
	}
	// Handlers run asynchronously: wait for the initial events.
	waitEvent(t, &ev, client.EventReady)
	if got := ev.types(); !slices.Equal(got, []client.EventType{client.EventConnect, client.EventReady}) {
		t.Fatalf("initial events %v", got)
	}
	srv.Kill()
	waitEvent(t, &ev, client.EventReconnecting)
	if c.IsReady() || c.IsOpen() {
		t.Fatal("IsReady/IsOpen true while reconnecting")
	}
	srv.Restart(t)
	waitFor(t, "ready again", func() error {
		if c.IsReady() && c.IsOpen() {
			return nil
		}
		return errNotYet
	})
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// error, then (reconnecting, connect, [error])..., ending in connect, ready.
	got := ev.types()[2:]
	if got[0] != client.EventError || got[len(got)-1] != client.EventReady || got[len(got)-2] != client.EventConnect || got[len(got)-3] != client.EventReconnecting {
		t.Fatalf("events after kill: %v", got)
	}
	for i, e := range got[1 : len(got)-3] {
		if e == client.EventReady || e == client.EventEnd {
			t.Fatalf("unexpected %s at %d in %v", e, i, got)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if last := ev.types()[len(ev.types())-1]; last != client.EventEnd {
		t.Fatalf("last event after Close is %s", last)
	}
	if err := c.Set(ctx, "k", "v", 0).Err(); !errors.Is(err, redis.ErrClosed) {
		t.Fatalf("SET after Close: %v", err)
	}
}

func TestEventsNoReconnectEnds(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	var ev events
	c := newStandalone(t, srv, client.NoReconnect, &ev)
	srv.Kill()
	waitEvent(t, &ev, client.EventEnd)
	all := ev.list()
	end := all[len(all)-1]
	if end.Type != client.EventEnd || !errors.Is(end.Err, client.ErrReconnectDisabled) {
		t.Fatalf("events %v", all)
	}
	if slices.Contains(ev.types(), client.EventReconnecting) {
		t.Fatalf("reconnecting with NoReconnect: %v", all)
	}
	if c.IsOpen() || c.IsReady() {
		t.Fatal("open after end")
	}
	srv.Restart(t)
	if err := c.Set(testCtx(t), "k", "v", 0).Err(); !errors.Is(err, redis.ErrClosed) {
		t.Fatalf("SET after end: %v", err)
	}
}

func TestEventsStoppingStrategyEndsWithItsError(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	var ev events
	giveUp := errors.New("gave up after 3 attempts")
	var causes []error
	strategy := func(retries int, cause error) (time.Duration, error) {
		causes = append(causes, cause)
		if retries >= 3 {
			return 0, giveUp
		}
		return 20 * time.Millisecond, nil
	}
	newStandalone(t, srv, strategy, &ev)
	srv.Kill()
	waitEvent(t, &ev, client.EventEnd)
	all := ev.list()
	if end := all[len(all)-1]; !errors.Is(end.Err, giveUp) {
		t.Fatalf("end event %v", end)
	}
	n := 0
	for _, e := range all {
		if e.Type == client.EventReconnecting {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("want 3 reconnect attempts, got %d: %v", n, all)
	}
	for _, c := range causes {
		if c == nil {
			t.Fatal("strategy called without a cause")
		}
	}
}
