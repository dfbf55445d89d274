package cluster

import "bytes"

// respValidator checks a RESP2/RESP3 byte stream incrementally, chunk by chunk, against
// Limits. It is a small hand-written state machine on purpose: it must sit below go-redis's
// reader (inside net.Conn.Read) and see the bytes before go-redis allocates what a header
// declares, across arbitrary chunk boundaries, without buffering or allocating itself. No
// maintained library offers a streaming RESP validator with limits; a parser that builds
// values would be the allocation we are guarding against.
//
// It tracks only what it needs: the state within the current line or bulk payload, a stack of
// remaining element counts (one per open aggregate), and per top-level reply the declared
// element and byte totals, the caps of the command it answers (see commands.go) and what it
// has charged to the reply budget (see ReplyBudget).
type respValidator struct {
	lim Limits
	err error

	// caps per command, derived from lim once; cur applies to the reply being read.
	caps    [numCommands]replyCaps
	cur     replyCaps
	inReply bool
	// reqs, when set, says which command each reply answers (nil: every reply gets the
	// generic Limits, for a stream read without its requests).
	reqs *requestTracker
	// acct is charged what the current reply costs beyond ReplyFreeCost (nil: no budget);
	// charged is what it holds for this reply.
	acct    *budgetAccount
	charged int64

	state   uint8
	typ     byte  // type byte of the line being read
	lineLen int   // bytes of the current line so far (type byte excluded)
	prevCR  bool  // the last byte of the current line was '\r'
	neg     bool  // a '-' sign was read
	digits  int   // digits read
	val     int64 // value of the digits so far
	payload int64 // bulk bytes still to skip

	stack []frame
	elems int64 // elements declared by the current top-level reply
	bytes int64 // bytes of the current top-level reply (bulks counted at their header)
}

type frame struct {
	remaining int64
	attr      bool // an attribute: when done, the value it annotates is still to come
}

const (
	stType      uint8 = iota // expecting a type byte
	stLine                   // skipping a line until CRLF (+ - , ( # and so on)
	stNum                    // reading a length or integer: [-]digits
	stNumLF                  // read '\r' after the number, expecting '\n'
	stNullCR                 // '_': expecting '\r'
	stNullLF                 // '_': expecting '\n'
	stPayload                // skipping bulk bytes
	stPayloadCR              // bulk done, expecting '\r'
	stPayloadLF              // expecting '\n'
)

// Fixed reasons (never server bytes).
var (
	errUnknownType  = &ProtocolError{ErrProtocol, "unknown RESP type byte"}
	errBadNumber    = &ProtocolError{ErrProtocol, "malformed length or integer"}
	errBadLineEnd   = &ProtocolError{ErrProtocol, "line not terminated by CRLF"}
	errBadBulkEnd   = &ProtocolError{ErrProtocol, "bulk string not terminated by CRLF"}
	errArrayTooLong = &ProtocolError{ErrReplyTooLarge, "aggregate header declares more elements than MaxArrayLen or its command's cap"}
	errBulkTooLong  = &ProtocolError{ErrReplyTooLarge, "bulk header declares more bytes than MaxBulkLen or its command's cap"}
	errTooManyElems = &ProtocolError{ErrReplyTooLarge, "reply declares more elements than MaxReplyElements or its command's cap"}
	errTooManyBytes = &ProtocolError{ErrReplyTooLarge, "reply is longer than MaxReplyBytes or its command's cap"}
	errUnsolicited  = &ProtocolError{ErrProtocol, "reply arrived before its command was sent"}
	errTooDeep      = &ProtocolError{ErrReplyTooLarge, "reply nests deeper than MaxDepth"}
	errLineTooLong  = &ProtocolError{ErrReplyTooLarge, "line longer than MaxLineLen"}
)

func newRESPValidator(l Limits) *respValidator {
	v := &respValidator{lim: l, stack: make([]frame, 0, min(l.MaxDepth, 32))}
	for c := range v.caps {
		v.caps[c] = replyCapsFor(command(c), &v.lim)
	}
	v.cur = v.caps[cmdOther]
	return v
}

// begin starts a top-level reply: it takes the caps of the command it answers.
func (v *respValidator) begin() error {
	v.inReply = true
	v.cur = v.caps[cmdOther]
	if v.reqs == nil {
		return nil
	}
	c, ok, tracked := v.reqs.next()
	if !ok {
		return errUnsolicited
	}
	if tracked {
		v.cur = v.caps[c]
	}
	return nil
}

// end closes the top-level reply: its charge goes back to the budget.
func (v *respValidator) end() {
	v.inReply = false
	v.elems, v.bytes = 0, 0
	v.releaseCharge()
}

