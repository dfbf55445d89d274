package client_test

import (
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// TestDefaultReconnectCannotBeReassigned: the default a client with no ReconnectStrategy uses is
// not a package variable another package can overwrite for every client in the process.
// (Not parallel: it assigns the deprecated variable.)
func TestDefaultReconnectCannotBeReassigned(t *testing.T) {
	saved := client.DefaultReconnectStrategy //nolint:staticcheck // the deprecated variable is what is tested
	client.DefaultReconnectStrategy = client.NoReconnect
	t.Cleanup(func() { client.DefaultReconnectStrategy = saved })

	srv := redistest.StartServer(t, redistest.ServerOptions{})
	var ev events
	c := newStandalone(t, srv, nil, &ev)
	waitEvent(t, &ev, client.EventReady)
	srv.Kill()
	waitEvent(t, &ev, client.EventReconnecting)
	srv.Restart(t)
	waitFor(t, "ready again with the built-in default", func() error {
		if c.IsReady() {
			return nil
		}
		return errNotYet
	})
	if err := c.Set(testCtx(t), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestDefaultReconnect: min(2^retries*50ms, 2s) + rand(0..200ms), from one set of constants.
func TestDefaultReconnect(t *testing.T) {
	if client.DefaultReconnectBase != 50*time.Millisecond || client.DefaultReconnectCap != 2*time.Second || client.DefaultReconnectJitter != 200*time.Millisecond {
		t.Fatalf("defaults %s/%s/%s", client.DefaultReconnectBase, client.DefaultReconnectCap, client.DefaultReconnectJitter)
	}
	s := client.DefaultReconnect()
	for _, tc := range []struct {
		retries  int
		min, max time.Duration
	}{
		{0, 50 * time.Millisecond, 250 * time.Millisecond},
		{3, 400 * time.Millisecond, 600 * time.Millisecond},
		{6, 2 * time.Second, 2200 * time.Millisecond},
		{40, 2 * time.Second, 2200 * time.Millisecond},
	} {
		for range 50 {
			d, err := s(tc.retries, nil)
			if err != nil || d < tc.min || d >= tc.max {
				t.Fatalf("retries %d: %s, %v; want [%s, %s)", tc.retries, d, err, tc.min, tc.max)
			}
		}
	}
}
