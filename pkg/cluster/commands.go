package cluster

import (
	"sync"

	"github.com/rconn-dev/redis-connection-operator/internal/resp"
)

// Per-command caps. A reply's honest size depends on the command it answers: a CLUSTER SHARDS
// reply of the largest cluster the Limits allow (MaxTopologyNodes nodes, MaxTopologyShards
// shards) declares fewer than 75,000 elements, a ROLE reply about 4,000, PING none at all,
// while the generic caps (MaxReplyElements, MaxReplyBytes) must admit the largest of them all.
// Inside the generic caps a hostile node could still make go-redis allocate one 120-byte node
// struct per declared CLUSTER SHARDS entry, a million of them per reply; the caps below hold
// every reply to what its own command can honestly be. See replyCapsFor for each number.
//
// How a reply is matched to its command: go-redis writes every command through the same
// connection wrapper the replies come back through (LimitConn), and in RESP2 a server sends
// exactly one reply per command, in order. So the wrapper reads the command names from the
// bytes go-redis writes (an array of bulk strings, as go-redis always sends them) and queues
// one expectation per command; each top-level reply takes the oldest. This needs no
// cooperation from the caller (the Inspector cannot know which pooled connection go-redis will
// use) and covers what go-redis sends on its own (HELLO, AUTH, CLIENT SETNAME, SELECT).
// A reply that starts while no command is waiting is refused: an honest RESP2 server never
// sends one, and letting it through would let a node smuggle a reply, checked against no
// command's caps, into go-redis's buffer ahead of the next command.

// command is a command whose replies have their own caps.
type command uint8

const (
	cmdOther command = iota // anything else: the generic Limits
	cmdClusterShards
	cmdClusterSlots
	cmdRole
	cmdInfo
	cmdClusterInfo
	cmdHello
	cmdSmall // PING, AUTH, SELECT, READONLY, CLIENT *, CLUSTER MYID: a status, short bulk or error line
	// Sentinel (sentinel.go): SENTINEL GET-MASTER-ADDR-BY-NAME is cmdSmall (two short bulks).
	cmdSentinelMaster // SENTINEL MASTER: one flat map of the master's fields
	cmdSentinelNodes  // SENTINEL REPLICAS / SLAVES / SENTINELS: one flat map per node
	cmdSubscribe      // SUBSCRIBE, and every pub/sub message after it (see requestTracker.next)
	numCommands
)

// commandOf names the command of a request from its first two arguments, upper-cased.
func commandOf(name, sub string) command {
	switch name {
	case "CLUSTER":
		switch sub {
		case "SHARDS":
			return cmdClusterShards
		case "SLOTS":
			return cmdClusterSlots
		case "INFO":
			return cmdClusterInfo
		case "MYID":
			return cmdSmall
		}
	case "ROLE":
		return cmdRole
	case "INFO":
		return cmdInfo
	case "HELLO":
		return cmdHello
	case "PING", "AUTH", "SELECT", "READONLY", "CLIENT":
		return cmdSmall
	case "SENTINEL":
		switch sub {
		case truncName("GET-MASTER-ADDR-BY-NAME"):
			return cmdSmall
		case "MASTER":
			return cmdSentinelMaster
		case "REPLICAS", "SLAVES", "SENTINELS":
			return cmdSentinelNodes
		}
	case "SUBSCRIBE":
		return cmdSubscribe
	}
	return cmdOther
}

// truncName is what the tracker keeps of a long (sub)command name: its first maxNameLen bytes.
func truncName(s string) string { return s[:min(len(s), maxNameLen)] }

// replyCaps bound one top-level reply. cost is what the reply may make go-redis allocate per
// declared element (see elementCost): the reply budget charges bytes + elements*cost.
type replyCaps struct {
	elems, bytes, arrayLen, bulkLen int64
	cost                            int64
}

// Bytes go-redis allocates per declared element, at most, when it reads a header (before any
// element arrives): a CLUSTER SHARDS node list allocates one redis.Node (120 bytes on 64-bit)
// per declared entry; every other reply the Inspector reads allocates at most an interface
// slot plus a boxed header (16 + 24 bytes: []interface{} from Do, redis.ClusterNode and
// ClusterSlot in CLUSTER SLOTS, map hints). TestElementCostsCoverGoRedis checks the sizes
// against the pinned go-redis.
const (
	shardsElementCost  = 128
	genericElementCost = 48
)

// smallReplyBytes is what a status, short bulk or error line needs: an error reply is one line
// of up to MaxLineLen.
func smallReplyBytes(l *Limits) int64 { return int64(l.MaxLineLen) + 64 }

