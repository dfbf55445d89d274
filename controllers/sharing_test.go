package controllers_test

import (
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
)

// clientsNamed counts, per node, the connections the controller holds under a client name and
// ACL user (CLIENT LIST: the test's own admin connection has neither).
func clientsNamed(rc *redistest.Cluster, user string) []int {
	const name = "rconn-share"
	out := make([]int, len(rc.Nodes))
	for i, n := range rc.Nodes {
		c := n.Client()
		list, err := c.ClientList(ctx).Result()
		ExpectWithOffset(1, c.Close()).To(Succeed())
		ExpectWithOffset(1, err).NotTo(HaveOccurred())
		for _, line := range strings.Split(list, "\n") {
			f := " " + line + " "
			if strings.Contains(f, " name="+name+" ") && strings.Contains(f, " user="+user+" ") {
				out[i]++
			}
		}
	}
	return out
}

func sharingConnection(ns, name, secret string, rc *redistest.Cluster) *rconnv1.RedisConnection {
	return &rconnv1.RedisConnection{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: rconnv1.RedisConnectionSpec{
			RootNodes: []rconnv1.RootNode{{URL: rconnv1.RedisURL("redis://" + rc.Nodes[0].Addr())}},
			Defaults: &rconnv1.NodeDefaults{
				ACL:        &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: secret}, UsernameKey: "username"},
				ClientName: "rconn-share",
			},
			HealthCheck: &rconnv1.HealthCheck{Interval: &metav1.Duration{Duration: time.Second}, Timeout: &metav1.Duration{Duration: 900 * time.Millisecond}},
		},
	}
}

var _ = Describe("RedisConnections naming the same cluster", Ordered, func() {
	var (
		ns1, ns2 string
		rc       *redistest.Cluster
	)
	perNode := func(v int) []int {
		out := make([]int, len(rc.Nodes))
		for i := range out {
			out[i] = v
		}
		return out
	}
	BeforeAll(func() {
		ns1, ns2 = newNamespace(), newNamespace()
		rc = redistest.StartCluster(GinkgoT(), redistest.ClusterOptions{Masters: 3,
			Server: redistest.ServerOptions{Users: []redistest.User{{Name: "app", Password: "s3cret"}, {Name: "other", Password: "0ther"}}}})
		// Equal credentials in two Secrets of two namespaces: shared by content.
		aclSecret(ns1, "acl", "app", "s3cret")
		aclSecret(ns2, "acl", "app", "s3cret")
		aclSecret(ns1, "acl-other", "other", "0ther")
	})

	It("share one set of connections when roots, credentials and map are equal", func() {
		Expect(k8s.Create(ctx, sharingConnection(ns1, "a", "acl", rc))).To(Succeed())
		Expect(k8s.Create(ctx, sharingConnection(ns2, "b", "acl", rc))).To(Succeed())
		eventuallyCondition(ns1, "a", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
		eventuallyCondition(ns2, "b", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
		// One connection per node for both (two inspectors would hold two), across several
		// health intervals: no churn, no second set.
		Eventually(func() []int { return clientsNamed(rc, "app") }, 10*time.Second, 200*time.Millisecond).Should(Equal(perNode(1)))
		Consistently(func() []int { return clientsNamed(rc, "app") }, 3*time.Second, 500*time.Millisecond).Should(Equal(perNode(1)))
		Expect(get(ns2, "b").Status.HealthyNodeCount).To(Equal(int32(3)))
	})

	It("read neither their Secrets nor their outputs from the API server at steady state", func() {
		// Secret content and outputs are read when the cached metadata shows a new
		// resourceVersion, not on every health interval (1s here).
		both := func() []string { return append(reads.in(ns1), reads.in(ns2)...) }
		settled(func() int { return len(both()) }, time.Second)
		before := len(both())
		Consistently(func() []string { return both()[before:] }, 4*time.Second, 500*time.Millisecond).Should(BeEmpty())
	})

	It("do not share when credentials differ", func() {
		Expect(k8s.Create(ctx, sharingConnection(ns1, "c", "acl-other", rc))).To(Succeed())
		eventuallyCondition(ns1, "c", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
		Eventually(func() []int { return clientsNamed(rc, "other") }, 10*time.Second, 200*time.Millisecond).Should(Equal(perNode(1)))
		Expect(clientsNamed(rc, "app")).To(Equal(perNode(1)))
	})

	It("keep the shared connections working for the others when one is deleted", func() {
		Expect(k8s.Delete(ctx, get(ns1, "a"))).To(Succeed())
		Eventually(func() error {
			return k8s.Get(ctx, client.ObjectKey{Namespace: ns1, Name: "a"}, &rconnv1.RedisConnection{})
		}, 10*time.Second, 100*time.Millisecond).ShouldNot(Succeed())
		// b still probes through the same connections: they stay open and keep being used.
		Consistently(func() []int { return clientsNamed(rc, "app") }, 3*time.Second, 500*time.Millisecond).Should(Equal(perNode(1)))
		c := rc.Nodes[1].Client()
		list, err := c.ClientList(ctx).Result()
		Expect(c.Close()).To(Succeed())
		Expect(err).NotTo(HaveOccurred())
		idle := -1
		for _, line := range strings.Split(list, "\n") {
			if strings.Contains(line, " name=rconn-share ") && strings.Contains(line, " user=app ") {
				for _, f := range strings.Fields(line) {
					if v, ok := strings.CutPrefix(f, "idle="); ok {
						idle, _ = strconv.Atoi(v)
					}
				}
			}
		}
		Expect(idle).To(And(BeNumerically(">=", 0), BeNumerically("<=", 3)), "b's connection to node 1 must have been used within its last intervals")
		eventuallyCondition(ns2, "b", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
	})

	It("close the connections when the last user is deleted, and only those", func() {
		Expect(k8s.Delete(ctx, get(ns2, "b"))).To(Succeed())
		Eventually(func() []int { return clientsNamed(rc, "app") }, 10*time.Second, 200*time.Millisecond).Should(Equal(perNode(0)))
		Expect(clientsNamed(rc, "other")).To(Equal(perNode(1)), "c keeps its own connections")
		Expect(k8s.Delete(ctx, get(ns1, "c"))).To(Succeed())
		Eventually(func() []int { return clientsNamed(rc, "other") }, 10*time.Second, 200*time.Millisecond).Should(Equal(perNode(0)))
	})
})