// releaseCharge gives back what the current reply holds of the budget.
func (v *respValidator) releaseCharge() {
	v.acct.release(v.charged)
	v.charged = 0
}

// addBytes counts n more bytes of the current reply against its caps and the budget.
func (v *respValidator) addBytes(n int64) error {
	v.bytes += n
	if v.bytes > v.cur.bytes {
		return errTooManyBytes
	}
	if v.acct == nil {
		return nil // the common case stays inlined
	}
	return v.charge()
}

// charge acquires from the budget what the reply costs beyond what it holds and beyond
// ReplyFreeCost: in steps of at least budgetChunk, but never more than the reply's caps allow
// it to cost in all.
func (v *respValidator) charge() error {
	if v.acct == nil {
		return nil
	}
	cost := v.bytes + v.elems*v.cur.cost - ReplyFreeCost
	if cost <= v.charged {
		return nil
	}
	most := v.cur.bytes + v.cur.elems*v.cur.cost - ReplyFreeCost
	need := min(max(cost-v.charged, budgetChunk), most-v.charged)
	if err := v.acct.acquire(need); err != nil {
		return err
	}
	v.charged += need
	return nil
}

// maxDigits keeps numbers inside int64 without overflow checks per digit (18 nines < 2^63).
const maxDigits = 18

// feed validates the next chunk of the stream. The first violation is sticky.
func (v *respValidator) feed(p []byte) error {
	if v.err != nil {
		return v.err
	}
	if err := v.run(p); err != nil {
		v.err = err
		v.releaseCharge() // the connection is done for: nothing more of this reply is read
		return err
	}
	return nil
}

func (v *respValidator) run(p []byte) error {
	for i := 0; i < len(p); {
		var err error
		if !v.inReply && v.state == stType {
			if err := v.begin(); err != nil {
				return err
			}
		}
		switch v.state {
		case stType:
			next, ok, err := v.fastHeader(p, i)
			if err != nil {
				return err
			}
			if ok {
				i = next
				continue
			}
		case stPayload:
			if i, err = v.payloadChunk(p, i); err != nil {
				return err
			}
			continue
		case stLine:
			if i, err = v.lineChunk(p, i); err != nil {
				return err
			}
			continue
		}

		c := p[i]
		i++
		if err := v.addBytes(1); err != nil {
			return err
		}
		if err := v.step(c); err != nil {
			return err
		}
	}
	return nil
}

// fastHeader is the fast path of stType: a whole "$n\r\n", "*n\r\n" or ":n\r\n" at p[i:]
// (most of a topology reply) is taken at once, and ok says so with next past its CRLF.
// Anything else is left to the byte-wise path (ok false), which starts over from the same state.
func (v *respValidator) fastHeader(p []byte, i int) (next int, ok bool, err error) {
	c := p[i]
	if c != '$' && c != '*' && c != ':' {
		return i, false, nil
	}
	j, neg, val, d := i+1, false, int64(0), 0
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
		return i, false, nil
	}
	if err := v.addBytes(int64(j + 2 - i)); err != nil {
		return 0, false, err
	}
	v.typ, v.neg, v.val, v.digits = c, neg, val, d
	if err := v.checkLen(); err != nil {
		return 0, false, err
	}
	if err := v.number(); err != nil {
		return 0, false, err
	}
	return j + 2, true, nil
}

// payloadChunk takes as much of a bulk payload as p[i:] holds, and its CRLF when the whole
// rest is there; it returns where the next state starts.
func (v *respValidator) payloadChunk(p []byte, i int) (int, error) {
	// Fast path: the rest of the payload and its CRLF in this chunk.
	if end := int64(i) + v.payload; end+2 <= int64(len(p)) {
		if p[end] != '\r' || p[end+1] != '\n' {
			return 0, errBadBulkEnd
		}
		v.payload = 0
		v.done()
		return int(end) + 2, nil
	}
	n := int64(len(p) - i)
	if n >= v.payload {
		i += int(v.payload)
		v.payload = 0
		v.state = stPayloadCR
		return i, nil
	}
	v.payload -= n
	return len(p), nil
}

