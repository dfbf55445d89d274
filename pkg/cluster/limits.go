package cluster

import (
	"errors"
	"net"
	"sync"
	"syscall"
)

// Limits bound what one Redis reply may make the Inspector read and allocate. Anything a
// Redis server sends is untrusted (a tenant names the root nodes): go-redis allocates what a
// reply header declares (an array header "*1000000000" becomes a billion-element slice before
// a single element arrives), so the bytes are checked below go-redis's reader, before it sees
// them (see LimitConn). A zero field takes its default; DefaultLimits documents them.
//
// The caps below are generic: they bound a reply whatever command it answers, so they must
// admit the largest honest reply of all (a fragmented CLUSTER SLOTS). Each reply is also held
// to the caps of its own command, derived from MaxTopologyNodes and MaxTopologyShards (see
// replyCapsFor in commands.go for every number and why): with the defaults a CLUSTER SHARDS
// reply may declare at most 74,768 elements and ~2.8 MB, a ROLE reply 4,003 elements, a
// CLUSTER SLOTS reply 353,064, and PING, AUTH or CLUSTER INFO no more than their few
// elements. What all replies in flight hold together is bounded by a ReplyBudget.
type Limits struct {
	// MaxArrayLen bounds the elements one aggregate header declares (array, set, push,
	// attribute; a map of n pairs counts 2n). Default 65,536: the largest real aggregate is
	// CLUSTER SHARDS' slot list of one shard (two integers per range, at most 16,384 ranges,
	// so 32,768) or CLUSTER SLOTS' top array (at most 16,384 ranges); twice the larger.
	MaxArrayLen int64
	// MaxBulkLen bounds one bulk string, verbatim string or blob error. Default 1 MiB: the
	// Inspector's longest strings are INFO sections and CLUSTER INFO (a few KB).
	MaxBulkLen int64
	// MaxReplyElements bounds the elements all headers of one top-level reply declare
	// together; this is what bounds go-redis's up-front allocation. Default 1,000,000: a
	// fully fragmented CLUSTER SLOTS (16,384 ranges) with 1,000 nodes, each range listing a
	// master and a few replicas (about 30 elements per range), declares about 500,000;
	// CLUSTER SHARDS of 1,000 nodes about 70,000.
	MaxReplyElements int64
	// MaxReplyBytes bounds one top-level reply's bytes (a bulk counts its declared length when
	// its header arrives). Default 32 MiB: the fragmented CLUSTER SLOTS above is about 6 MB.
	MaxReplyBytes int64
	// MaxDepth bounds aggregate nesting. Default 16 (CLUSTER SHARDS nests 4 deep).
	MaxDepth int
	// MaxLineLen bounds a simple string, error, integer, double, big number or header line
	// without CRLF. Default 64 KiB (Redis error replies are a line of text).
	MaxLineLen int
	// MaxTopologyNodes and MaxTopologyShards bound a parsed topology; more is rejected with
	// ErrTopologyTooLarge. Default 1,000 each: Redis Cluster's documented maximum size. They
	// also size the per-command caps: a CLUSTER SHARDS reply lists every node once (at most
	// MaxTopologyNodes node entries in all, however a reply spreads them over shards), a ROLE
	// reply at most MaxTopologyNodes replicas, INFO replication one line per replica.
	MaxTopologyNodes  int
	MaxTopologyShards int
}

// Default limits (see Limits for why each is this size).
const (
	DefaultMaxArrayLen       = 65536
	DefaultMaxBulkLen        = 1 << 20
	DefaultMaxReplyElements  = 1000000
	DefaultMaxReplyBytes     = 32 << 20
	DefaultMaxDepth          = 16
	DefaultMaxLineLen        = 64 << 10
	DefaultMaxTopologyNodes  = 1000
	DefaultMaxTopologyShards = 1000
)

// DefaultLimits returns the default limits.
func DefaultLimits() Limits { return (*Limits)(nil).withDefaults() }

