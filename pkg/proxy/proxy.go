package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// Defaults of Options.
const (
	DefaultListenHost      = "127.0.0.1"
	DefaultNodePorts       = 128
	DefaultRefreshInterval = 5 * time.Second
	DefaultDrainTimeout    = 30 * time.Second
	// DefaultMaxConns caps the client connections of the whole proxy.
	DefaultMaxConns = 4096
	// DefaultMaxConnsPerNode caps the client connections through one listener (the seed's
	// included), so that one client cannot use up a node's maxclients for every app.
	DefaultMaxConnsPerNode = 1024
	// DefaultIdleTimeout closes a client connection after this long without a byte in either
	// direction.
	DefaultIdleTimeout = 30 * time.Minute
	// DefaultMaxTopologyBuffer bounds the topology reply bytes all connections hold at once.
	DefaultMaxTopologyBuffer = 64 << 20
	// confirmWait is how long a redirection to a node without a listener waits for a fresh
	// topology read to confirm the node.
	confirmWait = 2 * time.Second
	// probeInterval is how often a node marked down is dialed to see whether it is back.
	probeInterval = 500 * time.Millisecond
)

// maxClientsReply is what Redis itself answers when maxclients is reached.
const maxClientsReply = "-ERR max number of clients reached\r\n"

// Options configure a Proxy. The zero value listens on 127.0.0.1, ephemeral ports.
type Options struct {
	// ListenHost is the address every listener binds (default 127.0.0.1).
	ListenHost string
	// AdvertiseHost is the host rewritten replies name (default ListenHost).
	AdvertiseHost string
	// SeedPort is the seed listener's port; node listeners take SeedPort+1 ...
	// SeedPort+NodePorts, one per node, kept per node ID while the proxy runs. 0: every
	// listener on an ephemeral port.
	SeedPort int
	// NodePorts is how many node ports follow SeedPort (default 128).
	NodePorts int
	// Dial is the base dial function beneath the node address map (default net.Dialer).
	Dial cluster.DialFunc
	// RefreshInterval is how often the topology is read (default 5s); a redirection to a
	// node without a listener also triggers a read.
	RefreshInterval time.Duration
	// DrainTimeout is how long connections through a departed node's listener may live on
	// (default 30s).
	DrainTimeout time.Duration
	// MaxTopologyReply bounds one buffered topology reply (default 4 MiB).
	MaxTopologyReply int
	// AddressPolicy, when set, judges every dial of the proxy (its topology reads and every
	// forwarded connection), after the node address map: see cluster.AddressPolicy.
	AddressPolicy *cluster.AddressPolicy
	// MaxConns caps the client connections of the proxy (default DefaultMaxConns; <0: no cap).
	// A connection over a cap is answered "-ERR max number of clients reached" and closed, as
	// Redis does.
	MaxConns int
	// MaxConnsPerNode caps the client connections through one listener (default
	// DefaultMaxConnsPerNode; <0: no cap).
	MaxConnsPerNode int
	// IdleTimeout closes a client connection after this long without a byte in either
	// direction (default DefaultIdleTimeout; <0: never).
	IdleTimeout time.Duration
	// MaxTopologyBuffer bounds the topology reply bytes buffered by all connections together
	// (default DefaultMaxTopologyBuffer): a connection whose reply would exceed it is closed.
	MaxTopologyBuffer int
	// Logger receives what the proxy does (default slog.Default()).
	Logger *slog.Logger
	// Handshake, when set, runs on every accepted connection before its node is dialed (ctx
	// ends when the proxy closes). It returns the connection to forward; an error closes the
	// connection (Handshake may have written its own reply). kubectl rconn port-forward
	// authenticates clients with it.
	Handshake func(ctx context.Context, c net.Conn) (net.Conn, error)
	// MasterPort (Sentinel mode) opens a listener that always forwards to the confirmed
	// master and closes its connections when the master changes: 0 none, <0 an ephemeral
	// port. See sentinel.go.
	MasterPort int
}

