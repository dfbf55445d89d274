package controllers_test

import (
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/testing/hostile"
)

// heldServers starts n hostile servers answering cmd with reply and holding its last byte back
// until the spec ends (their Close, registered with the spec, ends the hold).
func heldServers(n int, cmd string, reply []byte) []*hostile.Server {
	out := make([]*hostile.Server, n)
	for i := range out {
		out[i] = hostile.MustStart(GinkgoT(), hostile.Config{Handler: hostile.Answer(cmd, reply), HoldLastByte: 10 * time.Minute, HoldCommand: cmd})
	}
	return out
}

// manyRoots is a Cluster-mode RedisConnection with these root nodes and issue 23's timeouts
// (connectTimeout 30s, health timeout 30s: the manager caps both at --max-redis-timeout).
func manyRoots(ns, name string, srvs []*hostile.Server) *rconnv1.RedisConnection {
	rc := hostileConnection(ns, name, srvs[0].Addr(), &rconnv1.HealthCheck{
		Interval: &metav1.Duration{Duration: time.Minute}, Timeout: &metav1.Duration{Duration: 30 * time.Second},
	}, 30*time.Second)
	for _, s := range srvs[1:] {
		rc.Spec.RootNodes = append(rc.Spec.RootNodes, rconnv1.RootNode{URL: rconnv1.RedisURL("redis://" + s.Addr())})
	}
	return rc
}

// shardsListing is a CLUSTER SHARDS reply of one one-node shard per server (no slots).
func shardsListing(srvs []*hostile.Server) []byte {
	var b strings.Builder
	b.WriteString("*" + strconv.Itoa(len(srvs)) + "\r\n")
	for i, s := range srvs {
		_, port, _ := net.SplitHostPort(s.Addr())
		id := fmt.Sprintf("%040x", i+1)
		b.WriteString("*4\r\n$5\r\nslots\r\n*0\r\n$5\r\nnodes\r\n*1\r\n*8\r\n$2\r\nid\r\n$40\r\n" + id + "\r\n$4\r\nport\r\n:" + port +
			"\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n")
	}
	return []byte(b.String())
}

// liveHeap is the heap in use right after a collection: this process is the manager.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

var _ = Describe("replies inside every cap, held back so they overlap", func() {
	It("cannot crash the manager: per-command caps refuse them, the reply budget bounds what is left, and an unrelated RedisConnection stays Ready and reactive", func() {
		by := startBystander()
		ns := newNamespace()
		base := liveHeap()
		refusedBefore := replyBudget.Refused()

		// Issue 23's attack: 8 roots answering CLUSTER SHARDS with 15 shards of 65,536 empty
		// node entries (983,000 elements, 3.9 MB: inside the generic caps), last byte held back.
		Expect(k8s.Create(ctx, manyRoots(ns, "shards", heldServers(8, "CLUSTER SHARDS", hostile.EmptyNodeShards(15, 65536))))).To(Succeed())
		// The same during health checks: a topology of 64 nodes answering ROLE with 65,536
		// replica entries each.
		role := heldServers(64, "ROLE", hostile.RoleReplicas(65536, 14))
		root := hostile.Slow(GinkgoT(), 0, hostile.Answer("CLUSTER SHARDS", shardsListing(role)))
		Expect(k8s.Create(ctx, manyRoots(ns, "role", []*hostile.Server{root}))).To(Succeed())
		// Shaped to pass the CLUSTER SHARDS caps (2 shards of 32,768 entries, ~8 MB of go-redis
		// structs each): the reply budget lets this RedisConnection hold a quarter of it.
		within := heldServers(8, "CLUSTER SHARDS", hostile.EmptyNodeShards(2, 32768))
		Expect(k8s.Create(ctx, manyRoots(ns, "within-caps", within))).To(Succeed())

		eventuallyCondition(ns, "shards", rconnv1.ConditionTopologyDiscovered, metav1.ConditionFalse, rconnv1.ReasonProtocolError)
		eventuallyCondition(ns, "role", rconnv1.ConditionNodesHealthy, metav1.ConditionFalse, rconnv1.ReasonNodesUnhealthy)
		Expect(condition(ns, "role", rconnv1.ConditionNodesHealthy).Message).To(ContainSubstring("reply larger than the manager's caps"))
		Eventually(replyBudget.Refused, 60*time.Second, 50*time.Millisecond).Should(BeNumerically(">=", refusedBefore+6),
			"the within-caps roots reached the reply budget")
		Expect(replyBudget.Used()).To(BeNumerically("<=", replyBudget.Limit()/4), "one RedisConnection holds at most a quarter")

		// While the held replies are in flight: the heap holds what the budget allows, not the
		// ~1.7 GB the replies declare, and the bystander's rotation reaches its output.
		grew := int64(liveHeap()) - int64(base)
		Expect(grew).To(BeNumerically("<", 96<<20), "the manager's heap grew by %d MiB", grew>>20)
		by.rotate("pw-budget")
		Eventually(by.outputPassword, 20*time.Second, 100*time.Millisecond).Should(Equal("pw-budget"))
		eventuallyCondition(by.ns, "bystander", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
		GinkgoWriter.Printf("heap growth with the attacks in flight: %d MiB\n", grew>>20)
	})
})
