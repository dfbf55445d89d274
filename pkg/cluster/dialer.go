package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// NodeAddressMap maps an announced node address to the address to dial instead (node-redis
// nodeAddressMap as a function). ok=false means "no entry": the announced address is dialed
// as it is.
type NodeAddressMap func(announced Address) (reachable Address, ok bool)

// StaticMap builds a NodeAddressMap from "host:port" -> "host:port" entries (node-redis
// nodeAddressMap as an object). Every key and value must parse as host:port.
func StaticMap(entries map[string]string) (NodeAddressMap, error) {
	m := make(map[Address]Address, len(entries))
	for k, v := range entries {
		ka, err := ParseAddress(k)
		if err != nil {
			return nil, fmt.Errorf("nodeAddressMap key: %w", err)
		}
		va, err := ParseAddress(v)
		if err != nil {
			return nil, fmt.Errorf("nodeAddressMap[%q]: %w", k, err)
		}
		m[ka] = va
	}
	return func(a Address) (Address, bool) {
		r, ok := m[a]
		return r, ok
	}, nil
}

// DialFunc dials a network address; the layer beneath the address map (net.Dialer by default).
// Tests pass one that records every address and refuses names it does not know; users behind a
// SOCKS proxy or port-forward pass their own.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// ErrRetired is returned by the health check of a pooled connection whose node address mapping
// changed since it was dialed: the pool drops it and dials the new address.
var ErrRetired = errors.New("connection retired: its node address mapping changed")

// Dialer dials announced node addresses through the node address map, then runs the TLS
// handshake with the mapped host (or the configured override) as server name. go-redis calls it
// for root nodes, discovered nodes and MOVED/ASK targets alike.
type Dialer struct {
	base           DialFunc
	tls            *tls.Config
	tlsFor         func(serverName string) *tls.Config
	serverName     string
	connectTimeout time.Duration

	mapping atomic.Pointer[NodeAddressMap]

	mu      sync.Mutex
	targets map[string]*target // announced -> what live connections to it were dialed at

	ids idResolver
}

// target is the reachable address connections to one announced address use; retired flips
// when a new map sends that announced address elsewhere. refs counts the connections (and
// dials in flight) that use it: at zero it is forgotten, so the map holds no more entries than
// there are live connections, however many addresses MOVED/ASK and topology changes named.
type target struct {
	reachable string
	retired   atomic.Bool
	refs      int // under Dialer.mu
}

// release drops one reference to t, forgetting t with the last one.
func (d *Dialer) release(announced string, t *target) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t.refs--
	if t.refs <= 0 && d.targets[announced] == t {
		delete(d.targets, announced)
	}
}

// DialerOptions configure NewDialer.
type DialerOptions struct {
	// Map is the node address map (nil: none).
	Map NodeAddressMap
	// Dial is the base dial function (nil: net.Dialer).
	Dial DialFunc
	// TLS enables TLS with this configuration (nil: plaintext). ServerName is set per node.
	TLS *tls.Config
	// TLSConfigFor, when set, enables TLS and returns the configuration for one server name
	// (pkg/tls Reloadable.ConfigFor: live certificate rotation). It wins over TLS.
	TLSConfigFor func(serverName string) *tls.Config
	// ServerName overrides the name checked in server certificates (default: the mapped host).
	ServerName string
	// ConnectTimeout bounds TCP connect plus TLS handshake (default 5s).
	ConnectTimeout time.Duration
	// NodeIDs is the fallback for announced addresses Map has no entry for (see NodeIDMap);
	// it needs a lookup (SetNodeIDLookup; a cluster Client sets its Inspector's Discover).
	NodeIDs NodeIDMap
}

// NewDialer returns a mapping dialer.
func NewDialer(o DialerOptions) *Dialer {
	d := &Dialer{base: o.Dial, tls: o.TLS, tlsFor: o.TLSConfigFor, serverName: o.ServerName, connectTimeout: o.ConnectTimeout, targets: map[string]*target{}}
	if d.base == nil {
		nd := &net.Dialer{KeepAlive: 5 * time.Minute}
		d.base = nd.DialContext
	}
	if d.connectTimeout <= 0 {
		d.connectTimeout = DefaultConnectTimeout
	}
	d.ids.set(o.NodeIDs)
	d.SetMap(o.Map)
	return d
}

// SetNodeIDs replaces the node ID map (nil: no fallback by node ID).
func (d *Dialer) SetNodeIDs(m NodeIDMap) { d.ids.set(m) }

// SetNodeIDLookup sets how the Dialer asks the cluster which node announces an address it
// has no map entry for: one topology discovery, bounded by ctx. Dials made by lookup itself
// never fall back by node ID.
func (d *Dialer) SetNodeIDLookup(lookup func(ctx context.Context) (*Topology, error)) {
	d.ids.mu.Lock()
	d.ids.lookup = lookup
	d.ids.mu.Unlock()
}

// Resolve returns the address to dial for an announced "host:port" and whether the map had an
// entry for it.
func (d *Dialer) Resolve(announced string) (string, bool) {
	m := d.mapping.Load()
	if m == nil || *m == nil {
		return announced, false
	}
	a, err := ParseAddress(announced)
	if err != nil {
		return announced, false
	}
	r, ok := (*m)(a)
	if !ok {
		return announced, false
	}
	return r.String(), true
}

