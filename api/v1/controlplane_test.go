package v1_test

import (
	"net"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
)

var _ = Describe("the test control plane", func() {
	It("hands out ClusterIPs on loopback only", func() {
		_, cidr, err := net.ParseCIDR(kubetest.ServiceCIDR)
		Expect(err).NotTo(HaveOccurred())
		Expect(cidr.IP.IsLoopback()).To(BeTrue())
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "cidr-check", Namespace: "default"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "redis", Port: 6379}}},
		}
		Expect(k8sClient.Create(ctx, svc)).To(Succeed())
		ip := net.ParseIP(svc.Spec.ClusterIP)
		Expect(ip).NotTo(BeNil(), "clusterIP %q", svc.Spec.ClusterIP)
		Expect(cidr.Contains(ip)).To(BeTrue(), "clusterIP %s outside %s", ip, cidr)
	})
})
