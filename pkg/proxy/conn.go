package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// Per-connection bounds.
const (
	// bufSize is each direction's read buffer: the only per-connection memory in steady state.
	bufSize = 16 << 10
	// queueDepth bounds the commands in flight whose replies are still to come (pipelining
	// deeper than this waits for replies: back-pressure, not memory).
	queueDepth = 4096
	// maxErrorLine bounds a captured top-level error line (redirections are short); longer
	// errors are streamed through unchanged.
	maxErrorLine = 1024
	// DefaultMaxTopologyReply bounds one buffered topology reply (CLUSTER SLOTS/SHARDS/NODES).
	DefaultMaxTopologyReply = 4 << 20
)

// ErrTopologyReplyTooLarge means that a topology reply exceeded Options.MaxTopologyReply; the
// connection is closed (the reply cannot be forwarded without rewriting it).
var ErrTopologyReplyTooLarge = errors.New("rconn proxy: topology reply exceeds the size limit")

// ErrTopologyBufferFull means that the topology replies buffered by all connections together
// reached Options.MaxTopologyBuffer; the connection whose reply did not fit is closed.
var ErrTopologyBufferFull = errors.New("rconn proxy: topology replies in flight exceed the proxy's buffer bound")

// pipe forwards one client connection to one node, rewriting topology in replies.
type pipe struct {
	down, up net.Conn
	rt       router
	maxTopo  int
	rewrite  bool // cluster mode: match and rewrite; standalone: plain copy

	sticky atomic.Bool
	m      *matcher
	// clock is the proxy's coarse clock, last the clock when a byte last moved (idle timeout);
	// budget the proxy-wide bound on buffered topology replies, held this pipe's share of it.
	clock  *atomic.Int64
	last   atomic.Int64
	budget *budget
	held   int
	done   chan struct{}
	once   sync.Once

	// request side
	rq reqScanner
	rs replyState

	// reply side
	sc      replyScanner
	capKind uint8
	capOn   bool
	capBuf  []byte
	errBuf  [maxErrorLine]byte
	errLen  int
}

func newPipe(down, up net.Conn, rt router, maxTopo int, rewrite bool) *pipe {
	if maxTopo <= 0 {
		maxTopo = DefaultMaxTopologyReply
	}
	p := &pipe{down: down, up: up, rt: rt, maxTopo: maxTopo, rewrite: rewrite, done: make(chan struct{})}
	p.m = newMatcher(queueDepth, &p.sticky)
	return p
}

func (p *pipe) close() {
	p.once.Do(func() {
		close(p.done)
		_ = p.down.Close()
		_ = p.up.Close()
	})
}

