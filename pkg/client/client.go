package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// EventType names a connection event (node-redis event names).
type EventType string

// Connection events, with node-redis meaning.
const (
	// EventConnect: the client is about to connect (initially and on every reconnect attempt).
	EventConnect EventType = "connect"
	// EventReady: the client is connected and ready to use.
	EventReady EventType = "ready"
	// EventEnd: the client was closed (Close, or the reconnect strategy gave up: Err says why).
	EventEnd EventType = "end"
	// EventError: an error occurred (connection lost, failed attempt, failed config reload).
	EventError EventType = "error"
	// EventReconnecting: the client is about to try reconnecting after losing the connection.
	EventReconnecting EventType = "reconnecting"
)

// Event is a connection event. Err is set for EventError, and for EventEnd when the reconnect
// strategy stopped. Node is set on the per-node events of cluster mode (OnNodeEvent), nil on
// the client's own.
type Event struct {
	Type EventType
	Err  error
	Node *Node
}

func (e Event) String() string {
	s := string(e.Type)
	if e.Node != nil {
		s += " [" + e.Node.String() + "]"
	}
	if e.Err != nil {
		return s + ": " + e.Err.Error()
	}
	return s
}

// DefaultMonitorInterval is how often the client checks its connection (PING).
const DefaultMonitorInterval = time.Second

// Client is a go-redis client (cluster or standalone) with node address mapping, node-redis
// reconnect strategy and events, and, from Open, hot reload of the mounted configuration. It
// is a redis.UniversalClient: pass it to anything that takes one. The embedded
// UniversalClient is the go-redis client itself; with autoPipeline its node clients batch
// naturally (see the package documentation).
type Client struct {
	redis.UniversalClient

	cluster *cluster.Client       // cluster mode
	single  *redis.Client         // standalone mode
	direct  redis.UniversalClient // cluster or single: the embedded client
	batched bool                  // autoPipeline: node clients batch naturally
	setMap  func(cluster.NodeAddressMap)
	probe   func(ctx context.Context) error

	strategy ReconnectStrategy
	monitor  time.Duration
	creds    atomic.Pointer[credentials]
	tls      *rtls.Reloadable

	open, ready atomic.Bool
	closed      atomic.Bool
	closeOnce   sync.Once
	closeErr    error
	stop        chan struct{}
	wg          sync.WaitGroup

	gate     inflight   // commands issued and not yet answered (CloseGraceful waits)
	stopOnce sync.Once  // stops the monitor and the reload once (close.go)
	finishMu sync.Mutex // serialises Close and CloseGraceful: the second waits for the first's "end"
	finished bool

	events *dispatcher
	nodeEv *nodeEvents // cluster mode

	scripts   scripts           // Run (scripts.go)
	functions map[string]string // function libraries by name, loaded at (re)connect

	sentinel *sentinelState // sentinel mode (sentinel.go)

	// Open only.
	reload *reloader
}

var _ redis.UniversalClient = (*Client)(nil)

type credentials struct{ username, password string }

// spec is what every constructor resolves its options to.
type spec struct {
	cluster        bool
	network, addr  string // standalone
	roots          []cluster.RootNode
	db             int
	name           string
	connectTimeout time.Duration
	username       string
	password       string
	tls            *rtls.Reloadable // nil: plaintext
	serverName     string
	nodeMap        cluster.NodeAddressMap
	nodeIDs        cluster.NodeIDMap
	useReplicas    bool
	minimize       bool
	maxRedirects   int
	dial           cluster.DialFunc
	strategy       ReconnectStrategy
	onEvent        func(Event)
	onNodeEvent    func(Event)
	scripts        map[string]Script
	functions      map[string]string
	monitor        time.Duration
	autoPipeline   bool
	sentinel       *sentinelSpec // sentinel mode (sentinel.go)
}

