package controllers_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/world/certs"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
)

func eventReasons(ns string) []string {
	var evs corev1.EventList
	_ = k8s.List(ctx, &evs, client.InNamespace(ns))
	var out []string
	for _, e := range evs.Items {
		out = append(out, e.Type+"/"+e.Reason)
	}
	return out
}

var _ = Describe("TLS with mutual auth", func() {
	It("renders certificates into the Secret only, warns before expiry and reports an expired certificate", func() {
		ns := newNamespace()
		m := redistest.NewTLS(GinkgoT(), redistest.TLSOptions{})
		s := redistest.StartServer(GinkgoT(), redistest.ServerOptions{TLS: m})
		soon, err := m.CA.Issue(certs.Request{CommonName: "app", Client: true, NotAfter: time.Now().Add(7 * 24 * time.Hour)})
		Expect(err).NotTo(HaveOccurred())
		Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "redis-tls", Namespace: ns}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"ca.crt": m.CA.CertPEM, "tls.crt": soon.CertPEM, "tls.key": soon.KeyPEM}})).To(Succeed())
		Expect(k8s.Create(ctx, &rconnv1.RedisConnection{
			ObjectMeta: metav1.ObjectMeta{Name: "tls", Namespace: ns},
			Spec: rconnv1.RedisConnectionSpec{
				Mode:      rconnv1.ModeStandalone,
				RootNodes: []rconnv1.RootNode{{URL: rconnv1.RedisURL("rediss://" + s.Addr())}},
				Defaults:  &rconnv1.NodeDefaults{TLS: &rconnv1.TLSConfig{Enabled: true, SecretRef: &rconnv1.LocalSecretReference{Name: "redis-tls"}}},
				Output:    &rconnv1.Output{SecretName: "tls-binding", ConfigMapName: "tls-config"},
			},
		})).To(Succeed())
		eventuallyCondition(ns, "tls", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
		Eventually(func() []string { return eventReasons(ns) }, 30*time.Second, 200*time.Millisecond).Should(ContainElement("Warning/CertificateExpiringSoon"))

		cm, sec := &corev1.ConfigMap{}, &corev1.Secret{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "tls-config"}, cm)).To(Succeed())
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "tls-binding"}, sec)).To(Succeed())
		Expect(cm.Data[pkgclient.ConfigFileName]).To(ContainSubstring(`"tls": true`))
		Expect(cm.Data[pkgclient.ConfigFileName]).NotTo(ContainSubstring("BEGIN"), "no key material in the ConfigMap")
		Expect(sec.Data["tls.crt"]).To(Equal(soon.CertPEM))
		Expect(sec.Data["tls.key"]).To(Equal(soon.KeyPEM))
		Expect(sec.Data["ca.crt"]).To(Equal(m.CA.CertPEM))
		Expect(string(sec.Data["ssl"])).To(Equal("true"))
		Expect(get(ns, "tls").Status.Binding.Name).To(Equal("tls-binding"))

		expired, err := m.CA.Issue(certs.Request{CommonName: "app", Client: true, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
		Expect(err).NotTo(HaveOccurred())
		src := &corev1.Secret{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "redis-tls"}, src)).To(Succeed())
		src.Data["tls.crt"], src.Data["tls.key"] = expired.CertPEM, expired.KeyPEM
		Expect(k8s.Update(ctx, src)).To(Succeed())
		eventuallyCondition(ns, "tls", rconnv1.ConditionCredentialsResolved, metav1.ConditionFalse, rconnv1.ReasonCertificateExpired)
		Expect(condition(ns, "tls", rconnv1.ConditionCredentialsResolved).Message).To(ContainSubstring("expired"))
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "tls-binding"}, sec)).To(Succeed())
		Expect(sec.Data["tls.crt"]).To(Equal(soon.CertPEM), "the previous good output is kept")
	})
})
