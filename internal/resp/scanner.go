package resp

import (
	"bytes"
	"errors"
	"math"
)

// Limits bound what a Scanner accepts; a header, line or reply beyond them is an error as soon
// as it is seen (a length fails on the digit that takes it over, before its CRLF).
type Limits struct {
	// MaxBulk bounds a bulk, verbatim or blob-error length header.
	MaxBulk int64
	// MaxAggregate bounds an aggregate header's element count (maps and attributes count twice).
	MaxAggregate int64
	// MaxLine bounds the text of a simple line (+ - , ( #).
	MaxLine int
	// MaxDepth bounds aggregate nesting.
	MaxDepth int
	// MaxBytes bounds one top-level value: its wire bytes, a bulk's payload counted at its header.
	MaxBytes int64
	// MaxElems bounds the elements one top-level value declares, summed over its aggregates.
	MaxElems int64
}

// NoLimits bounds nothing but nesting (depth levels of aggregates).
func NoLimits(depth int) Limits {
	return Limits{MaxBulk: math.MaxInt64, MaxAggregate: math.MaxInt64, MaxLine: math.MaxInt, MaxDepth: depth,
		MaxBytes: math.MaxInt64, MaxElems: math.MaxInt64}
}

// Errors: fixed values that never carry input bytes. Callers map them to their own.
var (
	ErrUnknownType  = errors.New("unknown RESP type byte")
	ErrBadNumber    = errors.New("malformed length or integer")
	ErrBadLineEnd   = errors.New("line not terminated by CRLF")
	ErrBadBulkEnd   = errors.New("bulk string not terminated by CRLF")
	ErrNotRequest   = errors.New("a request is not an array of bulk strings")
	ErrArrayTooLong = errors.New("aggregate header declares more elements than allowed")
	ErrBulkTooLong  = errors.New("bulk header declares more bytes than allowed")
	ErrTooManyElems = errors.New("reply declares more elements than allowed")
	ErrTooManyBytes = errors.New("reply is longer than allowed")
	ErrTooDeep      = errors.New("value nests deeper than allowed")
	ErrLineTooLong  = errors.New("line longer than allowed")
)

// Event is what Scan stopped for.
type Event uint8

const (
	// None means all of p was consumed and the current top-level value continues.
	None Event = iota
	// Begin means the type byte of a watched value (Depth() < Watch) was read: Type(), Depth().
	Begin
	// Data means Data() holds the next bytes of the captured value's text (a line without its
	// CRLF, a bulk's payload), a slice of p.
	Data
	// Done means a watched value that is not a whole top-level value is complete: Type(),
	// Depth(), Null(). An attribute ('|') is reported when its entries are; the value it
	// annotates follows at the same depth.
	Done
	// End means a top-level value is complete; the scanner is between values.
	End
)

// Scanner states. Defined here only: every RESP reader of rconn is this one.
const (
	stType      uint8 = iota // expecting a type byte
	stLine                   // a simple line until CRLF (+ - , ( #)
	stNum                    // a length or integer: [-]digits
	stNumLF                  // read '\r' after the number, expecting '\n'
	stNullCR                 // '_': expecting '\r'
	stNullLF                 // '_': expecting '\n'
	stPayload                // bulk bytes
	stPayloadCR              // bulk done, expecting '\r'
	stPayloadLF              // expecting '\n'
	stPop                    // an aggregate's last element is done: it completes next
)

// maxDigits keeps numbers inside int64 without overflow checks per digit (18 nines < 2^63).
const maxDigits = 18

// Scanner finds the values of a RESP2/RESP3 byte stream chunk by chunk, without buffering or
// allocating (its stack aside, allocated once): it remembers the state within the current
// line, number or payload and one frame per open aggregate. What a caller plugs in is data,
// set between calls: Lim (checked as bytes arrive), Request (the syntax of a client's
// requests), Watch (which values Scan stops at) and Capture (the text of the value just begun).
// The zero Scanner has zero limits; set Lim first.
type Scanner struct {
	Lim Limits
	// Request: top-level values must be arrays whose elements are bulk strings.
	Request bool
	// Watch: Scan reports Begin and Done for values at depths below it (0: only End).
	Watch int
	// Capture, set on a Begin, has Scan report the value's text as Data events. It is
	// cleared when any value completes.
	Capture bool

	state   uint8
	typ     byte  // type byte of the current value
	inTop   bool  // inside a top-level value
	neg     bool  // a '-' sign was read
	digits  int   // digits read
	val     int64 // value of the digits so far
	payload int64 // bulk bytes still to come
	lineLen int   // bytes of the current line so far (type byte excluded)
	prevCR  bool  // the last byte of the current line was '\r'

	stack []frame
	bytes int64 // of the current top-level value
	elems int64

	evTyp   byte
	evDepth int
	evNull  bool
	data    []byte
}

