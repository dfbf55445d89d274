package controllers_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
)

var _ = Describe("watches", func() {
	It("do not reconcile a steady RedisConnection for a status-only write, nor for the status write that follows", func() {
		ns := newNamespace()
		s := redistest.StartServer(GinkgoT(), redistest.ServerOptions{})
		Expect(k8s.Create(ctx, &rconnv1.RedisConnection{
			ObjectMeta: metav1.ObjectMeta{Name: "steady", Namespace: ns},
			Spec: rconnv1.RedisConnectionSpec{
				Mode:      rconnv1.ModeStandalone,
				RootNodes: []rconnv1.RootNode{{URL: rconnv1.RedisURL("redis://" + s.Addr())}},
				// No health tick inside the test: every reconcile it sees has another cause.
				HealthCheck: &rconnv1.HealthCheck{Interval: &metav1.Duration{Duration: time.Hour}},
			},
		})).To(Succeed())
		eventuallyCondition(ns, "steady", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
		// Let the reconciles the outputs' creation caused finish.
		settled(func() int { return reconciles.of(ns, "steady") }, time.Second)
		before := reconciles.of(ns, "steady")

		// A status-only write, like the controller's own status patches: the generation stays.
		rc := get(ns, "steady")
		patched := rc.DeepCopy()
		patched.Status.HealthyNodeCount = 0
		Expect(k8s.Status().Patch(ctx, patched, client.MergeFrom(rc))).To(Succeed())
		Expect(get(ns, "steady").Generation).To(Equal(rc.Generation))

		Consistently(func() int { return reconciles.of(ns, "steady") - before }, 5*time.Second, 250*time.Millisecond).Should(BeZero(),
			"a status-only update enqueued the RedisConnection (and the status patch of that reconcile enqueued it again)")
	})
})
