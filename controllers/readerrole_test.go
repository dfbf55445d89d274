package controllers_test

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
)

var _ = Describe("spec.output.readerRoleName", Ordered, func() {
	var (
		ns string
		rc *redistest.Cluster
	)
	BeforeAll(func() {
		ns = newNamespace()
		rc = redistest.StartCluster(GinkgoT(), redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname,
			Server: redistest.ServerOptions{Users: []redistest.User{{Name: "app", Password: "s3cret"}}}})
		headlessService(ns, rc)
		aclSecret(ns, "redis-acl", "app", "s3cret")
		obj := podDNSConnection(ns, "reader", rc)
		obj.Spec.Output = &rconnv1.Output{ReaderRoleName: "reader-config"}
		Expect(k8s.Create(ctx, obj)).To(Succeed())
		eventuallyCondition(ns, "reader", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
	})

	It("grants exactly the two outputs to whoever is bound to it, and nothing else", func() {
		role := &rbacv1.Role{}
		Eventually(func() error { return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "reader-config"}, role) }).Should(Succeed())
		Expect(metav1.IsControlledBy(role, get(ns, "reader"))).To(BeTrue())

		user := fmt.Sprintf("app-%s", ns)
		Expect(k8s.Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-reads-config"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "reader-config"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
		})).To(Succeed())
		Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "other"}, StringData: map[string]string{"password": "x"}})).To(Succeed())
		u, err := env.AddUser(envtest.User{Name: user}, nil)
		Expect(err).NotTo(HaveOccurred())
		app, err := client.NewWithWatch(u.Config(), client.Options{})
		Expect(err).NotTo(HaveOccurred())

		Eventually(func() error {
			return app.Get(ctx, client.ObjectKey{Namespace: ns, Name: "reader"}, &corev1.ConfigMap{})
		}).Should(Succeed(), "get the ConfigMap")
		Expect(app.Get(ctx, client.ObjectKey{Namespace: ns, Name: "reader"}, &corev1.Secret{})).To(Succeed(), "get the Secret")
		for _, l := range []client.ObjectList{&corev1.ConfigMapList{}, &corev1.SecretList{}} {
			w, err := app.Watch(ctx, l, client.InNamespace(ns), client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", "reader")})
			Expect(err).NotTo(HaveOccurred(), "watch one output by name")
			w.Stop()
		}
		Expect(apierrors.IsForbidden(app.Get(ctx, client.ObjectKey{Namespace: ns, Name: "other"}, &corev1.Secret{}))).To(BeTrue(), "another Secret")
		Expect(apierrors.IsForbidden(app.List(ctx, &corev1.SecretList{}, client.InNamespace(ns)))).To(BeTrue(), "listing all Secrets")
	})

	It("is deleted when readerRoleName is unset", func() {
		obj := get(ns, "reader")
		obj.Spec.Output = nil
		Expect(k8s.Update(ctx, obj)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "reader-config"}, &rbacv1.Role{}))
		}).Should(BeTrue())
	})
})
