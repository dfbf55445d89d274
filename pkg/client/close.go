package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Two ways to close, with node-redis's meaning (node-redis v5 close()/destroy(); quit() and
// disconnect() are their deprecated names):
//
//	cluster.close() / client.quit()          CloseGraceful(ctx): graceful
//	cluster.destroy() / client.disconnect()  Close():            immediate
//
// The graceful one cannot be called Quit: the embedded go-redis client's Quit(ctx) is the
// Redis QUIT command, which closes one pooled connection and nothing else.
//
// Close keeps the io.Closer meaning Go code expects of a client (go-redis, net.Conn,
// http.Server.Close): it returns promptly and releases everything. The graceful one takes a
// context, like http.Server.Shutdown, because "wait until every command already sent has its
// reply" is unbounded with a BLPOP 0 in flight. Both stop the monitor and the reload, make new
// commands fail with redis.ErrClosed, emit "end" once, and are safe to call concurrently and
// more than once: the first call does the work, every later or concurrent one waits for it
// and returns redis.ErrClosed.

// CloseGraceful closes the client gracefully (node-redis close(), formerly quit()): commands
// issued from now on fail with redis.ErrClosed, commands already issued (sent, or queued for an
// autoPipeline batch) run to their replies, then the connections close and "end" is emitted.
// If ctx ends first, the commands still in flight are failed as by Close and CloseGraceful
// returns an error wrapping ctx's cause. A second call returns redis.ErrClosed.
func (c *Client) CloseGraceful(ctx context.Context) error {
	idle := c.gate.shut()
	c.stopBackground()
	var waitErr error
	select {
	case <-idle:
	case <-ctx.Done():
		waitErr = fmt.Errorf("rconn: graceful close: %d commands still in flight when the context ended, closing them: %w", c.gate.count(), context.Cause(ctx))
	}
	return errors.Join(waitErr, c.finish())
}

// Close closes the client at once (node-redis destroy(), formerly disconnect()): it stops the
// reload and the connection monitor and closes every connection, so commands in flight fail
// fast (with redis.ErrClosed or the closed connection's error) instead of waiting for their
// replies, and later commands fail with redis.ErrClosed; then "end" is emitted. Use
// CloseGraceful to let
// the commands in flight finish. Closing again, or concurrently, returns redis.ErrClosed once
// the first Close has finished.
func (c *Client) Close() error {
	c.gate.shut()
	c.stopBackground()
	return c.finish()
}

// stopBackground stops the connection monitor and the reload, once, and waits for them.
func (c *Client) stopBackground() {
	c.stopOnce.Do(func() {
		close(c.stop)
		if c.reload != nil {
			c.reload.stop()
		}
	})
	c.wg.Wait()
}

// finish closes the connections and delivers "end", once; later calls wait for the first.
func (c *Client) finish() error {
	c.finishMu.Lock()
	defer c.finishMu.Unlock()
	if c.finished {
		return redis.ErrClosed
	}
	c.finished = true
	already := c.closed.Load() // the reconnect strategy gave up: it emitted "end" with its error
	c.shutdown()
	if !already {
		c.emitEnd(nil)
	}
	c.events.close()
	c.events.wait()
	if already {
		return nil
	}
	return c.closeErr
}

// inflight counts the commands (and pipelines) issued and not yet answered, and refuses new
// ones once shut. Every command passes it twice: atomics, no lock, so that concurrent callers
// do not contend on it.
type inflight struct {
	n        atomic.Int64
	closing  atomic.Bool
	mu       sync.Mutex
	idle     chan struct{} // made by shut before closing is set; closed once n reaches 0
	idleOnce sync.Once
}

// enter admits a command; false once the client is closing. The increment comes first: a shut
// that sets closing after this check sees n > 0 and waits for the matching leave.
func (g *inflight) enter() bool {
	g.n.Add(1)
	if g.closing.Load() {
		g.leave()
		return false
	}
	return true
}

func (g *inflight) leave() {
	if g.n.Add(-1) == 0 && g.closing.Load() {
		g.idleOnce.Do(func() { close(g.idle) })
	}
}

// shut refuses new commands and returns a channel closed once none is in flight.
func (g *inflight) shut() <-chan struct{} {
	g.mu.Lock()
	if g.idle == nil {
		g.idle = make(chan struct{})
	}
	g.mu.Unlock()
	g.closing.Store(true)
	if g.n.Load() == 0 {
		g.idleOnce.Do(func() { close(g.idle) })
	}
	return g.idle
}

func (g *inflight) count() int64 { return g.n.Load() }

// gateHook admits commands through the inflight gate: it is the client's outermost hook, so
// a command counts from the moment its caller issues it until its reply (or error) is back.
type gateHook struct{ g *inflight }

func (h gateHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h gateHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !h.g.enter() {
			cmd.SetErr(redis.ErrClosed)
			return redis.ErrClosed
		}
		defer h.g.leave()
		return next(ctx, cmd)
	}
}

func (h gateHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !h.g.enter() {
			for _, cmd := range cmds {
				cmd.SetErr(redis.ErrClosed)
			}
			return redis.ErrClosed
		}
		defer h.g.leave()
		return next(ctx, cmds)
	}
}

// errClosedInFlight is what a command in flight when Close closed its connection returns in
// cluster mode. It wraps redis.ErrClosed for errors.Is but is not go-redis's ErrClosed value
// itself, nor a network error: go-redis's cluster loop retries both (re-routing to the same
// closed node, with backoff, MaxCommandRedirections times: tens of seconds) and stops at once
// on anything else.
var errClosedInFlight = fmt.Errorf("rconn: the client was closed with the command in flight: %w", redis.ErrClosed)

// closedNodeHook is the innermost hook of every cluster node client: once the Client is
// closed, a failed command's error becomes errClosedInFlight, so it fails fast, and a pipeline
// go-redis retries after Close is refused.
type closedNodeHook struct{ closed *atomic.Bool }

func (h closedNodeHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h closedNodeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err != nil && h.closed.Load() {
			cmd.SetErr(errClosedInFlight)
			return errClosedInFlight
		}
		return err
	}
}

func (h closedNodeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		// go-redis queues a failed node pipeline for another attempt before this hook sees the
		// error; the attempt after Close ends here, without calling next (no remap, no retry).
		if h.closed.Load() {
			for _, cmd := range cmds {
				cmd.SetErr(errClosedInFlight)
			}
			return errClosedInFlight
		}
		err := next(ctx, cmds)
		if err != nil && h.closed.Load() {
			for _, cmd := range cmds {
				if cmd.Err() != nil {
					cmd.SetErr(errClosedInFlight)
				}
			}
			return errClosedInFlight
		}
		return err
	}
}
