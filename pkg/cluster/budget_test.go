package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/testing/hostile"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// holdFor is how long the hostile servers below hold back the last byte of an answer. It only
// has to outlast the test: every server is closed (which ends the hold) when the test is done.
const holdFor = 10 * time.Minute

// heldServers starts n servers answering cmd with reply, the last byte held back.
func heldServers(t *testing.T, n int, cmd string, reply []byte) []*hostile.Server {
	t.Helper()
	out := make([]*hostile.Server, n)
	for i := range out {
		out[i] = hostile.MustStart(t, hostile.Config{Handler: hostile.Answer(cmd, reply), HoldLastByte: holdFor, HoldCommand: cmd})
	}
	return out
}

func closeAll(srvs []*hostile.Server) {
	for _, s := range srvs {
		s.Close()
	}
}

// heapGrowth runs f and returns how far the live heap (HeapAlloc right after a collection) rose
// above what it was before f, measured once ready reports that all of f's work is in flight
// (everything the replies declared is read and allocated), and once more when f returns.
// release, called after the first measurement, ends what f waits for (closes the servers).
func heapGrowth(t *testing.T, f func(), ready func() bool, release func()) uint64 {
	t.Helper()
	live := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	base := live()
	peak := base
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(2 * time.Minute)
	released := false
	for {
		select {
		case <-done:
			peak = max(peak, live())
			if !released {
				release()
			}
			return peak - base
		case <-tick.C:
			if !released && ready() {
				peak = max(peak, live())
				released = true
				release()
			}
		case <-deadline:
			release()
			t.Fatal("the probe did not finish")
		}
	}
}

// holding counts the servers holding back a last byte.
func holding(srvs []*hostile.Server) int {
	n := 0
	for _, s := range srvs {
		n += s.Holding()
	}
	return n
}

// TestRepliesInsideTheGenericCapsAreRefused is issue 23's first attack: replies inside every
// generic cap (DefaultMaxReplyElements, DefaultMaxArrayLen, DefaultMaxReplyBytes) that make
// go-redis allocate a struct per declared element, their last byte held back so they overlap.
// Eight roots answering CLUSTER SHARDS with 15 shards of 65,536 empty node entries, and 64
// nodes answering the health check's ROLE with 65,536 replica entries, are refused by the caps
// of the command each reply answers, and the heap stays small. On the code before, the
// CLUSTER SHARDS probe grew the live heap by about 900 MiB and the health check by about 700 MiB.
func TestRepliesInsideTheGenericCapsAreRefused(t *testing.T) {
	const bound = 64 << 20
	t.Run("CLUSTER SHARDS from 8 roots", func(t *testing.T) {
		srvs := heldServers(t, 8, "CLUSTER SHARDS", hostile.EmptyNodeShards(15, 65536))
		addrs := make([]string, len(srvs))
		for i, s := range srvs {
			addrs[i] = s.Addr()
		}
		in := hostileInspector(t, cluster.Options{ReadTimeout: 30 * time.Second}, addrs...)
		var err error
		grew := heapGrowth(t, func() { _, err = in.Discover(context.Background()) },
			func() bool { return holding(srvs) == len(srvs) }, func() { closeAll(srvs) })
		if grew > bound {
			t.Fatalf("the heap grew by %d MiB (bound %d MiB)", grew>>20, bound>>20)
		}
		if !errors.Is(err, cluster.ErrReplyTooLarge) {
			t.Fatalf("Discover = %v, want ErrReplyTooLarge", err)
		}
		t.Logf("heap growth %d MiB", grew>>20)
	})
	t.Run("ROLE from 64 nodes", func(t *testing.T) {
		srvs := heldServers(t, 64, "ROLE", hostile.RoleReplicas(65536, 14))
		topo := &cluster.Topology{Standalone: true}
		for _, s := range srvs {
			topo.Nodes = append(topo.Nodes, &cluster.Node{Announced: s.Addr()})
		}
		in := hostileInspector(t, cluster.Options{ReadTimeout: 30 * time.Second}, srvs[0].Addr())
		var health []cluster.NodeHealth
		grew := heapGrowth(t, func() { health = in.CheckHealth(context.Background(), topo, 30*time.Second) },
			func() bool { return holding(srvs) == len(srvs) }, func() { closeAll(srvs) })
		if grew > bound {
			t.Fatalf("the heap grew by %d MiB (bound %d MiB)", grew>>20, bound>>20)
		}
		for _, h := range health {
			if !errors.Is(h.Err, cluster.ErrReplyTooLarge) {
				t.Fatalf("%s: %v, want ErrReplyTooLarge", h.Announced, h.Err)
			}
		}
		t.Logf("heap growth %d MiB", grew>>20)
	})
}