// Proxy forwards local listeners, one per cluster node plus a seed, to the nodes' mapped
// addresses (see the package documentation).
type Proxy struct {
	o   Options
	log *slog.Logger

	in         *cluster.Inspector
	tls        *rtls.Reloadable
	creds      atomic.Pointer[[2]string]
	standalone bool
	roots      []string

	mu       sync.Mutex
	cfg      *client.Config
	seed     *listener
	byID     map[string]*listener
	byAddr   map[string]*listener // announced address -> listener
	all      map[*listener]bool
	reserved map[string]int // node ID -> port, kept after the node left
	order    []string       // reserved's IDs, oldest first (reserveLocked)
	used     map[int]bool
	masters  []string
	owners   []owner // slot ranges and their masters' listeners, from the last topology read
	next     int
	closed   bool
	// refreshed is closed when a topology read completes (then replaced): redirections to an
	// unknown node wait on it for confirmation.
	refreshed chan struct{}
	lastKick  time.Time

	conns  atomic.Int64 // client connections of the whole proxy
	clock  atomic.Int64 // coarse clock (unix nanoseconds) for idle tracking
	budget budget       // topology reply bytes held by all connections

	sm *sentinelMode // Sentinel mode (sentinel.go), nil otherwise

	kick chan struct{}
	// life ends when the proxy closes (stop): topology reads and forwarded connections derive
	// their contexts from it, so closing cancels them without a watcher goroutine each.
	life context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// listener is one local port and the node it forwards to.
type listener struct {
	ln     net.Listener // nil while the node is down (guarded by Proxy.mu)
	port   int
	down   bool // guarded by Proxy.mu: the node is known down, the socket is closed
	failed bool // guarded by Proxy.mu: the last topology read marked the node failed
	// slots the node last served as a master (guarded by Proxy.mu); while the node is down
	// and another node serves some of them, the socket is open and answers -MOVED (moved.go).
	slots     []cluster.SlotRange
	movedMode atomic.Bool
	conns     atomic.Int64
	id        string
	target    atomic.Pointer[string] // announced address to dial ("" for the seed: chosen per connection)
	seed      bool
	missing   int // consecutive topology reads without this node

	mu      sync.Mutex
	pipes   map[*pipe]bool
	drained bool
}

// Node is a node listener as Nodes reports it.
type Node struct {
	ID        string
	Announced string
	Listen    string
}

// Start builds the proxy for the resolved configuration, opens the seed listener and, in
// cluster mode, one listener per node of the first topology read (bounded by ctx).
func Start(ctx context.Context, r *client.Resolved, o Options) (*Proxy, error) {
	if o.ListenHost == "" {
		o.ListenHost = DefaultListenHost
	}
	if o.AdvertiseHost == "" {
		o.AdvertiseHost = o.ListenHost
	}
	if o.NodePorts <= 0 {
		o.NodePorts = DefaultNodePorts
	}
	if o.RefreshInterval <= 0 {
		o.RefreshInterval = DefaultRefreshInterval
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.MaxTopologyReply <= 0 {
		o.MaxTopologyReply = DefaultMaxTopologyReply
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o = limitDefaults(o)
	p := &Proxy{o: o, log: o.Logger, cfg: r.Config, byID: map[string]*listener{}, byAddr: map[string]*listener{},
		all: map[*listener]bool{}, reserved: map[string]int{}, used: map[int]bool{}, kick: make(chan struct{}, 1),
		refreshed: make(chan struct{})}
	p.life, p.stop = context.WithCancel(context.Background())
	p.budget.max = int64(o.MaxTopologyBuffer)
	p.clock.Store(time.Now().UnixNano())
	if r.Config.ModeOrDefault() == client.ModeSentinel {
		return p.startSentinel(ctx, r)
	}
	if err := p.build(r); err != nil {
		p.stop()
		return nil, err
	}
	seed, err := p.listen(o.SeedPort)
	if err != nil {
		p.stop()
		_ = p.in.Close()
		return nil, fmt.Errorf("rconn proxy: seed listener: %w", err)
	}
	seed.seed = true
	p.seed = seed
	p.serve(seed, seed.ln)
	p.wg.Add(1)
	go p.sweepLoop()
	if !p.standalone {
		if err := p.refresh(ctx); err != nil {
			_ = p.Close()
			return nil, err
		}
		p.wg.Add(1)
		go p.refreshLoop()
	}
	p.log.Info("rconn proxy listening", "seed", p.SeedAddr(), "mode", r.Config.ModeOrDefault(), "nodes", len(p.Nodes()))
	return p, nil
}

func (p *Proxy) build(r *client.Resolved) error {
	cfg := r.Config
	u, pw := r.Credentials()
	p.creds.Store(&[2]string{u, pw})
	o, tlsr, err := cfg.ConnOptions(client.Secret{Username: u, Password: pw, TLS: r.TLS})
	if err != nil {
		return fmt.Errorf("rconn proxy: %w", err)
	}
	p.standalone, p.tls = o.Standalone, tlsr
	for _, rn := range o.RootNodes {
		p.roots = append(p.roots, rn.Address.String())
	}
	// Credentials rotate live (Apply); the node-ID fallback is the Dialer's, below.
	o.Defaults.Username, o.Defaults.Password = "", ""
	o.Defaults.CredentialsProvider = func() (string, string) { c := p.creds.Load(); return c[0], c[1] }
	ids := o.NodeIDMap
	o.NodeIDMap, o.Dial = nil, p.o.Dial
	if p.o.AddressPolicy != nil {
		o.Dial = p.o.AddressPolicy.Dial(o.Dial)
	}
	in, err := cluster.NewInspector(o)
	if err != nil {
		return fmt.Errorf("rconn proxy: %w", err)
	}
	p.in = in
	d := in.Dialer()
	d.SetNodeIDs(ids)
	d.SetNodeIDLookup(in.Discover)
	return nil
}

// Apply applies a new version of the configuration live: node address map, node IDs,
// credentials and TLS material (for new connections). Fields that need a restart are logged
// and returned as an error wrapping client.ErrRestartRequired; the live parts still apply.
func (p *Proxy) Apply(r *client.Resolved) error {
	if p.sm != nil {
		return p.applySentinel(r)
	}
	p.mu.Lock()
	prev := p.cfg
	p.cfg = r.Config
	p.mu.Unlock()
	if p.tls != nil && r.TLS != nil {
		if err := p.tls.Update(r.TLS); err != nil {
			return fmt.Errorf("rconn proxy: TLS material: %w", err)
		}
	}
	u, pw := r.Credentials()
	p.creds.Store(&[2]string{u, pw})
	o, _, err := r.Config.ConnOptions(client.Secret{Username: u, Password: pw, TLS: r.TLS})
	if err != nil {
		return fmt.Errorf("rconn proxy: %w", err)
	}
	if !reflect.DeepEqual(prev.NodeAddressMap, r.Config.NodeAddressMap) {
		p.in.SetNodeAddressMap(o.NodeAddressMap)
	}
	p.in.Dialer().SetNodeIDs(o.NodeIDMap)
	p.log.Info("rconn proxy: configuration applied", "version", r.Version)
	p.Refresh()
	if changed := client.RestartFields(prev, r.Config); len(changed) > 0 {
		err := fmt.Errorf("rconn proxy: %w to apply changed %s", client.ErrRestartRequired, strings.Join(changed, ", "))
		p.log.Warn(err.Error())
		return err
	}
	return nil
}

// SeedAddr is the seed listener's address.
func (p *Proxy) SeedAddr() string { return p.addr(p.seed) }

func (p *Proxy) addr(l *listener) string {
	return net.JoinHostPort(p.o.AdvertiseHost, strconv.Itoa(l.port))
}

// Nodes lists the node listeners, by port.
func (p *Proxy) Nodes() []Node {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Node, 0, len(p.all))
	for l := range p.all {
		out = append(out, Node{ID: l.id, Announced: *l.target.Load(), Listen: p.addr(l)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Listen < out[j].Listen })
	return out
}

// Refresh asks for a topology read now (coalesced).
func (p *Proxy) Refresh() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Close stops every listener and closes every forwarded connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	ls := []*listener{p.seed}
	for l := range p.all {
		ls = append(ls, l)
	}
	p.mu.Unlock()
	p.stop()
	if p.sm != nil {
		p.sm.shutdown()
	}
	for _, l := range ls {
		p.mu.Lock()
		if l.ln != nil {
			_ = l.ln.Close()
		}
		p.mu.Unlock()
		l.closePipes()
	}
	p.wg.Wait()
	if p.sm != nil {
		return p.sm.si.Close()
	}
	return p.in.Close()
}

func (p *Proxy) refreshLoop() {
	defer p.wg.Done()
	t := time.NewTicker(p.o.RefreshInterval)
	defer t.Stop()
	probe := time.NewTicker(probeInterval)
	defer probe.Stop()
	for {
		select {
		case <-p.life.Done():
			return
		case <-t.C:
		case <-p.kick:
			// A flood of redirections to unknown nodes reads the topology at most every
			// 100ms, one read at a time.
			p.mu.Lock()
			wait := 100*time.Millisecond - time.Since(p.lastKick)
			p.mu.Unlock()
			if wait > 0 {
				select {
				case <-time.After(wait):
				case <-p.life.Done():
					return
				}
			}
			p.mu.Lock()
			p.lastKick = time.Now()
			p.mu.Unlock()
		case <-probe.C:
			p.probeDown()
			continue
		}
		ctx, cancel := context.WithTimeout(p.life, 10*time.Second)
		if err := p.refresh(ctx); err != nil && !errors.Is(err, context.Canceled) {
			p.log.Warn("rconn proxy: topology read failed, keeping the listeners", "err", err)
		}
		cancel()
	}
}

// refresh reads the topology and makes the listeners follow it: a listener for every node
// (the same port for the same node ID), departed nodes drained after two reads without them.
func (p *Proxy) refresh(ctx context.Context) error {
	t, err := p.in.Discover(ctx)
	if err != nil {
		p.signalRefreshed()
		return fmt.Errorf("rconn proxy: reading the topology: %w", err)
	}
	defer p.signalRefreshed()
	defer p.probeDown()
	var ordered []*cluster.Node
	var masters []string
	for _, sh := range t.Shards {
		if sh.Master != nil {
			ordered = append(ordered, sh.Master)
			masters = append(masters, sh.Master.Announced)
		}
		ordered = append(ordered, sh.Replicas...)
	}
	ordered = append(ordered, t.Nodes...)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.masters = masters
	seen := map[*listener]bool{}
	for _, n := range ordered {
		l, err := p.ensureLocked(n.ID, n.Announced)
		if err != nil {
			p.log.Warn("rconn proxy: no listener for node", "node", n.ID, "announced", n.Announced, "err", err)
			continue
		}
		seen[l] = true
		l.failed = n.Health == "failed"
		if l.failed {
			p.downLocked(l, "the cluster marks it failed")
		}
	}
	p.ownersLocked(t)
	for l := range p.all {
		if seen[l] {
			l.missing = 0
			continue
		}
		if l.missing++; l.missing >= 2 {
			p.removeLocked(l)
		}
	}
	return nil
}

// ensureLocked returns the listener for a node, creating it or following a new announced
// address of a known node ID.
func (p *Proxy) ensureLocked(id, announced string) (*listener, error) {
	l := p.byID[id]
	if id == "" {
		l = nil
	}
	if l == nil {
		if a := p.byAddr[announced]; a != nil && (a.id == "" || a.id == id) {
			l = a
		}
	}
	if l == nil {
		if len(p.all) >= p.o.NodePorts {
			return nil, fmt.Errorf("all %d node listeners are taken", p.o.NodePorts)
		}
		port := 0
		if p.o.SeedPort > 0 {
			var ok bool
			if port, ok = p.freePortLocked(id); !ok {
				return nil, fmt.Errorf("all %d node ports after %d are taken", p.o.NodePorts, p.o.SeedPort)
			}
		}
		nl, err := p.listen(port)
		if err != nil {
			return nil, err
		}
		l = nl
		p.used[l.port] = true
		p.all[l] = true
		p.serve(l, l.ln)
		p.log.Info("rconn proxy: node listener", "node", id, "announced", announced, "listen", p.addr(l))
	}
	if id != "" && l.id == "" {
		l.id = id
	}
	if l.id != "" {
		p.byID[l.id] = l
		p.reserveLocked(l.id, l.port)
	}
	if old := *l.target.Load(); old != announced {
		if p.byAddr[old] == l {
			delete(p.byAddr, old)
		}
		l.target.Store(&announced)
		p.log.Info("rconn proxy: node announces a new address", "node", l.id, "announced", announced, "listen", p.addr(l))
	}
	p.byAddr[announced] = l
	return l, nil
}

func (p *Proxy) freePortLocked(id string) (int, bool) {
	if port, ok := p.reserved[id]; ok && !p.used[port] {
		return port, true
	}
	taken := map[int]bool{}
	for _, port := range p.reserved {
		taken[port] = true
	}
	for pass := 0; pass < 2; pass++ {
		for port := p.o.SeedPort + 1; port <= p.o.SeedPort+p.o.NodePorts && port <= 65535; port++ {
			if !p.used[port] && (pass == 1 || !taken[port]) {
				return port, true
			}
		}
	}
	return 0, false
}

func (p *Proxy) removeLocked(l *listener) {
	delete(p.all, l)
	delete(p.used, l.port)
	if p.byID[l.id] == l {
		delete(p.byID, l.id)
	}
	if a := *l.target.Load(); p.byAddr[a] == l {
		delete(p.byAddr, a)
	}
	if l.ln != nil {
		_ = l.ln.Close()
		l.ln = nil
	}
	p.log.Info("rconn proxy: node left, draining its listener", "node", l.id, "listen", p.addr(l), "drain", p.o.DrainTimeout)
	time.AfterFunc(p.o.DrainTimeout, l.closePipes)
}

func (p *Proxy) listen(port int) (*listener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(p.o.ListenHost, strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	l := &listener{ln: ln, port: ln.Addr().(*net.TCPAddr).Port, pipes: map[*pipe]bool{}}
	empty := ""
	l.target.Store(&empty)
	return l, nil
}

// local implements router for the pipes: the listener of a node a topology read found.
// Replies are shaped by clients (EVAL "return redis.error_reply('MOVED ...')") and by nodes,
// so a node they name gets no listener from them: a name without one asks for a fresh
// topology read, and a redirection (named without a node ID) waits up to confirmWait for it;
// what the read does not confirm keeps the address as the reply named it.
func (p *Proxy) local(id, announced string) (string, int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l := p.lookupLocked(id, announced); l != nil {
		return p.o.AdvertiseHost, l.port, true
	}
	if p.closed || !dialable(announced) {
		return "", 0, false
	}
	p.Refresh()
	if id != "" {
		return "", 0, false
	}
	ch := p.refreshed
	p.mu.Unlock()
	t := time.NewTimer(confirmWait)
	select {
	case <-ch:
	case <-t.C:
	case <-p.life.Done():
	}
	t.Stop()
	p.mu.Lock()
	if l := p.lookupLocked(id, announced); l != nil {
		return p.o.AdvertiseHost, l.port, true
	}
	p.log.Debug("rconn proxy: a redirection names a node no topology read confirms; left as is", "announced", announced)
	return "", 0, false
}

func (p *Proxy) lookupLocked(id, announced string) *listener {
	if l := p.byID[id]; id != "" && l != nil {
		return l
	}
	return p.byAddr[announced]
}

// signalRefreshed wakes the redirections waiting for a topology read.
func (p *Proxy) signalRefreshed() {
	p.mu.Lock()
	close(p.refreshed)
	p.refreshed = make(chan struct{})
	p.mu.Unlock()
}

// dialable rejects what Redis names when it does not know an endpoint ("?", "", port 0).
func dialable(announced string) bool {
	a, err := cluster.ParseAddress(announced)
	return err == nil && a.Host != "?"
}

// serve accepts on ln (one socket of l: a node's listener is closed while the node is down
// and reopened on the same port when it is back).
func (p *Proxy) serve(l *listener, ln net.Listener) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				return
			}
			if !p.admit(l) {
				refuse(c)
				continue
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer p.release(l)
				if l.movedMode.Load() {
					p.answerMoved(l, c)
					return
				}
				p.forward(l, c)
			}()
		}
	}()
}

