package cluster

import (
	"errors"
	"strings"
	"testing"
	"unsafe"

	"github.com/redis/go-redis/v9"
)

// TestElementCostsCoverGoRedis: what the budget charges per declared element covers what the
// pinned go-redis allocates per declared element: a redis.Node per CLUSTER SHARDS node entry,
// a ClusterSlot / ClusterNode per CLUSTER SLOTS range and entry, an interface slot plus a
// boxed slice or string header in Do's generic reply.
func TestElementCostsCoverGoRedis(t *testing.T) {
	for name, size := range map[string]uintptr{
		"redis.Node":         unsafe.Sizeof(redis.Node{}),
		"redis.ClusterShard": unsafe.Sizeof(redis.ClusterShard{}),
	} {
		if size > shardsElementCost {
			t.Errorf("%s is %d bytes, more than shardsElementCost (%d)", name, size, shardsElementCost)
		}
	}
	var iface any
	for name, size := range map[string]uintptr{
		"redis.ClusterSlot":  unsafe.Sizeof(redis.ClusterSlot{}),
		"redis.ClusterNode":  unsafe.Sizeof(redis.ClusterNode{}),
		"interface + []any":  unsafe.Sizeof(iface) + unsafe.Sizeof([]any{}),
		"interface + string": unsafe.Sizeof(iface) + unsafe.Sizeof(""),
	} {
		if size > genericElementCost {
			t.Errorf("%s is %d bytes, more than genericElementCost (%d)", name, size, genericElementCost)
		}
	}
}

// TestRequestTrackerNamesCommands: the command of every request go-redis writes is known in
// order, however the writes split it, pipelined or not.
func TestRequestTrackerNamesCommands(t *testing.T) {
	reqs := "*3\r\n$5\r\nHELLO\r\n$1\r\n2\r\n$0\r\n\r\n" + // HELLO 2 ""
		"*2\r\n$7\r\ncluster\r\n$6\r\nshards\r\n" +
		"*1\r\n$4\r\nROLE\r\n" +
		"*2\r\n$4\r\nINFO\r\n$11\r\nreplication\r\n" +
		"*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n" +
		"*2\r\n$7\r\nCLUSTER\r\n$4\r\nINFO\r\n" +
		"*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$4\r\nrcon\r\n" +
		"*1\r\n$4\r\nPING\r\n" +
		"*1\r\n$7\r\nCLUSTER\r\n" + // no subcommand: not one we know
		"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
	want := []command{cmdHello, cmdClusterShards, cmdRole, cmdInfo, cmdClusterSlots, cmdClusterInfo, cmdSmall, cmdSmall, cmdOther, cmdOther}
	for _, n := range []int{1, 2, 5, 1 << 20} {
		var tr requestTracker
		for p := []byte(reqs); len(p) > 0; {
			k := min(n, len(p))
			tr.write(p[:k])
			p = p[k:]
		}
		for i, w := range want {
			c, ok, tracked := tr.next()
			if c != w || !ok || !tracked {
				t.Fatalf("writes of %d: request %d is %d (ok %t, tracked %t), want %d", n, i, c, ok, tracked, w)
			}
		}
		if _, ok, _ := tr.next(); ok {
			t.Fatalf("writes of %d: an expectation without a request", n)
		}
	}
	// Bytes that are not a request stream turn tracking off: generic caps, no refusal.
	var tr requestTracker
	tr.write([]byte("PING\r\n"))
	if c, ok, tracked := tr.next(); c != cmdOther || !ok || tracked {
		t.Fatalf("untrackable stream: %d, %t, %t", c, ok, tracked)
	}
}

