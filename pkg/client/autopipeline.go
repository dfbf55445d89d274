package client

import (
	"context"
	"fmt"
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
//     the first queued caller, which writes it as one pipeline (through the rest of the
//     client's pipeline chain, so the same pool, dialer, TLS and node address map), then wakes
//     the others and hands on what queued during its own exchange.
//
// No timer and no goroutine of its own: batches are exactly what arrived while the connection
// was busy. Each command keeps its own reply or error, so go-redis's cluster loop above the
// node sees a MOVED, ASK or WRONGTYPE per command.
//
// Which chain may batch, and through what, is found by asking the client, using only what
// go-redis documents about hooks: Client.Process runs the client's current process chain,
// Client.Pipeline().Exec its current pipeline chain, and a hook that returns without calling
// next ends the command there. go-redis also builds chains for every Tx (Watch) and Conn
// (clones of the client's hooks, on a sticky connection) and for single calls; those must
// never batch onto the client's pool. So the first time a chain has a command to queue, its
// batcher sends a probe command (never written: the hook that meets it returns at once)
// through the client's Process, which records the batcher of the client's current chain, and
// through the client's Pipeline, which records the rest of that pipeline chain. The batcher
// that met the probe is the client's own chain and batches through the recorded pipeline
// processor; any other batcher is a Tx, a Conn or a one-off chain and runs every command
// unbatched, as plain go-redis would. No goroutine ids, and nothing depends on the order in
// which go-redis calls the hook's methods.
type batchHook struct {
	client *redis.Client // the client whose chains this hook is part of

	probeMu sync.Mutex                // one probe at a time
	probing atomic.Pointer[redis.Cmd] // the probe in flight, nil: none
	found   *batcher                  // what the probe met (guarded by probeMu)
	pipe    redis.ProcessPipelineHook // likewise
}

func newBatchHook(c *redis.Client) *batchHook { return &batchHook{client: c} }

func (h *batchHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *batchHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return (&batcher{next: next, hook: h}).process
}

func (h *batchHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) == 1 && h.isProbe(cmds[0]) {
			h.pipe = next // on the prober's goroutine, under probeMu
			return nil
		}
		return next(ctx, cmds)
	}
}

func (h *batchHook) isProbe(cmd redis.Cmder) bool {
	p := h.probing.Load()
	return p != nil && cmd == redis.Cmder(p)
}

// resolve decides once whether b is the client's own chain (it batches) or another (it never
// does); see batchHook. A probe that fails (a closed client) decides nothing.
func (h *batchHook) resolve(b *batcher) {
	h.probeMu.Lock()
	defer h.probeMu.Unlock()
	if b.role.Load() != roleUnknown {
		return
	}
	main, pipe := h.probe()
	switch {
	case main == nil || pipe == nil:
		return
	case main == b:
		b.pipe = pipe
		b.role.Store(roleMain)
	default:
		b.role.Store(roleOther)
		if main.role.Load() == roleUnknown {
			main.pipe = pipe
			main.role.Store(roleMain)
		}
	}
}

// probe returns the batcher of the client's current process chain and the rest of its
// current pipeline chain (nil if a hook outside this one stopped the probe). Callers hold
// probeMu.
func (h *batchHook) probe() (*batcher, redis.ProcessPipelineHook) {
	ctx := context.Background()
	cmd := redis.NewCmd(ctx, "rconn-autopipeline-probe")
	h.found, h.pipe = nil, nil
	h.probing.Store(cmd)
	defer h.probing.Store(nil)
	_ = h.client.Process(ctx, cmd)
	p := h.client.Pipeline()
	_ = p.Process(ctx, cmd)
	_, _ = p.Exec(ctx)
	main, pipe := h.found, h.pipe
	h.found, h.pipe = nil, nil
	return main, pipe
}

// maxBatch bounds one pipeline; what queued beyond it goes in the next exchange.
const maxBatch = 1024

const (
	roleUnknown int32 = iota // not probed yet
	roleMain                 // the client's own chain: batches through pipe
	roleOther                // a Tx, Conn or one-off chain: never batches
)

// batcher is the batching state of one process chain.
type batcher struct {
	next redis.ProcessHook // the rest of the chain, for one command
	hook *batchHook
	role atomic.Int32
	pipe redis.ProcessPipelineHook // the rest of the client's pipeline chain; set before role becomes roleMain

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
	if b.hook.isProbe(cmd) {
		b.hook.found = b // on the prober's goroutine, under probeMu
		return nil
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
	if b.role.Load() != roleMain {
		b.mu.Unlock()
		return b.unresolved(ctx, cmd)
	}
	return b.enqueue(ctx, cmd)
}

// unresolved runs cmd, which found this chain busy before the chain knew whether it is the
// client's own: it asks (once), then queues cmd only if it is.
func (b *batcher) unresolved(ctx context.Context, cmd redis.Cmder) error {
	if b.role.Load() == roleUnknown {
		b.hook.resolve(b)
	}
	if b.role.Load() != roleMain {
		return b.next(ctx, cmd) // a Tx, Conn or one-off chain: never onto the client's pool
	}
	b.mu.Lock()
	if !b.busy {
		b.busy = true
		b.mu.Unlock()
		defer b.handOn()
		return b.next(ctx, cmd)
	}
	return b.enqueue(ctx, cmd)
}

// enqueue, called with b.mu held while an exchange is in flight, queues cmd behind it and
// waits for its reply.
func (b *batcher) enqueue(ctx context.Context, cmd redis.Cmder) error {
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

var _ redis.Hook = (*batchHook)(nil)
