package controllers_test

import (
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/controllers"
	"github.com/rconn-dev/redis-connection-operator/internal/world/certs"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
)

// drain returns the Events a fake recorder holds.
func drain(rec *events.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

var _ = Describe("credentials", func() {
	It("emits a Warning when the TLS config cannot be built from credentials that resolved", func() {
		// The certificate is valid at the reconciler's clock (resolveCredentials passes) but has
		// expired at the wall clock rtls.Config checks: the second TLS failure path, reached.
		ns := newNamespace()
		m := redistest.NewTLS(GinkgoT(), redistest.TLSOptions{})
		expired, err := m.CA.Issue(certs.Request{CommonName: "app", Client: true, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-10 * time.Minute)})
		Expect(err).NotTo(HaveOccurred())
		Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "redis-tls", Namespace: ns}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"ca.crt": m.CA.CertPEM, "tls.crt": expired.CertPEM, "tls.key": expired.KeyPEM}})).To(Succeed())
		Expect(k8s.Create(ctx, &rconnv1.RedisConnection{
			ObjectMeta: metav1.ObjectMeta{Name: "clock", Namespace: ns},
			Spec: rconnv1.RedisConnectionSpec{
				Mode:      rconnv1.ModeStandalone,
				RootNodes: []rconnv1.RootNode{{URL: "rediss://127.0.0.1:1"}},
				Defaults:  &rconnv1.NodeDefaults{TLS: &rconnv1.TLSConfig{Enabled: true, SecretRef: &rconnv1.LocalSecretReference{Name: "redis-tls"}}},
			},
		})).To(Succeed())
		rec := events.NewFakeRecorder(100)
		r := &controllers.RedisConnectionReconciler{
			Client: k8s, APIReader: k8s, Scheme: kubetest.Scheme(), Recorder: rec, Dial: dialer.Dial,
			Now: func() time.Time { return time.Now().Add(-30 * time.Minute) },
		}
		_, err = r.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "clock"}})
		Expect(err).NotTo(HaveOccurred())
		Expect(strings.Join(drain(rec), "\n")).To(ContainSubstring("Warning " + rconnv1.ReasonCertificateExpired + " TLS:"))
	})

	It("keeps a Secret in the memo only while a RedisConnection references it", func() {
		ns := newNamespace()
		aclSecret(ns, "acl", "app", "pw")
		aclSecret(ns, "acl2", "app", "pw2")
		Expect(k8s.Create(ctx, &rconnv1.RedisConnection{
			ObjectMeta: metav1.ObjectMeta{Name: "memo", Namespace: ns},
			Spec: rconnv1.RedisConnectionSpec{
				RootNodes: []rconnv1.RootNode{{URL: "redis://127.0.0.1:1"}},
				Defaults:  &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "acl"}}},
			},
		})).To(Succeed())
		r := &controllers.RedisConnectionReconciler{Client: k8s, APIReader: k8s, Scheme: kubetest.Scheme(), Dial: dialer.Dial}
		reconcile := func() {
			_, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "memo"}})
			ExpectWithOffset(1, err).NotTo(HaveOccurred())
		}
		reconcile()
		Expect(r.MemoizedSecrets()).To(Equal(1), "the referenced Secret is memoized")
		updateSpec(ns, "memo", func(rc *rconnv1.RedisConnection) { rc.Spec.Defaults.ACL.SecretRef.Name = "acl2" })
		reconcile()
		Expect(r.MemoizedSecrets()).To(Equal(1), "the Secret it moved to replaces the old one")
		updateSpec(ns, "memo", func(rc *rconnv1.RedisConnection) { rc.Spec.Defaults = nil })
		reconcile()
		Expect(r.MemoizedSecrets()).To(Equal(0), "no reference, no memo")
		updateSpec(ns, "memo", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Defaults = &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "acl"}}}
		})
		reconcile()
		Expect(r.MemoizedSecrets()).To(Equal(1))
		Expect(k8s.Delete(ctx, get(ns, "memo"))).To(Succeed())
		Eventually(func() int { reconcile(); return r.MemoizedSecrets() }, 10*time.Second, 100*time.Millisecond).Should(Equal(0), "a deleted RedisConnection's Secrets go")
	})
})