// replyCapsFor derives the caps of command c's replies from l (defaulted). Every cap is also
// clipped to its generic counterpart, so the generic Limits stay the ceiling. N is
// MaxTopologyNodes, S MaxTopologyShards, R the 16,384 slots; a real cluster's slot ranges
// are disjoint, so all its shards together list at most R ranges.
func replyCapsFor(c command, l *Limits) replyCaps {
	n, s, r := int64(l.MaxTopologyNodes), int64(l.MaxTopologyShards), int64(SlotCount)
	small := smallReplyBytes(l)
	var k replyCaps
	switch c {
	case cmdClusterShards:
		// S shard entries, each a map of at most 4 pairs (Redis 7 sends 2: slots, nodes): 9S;
		// the slot lists' bounds, two per range: 2R; every node once, as an entry plus a map
		// of at most 16 pairs (Redis 7 sends 9 or fewer): 33N. Default 74,768.
		// Bytes: 2 KiB per node entry (its largest honest form, three 255-byte host names and
		// the rest, is about 1 KiB), 32 per slot bound, 256 per shard's own keys: ~2.8 MB.
		k = replyCaps{elems: 9*s + 2*r + 33*n, bytes: 2048*n + 32*r + 256*s, arrayLen: max(s, 2*r, n, 32), bulkLen: 4096, cost: shardsElementCost}
	case cmdClusterSlots:
		// CLUSTER SLOTS repeats a shard's node list for every range the shard owns, so no
		// bound short of R*N is exact; it is only the fallback for Redis < 7 (or an ACL
		// without cluster|shards). Allowed: the fully fragmented worst, R ranges (3 elements
		// each with their bounds), listing two node entries each (a master and a replica),
		// plus every node once more, at 9 elements per entry (Redis 7: ip, port, id and up to
		// 2 metadata pairs): 3R + 9(2R + N). Default 353,064. Bytes: 32 per range, 512 per
		// entry (a 255-byte host name, ip, 40-byte id, headers): ~18 MB.
		entries := 2*r + n
		k = replyCaps{elems: 3*r + 9*entries, bytes: 32*r + 512*entries, arrayLen: max(r, n+2, 8), bulkLen: 4096, cost: genericElementCost}
	case cmdRole:
		// A master: role, offset and one [ip, port, offset] entry per replica (at most N):
		// 4N + 3; a replica's reply has 5 elements. Bytes: 512 per replica entry.
		k = replyCaps{elems: 4*n + 3, bytes: 512*n + small, arrayLen: max(n, 5), bulkLen: 4096, cost: genericElementCost}
	case cmdInfo:
		// One bulk string: the server and replication sections, which list every replica
		// (at most N lines of ~100 bytes): 64 KiB + 256 bytes per node.
		b := 64<<10 + 256*n
		k = replyCaps{elems: 8, bytes: b + small, arrayLen: 8, bulkLen: b, cost: genericElementCost}
	case cmdClusterInfo:
		// One bulk string of about 20 short lines.
		k = replyCaps{elems: 8, bytes: 64<<10 + small, arrayLen: 8, bulkLen: 64 << 10, cost: genericElementCost}
	case cmdHello:
		// A map of 7 pairs plus the list of loaded modules (each a map of 4 pairs): room for
		// about 100 modules.
		k = replyCaps{elems: 1024, bytes: 256 << 10, arrayLen: 1024, bulkLen: 4096, cost: genericElementCost}
	case cmdSmall:
		k = replyCaps{elems: 8, bytes: small, arrayLen: 8, bulkLen: 4096, cost: genericElementCost}
	case cmdSentinelMaster:
		// One flat map: Redis 7 sends 20 to 30 pairs (name, ip, port, runid, flags, counts,
		// timings, quorum...); room for 128 pairs of short values.
		k = replyCaps{elems: 257, bytes: 32 << 10, arrayLen: 256, bulkLen: 4096, cost: genericElementCost}
	case cmdSentinelNodes:
		// One flat map per node (a replica or a peer sentinel), at most N of them: Redis 7
		// sends up to 30 pairs per node; room for 64 pairs (129 elements) and 4 KiB (a
		// 255-byte host name twice, a 40-byte run id, numbers) per node.
		k = replyCaps{elems: 129*n + 1, bytes: 4096*n + small, arrayLen: max(n, 128), bulkLen: 4096, cost: genericElementCost}
	case cmdSubscribe:
		// A subscription confirmation or one pub/sub message ("message", channel, payload):
		// Sentinel's event payloads name two instances (host names of at most 255 bytes) and
		// a master name, well under 4 KiB.
		k = replyCaps{elems: 8, bytes: 8 << 10, arrayLen: 8, bulkLen: 4096, cost: genericElementCost}
	default:
		return genericCaps(l)
	}
	k.bytes = max(k.bytes, small) // any command may be answered with an error line
	k.elems = min(k.elems, l.MaxReplyElements)
	k.bytes = min(k.bytes, l.MaxReplyBytes)
	k.arrayLen = min(k.arrayLen, l.MaxArrayLen)
	k.bulkLen = min(k.bulkLen, l.MaxBulkLen)
	return k
}

