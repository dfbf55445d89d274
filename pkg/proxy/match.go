package proxy

import (
	"bytes"
	"strconv"
	"sync/atomic"
)

// Expectation kinds: what the reply (or replies) to one command look like.
const (
	expPlain   uint8 = iota // one reply, forwarded as is
	expTopo                 // one reply naming nodes (topo says which kind)
	expSub                  // (P|S)SUBSCRIBE: n confirmations (RESP3: pushes; RESP2: enters pub/sub mode)
	expUnsub                // (P|S)UNSUBSCRIBE: n confirmations, n=0: one per subscription (at least one)
	expHello                // HELLO [protover]: switches the protocol on success
	expMonitor              // MONITOR: a stream of lines follows
	expReset                // RESET: leaves pub/sub and monitor mode, back to RESP2
)

// expect is what the request side tells the reply side about one command, in order.
type expect struct {
	kind  uint8
	topo  uint8 // expTopo: kindSlots, kindShards, kindNodes
	push  uint8 // expSub, expUnsub: which pub/sub family (1 channel, 2 pattern, 3 shard)
	proto uint8 // expHello: the version asked for (0: unchanged)
	n     int32 // expSub, expUnsub: channels named
	got   int32 // confirmations seen
}

// classify turns a complete command into its expectation. ok=false: the command gets no reply
// (CLIENT REPLY OFF/SKIP), which the request side tracks in rs.
func classify(c command, rs *replyState) (expect, bool) {
	name := c.args[0]
	e := expect{kind: expPlain}
	switch {
	case eq(name, "CLUSTER"):
		switch sub := c.args[1]; {
		case eq(sub, "SLOTS"):
			e = expect{kind: expTopo, topo: kindSlots}
		case eq(sub, "SHARDS"):
			e = expect{kind: expTopo, topo: kindShards}
		case eq(sub, "NODES"), eq(sub, "REPLICAS"), eq(sub, "SLAVES"):
			e = expect{kind: expTopo, topo: kindNodes}
		}
	case eq(name, "SUBSCRIBE"), eq(name, "PSUBSCRIBE"), eq(name, "SSUBSCRIBE"):
		e = expect{kind: expSub, push: family(name), n: int32(min(c.nargs-1, 1<<30))}
	case eq(name, "UNSUBSCRIBE"), eq(name, "PUNSUBSCRIBE"), eq(name, "SUNSUBSCRIBE"):
		e = expect{kind: expUnsub, push: family(name), n: int32(min(c.nargs-1, 1<<30))}
	case eq(name, "HELLO"):
		e = expect{kind: expHello}
		if v, err := strconv.Atoi(string(c.args[1])); err == nil && (v == 2 || v == 3) {
			e.proto = uint8(v)
		}
	case eq(name, "MONITOR"):
		e = expect{kind: expMonitor}
	case eq(name, "RESET"):
		e = expect{kind: expReset}
		rs.off, rs.skip = false, false
		return e, true
	case eq(name, "CLIENT") && eq(c.args[1], "REPLY"):
		switch {
		case eq(c.args[2], "ON"):
			was := rs.off || rs.skip
			rs.off, rs.skip = false, false
			if was && !rs.off {
				return e, true // ON answers +OK even after OFF
			}
			return e, true
		case eq(c.args[2], "OFF"):
			rs.off, rs.skip = true, false
			return e, false
		case eq(c.args[2], "SKIP"):
			if !rs.off {
				rs.skip = true
			}
			return e, false
		}
	}
	if rs.off {
		return e, false
	}
	if rs.skip {
		rs.skip = false
		return e, false
	}
	return e, true
}

// replyState is CLIENT REPLY as the request side tracks it.
type replyState struct{ off, skip bool }

// family: 1 channels, 2 patterns, 3 shard channels.
func family(name []byte) uint8 {
	switch {
	case eq(name, "PSUBSCRIBE"), eq(name, "PUNSUBSCRIBE"):
		return 2
	case eq(name, "SSUBSCRIBE"), eq(name, "SUNSUBSCRIBE"):
		return 3
	}
	return 1
}