// build creates the client and connects it, bounded by ctx. On error nothing of it runs on:
// the event dispatcher ends too.
func build(ctx context.Context, s *spec) (_ *Client, err error) {
	c := &Client{strategy: s.strategy, monitor: s.monitor, tls: s.tls, stop: make(chan struct{}), events: newDispatcher()}
	defer func() {
		if err != nil {
			c.events.close()
		}
	}()
	if c.strategy == nil {
		c.strategy = DefaultReconnect()
	}
	if c.monitor <= 0 {
		c.monitor = DefaultMonitorInterval
	}
	if s.onEvent != nil {
		c.events.add(s.onEvent)
	}
	c.creds.Store(&credentials{s.username, s.password})
	provider := func() (string, string) {
		cr := c.creds.Load()
		return cr.username, cr.password
	}
	base := s.dial
	if base == nil {
		nd := &net.Dialer{KeepAlive: 5 * time.Minute}
		base = nd.DialContext
	}
	var tlsFor func(string) *tls.Config
	if s.tls != nil {
		tlsFor = s.tls.ConfigFor
	}
	switch {
	case s.sentinel != nil:
		if err := c.buildSentinel(s, provider, base, tlsFor); err != nil {
			return nil, err
		}
	case s.cluster:
		cc, err := cluster.NewClient(cluster.Options{
			RootNodes: s.roots,
			Defaults: cluster.NodeOptions{
				CredentialsProvider: provider,
				ConnectTimeout:      s.connectTimeout,
				ClientName:          s.name,
				TLSConfigFor:        tlsFor,
				TLSServerName:       s.serverName,
			},
			UseReplicas:            s.useReplicas,
			MinimizeConnections:    s.minimize,
			MaxCommandRedirections: s.maxRedirects,
			NodeAddressMap:         s.nodeMap,
			NodeIDMap:              s.nodeIDs,
			Dial:                   base,
		})
		if err != nil {
			return nil, err
		}
		c.cluster, c.direct, c.setMap = cc, cc, cc.SetNodeAddressMap
		cc.AddHook(gateHook{&c.gate}) // at the cluster level: around routing and redirections
		if s.autoPipeline {
			// Batch per node, beneath go-redis's slot routing and MOVED/ASK handling. Nodes are
			// created on first use (Connect below), after this.
			cc.OnNewNode(func(n *redis.Client) { n.AddHook(newBatchHook()) })
			c.batched = true
		}
		c.nodeEv = newNodeEvents(c)
		if s.onNodeEvent != nil {
			c.OnNodeEvent(s.onNodeEvent)
		}
		cc.OnNewNode(func(n *redis.Client) { n.AddHook(c.nodeEv.hook(n.Options().Addr)) })
		// Innermost on every node (after pkg/cluster's hook and the batch hook): fail fast once closed.
		cc.OnNewNode(func(n *redis.Client) { n.AddHook(closedNodeHook{&c.closed}) })
		first := true
		c.probe = func(ctx context.Context) error {
			if first {
				// Discover the topology and connect to the nodes once; later probes PING.
				t, err := cc.Connect(ctx)
				c.nodeEv.learn(t)
				if err != nil {
					return err
				}
				first = false
				return nil
			}
			return cc.Ping(ctx).Err()
		}
	default:
		d := cluster.NewDialer(cluster.DialerOptions{Map: s.nodeMap, Dial: base, ConnectTimeout: s.connectTimeout, TLSConfigFor: tlsFor, ServerName: s.serverName})
		network := s.network
		if network == "" {
			network = "tcp"
		}
		rc := redis.NewClient(&redis.Options{
			Network:             network,
			Addr:                s.addr,
			Dialer:              d.DialContext,
			CredentialsProvider: provider,
			DB:                  s.db,
			ClientName:          s.name,
			DialTimeout:         s.connectTimeout,

			MaintNotificationsConfig: cluster.NoMaintNotifications(),
		})
		c.single, c.direct, c.setMap = rc, rc, d.SetMap
		rc.AddHook(gateHook{&c.gate}) // first, so outermost: a command queued for a batch is in flight
		if s.autoPipeline {
			rc.AddHook(newBatchHook())
			c.batched = true
		}
		c.probe = func(ctx context.Context) error { return rc.Ping(ctx).Err() }
	}
	c.UniversalClient = c.direct
	c.scripts, c.functions = newScripts(s.scripts), s.functions
	c.probe = c.withFunctions(c.probe)
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	c.wg.Add(1)
	go c.supervise()
	return c, nil
}