type frame struct {
	remaining int64
	typ       byte
}

var crText = []byte{'\r'}

// Between tells whether the scanner is at the start of a top-level value.
func (s *Scanner) Between() bool { return !s.inTop }

// Type is the type byte of the value of the last Begin or Done.
func (s *Scanner) Type() byte { return s.evTyp }

// Depth is the depth (0: top level) of the value of the last Begin or Done.
func (s *Scanner) Depth() int { return s.evDepth }

// Null tells whether the value of the last Done is a null ($-1, *-1, _).
func (s *Scanner) Null() bool { return s.evNull }

// Data is the text of the last Data event.
func (s *Scanner) Data() []byte { return s.data }

// Reset forgets everything but the configuration.
func (s *Scanner) Reset() {
	st := s.stack[:0]
	*s = Scanner{Lim: s.Lim, Request: s.Request, Watch: s.Watch, stack: st}
}

// Scan consumes p until an event: n bytes were consumed (p[n:] is still to scan). Call it
// again after every event, even with nothing left of p (an event may complete aggregates
// that need no more bytes): None means that all of p was consumed. An error is final: the
// stream is not RESP within the limits.
func (s *Scanner) Scan(p []byte) (n int, ev Event, err error) {
	i := 0
	for {
		switch s.state {
		case stPop:
			if ev = s.pop(); ev != None {
				return i, ev, nil
			}
			continue
		case stPayload:
			if i >= len(p) {
				return i, None, nil
			}
			if i, ev, err = s.payloadChunk(p, i); err != nil || ev != None {
				return i, ev, err
			}
			continue
		case stLine:
			if i >= len(p) {
				return i, None, nil
			}
			if i, ev, err = s.lineChunk(p, i); err != nil || ev != None {
				return i, ev, err
			}
			continue
		case stType:
			// Fast path: a whole unwatched "$n\r\n", "*n\r\n" or ":n\r\n" (most of a reply).
			if i+3 < len(p) && len(s.stack) >= s.Watch && !s.Request && s.inTop && (p[i] == '$' || p[i] == '*' || p[i] == ':') {
				next, ok, ev, err := s.fastNumber(p, i+1, p[i])
				if err != nil || ok && ev != None {
					return next, ev, err
				}
				if ok {
					i = next
					continue
				}
			}
		case stNum:
			if s.digits == 0 && !s.neg {
				next, ok, ev, err := s.fastNumber(p, i, 0)
				if err != nil || ok && ev != None {
					return next, ev, err
				}
				if ok {
					i = next
					continue
				}
			}
		}
		if i >= len(p) {
			return i, None, nil
		}
		c := p[i]
		i++
		if s.state == stType {
			if ev, err = s.typeByte(c); err != nil || ev != None {
				return i, ev, err
			}
			continue
		}
		if err = s.addBytes(1); err != nil {
			return i, None, err
		}
		if ev, err = s.step(c); err != nil || ev != None {
			return i, ev, err
		}
	}
}

// addBytes counts n more bytes of the current top-level value.
func (s *Scanner) addBytes(n int64) error {
	s.bytes += n
	if s.bytes > s.Lim.MaxBytes {
		return ErrTooManyBytes
	}
	return nil
}

// typeByte starts a value.
func (s *Scanner) typeByte(c byte) (Event, error) {
	if !s.inTop {
		s.inTop, s.bytes, s.elems = true, 0, 0
	}
	if err := s.addBytes(1); err != nil {
		return None, err
	}
	d := len(s.stack)
	if s.Request && (d == 0 && c != '*' || d > 0 && c != '$') {
		return None, ErrNotRequest
	}
	s.typ = c
	switch c {
	case '+', '-', ',', '(', '#':
		s.state, s.lineLen, s.prevCR = stLine, 0, false
	case ':', '$', '=', '!', '*', '%', '~', '>', '|':
		s.state, s.neg, s.digits, s.val = stNum, false, 0, 0
	case '_':
		s.state = stNullCR
	default:
		return None, ErrUnknownType
	}
	if d < s.Watch {
		s.evTyp, s.evDepth = c, d
		return Begin, nil
	}
	return None, nil
}

