package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/testing/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// recorder is the base dial function of every test: it resolves names only from its table,
// refuses anything else without a lookup, dials loopback only, and records every address.
type recorder struct {
	mu     sync.Mutex
	names  map[string]string // hostname -> loopback IP
	dialed []string
}

func newRecorder(names map[string]string) *recorder {
	if names == nil {
		names = map[string]string{}
	}
	return &recorder{names: names}
}

var errRefused = errors.New("test dialer: refusing a name outside the test table (no DNS lookups in tests)")

func (r *recorder) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	r.mu.Lock()
	r.dialed = append(r.dialed, addr)
	r.mu.Unlock()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip, ok := r.names[host]; ok {
		host = ip
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, fmt.Errorf("%w: %s", errRefused, addr)
	}
	if !ip.IsLoopback() {
		return nil, fmt.Errorf("test dialer: refusing non-loopback %s", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, net.JoinHostPort(host, port))
}

func (r *recorder) Dialed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.dialed...)
}

func (r *recorder) Reset() {
	r.mu.Lock()
	r.dialed = nil
	r.mu.Unlock()
}

// assertOnlyDialed fails if any dialed address is outside allowed.
func (r *recorder) assertOnlyDialed(t *testing.T, allowed map[string]string) {
	t.Helper()
	ok := map[string]bool{}
	for _, v := range allowed {
		ok[v] = true
	}
	for _, a := range r.Dialed() {
		if !ok[a] {
			t.Fatalf("dialed %s, which is not a mapped address (allowed: %v)", a, allowed)
		}
	}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rootURLs returns redis:// URLs of the first n announced addresses.
func rootURLs(c *redistest.Cluster, n int, scheme string) []cluster.RootNode {
	var out []cluster.RootNode
	for _, node := range c.Nodes[:n] {
		out = append(out, cluster.RootNode{URL: scheme + "://" + node.Announced})
	}
	return out
}

// funcMap is a function map (node-redis nodeAddressMap as a function) derived from the
// cluster's names: node-<i>.<domain>:<port> -> 127.0.0.1:<port>, translated ports via table.
func funcMap(c *redistest.Cluster) cluster.NodeAddressMap {
	m := c.AddressMap()
	return func(a cluster.Address) (cluster.Address, bool) {
		if !strings.HasSuffix(a.Host, ".invalid") && a.Host != "127.0.0.1" {
			return cluster.Address{}, false
		}
		real, ok := m[a.String()]
		if !ok {
			return cluster.Address{}, false
		}
		host, port, _ := net.SplitHostPort(real)
		p, _ := strconv.Atoi(port)
		return cluster.Address{Host: host, Port: p}, true
	}
}

// proxy forwards TCP connections on loopback to a target and counts them.
type proxy struct {
	ln       net.Listener
	target   string
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.Close)
	return p
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}
