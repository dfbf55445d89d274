package proxy

import (
	"bytes"
	"errors"
)

// replyScanner finds the boundaries of top-level RESP2/RESP3 values in the server's byte
// stream, chunk by chunk, without buffering or allocating: the bytes themselves are forwarded
// by the caller. It is a hand-written state machine (after pkg/cluster's respValidator) on
// purpose: it must walk replies of any size (a 512 MB bulk is skipped, never held) across
// arbitrary chunk boundaries, and no maintained Go RESP library streams without materializing
// values. What it remembers of a frame is fixed-size: the type byte it began with and, when
// short, its first string (a push's kind, a simple string's text).
type replyScanner struct {
	state   uint8
	typ     byte
	neg     bool
	digits  int
	val     int64
	payload int64

	stack [maxDepth]rframe
	depth int

	top          byte // type byte of the current top-level frame (0: between frames)
	firstPending bool // the next depth-1 element is the frame's first
	capturing    bool
	first        [24]byte
	firstLen     int // -1: no short first string
}

type rframe struct {
	remaining int64
	attr      bool
}

const maxDepth = 64

const (
	stType uint8 = iota
	stLine
	stNum
	stNumLF
	stNullCR
	stNullLF
	stPayload
	stPayloadCR
	stPayloadLF
)

var (
	errProtocol = errors.New("rconn proxy: the byte stream is not RESP")
	errTooDeep  = errors.New("rconn proxy: a reply nests deeper than 64 levels")
)

const maxDigits = 18

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
	i := 0
	for i < len(p) {
		switch s.state {
		case stPayload:
			k := int64(len(p) - i)
			if k > s.payload {
				k = s.payload
			}
			if s.capturing {
				s.capture(p[i : i+int(k)])
			}
			i += int(k)
			s.payload -= k
			if s.payload == 0 {
				s.state = stPayloadCR
			}
			continue
		case stLine:
			j := bytes.IndexByte(p[i:], '\n')
			seg := p[i:]
			if j >= 0 {
				seg = p[i : i+j]
			}
			if s.capturing {
				s.capture(bytes.TrimSuffix(seg, []byte{'\r'}))
			}
			if j < 0 {
				return len(p), false, nil
			}
			i += j + 1
			if s.capturing && s.firstLen > 0 && s.first[s.firstLen-1] == '\r' {
				s.firstLen--
			}
			s.capturing = false
			if s.done() {
				return i, true, nil
			}
			continue
		}
		c := p[i]
		i++
		switch s.state {
		case stType:
			if err := s.begin(c); err != nil {
				return i, false, err
			}
		case stNum:
			switch {
			case c >= '0' && c <= '9':
				if s.digits == maxDigits {
					return i, false, errProtocol
				}
				s.digits++
				s.val = s.val*10 + int64(c-'0')
			case c == '-' && s.digits == 0 && !s.neg:
				s.neg = true
			case c == '\r' && s.digits > 0:
				s.state = stNumLF
			default:
				return i, false, errProtocol
			}
		case stNumLF:
			if c != '\n' {
				return i, false, errProtocol
			}
			ended, err := s.number()
			if err != nil {
				return i, false, err
			}
			if ended {
				return i, true, nil
			}
		case stNullCR:
			if c != '\r' {
				return i, false, errProtocol
			}
			s.state = stNullLF
		case stNullLF:
			if c != '\n' {
				return i, false, errProtocol
			}
			if s.done() {
				return i, true, nil
			}
		case stPayloadCR:
			if c != '\r' {
				return i, false, errProtocol
			}
			s.state = stPayloadLF
		case stPayloadLF:
			if c != '\n' {
				return i, false, errProtocol
			}
			s.capturing = false
			if s.done() {
				return i, true, nil
			}
		}
	}
	return i, false, nil
}

func (s *replyScanner) capture(b []byte) {
	if s.firstLen < 0 {
		return
	}
	if s.firstLen+len(b) > len(s.first) {
		s.firstLen, s.capturing = -1, false
		return
	}
	s.firstLen += copy(s.first[s.firstLen:], b)
}

// begin reads a type byte.
func (s *replyScanner) begin(c byte) error {
	if s.top == 0 {
		s.top, s.firstPending, s.firstLen = c, false, -1
		if c == '+' {
			s.capturing, s.firstLen = true, 0
		}
	} else if s.depth == 1 && s.firstPending {
		s.firstPending = false
		if c == '$' || c == '+' {
			s.capturing, s.firstLen = true, 0
		}
	}
	s.typ = c
	switch c {
	case '+', '-', ',', '(', '#':
		s.state = stLine
	case ':', '$', '=', '!', '*', '%', '~', '>', '|':
		s.state, s.neg, s.digits, s.val = stNum, false, 0, 0
	case '_':
		s.state = stNullCR
	default:
		return errProtocol
	}
	return nil
}