// fastNumber is the fast path of stNum: a whole "[-]digits\r\n" at p[i:] (most headers) is
// taken at once, and ok says so with next past its CRLF. typ, when not 0, is the type byte at
// p[i-1], not read yet (the fast path of stType). Anything else is left to the byte-wise path
// (ok false), which starts over from the same state.
func (s *Scanner) fastNumber(p []byte, i int, typ byte) (next int, ok bool, ev Event, err error) {
	j, neg, val, d := i, false, int64(0), 0
	if j < len(p) && p[j] == '-' {
		neg = true
		j++
	}
	for j < len(p) && d < maxDigits && p[j] >= '0' && p[j] <= '9' {
		val = val*10 + int64(p[j]-'0')
		d++
		j++
	}
	if d == 0 || j+1 >= len(p) || p[j] != '\r' || p[j+1] != '\n' {
		return i, false, None, nil
	}
	from := i
	if typ != 0 {
		from, s.typ = i-1, typ
	}
	if err := s.addBytes(int64(j + 2 - from)); err != nil {
		return j + 2, false, None, err
	}
	s.neg, s.val, s.digits = neg, val, d
	if err := s.checkLen(); err != nil {
		return j + 2, false, None, err
	}
	ev, err = s.number()
	return j + 2, true, ev, err
}

// payloadChunk takes as much of a bulk payload as p[i:] holds, and its CRLF when the whole
// rest is there.
func (s *Scanner) payloadChunk(p []byte, i int) (int, Event, error) {
	if s.Capture {
		k := min(int64(len(p)-i), s.payload)
		s.payload -= k
		if s.payload == 0 {
			s.state = stPayloadCR
		}
		s.data = p[i : i+int(k)]
		return i + int(k), Data, nil
	}
	// Fast path: the rest of the payload and its CRLF in this chunk.
	if end := int64(i) + s.payload; end+2 <= int64(len(p)) {
		if p[end] != '\r' || p[end+1] != '\n' {
			return int(end), None, ErrBadBulkEnd
		}
		if err := s.addBytes(2); err != nil {
			return int(end), None, err
		}
		s.payload = 0
		return int(end) + 2, s.complete(s.typ, false), nil
	}
	n := int64(len(p) - i)
	if n >= s.payload {
		i += int(s.payload)
		s.payload = 0
		s.state = stPayloadCR
		return i, None, nil
	}
	s.payload -= n
	return len(p), None, nil
}

// lineChunk takes a simple line up to its LF, or all of p[i:] when the LF is not there yet.
// Capturing, the text goes out first as Data, and a '\r' at the end of a chunk only once the
// next byte shows it is not the line's end.
func (s *Scanner) lineChunk(p []byte, i int) (int, Event, error) {
	j := bytes.IndexByte(p[i:], '\n')
	if s.Capture {
		if s.prevCR && j != 0 {
			s.prevCR = false // the '\r' held back was text
			s.data = crText
			return i, Data, nil
		}
		end := len(p)
		if j >= 0 {
			end = i + j
		}
		if end > i && p[end-1] == '\r' {
			end--
		}
		if end > i {
			s.lineLen += end - i
			if s.lineLen > s.Lim.MaxLine {
				return end, None, ErrLineTooLong
			}
			if err := s.addBytes(int64(end - i)); err != nil {
				return end, None, err
			}
			s.data = p[i:end]
			return end, Data, nil
		}
	}
	if j < 0 {
		n := len(p) - i
		s.lineLen += n
		s.prevCR = p[len(p)-1] == '\r'
		if s.lineLen > s.Lim.MaxLine {
			return len(p), None, ErrLineTooLong
		}
		return len(p), None, s.addBytes(int64(n))
	}
	cr := s.prevCR
	if j > 0 {
		cr = p[i+j-1] == '\r'
	}
	s.lineLen += j
	if !cr || s.lineLen < 1 {
		return i + j + 1, None, ErrBadLineEnd
	}
	if s.lineLen-1 > s.Lim.MaxLine {
		return i + j + 1, None, ErrLineTooLong
	}
	if err := s.addBytes(int64(j + 1)); err != nil {
		return i + j + 1, None, err
	}
	return i + j + 1, s.complete(s.typ, false), nil
}