// lineChunk takes a simple line up to its LF, or all of p[i:] when the LF is not there yet.
func (v *respValidator) lineChunk(p []byte, i int) (int, error) {
	lim := &v.lim
	j := bytes.IndexByte(p[i:], '\n')
	if j < 0 {
		n := len(p) - i
		v.lineLen += n
		v.prevCR = p[len(p)-1] == '\r'
		if v.lineLen > lim.MaxLineLen {
			return 0, errLineTooLong
		}
		return len(p), v.addBytes(int64(n))
	}
	cr := v.prevCR
	if j > 0 {
		cr = p[i+j-1] == '\r'
	}
	v.lineLen += j
	if !cr || v.lineLen < 1 {
		return 0, errBadLineEnd
	}
	if v.lineLen-1 > lim.MaxLineLen {
		return 0, errLineTooLong
	}
	if err := v.addBytes(int64(j + 1)); err != nil {
		return 0, err
	}
	v.done()
	return i + j + 1, nil
}

// step is the byte-wise path: it feeds one byte c (already counted) to the current state.
func (v *respValidator) step(c byte) error {
	switch v.state {
	case stType:
		v.typ = c
		switch c {
		case '+', '-', ',', '(', '#':
			v.state, v.lineLen, v.prevCR = stLine, 0, false
		case ':', '$', '=', '!', '*', '%', '~', '>', '|':
			v.state, v.neg, v.digits, v.val = stNum, false, 0, 0
		case '_':
			v.state = stNullCR
		default:
			return errUnknownType
		}
	case stNum:
		switch {
		case c >= '0' && c <= '9':
			if v.digits == maxDigits {
				return errBadNumber
			}
			v.digits++
			v.val = v.val*10 + int64(c-'0')
			// Fail as soon as a length is over its bound: do not wait for the CRLF.
			if err := v.checkLen(); err != nil {
				return err
			}
		case c == '-' && v.digits == 0 && !v.neg:
			v.neg = true
		case c == '\r' && v.digits > 0:
			v.state = stNumLF
		default:
			return errBadNumber
		}
	case stNumLF:
		if c != '\n' {
			return errBadNumber
		}
		if err := v.number(); err != nil {
			return err
		}
	case stNullCR:
		if c != '\r' {
			return errBadLineEnd
		}
		v.state = stNullLF
	case stNullLF:
		if c != '\n' {
			return errBadLineEnd
		}
		v.done()
	case stPayloadCR:
		if c != '\r' {
			return errBadBulkEnd
		}
		v.state = stPayloadLF
	case stPayloadLF:
		if c != '\n' {
			return errBadBulkEnd
		}
		v.done()
	}
	return nil
}

// checkLen fails a length (complete or not) over its bound.
func (v *respValidator) checkLen() error {
	if v.neg {
		return nil
	}
	switch v.typ {
	case '$', '=', '!':
		if v.val > v.cur.bulkLen {
			return errBulkTooLong
		}
	case '*', '~', '>', '|':
		if v.val > v.cur.arrayLen {
			return errArrayTooLong
		}
	case '%':
		if 2*v.val > v.cur.arrayLen {
			return errArrayTooLong
		}
	}
	return nil
}

// number acts on a complete length or integer line.
func (v *respValidator) number() error {
	lim := &v.lim
	switch v.typ {
	case ':':
		v.done()
		return nil
	case '$', '=', '!':
		if v.neg {
			if v.val != 1 {
				return errBadNumber
			}
			v.done() // null bulk
			return nil
		}
		// The declared payload counts now: go-redis allocates it now.
		if err := v.addBytes(v.val); err != nil {
			return err
		}
		v.payload = v.val
		v.state = stPayload
		if v.payload == 0 {
			v.state = stPayloadCR
		}
		return nil
	}
	// Aggregates.
	if v.neg {
		if v.val != 1 {
			return errBadNumber
		}
		v.done() // null array
		return nil
	}
	n := v.val
	if v.typ == '%' || v.typ == '|' {
		n *= 2
	}
	if n > v.cur.arrayLen {
		return errArrayTooLong
	}
	v.elems += n
	if v.elems > v.cur.elems {
		return errTooManyElems
	}
	if v.acct != nil {
		if err := v.charge(); err != nil {
			return err
		}
	}
	attr := v.typ == '|'
	if n == 0 {
		if attr {
			v.state = stType // an empty attribute annotates the next value
		} else {
			v.done()
		}
		return nil
	}
	if len(v.stack) >= lim.MaxDepth {
		return errTooDeep
	}
	v.stack = append(v.stack, frame{remaining: n, attr: attr})
	v.state = stType
	return nil
}

// done records one complete value: it pops finished aggregates, and ends the top-level reply
// when none is open.
func (v *respValidator) done() {
	v.state = stType
	for len(v.stack) > 0 {
		top := &v.stack[len(v.stack)-1]
		top.remaining--
		if top.remaining > 0 {
			return
		}
		attr := top.attr
		v.stack = v.stack[:len(v.stack)-1]
		if attr {
			return // the annotated value follows; it is what the parent counts
		}
	}
	v.end()
}
