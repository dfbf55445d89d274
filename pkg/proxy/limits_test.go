package proxy_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
	"github.com/rconn-dev/redis-connection-operator/pkg/proxy"
)

// rawConn is a RESP connection to a proxy listener, for replies a client library would hide.
type rawConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialLine(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawConn{c: c, r: bufio.NewReader(c)}
}

// do sends one command and returns the first line of its reply ("" and the error when the
// connection ends first).
func (r *rawConn) do(args ...string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	_ = r.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	line, err := r.r.ReadString('\n')
	return strings.TrimSuffix(line, "\r\n"), err
}

// acceptCounter is a plain TCP listener that is no cluster node; it counts what reaches it.
func acceptCounter(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			_, _ = c.Write([]byte("+REACHED\r\n"))
			_ = c.Close()
		}
	}()
	return ln.Addr().String(), &n
}

// TestForgedRedirectGetsNoListener is issue 25's repro: a client shapes a -MOVED (or -ASK)
// naming an address of its choice with EVAL. The proxy must not open a listener to it (a
// fresh topology read does not confirm it): the reply keeps the address, nothing dials it,
// and forged redirects take no node port.
func TestForgedRedirectGetsNoListener(t *testing.T) {
	t.Parallel() // its own cluster and proxy: overlaps the other tests' waits
	e := startEnv(t, envOptions{seedPort: freeSeed(t, 8), proxy: func(_ *env, o *proxy.Options) { o.NodePorts = 4 }})
	target, reached := acceptCounter(t)
	before := len(e.p.Nodes())
	seed := dialLine(t, e.p.SeedAddr())
	for i, kind := range []string{"MOVED", "ASK", "MOVED", "ASK", "MOVED"} {
		_, port, _ := net.SplitHostPort(target)
		addr := target
		if i > 0 { // distinct addresses: each would have taken a port
			addr = fmt.Sprintf("127.0.0.%d:%s", i+1, port)
		}
		got, err := seed.do("EVAL", fmt.Sprintf("return redis.error_reply('%s 1 %s')", kind, addr), "0")
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("-%s 1 %s", kind, addr); got != want {
			t.Errorf("forged %s came back as %q, want it unchanged (%q): the proxy made a listener for it", kind, got, want)
		}
	}
	if n := len(e.p.Nodes()); n != before {
		t.Errorf("the proxy has %d node listeners after forged redirects, %d before: %v", n, before, e.p.Nodes())
	}
	for _, n := range e.p.Nodes() {
		if c, err := net.DialTimeout("tcp", n.Listen, time.Second); err == nil {
			rc := &rawConn{c: c, r: bufio.NewReader(c)}
			if got, _ := rc.do("PING"); got == "+REACHED" {
				t.Errorf("listener %s (for %q) reached the forged target", n.Listen, n.Announced)
			}
			_ = c.Close()
		}
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("the forged target was reached %d times", n)
	}
	e.dial.AssertOnlyDialed(t, e.rc.AddressMap())
	// The port left for a real new node is still free: the one spare of NodePorts=4.
	if n := len(e.p.Nodes()); n != 3 {
		t.Errorf("%d node listeners, want the cluster's 3", n)
	}
}

// freeSeed finds a seed port with n free ports after it, below the ephemeral range (ports the
// kernel hands out to other tests' connections would come and go in it).
func freeSeed(t *testing.T, n int) int {
	t.Helper()
	for tries := 0; tries < 200; tries++ {
		base := 20000 + rand.IntN(10000)
		ok := true
		for p := base; p <= base+n && ok; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				continue
			}
			_ = l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free run of ports")
	return 0
}

// TestAddressPolicyAppliesToEveryDial: with the manager's policy (here: one node's mapped
// ip:port denied, as the API server's is), the proxy never dials that address, neither for its
// topology reads nor for a client's connection to that node's listener; the other nodes work.
func TestAddressPolicyAppliesToEveryDial(t *testing.T) {
	t.Parallel() // its own cluster and proxy: overlaps the other tests' waits
	e := startEnv(t, envOptions{proxy: func(e *env, o *proxy.Options) {
		ap := netip.MustParseAddrPort(e.rc.AddressMap()[e.rc.Nodes[1].Announced])
		o.AddressPolicy = cluster.NewAddressPolicy(cluster.AddressPolicyOptions{AllowLoopback: true, DenyAddrPorts: []netip.AddrPort{ap}})
		o.Dial = nil // net.Dialer under the policy: a denied address gets no SYN
	}})
	before, err := e.rc.Nodes[1].Client().Info(ctx(t), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	c := dialLine(t, e.listenerOf(t, e.rc.Nodes[1]))
	if got, err := c.do("PING"); err == nil {
		t.Errorf("PING through the listener of a denied node answered %q", got)
	}
	after, err := e.rc.Nodes[1].Client().Info(ctx(t), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	// total_connections_received: our two INFO clients only.
	if b, a := statOf(before, "total_connections_received"), statOf(after, "total_connections_received"); a != b+1 {
		t.Errorf("the denied node received %d connections between two INFOs, want only the second INFO's", a-b)
	}
	for _, i := range []int{0, 2} {
		c := dialLine(t, e.listenerOf(t, e.rc.Nodes[i]))
		if got, err := c.do("PING"); err != nil || got != "+PONG" {
			t.Errorf("PING through node %d's listener = %q, %v", i, got, err)
		}
	}
}

func statOf(info, key string) int {
	for _, l := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			var n int
			_, _ = fmt.Sscan(v, &n)
			return n
		}
	}
	return -1
}