// connect makes the first connection, retrying per the strategy until ctx ends.
func (c *Client) connect(ctx context.Context) error {
	for retries := 0; ; retries++ {
		c.events.emit(Event{Type: EventConnect})
		err := c.probe(ctx)
		if err == nil {
			c.open.Store(true)
			c.ready.Store(true)
			c.events.emit(Event{Type: EventReady})
			return nil
		}
		c.events.emit(Event{Type: EventError, Err: err})
		delay, stop := c.strategy(retries, err)
		if stop == nil && ctx.Err() == nil {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
				continue
			case <-ctx.Done():
				t.Stop()
			}
		}
		if stop == nil {
			stop = ctx.Err()
		}
		c.shutdown()
		c.emitEnd(stop)
		c.events.close()
		return fmt.Errorf("connecting: %w (last error: %w)", stop, err)
	}
}

// supervise checks the connection every monitor interval; when it fails it reconnects per the
// strategy, emitting error, reconnecting, connect and ready.
func (c *Client) supervise() {
	defer c.wg.Done()
	tick := time.NewTicker(c.monitor)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		err := c.check()
		if err == nil || c.closed.Load() {
			continue
		}
		c.ready.Store(false)
		c.open.Store(false)
		c.events.emit(Event{Type: EventError, Err: err})
		for retries := 0; ; retries++ {
			delay, stop := c.strategy(retries, err)
			if stop != nil {
				c.shutdown()
				c.emitEnd(stop)
				c.events.close()
				return
			}
			t := time.NewTimer(delay)
			select {
			case <-c.stop:
				t.Stop()
				return
			case <-t.C:
			}
			c.events.emit(Event{Type: EventReconnecting})
			c.events.emit(Event{Type: EventConnect})
			if err = c.check(); err == nil {
				c.open.Store(true)
				c.ready.Store(true)
				c.events.emit(Event{Type: EventReady})
				break
			}
			if c.closed.Load() {
				return
			}
			c.events.emit(Event{Type: EventError, Err: err})
		}
	}
}

func (c *Client) check() error {
	timeout := min(c.monitor, 2*time.Second)
	if timeout < 500*time.Millisecond {
		timeout = 500 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.probe(ctx)
}

// shutdown closes the underlying client once.
func (c *Client) shutdown() {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.open.Store(false)
		c.ready.Store(false)
		c.closeErr = c.direct.Close()
	})
}

// IsOpen reports whether the client's connection is open: false while connecting, while
// reconnecting after a network error, and after Close (node-redis isOpen as the Connect guide
// describes it). With a pooled client "open" means the last check reached the server.
func (c *Client) IsOpen() bool { return c.open.Load() }

// IsReady reports whether the client is connected and ready for commands: false while
// (re)connecting and after Close (node-redis isReady).
func (c *Client) IsReady() bool { return c.ready.Load() }

// emitEnd emits "end" for every node (cluster mode, with node handlers), then for the client.
func (c *Client) emitEnd(err error) {
	if c.nodeEv != nil {
		c.nodeEv.endAll()
	}
	c.events.emit(Event{Type: EventEnd, Err: err})
}

// OnNodeEvent adds a handler for the per-node events of cluster mode (node-redis's node-connect,
// node-ready, node-error, node-reconnecting and node-disconnect): the same EventTypes, with
// Event.Node naming the node. They share the client's event queue (MaxQueuedEvents) and order;
// OnEvent handlers never see them. A standalone client has none.
func (c *Client) OnNodeEvent(h func(Event)) {
	if c.nodeEv == nil {
		return
	}
	c.events.addNode(h)
	c.nodeEv.on.Store(true)
}

// OnEvent adds a handler for connection events. Handlers run one at a time, in event order,
// on a goroutine of the client; a slow handler delays later events, not commands. To see the
// events of the first connection, pass the handler in the options instead.
func (c *Client) OnEvent(h func(Event)) { c.events.add(h) }

// Cluster returns the cluster client (nil in standalone mode), for topology and health.
func (c *Client) Cluster() *cluster.Client { return c.cluster }

// Direct returns the go-redis client the Client embeds (the *cluster.Client or the
// *redis.Client). With natural batching there is no separate client beneath: kept for code
// written against the earlier AutoPipeliner-based autoPipeline.
func (c *Client) Direct() redis.UniversalClient { return c.direct }