// run forwards both directions until either ends, then closes both connections. It returns
// the error that ended it (nil for a clean close by either side).
func (p *pipe) run() error {
	errs := make(chan error, 2)
	go func() { errs <- p.requests() }()
	go func() { errs <- p.replies() }()
	err := <-errs
	p.close()
	<-errs //nolint:errcheck // a wait for the other direction, ended by the close: the first error is the one reported
	p.budget.give(p.held)
	p.held = 0
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (p *pipe) requests() error {
	forward := p.onRequests
	if !p.rewrite {
		forward = func(b []byte) error { _, err := p.up.Write(b); return err }
	}
	on := func(b []byte) error { p.touch(); return forward(b) }
	buf := getBuf()
	defer putBuf(buf)
	return readLoop(p.down, *buf, on)
}

// onRequests finds the commands in a chunk, queues what their replies look like, and forwards
// the chunk. The expectation of a command is queued before its last byte is written, so it is
// there before its reply can arrive.
func (p *pipe) onRequests(b []byte) error {
	written, i := 0, 0
	for i < len(b) {
		n, done, err := p.rq.scan(b[i:])
		i += n
		if err != nil {
			return fmt.Errorf("rconn proxy: client sent a malformed command: %w", err)
		}
		if !done {
			continue
		}
		e, ok := classify(p.rq.command(), &p.rs)
		p.rq.reset()
		if !ok || (p.sticky.Load() && e.kind != expReset) {
			continue
		}
		select {
		case p.m.q <- e:
		default:
			// Full: what is queued must reach the server before we wait for its replies.
			if _, err := p.up.Write(b[written:i]); err != nil {
				return err
			}
			written = i
			select {
			case p.m.q <- e:
			case <-p.done:
				return net.ErrClosed
			}
		}
	}
	_, err := p.up.Write(b[written:])
	return err
}

func (p *pipe) replies() error {
	forward := p.onReplies
	if !p.rewrite {
		forward = p.write
	}
	on := func(b []byte) error { p.touch(); return forward(b) }
	buf := getBuf()
	defer putBuf(buf)
	return readLoop(p.up, *buf, on)
}

// bufs recycles the read buffers of ended connections: a client that opens a connection per
// node (redis-benchmark --cluster, 3 x -c connections) or per request would otherwise allocate
// and zero 2 x bufSize for each. Nothing keeps a reference to a read buffer after its loop:
// what is captured is copied (capBuf, errBuf).
var bufs = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

func getBuf() *[]byte  { return bufs.Get().(*[]byte) } //nolint:forcetypeassert // the pool holds nothing else
func putBuf(b *[]byte) { bufs.Put(b) }

// onReplies forwards a chunk of replies: bytes of replies that name no node go out as they
// came (one write per chunk); topology replies and top-level errors are captured (bounded),
// rewritten and written in their place.
func (p *pipe) onReplies(b []byte) error {
	flushed, i := 0, 0
	for i < len(b) {
		if p.sc.between() {
			p.capKind = p.m.begin(b[i])
			if p.capKind != kindNone {
				if err := p.write(b[flushed:i]); err != nil {
					return err
				}
				flushed, p.capOn, p.errLen = i, true, 0
				p.capBuf = p.capBuf[:0]
			}
		}
		n, end, err := p.sc.scan(b[i:])
		if err != nil {
			return fmt.Errorf("rconn proxy: node %s: %w", p.up.RemoteAddr(), err)
		}
		if p.capOn {
			if err := p.capture(b[i : i+n]); err != nil {
				return err
			}
			if p.capOn {
				flushed = i + n
			} else {
				flushed = i // overflowed error line: the rest streams through
			}
		}
		i += n
		if end {
			if p.capOn {
				if err := p.write(p.rewritten()); err != nil {
					return err
				}
				p.capOn = false
			}
			p.m.end(p.sc.top, p.sc.firstString())
			p.sc.reset()
		}
	}
	if p.capOn {
		return nil
	}
	return p.write(b[flushed:])
}

func (p *pipe) capture(seg []byte) error {
	if p.capKind == kindError {
		if p.errLen+len(seg) <= len(p.errBuf) {
			p.errLen += copy(p.errBuf[p.errLen:], seg)
			return nil
		}
		// Not a redirection (those are short): stream it unchanged.
		p.capOn = false
		return p.write(p.errBuf[:p.errLen])
	}
	if len(p.capBuf)+len(seg) > p.maxTopo {
		return fmt.Errorf("%w (%d bytes)", ErrTopologyReplyTooLarge, p.maxTopo)
	}
	if !p.budget.take(len(seg)) {
		return ErrTopologyBufferFull
	}
	p.held += len(seg)
	p.capBuf = append(p.capBuf, seg...)
	return nil
}

// touch stamps activity for the idle timeout.
func (p *pipe) touch() {
	if p.clock != nil {
		p.last.Store(p.clock.Load())
	}
}

func (p *pipe) rewritten() []byte {
	if p.capKind == kindError {
		line := p.errBuf[:p.errLen]
		if !isRedirect(line) {
			return line
		}
		return rewrite(kindError, line, p.rt)
	}
	out := rewrite(p.capKind, p.capBuf, p.rt)
	p.budget.give(p.held)
	p.held = 0
	if cap(p.capBuf) > 64<<10 {
		p.capBuf = nil // keep no large buffer around between topology replies
	}
	return out
}

func (p *pipe) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	_, err := p.down.Write(b)
	return err
}