func (p *Proxy) seedTarget() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Round robin over the masters whose listeners are not down (a dead master would reset
	// the seed's clients until the failover; any live node answers their topology reads).
	for range p.masters {
		p.next++
		m := p.masters[p.next%len(p.masters)]
		if l := p.byAddr[m]; l == nil || !l.down {
			return m
		}
	}
	if len(p.masters) > 0 {
		p.next++
		return p.masters[p.next%len(p.masters)]
	}
	if len(p.roots) > 0 {
		return p.roots[0]
	}
	return ""
}

func (p *Proxy) forward(l *listener, c net.Conn) {
	ctx, cancel := context.WithCancel(p.life)
	if p.o.Handshake != nil {
		hc, err := p.o.Handshake(ctx, c)
		if err != nil {
			cancel()
			p.log.Debug("rconn proxy: connection refused by the handshake", "listen", p.addr(l), "err", err)
			_ = c.Close()
			return
		}
		c = hc
	}
	target := *l.target.Load()
	if l.seed {
		target = p.seedTarget()
	}
	if p.standalone && len(p.roots) > 0 {
		target = p.roots[0]
	}
	up, err := p.dialer().DialContext(ctx, "tcp", target)
	cancel()
	if err != nil {
		// Logged once per state change (nodeUnreachable); each attempt only at debug level.
		p.log.Debug("rconn proxy: dialing the node failed", "listen", p.addr(l), "announced", target, "err", err)
		_ = c.Close()
		if !l.seed && !p.standalone {
			p.nodeUnreachable(l, err)
		}
		return
	}
	pp := newPipe(c, up, p, p.o.MaxTopologyReply, !p.standalone)
	pp.clock, pp.budget = &p.clock, &p.budget
	pp.last.Store(p.clock.Load())
	if !l.add(pp) {
		pp.close()
		return
	}
	err = pp.run()
	l.remove(pp)
	if err != nil {
		p.log.Warn("rconn proxy: connection closed", "listen", p.addr(l), "announced", target, "err", err)
	}
}

func (l *listener) add(p *pipe) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.drained {
		return false
	}
	l.pipes[p] = true
	return true
}

func (l *listener) remove(p *pipe) {
	l.mu.Lock()
	delete(l.pipes, p)
	l.mu.Unlock()
}

func (l *listener) closePipes() {
	l.mu.Lock()
	l.drained = true
	ps := make([]*pipe, 0, len(l.pipes))
	for p := range l.pipes {
		ps = append(ps, p)
	}
	l.mu.Unlock()
	for _, p := range ps {
		p.close()
	}
}