func eq(b []byte, upper string) bool {
	if len(b) != len(upper) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != upper[i] {
			return false
		}
	}
	return true
}

// matcher is the reply side's view of the expectations: it tells at the start of each
// top-level reply whether to capture it (topology, redirections), and at its end what the
// reply consumed.
type matcher struct {
	q      chan expect
	cur    expect
	has    bool
	proto  uint8 // 2 or 3
	sticky *atomic.Bool
}

func newMatcher(depth int, sticky *atomic.Bool) *matcher {
	return &matcher{q: make(chan expect, depth), proto: 2, sticky: sticky}
}

func (m *matcher) head() (*expect, bool) {
	if !m.has {
		select {
		case m.cur = <-m.q:
			m.has = true
		default:
			return nil, false
		}
	}
	return &m.cur, true
}

func (m *matcher) pop() { m.has = false }

// drain drops the expectations of a connection in pub/sub (RESP2) or monitor mode, where
// replies are not counted, up to a RESET, which ends that mode.
func (m *matcher) drain() {
	for {
		e, ok := m.head()
		if !ok || e.kind == expReset {
			return
		}
		m.pop()
	}
}

// begin is called with the type byte of a top-level reply; it returns what to capture.
func (m *matcher) begin(t byte) uint8 {
	capture := kindNone
	if t == '-' {
		capture = kindError
	}
	if m.sticky.Load() || t == '>' {
		return capture
	}
	for {
		e, ok := m.head()
		if !ok {
			return capture
		}
		if (e.kind == expSub || e.kind == expUnsub) && m.proto == 3 && e.got > 0 {
			// Its confirmations (pushes) came: this regular reply is a later command's.
			m.pop()
			continue
		}
		if e.kind == expTopo {
			return e.topo
		}
		return capture
	}
}

// end is called when a top-level reply ended: t is its type byte, first its first short
// string (a push's kind, a simple string's text).
func (m *matcher) end(t byte, first []byte) {
	isErr := t == '-' || t == '!'
	if m.sticky.Load() {
		m.drain()
		if e, ok := m.head(); ok && e.kind == expReset && t == '+' && eq(first, "RESET") {
			m.pop()
			m.proto = 2
			m.sticky.Store(false)
		}
		return
	}
	if t == '>' {
		e, ok := m.head()
		if !ok || (e.kind != expSub && e.kind != expUnsub) || pushFamily(first, e.kind) != e.push {
			if ok && e.kind == expUnsub && e.n == 0 && e.got > 0 && pushFamily(first, expSub) != 0 {
				// A subscribe confirmation after "unsubscribe all": that one is done.
				m.pop()
				m.end(t, first)
			}
			return // a message, an invalidation, ...: answers no command
		}
		e.got++
		if e.n > 0 && e.got >= e.n {
			m.pop()
		}
		return
	}
	e, ok := m.head()
	if !ok {
		return // nothing expected: forwarded as is
	}
	m.pop()
	if isErr {
		return
	}
	switch e.kind {
	case expHello:
		if e.proto != 0 {
			m.proto = e.proto
		}
	case expSub, expMonitor:
		if m.proto == 2 || e.kind == expMonitor {
			// RESP2 pub/sub and MONITOR: from now on replies are not counted.
			m.sticky.Store(true)
			m.drain()
		}
	case expReset:
		m.proto = 2
	}
}

// pushFamily tells which subscription family a push confirms for kind (0: not a confirmation).
func pushFamily(first []byte, kind uint8) uint8 {
	var names [3]string
	if kind == expSub {
		names = [3]string{"subscribe", "psubscribe", "ssubscribe"}
	} else {
		names = [3]string{"unsubscribe", "punsubscribe", "sunsubscribe"}
	}
	for i, n := range names {
		if bytes.EqualFold(first, []byte(n)) {
			return uint8(i + 1)
		}
	}
	return 0
}
