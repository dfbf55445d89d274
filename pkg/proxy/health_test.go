package proxy_test

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
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
	t.Parallel() // its own cluster and proxy: overlaps the other tests' waits
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
		return fmt.Errorf("dial: %w", err)
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

// TestMovedAfterFailover: once the topology names a new owner for a dead master's slots, its
// listener (same port) answers commands on those slots with -MOVED to the new owner's
// listener, so that clients with a stale slot map follow it; when the old master is back
// (now a replica), the listener forwards to it again.
func TestMovedAfterFailover(t *testing.T) {
	t.Parallel() // its own cluster and proxy: overlaps the other tests' waits
	e := startEnv(t, envOptions{replicas: 1, nodeTimeout: time.Second})
	m := e.rc.Masters()[0]
	var rep *redistest.Node
	for _, n := range e.rc.Nodes {
		if n.MasterIndex == m.Index {
			rep = n
		}
	}
	old, repAddr := e.listenerOf(t, m), e.listenerOf(t, rep)
	key := cluster.KeyForSlot(100)
	m.Kill()
	want := "-MOVED 100 " + repAddr
	waitFor(t, "-MOVED from the dead master's listener", func() error {
		c, err := net.DialTimeout("tcp", old, time.Second)
		if err != nil {
			return err
		}
		defer func() { _ = c.Close() }()
		got, err := (&rawConn{c: c, r: bufio.NewReader(c)}).do("GET", key)
		if got != want {
			return fmt.Errorf("GET: %q, %w", got, err)
		}
		return nil
	})
	c := dialLine(t, old)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"AUTH", "x"}, "+OK"},
		{[]string{"PING"}, "+PONG"},
		{[]string{"SET", key, "v"}, want},
		{[]string{"EVAL", "return 1", "1", key}, want},
		{[]string{"INFO"}, "-CLUSTERDOWN the node behind " + old + " is down"},
	} {
		if got, err := c.do(tc.args...); err != nil || got != tc.want {
			t.Errorf("%v: %q, %v; want %q", tc.args, got, err, tc.want)
		}
	}
	// Inline, quoted as Redis reads it.
	_, _ = c.c.Write([]byte("get \"" + key + "\"\r\n"))
	if line, err := c.r.ReadString('\n'); err != nil || strings.TrimSpace(line) != want {
		t.Errorf("inline GET: %q, %v", line, err)
	}
	// The new owner works through its listener.
	if got, err := dialLine(t, repAddr).do("SET", key, "v"); err != nil || got != "+OK" {
		t.Errorf("SET on the new owner: %q, %v", got, err)
	}
	m.Restart(t)
	waitFor(t, "the old master's listener forwarding to it again", func() error {
		c, err := net.DialTimeout("tcp", old, time.Second)
		if err != nil {
			return err
		}
		defer func() { _ = c.Close() }()
		got, err := (&rawConn{c: c, r: bufio.NewReader(c)}).do("ROLE")
		if !strings.HasPrefix(got, "*") {
			return fmt.Errorf("ROLE: %q, %w", got, err)
		}
		return nil
	})
	if got, err := dialLine(t, old).do("GET", key); err != nil || got != want {
		t.Errorf("GET at the old master, now a replica: %q, %v; want the node's own MOVED, rewritten: %q", got, err, want)
	}
}
