package proxy

import (
	"errors"

	"github.com/rconn-dev/redis-connection-operator/internal/resp"
)

// replyScanner finds the boundaries of top-level RESP2/RESP3 values in the server's byte
// stream, chunk by chunk, without buffering or allocating: the bytes themselves are forwarded
// by the caller. internal/resp's Scanner reads the stream; what the proxy plugs in is the
// capture: of a frame it remembers the type byte it began with and, when short, its first
// string (a push's kind, a simple string's text).
type replyScanner struct {
	sc   resp.Scanner
	init bool

	top          byte // type byte of the current top-level frame (0: between frames)
	firstPending bool // the next depth-1 element is the frame's first
	first        [24]byte
	firstLen     int // -1: no short first string
}

const maxDepth = 64

var (
	errProtocol = errors.New("rconn proxy: the byte stream is not RESP")
	errTooDeep  = errors.New("rconn proxy: a reply nests deeper than 64 levels")
)

// scanError is the proxy's error for the Scanner's.
func scanError(err error) error {
	if errors.Is(err, resp.ErrTooDeep) {
		return errTooDeep
	}
	return errProtocol
}

// between tells whether the scanner is at the start of a top-level frame.
func (s *replyScanner) between() bool { return s.top == 0 }

// firstString is the frame's first short string (a push kind, a simple string), or nil.
func (s *replyScanner) firstString() []byte {
	if s.firstLen < 0 {
		return nil
	}
	return s.first[:s.firstLen]
}

// reset prepares for the next frame.
func (s *replyScanner) reset() { s.top = 0 }

// scan consumes p up to the end of the current top-level frame: n bytes were consumed and end
// tells whether the frame ended with them.
func (s *replyScanner) scan(p []byte) (n int, end bool, err error) {
	if !s.init {
		s.init = true
		s.sc.Lim, s.sc.Watch = resp.NoLimits(maxDepth), 1
	}
	for i := 0; ; {
		k, ev, err := s.sc.Scan(p[i:])
		i += k
		if err != nil {
			return i, false, scanError(err)
		}
		switch ev {
		case resp.None:
			return i, false, nil
		case resp.Begin:
			s.begin(s.sc.Type(), s.sc.Depth())
		case resp.Data:
			s.capture(s.sc.Data())
		case resp.End:
			return i, true, nil
		}
	}
}

// begin follows a value's type byte at depth 0 or (while the first element is pending) 1.
func (s *replyScanner) begin(c byte, depth int) {
	if depth == 0 {
		if s.top == 0 {
			s.top, s.firstLen = c, -1
			if c == '+' {
				s.sc.Capture, s.firstLen = true, 0
			}
		}
		// An aggregate (not an attribute): its first element may be captured.
		s.firstPending = c == '*' || c == '%' || c == '~' || c == '>'
	} else if s.firstPending {
		s.firstPending = false
		if c == '$' || c == '+' {
			s.sc.Capture, s.firstLen = true, 0
		}
	}
	s.sc.Watch = 1
	if s.firstPending {
		s.sc.Watch = 2
	}
}

func (s *replyScanner) capture(b []byte) {
	if s.firstLen < 0 {
		return
	}
	if s.firstLen+len(b) > len(s.first) {
		s.firstLen, s.sc.Capture = -1, false
		return
	}
	s.firstLen += copy(s.first[s.firstLen:], b)
}

// reqScanner finds command boundaries in the client's byte stream (RESP arrays of bulk
// strings, or inline commands, split as Redis splits them) and keeps the first three
// arguments when short: enough to tell which replies need rewriting. Like replyScanner it
// never buffers an argument.
type reqScanner struct {
	sc     resp.Scanner
	il     resp.Inline
	init   bool
	inline bool // the current command is an inline one

	nargs int64 // arguments of the current command so far
	idx   int   // index of the current argument

	arg    [3][32]byte
	argLen [3]int // -1: too long
}

// command is what a complete command looks like to the matcher.
type command struct {
	nargs int64
	args  [3][]byte // nil when absent or too long
}

func (r *reqScanner) reset() {
	r.nargs, r.idx, r.inline = 0, 0, false
	r.argLen = [3]int{}
	r.il.Reset()
}

// scan consumes p up to the end of the current command; done tells whether it ended.
func (r *reqScanner) scan(p []byte) (n int, done bool, err error) {
	if !r.init {
		r.init = true
		r.sc.Lim, r.sc.Request, r.sc.Watch = resp.NoLimits(1), true, 2
	}
	for i := 0; ; {
		if !r.inline && r.sc.Between() && i < len(p) && p[i] != '*' {
			r.inline = true // what Redis does: a command not starting with '*' is inline
		}
		var k int
		var ev resp.Event
		if r.inline {
			k, ev, err = r.il.Scan(p[i:])
		} else {
			k, ev, err = r.sc.Scan(p[i:])
		}
		i += k
		if err != nil {
			return i, false, errProtocol
		}
		if ev == resp.None {
			return i, false, nil
		}
		if r.event(ev) {
			return i, true, nil
		}
	}
}

// event follows one event of either scanner; true: a command is complete.
func (r *reqScanner) event(ev resp.Event) bool {
	switch ev {
	case resp.Begin:
		if r.inline {
			r.nargs, r.idx = int64(r.il.Args()), r.il.Args()-1
		} else if r.sc.Depth() == 1 {
			r.sc.Capture = r.idx < 3
		}
	case resp.Data:
		if r.inline {
			r.keep(r.il.Data())
		} else {
			r.keep(r.sc.Data())
		}
	case resp.Done:
		r.idx++
		r.nargs++
	case resp.End:
		if r.nargs == 0 {
			r.reset() // a blank line, "*0" or "*-1": Redis ignores it, no reply
			return false
		}
		return true
	}
	return false
}

func (r *reqScanner) keep(b []byte) {
	if r.idx >= 3 || r.argLen[r.idx] < 0 {
		return
	}
	if r.argLen[r.idx]+len(b) > len(r.arg[r.idx]) {
		r.argLen[r.idx] = -1
		return
	}
	r.argLen[r.idx] += copy(r.arg[r.idx][r.argLen[r.idx]:], b)
}

// command returns the command just completed.
func (r *reqScanner) command() command {
	c := command{nargs: r.nargs}
	for k := 0; k < 3 && int64(k) < r.nargs; k++ {
		if r.argLen[k] >= 0 {
			c.args[k] = r.arg[k][:r.argLen[k]]
		}
	}
	return c
}
