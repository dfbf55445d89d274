package client

import (
	"context"
	"errors"
	"io"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// Node identifies the cluster node a per-node event is about (node-redis passes the node's
// client info with its node-* cluster events).
type Node struct {
	// Announced is the address the cluster announces for the node ("host:port"): go-redis
	// routes by it.
	Announced string
	// Mapped is what the node address map gives for Announced (Announced itself when the map
	// has no entry; the node ID fallback of rconn.nodeIds is not reflected).
	Mapped string
	// ID is the cluster node ID ("" until a topology read named the node).
	ID string
}

func (n *Node) String() string {
	s := n.Announced
	if n.Mapped != n.Announced {
		s += " (dialed as " + n.Mapped + ")"
	}
	if n.ID != "" {
		s += " id " + n.ID
	}
	return s
}

// MaxTrackedNodes bounds the per-node state of the node events (nodes seen over the client's
// life, which reannounced addresses keep adding to); beyond it the state is forgotten and
// rebuilt from the next connection of each node.
const MaxTrackedNodes = 4096

// nodeEventTimeout bounds the topology read that names a node no earlier read named.
const nodeEventTimeout = 2 * time.Second

// nodeState is what the node events know of one node.
type nodeState struct {
	node    *Node
	up      bool // a connection was established and none has broken since
	down    bool // a connection broke or an attempt failed since the last "ready"
	dialing bool // an attempt is reporting its outcome: concurrent attempts stay silent
}

// nodeEvents emits per-node events (Event.Node set) in cluster mode, from a hook on every node
// client: node-redis's node-connect, node-ready, node-error, node-reconnecting and (on close)
// node-disconnect. The states are transitions: one "connect" and "ready" per node however
// large its pool, "error" when a connection breaks (or an attempt fails), "reconnecting" and
// "connect" before the next attempt, "ready" when it succeeds, "end" for every node on close.
type nodeEvents struct {
	c      *Client
	on     atomic.Bool // a node handler is registered: emit
	mu     sync.Mutex
	nodes  map[string]*nodeState
	ids    map[string]string // announced -> node ID, from topology reads
	idsErr time.Time         // last failed ID lookup (one try per nodeEventTimeout)
}

func newNodeEvents(c *Client) *nodeEvents {
	return &nodeEvents{c: c, nodes: map[string]*nodeState{}, ids: map[string]string{}}
}

// learn records the node IDs of a topology.
func (ne *nodeEvents) learn(t *cluster.Topology) {
	if t == nil {
		return
	}
	ne.mu.Lock()
	defer ne.mu.Unlock()
	if len(ne.ids) > MaxTrackedNodes {
		ne.ids = map[string]string{}
	}
	for _, n := range t.Nodes {
		ne.ids[n.Announced] = n.ID
	}
}

// state returns the state of the node announced as addr (ne.mu held).
func (ne *nodeEvents) state(addr string) *nodeState {
	st := ne.nodes[addr]
	if st == nil {
		if len(ne.nodes) >= MaxTrackedNodes {
			ne.nodes = map[string]*nodeState{}
		}
		mapped, _ := ne.c.cluster.Dialer().Resolve(addr)
		st = &nodeState{node: &Node{Announced: addr, Mapped: mapped, ID: ne.ids[addr]}}
		ne.nodes[addr] = st
	}
	if st.node.ID == "" && ne.ids[addr] != "" {
		n := *st.node // events already emitted keep their Node
		n.ID = ne.ids[addr]
		st.node = &n
	}
	return st
}

func (ne *nodeEvents) emit(typ EventType, n *Node, err error) {
	if ne.on.Load() && !ne.c.closed.Load() {
		ne.c.events.emit(Event{Type: typ, Err: err, Node: n})
	}
}

// beforeDial reports the attempt ("reconnecting" after a loss, then "connect") unless the node
// is up or another attempt is reporting; report says whether this attempt reports its outcome.
func (ne *nodeEvents) beforeDial(addr string) (report bool) {
	ne.mu.Lock()
	st := ne.state(addr)
	if st.up || st.dialing {
		ne.mu.Unlock()
		return false
	}
	st.dialing = true
	n, lost := st.node, st.down
	ne.mu.Unlock()
	if lost {
		ne.emit(EventReconnecting, n, nil)
	}
	ne.emit(EventConnect, n, nil)
	return true
}

// afterDial reports the outcome of a reporting attempt: "ready", or "error".
func (ne *nodeEvents) afterDial(ctx context.Context, addr string, err error) {
	if err == nil {
		ne.lookupID(ctx, addr)
	}
	ne.mu.Lock()
	st := ne.state(addr)
	st.dialing = false
	st.up, st.down = err == nil, err != nil
	n := st.node
	ne.mu.Unlock()
	if err != nil {
		ne.emit(EventError, n, err)
		return
	}
	ne.emit(EventReady, n, nil)
}

// lookupID reads the topology once when the node has no known ID (a node that joined, or
// came back under a new address), so that its "ready" names it.
func (ne *nodeEvents) lookupID(ctx context.Context, addr string) {
	ne.mu.Lock()
	known := ne.ids[addr] != ""
	recent := time.Since(ne.idsErr) < nodeEventTimeout
	ne.mu.Unlock()
	if known || recent || !ne.on.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), nodeEventTimeout)
	defer cancel()
	t, err := ne.c.cluster.Inspector().Discover(ctx)
	if err != nil {
		ne.mu.Lock()
		ne.idsErr = time.Now()
		ne.mu.Unlock()
		return
	}
	ne.learn(t)
}

// lost reports "error" for a node whose connection broke while it was up.
func (ne *nodeEvents) lost(addr string, err error) {
	ne.mu.Lock()
	st := ne.state(addr)
	if !st.up {
		ne.mu.Unlock()
		return
	}
	st.up, st.down = false, true
	n := st.node
	ne.mu.Unlock()
	ne.emit(EventError, n, err)
}

// endAll emits "end" for every node seen, in announced-address order (before the client's own
// "end", which stays the last event).
func (ne *nodeEvents) endAll() {
	ne.mu.Lock()
	var ns []*Node
	for _, st := range ne.nodes {
		ns = append(ns, st.node)
	}
	ne.mu.Unlock()
	sort.Slice(ns, func(i, j int) bool { return ns[i].Announced < ns[j].Announced })
	if ne.on.Load() {
		for _, n := range ns {
			ne.c.events.emit(Event{Type: EventEnd, Node: n})
		}
	}
}

// hook returns the node events hook of the node client announced as addr.
func (ne *nodeEvents) hook(addr string) redis.Hook { return nodeHook{ne, addr} }

type nodeHook struct {
	ne   *nodeEvents
	addr string
}

func (h nodeHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		report := h.ne.beforeDial(h.addr)
		conn, err := next(ctx, network, addr)
		if report {
			h.ne.afterDial(ctx, h.addr, err)
		}
		return conn, err
	}
}

func (h nodeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if connectionLost(err) {
			h.ne.lost(h.addr, err)
		}
		return err
	}
}

func (h nodeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if connectionLost(err) {
			h.ne.lost(h.addr, err)
		}
		return err
	}
}

// connectionLost: the connection broke or the node could not be reached (go-redis discards
// such a connection), as opposed to an error reply or the caller's own cancellation.
func connectionLost(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, redis.ErrClosed) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}