// withDefaults returns a copy of l (nil: none) with every zero or negative field defaulted.
func (l *Limits) withDefaults() Limits {
	var o Limits
	if l != nil {
		o = *l
	}
	if o.MaxArrayLen <= 0 {
		o.MaxArrayLen = DefaultMaxArrayLen
	}
	if o.MaxBulkLen <= 0 {
		o.MaxBulkLen = DefaultMaxBulkLen
	}
	if o.MaxReplyElements <= 0 {
		o.MaxReplyElements = DefaultMaxReplyElements
	}
	if o.MaxReplyBytes <= 0 {
		o.MaxReplyBytes = DefaultMaxReplyBytes
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	if o.MaxLineLen <= 0 {
		o.MaxLineLen = DefaultMaxLineLen
	}
	if o.MaxTopologyNodes <= 0 {
		o.MaxTopologyNodes = DefaultMaxTopologyNodes
	}
	if o.MaxTopologyShards <= 0 {
		o.MaxTopologyShards = DefaultMaxTopologyShards
	}
	return o
}

// Errors of bounded reads and topologies, to tell apart with errors.Is. Their messages are
// fixed: they never contain bytes a server sent.
var (
	// ErrProtocol: the server's bytes are not RESP (not a Redis server, or a broken one).
	ErrProtocol = errors.New("reply is not valid RESP")
	// ErrReplyTooLarge: a reply declared or sent more than Limits allow.
	ErrReplyTooLarge = errors.New("reply exceeds the configured limits")
	// ErrTopologyTooLarge: a parsed topology has more nodes or shards than Limits allow.
	ErrTopologyTooLarge = errors.New("topology exceeds the configured limits")
)

// ProtocolError is the error a bounded connection's Read returns once the incoming bytes broke
// a rule. Kind is ErrProtocol, ErrReplyTooLarge or ErrReplyBudgetExhausted; Reason is a fixed
// description of the rule (never server bytes).
type ProtocolError struct {
	Kind   error
	Reason string
}

func (e *ProtocolError) Error() string { return e.Kind.Error() + ": " + e.Reason }
func (e *ProtocolError) Unwrap() error { return e.Kind }

// LimitConn wraps c so that every Read validates the incoming RESP2/RESP3 byte stream against
// l (nil: DefaultLimits) before returning it: each reply against the caps of the command it
// answers (see replyCapsFor), which the wrapper learns from the commands written through it.
// A chunk that breaks a rule is not returned: Read returns 0 and a *ProtocolError, and so does
// every later Read. Writes pass through. The wrapper keeps c's syscall.Conn (go-redis's
// idle-connection check) and NetConn.
func LimitConn(c net.Conn, l *Limits) net.Conn { return limitConn(c, l, nil) }

// limitConn is LimitConn charging what replies hold in flight to acct (nil: nothing).
func limitConn(c net.Conn, l *Limits, acct *budgetAccount) net.Conn {
	v := newRESPValidator(l.withDefaults())
	v.reqs = &requestTracker{}
	v.acct = acct
	return &limitedConn{Conn: c, v: v}
}

type limitedConn struct {
	net.Conn
	// mu serializes the validator between Read and Close (go-redis may close a connection
	// from another goroutine, e.g. when the pool shuts down).
	mu sync.Mutex
	v  *respValidator
}

func (c *limitedConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	err := c.v.err
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		verr := c.v.feed(p[:n])
		c.mu.Unlock()
		if verr != nil {
			clear(p[:n])
			return 0, verr
		}
	}
	return n, err
}

// Write records which commands are sent (their replies' caps), then writes.
func (c *limitedConn) Write(p []byte) (int, error) {
	c.v.reqs.write(p)
	return c.Conn.Write(p)
}

// Close closes c and gives back what an unfinished reply holds of the reply budget.
func (c *limitedConn) Close() error {
	c.mu.Lock()
	c.v.releaseCharge()
	c.v.acct = nil // a Read still in flight charges nothing more
	c.mu.Unlock()
	return c.Conn.Close()
}

func (c *limitedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return noopRawConn{}, nil
}

// NetConn returns the wrapped connection.
func (c *limitedConn) NetConn() net.Conn { return c.Conn }