// TestReplyBudgetBoundsWhatRepliesHoldTogether: the same attack shaped to pass the CLUSTER
// SHARDS caps (2 shards of 32,768 empty entries: 65,546 elements, ~8 MB of go-redis structs
// each) from 8 roots of one Inspector. The budget lets the Inspector hold its share (a quarter
// of the default 96 MiB: two such replies); the other roots fail at once with
// ErrReplyBudgetExhausted, the heap stays within the share, and everything is given back when
// the connections close. Without a budget (the code before, or ReplyBudget nil) all 8 are held:
// about 60 MiB of live heap (measured on the code before).
func TestReplyBudgetBoundsWhatRepliesHoldTogether(t *testing.T) {
	srvs := heldServers(t, 8, "CLUSTER SHARDS", hostile.EmptyNodeShards(2, 32768))
	addrs := make([]string, len(srvs))
	for i, s := range srvs {
		addrs[i] = s.Addr()
	}
	budget := cluster.NewReplyBudget(0)
	in := hostileInspector(t, cluster.Options{ReadTimeout: 30 * time.Second, ReplyBudget: budget}, addrs...)
	var err error
	grew := heapGrowth(t, func() { _, err = in.Discover(context.Background()) },
		func() bool {
			return budget.Refused() >= 6 && budget.Used() > 16<<20 || holding(srvs) == len(srvs)
		}, func() { closeAll(srvs) })
	const bound = 32 << 20 // the share (24 MiB) and slack; all 8 replies would be ~63 MB
	if grew > bound {
		t.Fatalf("the heap grew by %d MiB (bound %d MiB)", grew>>20, bound>>20)
	}
	if !errors.Is(err, cluster.ErrReplyBudgetExhausted) {
		t.Fatalf("Discover = %v, want an ErrReplyBudgetExhausted among the roots' errors", err)
	}
	if used := budget.Used(); used != 0 {
		t.Fatalf("%d bytes of the budget still charged after every connection closed", used)
	}
	t.Logf("heap growth %d MiB, %d reads refused", grew>>20, budget.Refused())
}

