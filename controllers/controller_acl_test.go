package controllers_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
)

// minimalACL is the controller's documented minimal ACL (docs/operating.md, pkg/cluster doc).
const minimalACL = "-@all +ping +role +info +cluster|shards +cluster|slots +cluster|info +cluster|myid"

var _ = Describe("spec.controllerACL", func() {
	It("lets the controller connect with the minimal ACL while apps get their own user", func() {
		ns := newNamespace()
		rc := redistest.StartCluster(GinkgoT(), redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname,
			Server: redistest.ServerOptions{Users: []redistest.User{
				{Name: "app", Password: "app-pass"},
				{Name: "rconn", Password: "observer", Rules: minimalACL},
			}}})
		headlessService(ns, rc)
		aclSecret(ns, "redis-acl", "app", "app-pass")
		aclSecret(ns, "rconn-acl", "rconn", "observer")
		obj := podDNSConnection(ns, "split", rc)
		obj.Spec.ControllerACL = &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "rconn-acl"}, UsernameKey: "username"}
		Expect(k8s.Create(ctx, obj)).To(Succeed())
		eventuallyCondition(ns, "split", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)

		_, sec := outputs(ns, "split")
		Expect(string(sec.Data["username"])).To(Equal("app"))
		Expect(string(sec.Data["password"])).To(Equal("app-pass"), "the app's credentials are rendered, never the controller's")

		// The controller really uses rconn-acl: break it, and discovery fails with an auth error
		// while the app's Secret is untouched.
		broken := &corev1.Secret{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "rconn-acl"}, broken)).To(Succeed())
		broken.Data["password"] = []byte("wrong")
		Expect(k8s.Update(ctx, broken)).To(Succeed())
		eventuallyCondition(ns, "split", rconnv1.ConditionTopologyDiscovered, metav1.ConditionFalse, rconnv1.ReasonAuthenticationFailed)

		broken.Data["password"] = []byte("observer")
		Expect(k8s.Update(ctx, broken)).To(Succeed())
		eventuallyCondition(ns, "split", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)

		// A missing controller Secret names the field.
		Expect(k8s.Delete(ctx, broken)).To(Succeed())
		eventuallyCondition(ns, "split", rconnv1.ConditionCredentialsResolved, metav1.ConditionFalse, rconnv1.ReasonSecretNotFound)
		Expect(get(ns, "split").Status.Conditions).To(ContainElement(HaveField("Message", ContainSubstring("spec.controllerACL"))))
	})
})