// TestRepliesMeetTheirCommandsCaps: through LimitConn each reply is held to the caps of the
// command it answers, a reply that comes before its command is refused, and a command the caps
// do not know keeps the generic Limits.
func TestRepliesMeetTheirCommandsCaps(t *testing.T) {
	role := "*3\r\n$6\r\nmaster\r\n:0\r\n*1001\r\n" // more replicas than MaxTopologyNodes
	for _, tc := range []struct {
		name, req, reply string
		want             error
	}{
		{"PING answered with an array", "*1\r\n$4\r\nPING\r\n", "*100\r\n", ErrReplyTooLarge},
		{"ROLE listing 1001 replicas", "*1\r\n$4\r\nROLE\r\n", role, ErrReplyTooLarge},
		{"GET (no caps of its own)", "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "*1001\r\n", nil},
		{"a reply before its command", "", "+OK\r\n", ErrProtocol},
		{"a second reply smuggled behind the first", "*1\r\n$4\r\nPING\r\n", "+PONG\r\n*1000\r\n", ErrProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := LimitConn(&chunkConn{chunks: [][]byte{[]byte(tc.reply)}}, nil)
			if _, err := c.Write([]byte(tc.req)); err != nil {
				t.Fatal(err)
			}
			_, err := c.Read(make([]byte, 64))
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Read = %v, want %v", err, tc.want)
			}
		})
	}
	// The largest CLUSTER SHARDS the default caps admit, and one element more.
	l := DefaultLimits()
	k := replyCapsFor(cmdClusterShards, &l)
	if k.elems != 74768 || k.arrayLen != 2*SlotCount {
		t.Fatalf("CLUSTER SHARDS caps %+v", k)
	}
	if !strings.Contains(errTooManyElems.Error(), "its command's cap") {
		t.Fatal(errTooManyElems)
	}
}

// TestBudgetShareAndRelease: an account never holds more than its share, the budget never
// more than its limit, and what is released is available again.
func TestBudgetShareAndRelease(t *testing.T) {
	b := NewReplyBudget(400)
	a1, a2, a3 := b.account(), b.account(), b.account()
	if err := a1.acquire(100); err != nil {
		t.Fatal(err)
	}
	if err := a1.acquire(1); !errors.Is(err, ErrReplyBudgetExhausted) || !errors.Is(err, errShareExhausted) {
		t.Fatalf("over the share: %v", err)
	}
	for _, a := range []*budgetAccount{a2, a3, b.account()} {
		if err := a.acquire(100); err != nil {
			t.Fatal(err)
		}
	}
	if err := a3.acquire(0); err != nil {
		t.Fatal(err)
	}
	if err := b.account().acquire(1); !errors.Is(err, errBudgetExhausted) {
		t.Fatalf("over the budget: %v", err)
	}
	a2.release(100)
	if err := b.account().acquire(100); err != nil || b.Used() != 400 || b.Refused() != 2 {
		t.Fatalf("after a release: %v, used %d, refused %d", err, b.Used(), b.Refused())
	}
	var none *ReplyBudget
	if err := none.account().acquire(1 << 40); err != nil {
		t.Fatal("a nil budget charges nothing")
	}
}

// TestRequestTrackerNamesSentinelCommands: the SENTINEL subcommands get their own caps (the
// 23-byte GET-MASTER-ADDR-BY-NAME by its first 16 bytes), and after SUBSCRIBE a reply no
// command asked for is a pub/sub message held to cmdSubscribe's caps, not refused; before
// SUBSCRIBE it is refused.
func TestRequestTrackerNamesSentinelCommands(t *testing.T) {
	reqs := "*3\r\n$8\r\nSENTINEL\r\n$23\r\nget-master-addr-by-name\r\n$8\r\nmymaster\r\n" +
		"*3\r\n$8\r\nsentinel\r\n$8\r\nREPLICAS\r\n$8\r\nmymaster\r\n" +
		"*3\r\n$8\r\nSENTINEL\r\n$9\r\nSENTINELS\r\n$8\r\nmymaster\r\n" +
		"*3\r\n$8\r\nSENTINEL\r\n$6\r\nMASTER\r\n$8\r\nmymaster\r\n"
	var tr requestTracker
	tr.write([]byte(reqs))
	for i, w := range []command{cmdSmall, cmdSentinelNodes, cmdSentinelNodes, cmdSentinelMaster} {
		if c, ok, _ := tr.next(); c != w || !ok {
			t.Fatalf("request %d is %d (ok %t), want %d", i, c, ok, w)
		}
	}
	if _, ok, _ := tr.next(); ok {
		t.Fatal("a reply before SUBSCRIBE was not refused as unsolicited")
	}
	tr.write([]byte("*3\r\n$9\r\nSUBSCRIBE\r\n$14\r\n+switch-master\r\n$6\r\n+sdown\r\n"))
	for i := 0; i < 3; i++ { // the second confirmation, then messages
		if c, ok, tracked := tr.next(); c != cmdSubscribe || !ok || !tracked {
			t.Fatalf("reply %d after SUBSCRIBE is %d (ok %t), want cmdSubscribe", i, c, ok)
		}
	}
	l := DefaultLimits()
	k := replyCapsFor(cmdSubscribe, &l)
	if k.bulkLen != 4096 || k.elems != 8 {
		t.Fatalf("cmdSubscribe caps %+v", k)
	}
}