// number acts on a complete length or integer; ended: the top-level frame ended.
func (s *replyScanner) number() (bool, error) {
	switch s.typ {
	case ':':
		return s.done(), nil
	case '$', '=', '!':
		if s.neg {
			s.capturing = false
			return s.done(), nil
		}
		if s.capturing && s.val > int64(len(s.first)) {
			s.capturing, s.firstLen = false, -1
		}
		s.payload = s.val
		s.state = stPayload
		if s.payload == 0 {
			s.state = stPayloadCR
		}
		return false, nil
	}
	if s.neg {
		return s.done(), nil
	}
	n := s.val
	if s.typ == '%' || s.typ == '|' {
		n *= 2
	}
	attr := s.typ == '|'
	if n == 0 {
		if attr {
			s.state = stType
			return false, nil
		}
		return s.done(), nil
	}
	if s.depth == maxDepth {
		return false, errTooDeep
	}
	s.stack[s.depth] = rframe{remaining: n, attr: attr}
	s.depth++
	if s.depth == 1 && !attr {
		s.firstPending = true
	}
	s.state = stType
	return false, nil
}

// done records one complete value; true when it completed the top-level frame.
func (s *replyScanner) done() bool {
	s.state = stType
	for s.depth > 0 {
		top := &s.stack[s.depth-1]
		top.remaining--
		if top.remaining > 0 {
			return false
		}
		attr := top.attr
		s.depth--
		if attr {
			return false // the annotated value follows
		}
	}
	return true
}

// reqScanner finds command boundaries in the client's byte stream (RESP arrays of bulk
// strings, or inline commands) and keeps the first three arguments when short: enough to
// tell which replies need rewriting. Like replyScanner it never buffers an argument.
type reqScanner struct {
	state   uint8
	neg     bool
	digits  int
	val     int64
	payload int64
	args    int64 // arguments left in the current command
	nargs   int64 // arguments of the current command
	idx     int   // index of the current argument
	inToken bool  // inline: inside a token

	arg    [3][32]byte
	argLen [3]int // -1: too long
}

const (
	rqStart   uint8 = iota // expecting '*' or an inline command
	rqNum                  // reading the array length (after '*') or a bulk length (after '$')
	rqNumLF                // '\r' read after a number
	rqDollar               // expecting '$'
	rqPayload              // argument bytes
	rqPayloadCR
	rqPayloadLF
	rqInline // an inline command, until '\n'
)

// command is what a complete command looks like to the matcher.
type command struct {
	nargs int64
	args  [3][]byte // nil when absent or too long
}

func (r *reqScanner) reset() {
	r.state, r.nargs, r.idx = rqStart, 0, 0
	r.argLen = [3]int{}
}

// header says whether the current number is an array length (else a bulk length).
func (r *reqScanner) inArray() bool { return r.nargs > 0 || r.args > 0 }

// scan consumes p up to the end of the current command; done tells whether it ended.
func (r *reqScanner) scan(p []byte) (n int, done bool, err error) {
	i := 0
	for i < len(p) {
		if r.state == rqPayload {
			k := int64(len(p) - i)
			if k > r.payload {
				k = r.payload
			}
			r.keep(p[i : i+int(k)])
			i += int(k)
			r.payload -= k
			if r.payload == 0 {
				r.state = rqPayloadCR
			}
			continue
		}
		c := p[i]
		i++
		switch r.state {
		case rqStart:
			if c == '*' {
				r.state, r.neg, r.digits, r.val, r.args = rqNum, false, 0, 0, 0
				continue
			}
			r.state, r.inToken = rqInline, false
			i--
		case rqNum:
			switch {
			case c >= '0' && c <= '9':
				if r.digits == maxDigits {
					return i, false, errProtocol
				}
				r.digits++
				r.val = r.val*10 + int64(c-'0')
			case c == '-' && r.digits == 0 && !r.neg:
				r.neg = true
			case c == '\r' && r.digits > 0:
				r.state = rqNumLF
			default:
				return i, false, errProtocol
			}
		case rqNumLF:
			if c != '\n' {
				return i, false, errProtocol
			}
			if !r.inArray() {
				// The array header.
				if r.neg || r.val == 0 {
					r.reset() // "*0" / "*-1": redis ignores it, no reply
					continue
				}
				r.nargs, r.args, r.state = r.val, r.val, rqDollar
				continue
			}
			if r.neg {
				return i, false, errProtocol
			}
			r.payload, r.state = r.val, rqPayload
			if r.idx < 3 && r.val > 32 {
				r.argLen[r.idx] = -1
			}
			if r.payload == 0 {
				r.state = rqPayloadCR
			}
		case rqDollar:
			if c != '$' {
				return i, false, errProtocol
			}
			r.state, r.neg, r.digits, r.val = rqNum, false, 0, 0
		case rqPayloadCR:
			if c != '\r' {
				return i, false, errProtocol
			}
			r.state = rqPayloadLF
		case rqPayloadLF:
			if c != '\n' {
				return i, false, errProtocol
			}
			r.idx++
			r.args--
			if r.args == 0 {
				return i, true, nil
			}
			r.state = rqDollar
		case rqInline:
			switch c {
			case '\n':
				if r.nargs == 0 {
					r.reset() // an empty line: redis ignores it
					continue
				}
				return i, true, nil
			case ' ', '\t', '\r':
				if r.inToken {
					r.inToken = false
					r.idx++
				}
			default:
				if !r.inToken {
					r.inToken = true
					r.nargs++
				}
				r.keep([]byte{c})
			}
		}
	}
	return i, false, nil
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