// step is the byte-wise path: it feeds one byte c (already counted) to the current state.
func (s *Scanner) step(c byte) (Event, error) {
	switch s.state {
	case stNum:
		switch {
		case c >= '0' && c <= '9':
			if s.digits == maxDigits {
				return None, ErrBadNumber
			}
			s.digits++
			s.val = s.val*10 + int64(c-'0')
			// Fail as soon as a length is over its bound: do not wait for the CRLF.
			return None, s.checkLen()
		case c == '-' && s.digits == 0 && !s.neg:
			s.neg = true
		case c == '\r' && s.digits > 0:
			s.state = stNumLF
		default:
			return None, ErrBadNumber
		}
	case stNumLF:
		if c != '\n' {
			return None, ErrBadNumber
		}
		return s.number()
	case stNullCR:
		if c != '\r' {
			return None, ErrBadLineEnd
		}
		s.state = stNullLF
	case stNullLF:
		if c != '\n' {
			return None, ErrBadLineEnd
		}
		return s.complete('_', true), nil
	case stPayloadCR:
		if c != '\r' {
			return None, ErrBadBulkEnd
		}
		s.state = stPayloadLF
	case stPayloadLF:
		if c != '\n' {
			return None, ErrBadBulkEnd
		}
		return s.complete(s.typ, false), nil
	}
	return None, nil
}

// checkLen fails a length (complete or not) over its bound.
func (s *Scanner) checkLen() error {
	if s.neg {
		return nil
	}
	switch s.typ {
	case '$', '=', '!':
		if s.val > s.Lim.MaxBulk {
			return ErrBulkTooLong
		}
	case '*', '~', '>', '|':
		if s.val > s.Lim.MaxAggregate {
			return ErrArrayTooLong
		}
	case '%':
		if 2*s.val > s.Lim.MaxAggregate {
			return ErrArrayTooLong
		}
	}
	return nil
}

// number acts on a complete length or integer line.
func (s *Scanner) number() (Event, error) {
	switch s.typ {
	case ':':
		return s.complete(':', false), nil
	case '$', '=', '!':
		if s.neg {
			if s.val != 1 || s.Request {
				return None, ErrBadNumber
			}
			return s.complete(s.typ, true), nil // null bulk
		}
		// The declared payload counts now: a reader that allocates does so now.
		if err := s.addBytes(s.val); err != nil {
			return None, err
		}
		s.payload = s.val
		s.state = stPayload
		if s.payload == 0 {
			s.state = stPayloadCR
		}
		return None, nil
	}
	// Aggregates.
	if s.neg {
		if s.val != 1 {
			return None, ErrBadNumber
		}
		return s.complete(s.typ, true), nil // null array
	}
	n := s.val
	if s.typ == '%' || s.typ == '|' {
		n *= 2
	}
	if n > s.Lim.MaxAggregate {
		return None, ErrArrayTooLong
	}
	s.elems += n
	if s.elems > s.Lim.MaxElems {
		return None, ErrTooManyElems
	}
	if n == 0 {
		return s.complete(s.typ, false), nil
	}
	if len(s.stack) >= s.Lim.MaxDepth {
		return None, ErrTooDeep
	}
	if s.stack == nil {
		s.stack = make([]frame, 0, min(s.Lim.MaxDepth, 32))
	}
	s.stack = append(s.stack, frame{remaining: n, typ: s.typ})
	s.state = stType
	return None, nil
}

// complete records that a value of type t at the current depth is complete, and says what to
// report. An attribute is no element of its parent: the value it annotates is.
func (s *Scanner) complete(t byte, null bool) Event {
	s.state, s.Capture = stType, false
	d := len(s.stack)
	if t != '|' {
		if d == 0 {
			s.inTop = false
			s.evTyp, s.evDepth, s.evNull = t, 0, null
			return End
		}
		top := &s.stack[d-1]
		if top.remaining--; top.remaining == 0 {
			s.state = stPop
		}
	}
	if d < s.Watch {
		s.evTyp, s.evDepth, s.evNull = t, d, null
		return Done
	}
	return None
}

// pop completes the innermost aggregate, whose elements are all done.
func (s *Scanner) pop() Event {
	t := s.stack[len(s.stack)-1].typ
	s.stack = s.stack[:len(s.stack)-1]
	return s.complete(t, false)
}

// Counts are the bytes (a bulk's payload counted at its header) and declared elements of the
// current top-level value so far, or of the last one once it ended.
func (s *Scanner) Counts() (bytes, elems int64) { return s.bytes, s.elems }