// genericCaps are the caps of a reply whose command is not known: the generic Limits.
func genericCaps(l *Limits) replyCaps {
	return replyCaps{elems: l.MaxReplyElements, bytes: l.MaxReplyBytes, arrayLen: l.MaxArrayLen, bulkLen: l.MaxBulkLen, cost: shardsElementCost}
}

// maxPending bounds the commands written and not yet answered on one connection. go-redis
// pipelines at most a handful (HELLO, then SELECT + CLIENT SETNAME at connection setup).
const maxPending = 64

// requestTracker reads the request stream go-redis writes (arrays of bulk strings) with
// internal/resp's Scanner in request mode, just far enough to know each command's name, and
// queues one expectation per command. It is our own client's output, not untrusted input;
// anything it cannot parse turns tracking off for the connection (broken), and replies then
// fall back to the generic Limits.
type requestTracker struct {
	mu      sync.Mutex
	pending []command
	broken  bool
	// subscribed: a SUBSCRIBE was sent, so the server may push messages no command asked
	// for; each is held to cmdSubscribe's caps instead of being refused as unsolicited.
	subscribed bool

	sc      resp.Scanner
	started bool // sc is configured
	argIdx  int  // index of the current argument
	name    [2][maxNameLen]byte
	nameLen [2]int
	queued  bool // the current request's expectation is queued
}

// maxNameLen bounds what is kept of a command name or subcommand.
const maxNameLen = 16

// write records the requests in p. It never fails the write: a stream it cannot follow only
// turns tracking off.
func (t *requestTracker) write(p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.started {
		t.started = true
		t.sc.Lim, t.sc.Request, t.sc.Watch = resp.NoLimits(1), true, 2
	}
	for i, ev := 0, resp.Begin; ev != resp.None && !t.broken; {
		var n int
		var err error
		n, ev, err = t.sc.Scan(p[i:])
		i += n
		if err != nil {
			t.broken = true
			return
		}
		t.event(ev)
	}
}

// event follows one Scanner event of the request stream.
func (t *requestTracker) event(ev resp.Event) {
	switch ev {
	case resp.Begin:
		if t.sc.Depth() == 0 { // a new request
			t.argIdx, t.queued, t.nameLen = 0, false, [2]int{}
			return
		}
		t.sc.Capture = t.argIdx < 2
	case resp.Data:
		for _, ch := range t.sc.Data() {
			if k := t.nameLen[t.argIdx]; k < maxNameLen {
				t.name[t.argIdx][k] = upper(ch)
				t.nameLen[t.argIdx]++
			}
		}
	case resp.Done:
		// Once the name (and, for container commands, the subcommand) is known, the
		// request's expectation is queued: before the rest of a long request is written.
		if t.argIdx == 1 || !hasSubcommand(t.arg(0)) {
			t.queue()
		}
		t.argIdx++
	case resp.End:
		if t.argIdx > 0 { // "*0" and "*-1" are no command
			t.queue()
		}
	}
}

// queue queues the current request's expectation, once.
func (t *requestTracker) queue() {
	if t.queued {
		return
	}
	t.queued = true
	if len(t.pending) >= maxPending {
		t.broken = true
		return
	}
	c := commandOf(t.arg(0), t.arg(1))
	t.subscribed = t.subscribed || c == cmdSubscribe
	t.pending = append(t.pending, c)
}

// arg is what was kept of argument i (0 or 1), upper-cased.
func (t *requestTracker) arg(i int) string { return string(t.name[i][:t.nameLen[i]]) }

func hasSubcommand(name string) bool {
	return name == "CLUSTER" || name == "CLIENT" || name == "SENTINEL"
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

// next takes the expectation of the oldest unanswered command. ok is false when none is
// waiting; tracked is false when tracking is off (the generic Limits apply).
func (t *requestTracker) next() (c command, ok, tracked bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.broken {
		return cmdOther, true, false
	}
	if len(t.pending) == 0 {
		if t.subscribed {
			return cmdSubscribe, true, true
		}
		return cmdOther, false, true
	}
	c = t.pending[0]
	copy(t.pending, t.pending[1:])
	t.pending = t.pending[:len(t.pending)-1]
	return c, true, true
}
