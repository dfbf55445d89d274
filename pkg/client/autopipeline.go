package client

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Natural batching (autoPipeline).
//
// A batchHook sits on the process chain of one go-redis *Client: a cluster node (attached in
// OnNewNode, so slot routing and MOVED/ASK stay go-redis's, above it) or the standalone
// client. Per chain, at most one exchange is on the wire at a time:
//
//   - a caller that finds the chain idle runs its command itself, on its own context, through
//     the rest of the chain: exactly the plain path, plus two uncontended mutex sections;
//   - a caller that finds an exchange in flight queues its command and sleeps;
//   - when an exchange ends, whoever ran it takes everything queued meanwhile and hands it to
//     the first queued caller, which writes it as one pipeline (through the same chain's
//     pipeline processor, so the same pool, dialer, TLS and node address map), then wakes the
//     others and hands on what queued during its own exchange.
//
// No timer and no goroutine of its own: batches are exactly what arrived while the connection
// was busy. Each command keeps its own reply or error, so go-redis's cluster loop above the
// node sees a MOVED, ASK or WRONGTYPE per command.
//
// go-redis builds a chain per client and clones it for every Tx (Watch) and Conn; each build
// calls ProcessHook, then ProcessPipelineHook, then ProcessPipelineHook (TxPipeline) on every
// hook, in that order, on the building goroutine. The hook pairs the first two calls of one
// goroutine, so every chain gets its own batcher running on that chain's own connections: a
// Tx batches (if ever) on its sticky connection, never on the pool. A chain whose pipeline
// processor could not be paired never batches.
type batchHook struct {
	mu      sync.Mutex
	pending map[int64]*batcher      // goroutine id -> batcher waiting for its pipeline processor
	latest  atomic.Pointer[batcher] // the last chain built with batching (tests look at its queue)
}

func newBatchHook() *batchHook { return &batchHook{pending: map[int64]*batcher{}} }

func (h *batchHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *batchHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	b := &batcher{next: next, hook: h}
	if id := goroutineID(); id > 0 {
		b.gid = id
		h.mu.Lock()
		if len(h.pending) >= maxPending {
			clear(h.pending) // builds that never asked for a pipeline processor: forget them
		}
		h.pending[id] = b
		h.mu.Unlock()
	}
	return b.process
}

func (h *batchHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	h.mu.Lock()
	if len(h.pending) > 0 {
		id := goroutineID()
		if b := h.pending[id]; b != nil {
			delete(h.pending, id)
			b.pipe = next // set before the chain is published: no reader yet
			h.latest.Store(b)
		}
	}
	h.mu.Unlock()
	return next
}

// maxPending bounds batchHook.pending: go-redis pairs the calls at once, so more than a few
// entries means ProcessHook was called without a pipeline build following it.
const maxPending = 256

// maxBatch bounds one pipeline; what queued beyond it goes in the next exchange.
const maxBatch = 1024

// batcher is the batching state of one process chain.
type batcher struct {
	next redis.ProcessHook         // the rest of the chain, for one command
	pipe redis.ProcessPipelineHook // the rest of the pipeline chain; nil: never batch

	// An unpaired chain (built for one call, e.g. by go-redis's withProcessHook) withdraws
	// its pending pairing on first use, so that a later pipeline build on the same goroutine
	// cannot be paired with it.
	hook      *batchHook
	gid       int64
	abandoned atomic.Bool

	mu    sync.Mutex
	busy  bool      // an exchange is in flight (or being handed on)
	queue []*waiter // commands that arrived meanwhile, in arrival order
	spare []*waiter // a drained batch slice, for reuse
	cmds  []redis.Cmder
}

type waiterState uint8

const (
	queued waiterState = iota
	taken
	canceled
)

// waiter is one queued command; its channel says "lead this batch" (true) or "done".
type waiter struct {
	cmd   redis.Cmder
	ch    chan bool
	state waiterState // guarded by batcher.mu
	batch []*waiter   // set for the leader
}

var waiters = sync.Pool{New: func() any { return &waiter{ch: make(chan bool, 1)} }}

func (b *batcher) process(ctx context.Context, cmd redis.Cmder) error {
	if b.pipe == nil {
		if !b.abandoned.Load() {
			b.abandon()
		}
		return b.next(ctx, cmd)
	}
	if !batchable(cmd) {
		return b.next(ctx, cmd)
	}
	b.mu.Lock()
	if !b.busy {
		b.busy = true
		b.mu.Unlock()
		defer b.handOn()
		return b.next(ctx, cmd)
	}
	if err := ctx.Err(); err != nil {
		b.mu.Unlock()
		return err
	}
	w := waiters.Get().(*waiter)
	w.cmd, w.state = cmd, queued
	b.queue = append(b.queue, w)
	b.mu.Unlock()
	return b.wait(ctx, w)
}