// AutoPipelining reports whether the Client batches the commands of concurrent callers
// (autoPipeline).
func (c *Client) AutoPipelining() bool { return c.batched }

// AutoPipeliner returns nil: autoPipeline no longer runs on go-redis's AutoPipeliner.
//
// Deprecated: use AutoPipelining.
func (c *Client) AutoPipeliner() *redis.AutoPipeliner { return nil }

// SetNodeAddressMap atomically replaces the node address map; pooled connections whose
// mapping changed are retired.
func (c *Client) SetNodeAddressMap(m cluster.NodeAddressMap) { c.setMap(m) }

// SetCredentials sets the username and password of new connections (existing connections stay
// authenticated as they are).
func (c *Client) SetCredentials(username, password string) {
	c.creds.Store(&credentials{username, password})
}

// MaxQueuedEvents bounds the events waiting for slow handlers; more are dropped, counted
// (Client.DroppedEvents) and reported by an EventError wrapping ErrEventsDropped once the
// queue has room again.
const MaxQueuedEvents = 1024

// ErrEventsDropped is wrapped by the EventError that reports events dropped because the
// handlers fell MaxQueuedEvents behind.
var ErrEventsDropped = errors.New("rconn: events dropped: the event handlers fell behind")

// DroppedEvents returns how many events were dropped because the handlers fell
// MaxQueuedEvents behind.
func (c *Client) DroppedEvents() uint64 { return c.events.dropped.Load() }

// dispatcher delivers events to handlers in order on one goroutine, never blocking the emitter.
type dispatcher struct {
	mu       sync.Mutex
	cond     *sync.Cond
	queue    []Event
	handlers []func(Event)
	nodeHs   []func(Event) // handlers of per-node events (Event.Node set)
	closed   bool
	done     chan struct{}

	dropped    atomic.Uint64
	unreported uint64 // dropped since the last report
}

func newDispatcher() *dispatcher {
	d := &dispatcher{done: make(chan struct{})}
	d.cond = sync.NewCond(&d.mu)
	go d.run()
	return d
}

func (d *dispatcher) add(h func(Event)) {
	d.mu.Lock()
	d.handlers = append(d.handlers, h)
	d.mu.Unlock()
}

func (d *dispatcher) addNode(h func(Event)) {
	d.mu.Lock()
	d.nodeHs = append(d.nodeHs, h)
	d.mu.Unlock()
}

func (d *dispatcher) emit(e Event) {
	d.mu.Lock()
	if !d.closed {
		d.reportDrops()
		if len(d.queue) < MaxQueuedEvents {
			d.queue = append(d.queue, e)
		} else {
			d.dropped.Add(1)
			d.unreported++
		}
		d.cond.Signal()
	}
	d.mu.Unlock()
}

// reportDrops queues the report of dropped events when there is room (d.mu held).
func (d *dispatcher) reportDrops() {
	if d.unreported > 0 && len(d.queue) < MaxQueuedEvents {
		d.queue = append(d.queue, Event{Type: EventError, Err: fmt.Errorf("%w: %d events", ErrEventsDropped, d.unreported)})
		d.unreported = 0
	}
}

func (d *dispatcher) close() {
	d.mu.Lock()
	d.closed = true
	d.cond.Signal()
	d.mu.Unlock()
}

func (d *dispatcher) wait() { <-d.done }

func (d *dispatcher) run() {
	defer close(d.done)
	for {
		d.mu.Lock()
		for len(d.queue) == 0 && !d.closed {
			d.cond.Wait()
		}
		if len(d.queue) == 0 {
			d.mu.Unlock()
			return
		}
		e := d.queue[0]
		d.queue[0] = Event{}
		d.queue = d.queue[1:]
		d.reportDrops()
		hs := d.handlers
		if e.Node != nil {
			hs = d.nodeHs
		}
		hs = append([]func(Event){}, hs...)
		d.mu.Unlock()
		for _, h := range hs {
			func() {
				defer func() { _ = recover() }() // a panicking handler must not stop the client
				h(e)
			}()
		}
	}
}
