// Package nettest keeps tests on loopback and away from DNS: a recording base dial function
// that resolves names only from its own table, and a process-wide guard that fails a test
// binary which attempted any DNS query.
package nettest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/tb"
)

// ErrRefused is returned for a name outside the table: no lookup is made.
var ErrRefused = errors.New("test dialer: refusing a name outside the test table (no DNS lookups in tests)")

// Recorder is a base dial function (pkg/cluster DialFunc) that resolves names only from Names,
// refuses anything else without a lookup, dials loopback only, and records every address.
type Recorder struct {
	mu     sync.Mutex
	names  map[string]string
	dialed []string
}

// NewRecorder resolves the hostnames in names (hostname -> loopback IP).
func NewRecorder(names map[string]string) *Recorder {
	if names == nil {
		names = map[string]string{}
	}
	return &Recorder{names: names}
}

// Dial has pkg/cluster's DialFunc signature.
func (r *Recorder) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	r.mu.Lock()
	r.dialed = append(r.dialed, addr)
	r.mu.Unlock()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	ip, ok := r.names[host]
	r.mu.Unlock()
	if ok {
		host = ip
	}
	parsed := net.ParseIP(host)
	if parsed == nil {
		return nil, fmt.Errorf("%w: %s", ErrRefused, addr)
	}
	if !parsed.IsLoopback() {
		return nil, fmt.Errorf("test dialer: refusing non-loopback %s", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, net.JoinHostPort(host, port))
}

// SetName adds or changes a table entry (host may also be an IP to redirect).
func (r *Recorder) SetName(host, ip string) {
	r.mu.Lock()
	r.names[host] = ip
	r.mu.Unlock()
}

// Dialed returns every address dialed so far.
func (r *Recorder) Dialed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.dialed...)
}

// Reset forgets the record.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.dialed = nil
	r.mu.Unlock()
}

// Has tells whether addr was dialed.
func (r *Recorder) Has(addr string) bool { return slices.Contains(r.Dialed(), addr) }

// AssertOnlyDialed fails t if any dialed address is not a value of allowed (an address map).
func (r *Recorder) AssertOnlyDialed(t testing.TB, allowed map[string]string) {
	t.Helper()
	r.AssertOnly(t, slices.Collect(maps.Values(allowed))...)
}

// AssertOnly fails t if any dialed address is not one of allowed.
func (r *Recorder) AssertOnly(t testing.TB, allowed ...string) {
	t.Helper()
	for _, a := range r.Dialed() {
		if !slices.Contains(allowed, a) {
			t.Fatalf("dialed %s, which is not a mapped address (allowed: %v)", a, allowed)
		}
	}
}

// TB is internal/tb's: the one interface every local-world helper takes.
type TB = tb.TB

// Proxy forwards TCP connections on loopback to a target and counts them: a stand-in for a
// LoadBalancer, NodePort or port-forward in front of a node.
type Proxy struct {
	ln       net.Listener
	Accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
}

// StartProxy listens on 127.0.0.1 and forwards to target until t's Cleanup.
func StartProxy(t TB, target string) *Proxy {
	t.Helper()
	return StartProxyAt(t, "127.0.0.1:0", target)
}

// StartProxyAt listens on a loopback address (any of 127.0.0.0/8, e.g. a test Service's
// ClusterIP) and forwards to target until t's Cleanup.
func StartProxyAt(t TB, listen, target string) *Proxy {
	t.Helper()
	return StartProxyFunc(t, listen, func() string { return target })
}

// StartProxyFunc is StartProxyAt with the target looked up for each new connection (what
// kube-proxy does for a Service whose endpoint moved; "" refuses the connection).
func StartProxyFunc(t TB, listen string, target func() string) *Proxy {
	t.Helper()
	if host, _, err := net.SplitHostPort(listen); err != nil || !net.ParseIP(host).IsLoopback() {
		t.Fatalf("nettest: proxy address %q is not loopback", listen)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("nettest: %v", err)
	}
	p := &Proxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.Accepted.Add(1)
			to := target()
			if to == "" {
				_ = c.Close()
				continue
			}
			up, err := net.Dial("tcp", to)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	}()
	t.Cleanup(p.Close)
	return p
}

// Addr is the address the proxy listens on.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops listening and closes every forwarded connection.
func (p *Proxy) Close() {
	_ = p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
}

// RunWithoutDNS is a TestMain body: it makes every DNS query fail and be recorded, runs the
// tests, and fails the binary if any query was attempted.
func RunWithoutDNS(m *testing.M) { os.Exit(WithoutDNS(m.Run)) }

// WithoutDNS is RunWithoutDNS for a TestMain that sets up and tears down around the tests:
// run returns the exit code, and the result is it, or 1 if any DNS query was attempted.
func WithoutDNS(run func() int) int {
	var mu sync.Mutex
	var queries []string
	net.DefaultResolver = &net.Resolver{
		PreferGo: true,
		Dial: func(_ context.Context, network, address string) (net.Conn, error) {
			mu.Lock()
			queries = append(queries, network+" "+address)
			mu.Unlock()
			return nil, errors.New("DNS is disabled in tests")
		},
	}
	code := run()
	mu.Lock()
	defer mu.Unlock()
	if len(queries) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d DNS queries were attempted (first: %s)\n", len(queries), queries[0])
		code = 1
	}
	return code
}

// WaitFor calls cond every 20 ms until it returns nil, failing t with cond's last error after
// within.
func WaitFor(t TB, within time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