// TestConnectionCaps: over MaxConnsPerNode on one listener, or MaxConns in all, a new
// connection gets Redis's own "max number of clients reached" and is closed; closing one
// makes room again.
func TestConnectionCaps(t *testing.T) {
	t.Parallel() // its own cluster and proxy: overlaps the other tests' waits
	e := startEnv(t, envOptions{proxy: func(_ *env, o *proxy.Options) { o.MaxConns, o.MaxConnsPerNode = 3, 2 }})
	node := e.listenerOf(t, e.rc.Nodes[0])
	var open []*rawConn
	for i := 0; i < 2; i++ {
		c := dialLine(t, node)
		if got, err := c.do("PING"); err != nil || got != "+PONG" {
			t.Fatalf("connection %d: %q, %v", i, got, err)
		}
		open = append(open, c)
	}
	if got, _ := dialLine(t, node).do("PING"); got != "-ERR max number of clients reached" {
		t.Errorf("third connection to one listener (cap 2): %q", got)
	}
	other := dialLine(t, e.listenerOf(t, e.rc.Nodes[1]))
	if got, err := other.do("PING"); err != nil || got != "+PONG" {
		t.Fatalf("third connection in all (cap 3): %q, %v", got, err)
	}
	if got, _ := dialLine(t, e.p.SeedAddr()).do("PING"); got != "-ERR max number of clients reached" {
		t.Errorf("fourth connection in all (cap 3): %q", got)
	}
	_ = open[0].c.Close()
	waitFor(t, "room after a close", func() error {
		c, err := net.DialTimeout("tcp", node, time.Second)
		if err != nil {
			return err
		}
		defer func() { _ = c.Close() }()
		got, err := (&rawConn{c: c, r: bufio.NewReader(c)}).do("PING")
		if got != "+PONG" {
			return fmt.Errorf("PING: %q, %w", got, err)
		}
		return nil
	})
}

// TestIdleTimeout: a client connection without a byte either way for IdleTimeout is closed;
// one that keeps talking is not.
func TestIdleTimeout(t *testing.T) {
	t.Parallel() // its own cluster and proxy: overlaps the other tests' waits
	e := startEnv(t, envOptions{proxy: func(_ *env, o *proxy.Options) { o.IdleTimeout = 400 * time.Millisecond }})
	idle := dialLine(t, e.listenerOf(t, e.rc.Nodes[0]))
	busy := dialLine(t, e.listenerOf(t, e.rc.Nodes[0]))
	for _, c := range []*rawConn{idle, busy} {
		if got, err := c.do("PING"); err != nil || got != "+PONG" {
			t.Fatalf("PING: %q, %v", got, err)
		}
	}
	for i := 0; i < 15; i++ {
		time.Sleep(100 * time.Millisecond)
		if got, err := busy.do("PING"); err != nil || got != "+PONG" {
			t.Fatalf("a busy connection was cut after %d pings: %q, %v", i, got, err)
		}
	}
	_ = idle.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("idle connection after 1.5s (timeout 400ms): read %v, want EOF", err)
	}
}

// TestTopologyBufferIsBounded: topology replies held by all connections together are bounded
// by MaxTopologyBuffer; a reply beyond it closes its connection, and nothing else.
func TestTopologyBufferIsBounded(t *testing.T) {
	t.Parallel() // its own cluster and proxy: overlaps the other tests' waits
	e := startEnv(t, envOptions{proxy: func(_ *env, o *proxy.Options) { o.MaxTopologyBuffer = 64 }})
	c := dialLine(t, e.p.SeedAddr())
	if got, err := c.do("CLUSTER", "NODES"); err == nil {
		t.Errorf("CLUSTER NODES over a 64-byte buffer bound answered %q", got)
	}
	if got, err := dialLine(t, e.p.SeedAddr()).do("PING"); err != nil || got != "+PONG" {
		t.Errorf("PING after: %q, %v", got, err)
	}
}