// TestHonestTopologyGetsThroughWhileTheBudgetIsHeld: hostile Inspectors hold what they can of
// a shared budget (8 MiB here: a share is 2 MiB, and each holds one ~1.9 MB reply).
//   - One hostile Inspector cannot keep an honest 1,000-node topology (~1.9 MB of cost) out:
//     the share leaves the rest to others.
//   - Five of them fill the budget: the honest 1,000-node probe then fails at once, classified
//     ManagerBusy (not a fault of the cluster), while a small honest topology, whose replies
//     fit in the free allowance (ReplyFreeCost), still gets through.
//
// On the code before there was no budget to share: the hostile replies were all held.
func TestHonestTopologyGetsThroughWhileTheBudgetIsHeld(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	budget := cluster.NewReplyBudget(8 << 20)
	big := hostile.Slow(t, 0, shardsHandler(1000))
	small := hostile.Slow(t, 0, nil)
	honest := func(addr string) (*cluster.Topology, error) {
		in := hostileInspector(t, cluster.Options{ReplyBudget: budget}, addr)
		return in.Discover(testCtx(t))
	}
	reply := hostile.EmptyNodeShards(1, 15000)
	var wg sync.WaitGroup
	var all []*hostile.Server
	t.Cleanup(func() { closeAll(all); wg.Wait() })
	attack := func(inspectors int) {
		for range inspectors {
			srvs := heldServers(t, 8, "CLUSTER SHARDS", reply)
			all = append(all, srvs...)
			addrs := make([]string, len(srvs))
			for i, s := range srvs {
				addrs[i] = s.Addr()
			}
			in := hostileInspector(t, cluster.Options{ReadTimeout: 30 * time.Second, ReplyBudget: budget}, addrs...)
			wg.Add(1)
			go func() { defer wg.Done(); _, _ = in.Discover(context.Background()) }()
		}
	}
	waitUsed := func(n int64) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); budget.Used() < n; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the hostile replies hold %d bytes of the budget, want %d", budget.Used(), n)
			}
		}
	}
	const perReply = 1_800_000 // 15,005 elements at 128 bytes, less the free allowance

	attack(1)
	waitUsed(perReply)
	if topo, err := honest(big.Addr()); err != nil || len(topo.Nodes) != 1000 {
		t.Fatalf("one hostile inspector kept an honest 1000-node topology out: %v", err)
	}

	attack(4)
	waitUsed(4 * perReply)
	for deadline := time.Now().Add(time.Minute); budget.Refused() < 5*7; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d reads refused", budget.Refused())
		}
	}
	_, err := honest(big.Addr())
	if class, msg := cluster.Classify(err); class != cluster.ClassManagerBusy || msg != "the manager's budget for replies in flight is exhausted (other replies are being read); the node at "+big.Addr()+" is asked again later" {
		t.Fatalf("honest 1000-node probe with the budget full: %v (%s, %q)", err, class, msg)
	}
	if topo, err := honest(small.Addr()); err != nil || len(topo.Nodes) != 1 {
		t.Fatalf("a small honest topology did not get through a full budget: %v", err)
	}
	closeAll(all)
	wg.Wait()
	if used := budget.Used(); used != 0 {
		t.Fatalf("%d bytes of the budget still charged after every connection closed", used)
	}
}

// TestPerCommandCapsAdmitHonestReplies: the caps of each command admit what a real topology
// of the documented maximum sends: a CLUSTER SHARDS reply of 1,000 nodes (500 shards of a
// master and a replica, every node with all nine fields and 230-byte host names).
func TestPerCommandCapsAdmitHonestReplies(t *testing.T) {
	srv := hostile.Slow(t, 0, hostile.Answer("CLUSTER SHARDS", fullShards(500, 2)))
	in := hostileInspector(t, cluster.Options{}, srv.Addr())
	topo, err := in.Discover(testCtx(t))
	if err != nil || len(topo.Nodes) != 1000 || !topo.FullCoverage() {
		t.Fatalf("1000-node CLUSTER SHARDS: %v", err)
	}
}

// fullShards is a CLUSTER SHARDS reply of shards shards of per nodes, each shard owning a
// contiguous range, every node with the nine fields Redis 7 sends and 230-byte host names.
func fullShards(shards, per int) []byte {
	bulk := func(s string) string { return "$" + strconv.Itoa(len(s)) + "\r\n" + s + "\r\n" }
	var b []byte
	b = append(b, "*"+strconv.Itoa(shards)+"\r\n"...)
	step := cluster.SlotCount / shards
	for s := range shards {
		end := (s+1)*step - 1
		if s == shards-1 {
			end = cluster.SlotCount - 1
		}
		b = append(b, "*4\r\n"+bulk("slots")+"*2\r\n:"+strconv.Itoa(s*step)+"\r\n:"+strconv.Itoa(end)+"\r\n"+bulk("nodes")+"*"+strconv.Itoa(per)+"\r\n"...)
		for n := range per {
			label := strings.Repeat("a", 50)
			host := fmt.Sprintf("n%d.%s.%s.%s.%s.rconn-test.invalid", s*per+n, label, label, label, label)
			role := "master"
			if n > 0 {
				role = "replica"
			}
			id := fmt.Sprintf("%040x", s*per+n)
			b = append(b, "*18\r\n"+bulk("id")+bulk(id)+bulk("port")+":6379\r\n"+bulk("tls-port")+":0\r\n"+
				bulk("ip")+bulk("127.0.0.1")+bulk("endpoint")+bulk(host)+bulk("hostname")+bulk(host)+
				bulk("role")+bulk(role)+bulk("replication-offset")+":123456789\r\n"+bulk("health")+bulk("online")...)
		}
	}
	return b
}
