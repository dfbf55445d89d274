package cluster

import (
	"errors"
	"sync"
	"sync/atomic"
)

// ReplyBudget bounds what the replies being read on every Inspector connection that shares it
// may make go-redis hold at once: one budget for a whole process (the manager), however many
// Inspectors and connections it runs.
//
// Why: Limits and the per-command caps bound one reply, but nothing in them bounds how many
// replies are read at the same time. Eight root nodes of one RedisConnection answering CLUSTER
// SHARDS with a million declared node entries each, and holding back the last byte so the
// reads overlap, made go-redis hold 1.7 GB (one 120-byte struct per declared entry) although
// every reply stayed inside the generic caps. The per-command caps cut each such reply to
// ~75,000 elements (~12 MB of go-redis structs); the budget bounds the sum over all replies.
//
// What is charged: a reply's cost is the bytes it has declared so far (bulk payloads count at
// their header, when go-redis allocates them) plus, for every element its headers declared,
// what go-redis allocates per element up front for its command (128 bytes for CLUSTER SHARDS,
// 48 otherwise; see shardsElementCost). The first ReplyFreeCost of every reply is not charged:
// PING, AUTH, ROLE and the topology of a small cluster never wait for the budget, whatever
// other tenants do. That allowance is what go-redis's own buffers already cost per connection
// (32 KiB to read, 32 KiB to write), so it grows with connections as they do; beyond it, the
// cost is acquired while the headers are read and released when the top-level reply is
// complete (or the connection fails or closes).
//
// Why release at completion is enough: go-redis allocates what a header declares when it reads
// the header, which is while the reply is in flight and charged. Once the last byte is read,
// the parsed reply is handed to the Inspector, which converts it (into a Topology of at most
// MaxTopologyNodes nodes, or one role or state string) without further I/O, and drops it. So a
// completed reply outlives its charge only for CPU-bound conversion, and the per-command caps
// bound its size then: a peer cannot hold it by withholding bytes.
//
// Fairness: one Inspector (one RedisConnection, or several identical ones sharing it) may hold
// at most 1/ReplyBudgetShares of the budget, so a hostile RedisConnection cannot take the whole
// of it from the others; several hostile ones can fill it, and then an honest probe needing
// more than the free allowance fails fast with ErrReplyBudgetExhausted (the controller reports
// ManagerBusy and retries on its backoff) until they time out (each read is bounded by the
// capped read timeout). Failing fast rather than waiting keeps a blocked probe from holding
// its own connections and goroutines meanwhile.
//
// A nil *ReplyBudget charges nothing (kubectl rconn check, library users).
type ReplyBudget struct {
	limit, share int64

	mu   sync.Mutex
	used int64

	refused atomic.Int64
}

// Budget defaults.
const (
	// DefaultReplyBudget is the manager's default: 96 MiB. The shipped chart limits the
	// manager to 256 MiB; at rest it uses about 65 MiB (RSS); 96 MiB of replies in flight at
	// their worst (every charged byte live) leave room for the garbage collector below the
	// 230 MiB GOMEMLIMIT the manager derives from that limit.
	DefaultReplyBudget = 96 << 20
	// ReplyBudgetShares: no Inspector holds more than 1/4 of the budget (24 MiB by default).
	// That holds the largest honest replies: a CLUSTER SHARDS reply at its caps costs at most
	// ~12 MB (a real one of 1,000 nodes ~4 MB), a fully fragmented Redis 6 CLUSTER SLOTS ~20 MB.
	ReplyBudgetShares = 4
	// ReplyFreeCost is the cost of every reply that is never charged: 64 KiB, the size of
	// go-redis's own buffers per connection. A CLUSTER SHARDS reply of a cluster of about ten
	// nodes, and any PING, AUTH, HELLO or ROLE of a master with a hundred replicas, fit in it.
	ReplyFreeCost = 64 << 10
	// budgetChunk is the least a reply acquires at once, to keep the lock off the per-header
	// path.
	budgetChunk = 64 << 10
)

// Errors of the reply budget, to tell apart with errors.Is.
var (
	// ErrReplyBudgetExhausted: the replies in flight would exceed the shared ReplyBudget (or
	// this Inspector's share of it). The read fails at once; nothing the peer sent is wrong as
	// such.
	ErrReplyBudgetExhausted = errors.New("the budget for replies in flight is exhausted")
)

var (
	errShareExhausted  = &ProtocolError{ErrReplyBudgetExhausted, "replies in flight on this inspector exceed its share of the reply budget"}
	errBudgetExhausted = &ProtocolError{ErrReplyBudgetExhausted, "replies in flight on all inspectors exceed the reply budget"}
)

// NewReplyBudget returns a budget of limit bytes (zero or negative: DefaultReplyBudget).
func NewReplyBudget(limit int64) *ReplyBudget {
	if limit <= 0 {
		limit = DefaultReplyBudget
	}
	return &ReplyBudget{limit: limit, share: max(limit/ReplyBudgetShares, 1)}
}

// Limit returns the budget's size in bytes.
func (b *ReplyBudget) Limit() int64 { return b.limit }

// Used returns the cost charged now.
func (b *ReplyBudget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Refused counts the reads failed with ErrReplyBudgetExhausted so far.
func (b *ReplyBudget) Refused() int64 { return b.refused.Load() }

// account is one Inspector's part of the budget (nil budget: nil account, charging nothing).
func (b *ReplyBudget) account() *budgetAccount {
	if b == nil {
		return nil
	}
	return &budgetAccount{b: b}
}

// budgetAccount is what one Inspector's connections hold together.
type budgetAccount struct {
	b    *ReplyBudget
	held int64 // under b.mu
}

// acquire charges n bytes, or fails without charging anything.
func (a *budgetAccount) acquire(n int64) error {
	if a == nil || n <= 0 {
		return nil
	}
	b := a.b
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case a.held+n > b.share:
		b.refused.Add(1)
		return errShareExhausted
	case b.used+n > b.limit:
		b.refused.Add(1)
		return errBudgetExhausted
	}
	a.held += n
	b.used += n
	return nil
}

// release gives back n bytes acquired before.
func (a *budgetAccount) release(n int64) {
	if a == nil || n <= 0 {
		return
	}
	a.b.mu.Lock()
	defer a.b.mu.Unlock()
	a.held -= n
	a.b.used -= n
}