func (b *batcher) abandon() {
	b.hook.mu.Lock()
	if b.hook.pending[b.gid] == b {
		delete(b.hook.pending, b.gid)
	}
	b.abandoned.Store(true)
	b.hook.mu.Unlock()
}

// wait sleeps until w's command is done, or until w must lead its batch. A caller whose context
// ends while its command is still queued leaves the queue with the context's error; once its
// command is taken it is on (or about to go on) the wire with others, and the caller waits for
// its reply, which the connection's read timeout bounds.
func (b *batcher) wait(ctx context.Context, w *waiter) error {
	var lead bool
	select {
	case lead = <-w.ch:
	case <-ctx.Done():
		b.mu.Lock()
		if w.state == queued {
			w.state = canceled // handOn drops it and recycles w
			b.mu.Unlock()
			return ctx.Err()
		}
		b.mu.Unlock()
		lead = <-w.ch
	}
	if lead {
		b.lead(w.batch)
	}
	err := w.cmd.Err()
	w.cmd, w.batch = nil, nil
	waiters.Put(w)
	return err
}

// lead writes batch as one pipeline, hands on what queued meanwhile, then wakes the batch.
// The batch runs on a context of its own: no single caller's cancellation or deadline may
// fail the others' commands.
func (b *batcher) lead(batch []*waiter) {
	cmds := b.cmds[:0]
	for _, w := range batch {
		cmds = append(cmds, w.cmd)
	}
	b.cmds = nil
	b.exec(cmds)
	clear(cmds)
	b.cmds = cmds
	b.handOn()
	for _, w := range batch[1:] {
		w.ch <- false
	}
	clear(batch)
	b.mu.Lock()
	if b.spare == nil {
		b.spare = batch[:0]
	}
	b.mu.Unlock()
}

func (b *batcher) exec(cmds []redis.Cmder) {
	defer func() {
		if r := recover(); r != nil {
			err := fmt.Errorf("rconn: autoPipeline: panic in a hook or in go-redis while writing a batch: %v", r)
			for _, c := range cmds {
				c.SetErr(err)
			}
		}
	}()
	// Per-command errors are on the commands; the returned first error adds nothing.
	_ = b.pipe(context.Background(), cmds)
}

// handOn ends the exchange that just finished: if commands queued meanwhile, their first caller
// leads them; otherwise the chain goes idle.
func (b *batcher) handOn() {
	b.mu.Lock()
	n := 0
	for _, w := range b.queue {
		if w.state == canceled {
			w.cmd = nil
			waiters.Put(w)
			continue
		}
		b.queue[n] = w
		n++
	}
	if n == 0 {
		clear(b.queue)
		b.queue = b.queue[:0]
		b.busy = false
		b.mu.Unlock()
		return
	}
	take := min(n, maxBatch)
	batch := b.spare
	b.spare = nil
	batch = append(batch[:0], b.queue[:take]...)
	rest := copy(b.queue, b.queue[take:n])
	clear(b.queue[rest:])
	b.queue = b.queue[:rest]
	for _, w := range batch {
		w.state = taken
	}
	leader := batch[0]
	leader.batch = batch
	b.mu.Unlock()
	leader.ch <- true
}

// batchable reports whether cmd may share a pipeline. Blocking commands would hold every
// command queued behind them until they return, so they run on their own connection.
func batchable(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "blpop", "brpop", "brpoplpush", "blmove", "blmpop", "bzpopmin", "bzpopmax", "bzmpop",
		"wait", "waitaof", "monitor", "sync", "psync", "subscribe", "psubscribe", "ssubscribe":
		return false
	case "xread", "xreadgroup":
		for _, a := range cmd.Args()[1:] {
			if s, ok := a.(string); ok && strings.EqualFold(s, "block") {
				return false
			}
		}
	}
	return true
}

// goroutineID is the current goroutine's id, from the first line of its stack ("goroutine N
// [running]:"). It runs only while go-redis builds a hook chain, never per command.
func goroutineID() int64 {
	var buf [64]byte
	s := string(buf[:runtime.Stack(buf[:], false)])
	s = strings.TrimPrefix(s, "goroutine ")
	if i := strings.IndexByte(s, ' '); i > 0 {
		if id, err := strconv.ParseInt(s[:i], 10, 64); err == nil {
			return id
		}
	}
	return -1
}

var _ redis.Hook = (*batchHook)(nil)
