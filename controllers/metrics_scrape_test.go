package controllers_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
)

var _ = Describe("metrics", func() {
	It("exports node up, ping latency and slot coverage per RedisConnection", func() {
		ns := newNamespace()
		rc := redistest.StartCluster(GinkgoT(), redistest.ClusterOptions{Masters: 3})
		Expect(k8s.Create(ctx, &rconnv1.RedisConnection{
			ObjectMeta: metav1.ObjectMeta{Name: "m", Namespace: ns},
			Spec:       rconnv1.RedisConnectionSpec{RootNodes: []rconnv1.RootNode{{URL: rconnv1.RedisURL("redis://" + rc.Nodes[0].Addr())}}},
		})).To(Succeed())
		eventuallyCondition(ns, "m", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
		values := func(name string) map[string]float64 {
			out := map[string]float64{}
			families, err := metrics.Registry.Gather()
			Expect(err).NotTo(HaveOccurred())
			for _, f := range families {
				if f.GetName() != name {
					continue
				}
				for _, m := range f.Metric {
					labels := map[string]string{}
					for _, l := range m.Label {
						labels[l.GetName()] = l.GetValue()
					}
					if labels["namespace"] == ns {
						out[labels["node"]] = m.GetGauge().GetValue()
					}
				}
			}
			return out
		}
		// The state gauges come from the manager's cache, which sees the status patch a moment
		// after the API server does.
		Eventually(func() map[string]float64 { return values("rconn_ready") }, 30*time.Second, 200*time.Millisecond).Should(Equal(map[string]float64{"": 1}))
		up := values("rconn_node_up")
		Expect(up).To(HaveLen(3))
		for node, v := range up {
			Expect(v).To(Equal(1.0), node)
		}
		Expect(values("rconn_node_ping_seconds")).To(HaveLen(3))
		Expect(values("rconn_slots_covered")).To(Equal(map[string]float64{"": 16384}))
		Expect(values("rconn_ready_reason")).To(HaveLen(1))

		Expect(k8s.Delete(ctx, &rconnv1.RedisConnection{ObjectMeta: metav1.ObjectMeta{Name: "m", Namespace: ns}})).To(Succeed())
		Eventually(func() map[string]float64 { return values("rconn_node_up") }, 30*time.Second, 200*time.Millisecond).Should(BeEmpty())
		for _, m := range []string{"rconn_ready", "rconn_ready_reason", "rconn_slots_covered", "rconn_node_ping_seconds"} {
			Eventually(func() map[string]float64 { return values(m) }, 30*time.Second, 200*time.Millisecond).Should(BeEmpty(), m)
		}
	})
})
