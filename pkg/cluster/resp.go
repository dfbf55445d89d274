package cluster

import (
	"errors"

	"github.com/rconn-dev/redis-connection-operator/internal/resp"
)

// respValidator checks a RESP2/RESP3 byte stream incrementally, chunk by chunk, against
// Limits. It must sit below go-redis's reader (inside net.Conn.Read) and see the bytes before
// go-redis allocates what a header declares, across arbitrary chunk boundaries, without
// buffering or allocating itself: internal/resp's Scanner reads the stream, and the validator
// plugs in what it checks (each reply's caps as the Scanner's limits).
//
// Per top-level reply it keeps the caps of the command it answers (see commands.go) and what
// it has charged to the reply budget (see ReplyBudget).
type respValidator struct {
	lim Limits
	err error
	sc  resp.Scanner

	// caps per command, derived from lim once; cur applies to the reply being read.
	caps [numCommands]replyCaps
	cur  replyCaps
	// reqs, when set, says which command each reply answers (nil: every reply gets the
	// generic Limits, for a stream read without its requests).
	reqs *requestTracker
	// acct is charged what the current reply costs beyond ReplyFreeCost (nil: no budget);
	// charged is what it holds for this reply.
	acct    *budgetAccount
	charged int64
	// onEnd, when set, is told where in the chunk being fed each reply ended (ReplyEnds).
	onEnd func(i int)
}

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
	v := &respValidator{lim: l}
	for c := range v.caps {
		v.caps[c] = replyCapsFor(command(c), &v.lim)
	}
	v.setCaps(v.caps[cmdOther])
	return v
}

// setCaps makes k the caps of the reply being read.
func (v *respValidator) setCaps(k replyCaps) {
	v.cur = k
	v.sc.Lim = resp.Limits{MaxBulk: k.bulkLen, MaxAggregate: k.arrayLen, MaxLine: v.lim.MaxLineLen,
		MaxDepth: v.lim.MaxDepth, MaxBytes: k.bytes, MaxElems: k.elems}
}

// begin starts a top-level reply: it takes the caps of the command it answers.
func (v *respValidator) begin() error {
	k := v.caps[cmdOther]
	if v.reqs != nil {
		c, ok, tracked := v.reqs.next()
		if !ok {
			return errUnsolicited
		}
		if tracked {
			k = v.caps[c]
		}
	}
	if k != v.cur {
		v.setCaps(k)
	}
	return nil
}

// releaseCharge gives back what the current reply holds of the budget.
func (v *respValidator) releaseCharge() {
	v.acct.release(v.charged)
	v.charged = 0
}

// charge acquires from the budget what the reply costs (its bytes so far, its declared
// elements at the command's cost each) beyond what it holds and beyond ReplyFreeCost: in
// steps of at least budgetChunk, but never more than the reply's caps allow it to cost in all.
func (v *respValidator) charge() error {
	if v.acct == nil {
		return nil
	}
	bytes, elems := v.sc.Counts()
	cost := bytes + elems*v.cur.cost - ReplyFreeCost
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
	for i, ev := 0, resp.Begin; ev != resp.None; {
		if v.sc.Between() && i < len(p) {
			if err := v.begin(); err != nil {
				return err
			}
		}
		var n int
		var err error
		n, ev, err = v.sc.Scan(p[i:])
		i += n
		if err != nil {
			return scanError(err)
		}
		if v.sc.Between() && ev != resp.End {
			continue // no reply under way: nothing to charge
		}
		if err := v.charge(); err != nil {
			return err
		}
		if ev == resp.End {
			v.releaseCharge() // the reply is read: its charge goes back to the budget
			if v.onEnd != nil {
				v.onEnd(i)
			}
		}
	}
	return nil
}

// scanErrors are the validator's fixed errors for the Scanner's (fixed values too).
var scanErrors = [...]struct{ from, to error }{
	{resp.ErrUnknownType, errUnknownType}, {resp.ErrBadLineEnd, errBadLineEnd}, {resp.ErrBadBulkEnd, errBadBulkEnd},
	{resp.ErrArrayTooLong, errArrayTooLong}, {resp.ErrBulkTooLong, errBulkTooLong}, {resp.ErrTooManyElems, errTooManyElems},
	{resp.ErrTooManyBytes, errTooManyBytes}, {resp.ErrTooDeep, errTooDeep}, {resp.ErrLineTooLong, errLineTooLong},
}

// scanError is the validator's error for the Scanner's: malformed numbers and anything else
// are errBadNumber.
func scanError(err error) error {
	for _, e := range scanErrors {
		if errors.Is(err, e.from) {
			return e.to
		}
	}
	return errBadNumber
}

// ReplyEnds reads p (a stream of replies, in chunks of chunk bytes) as LimitConn does with l
// (nil: DefaultLimits) when it does not know the commands: it returns where each complete
// top-level reply ends, up to the first violation (err). It lets the proxy's fuzz test check
// that every user of internal/resp finds the same values.
func ReplyEnds(p []byte, chunk int, l *Limits) (ends []int, err error) {
	v := newRESPValidator(l.withDefaults())
	off := 0
	v.onEnd = func(i int) { ends = append(ends, off+i) }
	for ; off < len(p); off += max(chunk, 1) {
		if err := v.feed(p[off:min(off+max(chunk, 1), len(p))]); err != nil {
			return ends, err
		}
	}
	return ends, nil
}
