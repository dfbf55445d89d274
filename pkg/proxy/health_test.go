package proxy_test

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/pkg/proxy"
)

// logLines is a slog destination that keeps every line.
type logLines struct{ lockedBuffer }

func (l *logLines) Write(b []byte) (int, error) {
	for _, s := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		l.add(s)
	}
	return len(b), nil
}

func (l *logLines) count(substr string) int {
	n := 0
	for _, s := range l.lines() {
		if strings.Contains(s, substr) {
			n++
		}
	}
	return n
}

// TestDownNodeListenerRefuses is issue 25 item 1: once the proxy knows a node is down, its
// listener refuses connections (as the node itself would) instead of accepting and resetting
// them; the port stays the node's and accepts again when the node is back. The failure is
// logged once per change of state, not once per attempt.
func TestDownNodeListenerRefuses(t *testing.T) {
	logs := &logLines{}
	e := startEnv(t, envOptions{proxy: func(_ *env, o *proxy.Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}})
	n := e.rc.Nodes[2]
	addr := e.listenerOf(t, n)
	if got, err := dialLine(t, addr).do("PING"); err != nil || got != "+PONG" {
		t.Fatalf("PING before: %q, %v", got, err)
	}
	n.Kill()
	waitFor(t, "connection refused on the dead node's listener", func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil
		}
		if err == nil {
			_ = c.Close()
		}
		return fmt.Errorf("dial: %v", err)
	})
	// Clients keep trying, the topology reads see the node fail: still one line.
	for i := 0; i < 30; i++ {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			t.Errorf("attempt %d: the dead node's listener accepted", i)
			_ = c.Close()
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := logs.count("node down"); got != 1 {
		t.Errorf("%d \"node down\" log lines, want 1:\n%s", got, strings.Join(logs.lines(), "\n"))
	}
	if got := logs.count("level=WARN"); got != 1 {
		t.Errorf("%d WARN lines while the node was down, want 1:\n%s", got, strings.Join(logs.lines(), "\n"))
	}
	n.Restart(t)
	waitFor(t, "the node's listener accepting again on the same port", func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		_ = c.Close()
		got, err := dialLine(t, addr).do("PING")
		if got != "+PONG" {
			return fmt.Errorf("PING: %q, %w", got, err)
		}
		return nil
	})
	if got := e.listenerOf(t, n); got != addr {
		t.Errorf("the node's listener moved from %s to %s", addr, got)
	}
	if got := logs.count("node is back"); got != 1 {
		t.Errorf("%d \"node is back\" lines, want 1", got)
	}
}