// SetMap atomically replaces the node address map. Pooled connections to announced addresses
// whose target changed are retired: the pool discards them before their next use and dials
// the new address; connections whose target did not change stay.
func (d *Dialer) SetMap(m NodeAddressMap) {
	d.mapping.Store(&m)
	d.mu.Lock()
	defer d.mu.Unlock()
	for announced, t := range d.targets {
		if now := d.resolveCached(announced); now != t.reachable {
			t.retired.Store(true)
			delete(d.targets, announced)
		}
	}
}

// resolveCached is Resolve, then the node ID fallback's last answer (no lookup).
func (d *Dialer) resolveCached(announced string) string {
	if r, ok := d.Resolve(announced); ok {
		return r
	}
	if a, _, ok := d.ids.cached(announced, false); ok {
		return a.String()
	}
	return announced
}

// DialContext dials the node announced at addr. It has go-redis's Dialer signature. An
// announced address the map has no entry for is looked up by node ID (see NodeIDMap) before
// it is dialed as announced.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.connectTimeout)
	defer cancel()
	reachable, mapped := d.Resolve(addr)
	byID := ""
	if !mapped {
		if a, id, ok := d.ids.resolve(ctx, addr); ok {
			reachable, mapped, byID = a.String(), true, id
		}
	}
	d.mu.Lock()
	t := d.targets[addr]
	if t == nil || t.reachable != reachable {
		t = &target{reachable: reachable}
		d.targets[addr] = t
	}
	t.refs++
	d.mu.Unlock()

	conn, err := d.base(ctx, network, reachable)
	if err != nil {
		d.release(addr, t)
		if byID != "" {
			d.ids.forget(addr)
		}
		return nil, &DialError{Announced: addr, Dialed: reachable, Mapped: mapped, NodeID: byID, Err: err}
	}
	if d.tls != nil || d.tlsFor != nil {
		name := d.serverName
		if name == "" {
			name, _, _ = net.SplitHostPort(reachable)
		}
		var cfg *tls.Config
		if d.tlsFor != nil {
			cfg = d.tlsFor(name)
		} else {
			cfg = d.tls.Clone()
			cfg.ServerName = name
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			d.release(addr, t)
			return nil, &DialError{Announced: addr, Dialed: reachable, Mapped: mapped, NodeID: byID, Err: fmt.Errorf("TLS handshake (server name %q): %w", name, rtls.Explain(err))}
		}
		return &mappedConn{Conn: tc, t: t, release: func() { d.release(addr, t) }}, nil
	}
	return &mappedConn{Conn: conn, t: t, release: func() { d.release(addr, t) }}, nil
}

// DialError says which announced address was dialed at which address, and why it failed.
type DialError struct {
	Announced string
	Dialed    string
	Mapped    bool
	// NodeID is set when the address was found by node ID (no map entry for Announced).
	NodeID string
	Err    error
}

func (e *DialError) Error() string {
	switch {
	case e.NodeID != "":
		return fmt.Sprintf("dialing node %s (no nodeAddressMap entry; node %s mapped by ID to %s): %v", e.Announced, e.NodeID, e.Dialed, e.Err)
	case e.Mapped:
		return fmt.Sprintf("dialing node %s (mapped to %s): %v", e.Announced, e.Dialed, e.Err)
	default:
		return fmt.Sprintf("dialing node %s (no nodeAddressMap entry; dialed as announced): %v", e.Announced, e.Err)
	}
}

func (e *DialError) Unwrap() error { return e.Err }

// mappedConn is a pooled connection that knows whether its mapping is still current. go-redis
// health-checks an idle connection through syscall.Conn before reusing it: a retired one fails
// that check and is replaced; a live one passes on the plaintext socket's own check.
type mappedConn struct {
	net.Conn
	t       *target
	release func()
	closed  sync.Once
}

// Close closes the connection and, the first time, gives up its reference to the target.
func (c *mappedConn) Close() error {
	err := c.Conn.Close()
	c.closed.Do(c.release)
	return err
}

func (c *mappedConn) SyscallConn() (syscall.RawConn, error) {
	if c.t.retired.Load() {
		return nil, ErrRetired
	}
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	// TLS: go-redis deliberately skips the socket peek on TLS connections; keep it that way.
	return noopRawConn{}, nil
}

// NetConn returns the wrapped connection.
func (c *mappedConn) NetConn() net.Conn { return c.Conn }

type noopRawConn struct{}

func (noopRawConn) Control(func(fd uintptr)) error           { return nil }
func (noopRawConn) Read(func(fd uintptr) bool) error         { return nil }
func (noopRawConn) Write(func(fd uintptr) (done bool)) error { return nil }

// ErrNameResolutionDisabled is returned by IPOnlyDial for an address whose host is a name.
var ErrNameResolutionDisabled = errors.New("name resolution disabled: the address is not an IP literal and no node address map entry covers it")

// IPOnlyDial is a base DialFunc that never resolves names: it dials IP literals with a
// net.Dialer and refuses everything else with ErrNameResolutionDisabled. Use it where every
// node must be reached through the node address map (or an IP root node) and a DNS query for
// an unmapped announced name would be a mistake: air-gapped hosts, demos, tests.
func IPOnlyDial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if net.ParseIP(host) == nil {
		return nil, fmt.Errorf("dial %s %s: %w", network, addr, ErrNameResolutionDisabled)
	}
	d := net.Dialer{KeepAlive: 5 * time.Minute}
	return d.DialContext(ctx, network, addr)
}
