package v1_test

import (
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
)

var _ = Describe("config/samples", func() {
	It("are all accepted by the API server, so the docs never show an invalid object", func() {
		root, err := kubetest.RepoRoot()
		Expect(err).NotTo(HaveOccurred())
		files, err := filepath.Glob(filepath.Join(root, "config", "samples", "rconn_v1_*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(len(files)).To(BeNumerically(">=", 5))
		for _, f := range files {
			raw, err := os.ReadFile(f)
			Expect(err).NotTo(HaveOccurred())
			rc := &rconnv1.RedisConnection{}
			Expect(yaml.UnmarshalStrict(raw, rc)).To(Succeed(), f)
			rc.Namespace = "default"
			Expect(k8sClient.Create(ctx, rc)).To(Succeed(), f)
			// Two samples may share a name (the demo's PodDNS and LoadBalancer variants).
			Expect(k8sClient.Delete(ctx, rc)).To(Succeed(), f)
		}
	})

	It("are all accepted by kubectl apply as an admin, with the admission policy enforced", func() {
		// The suite installed config/admission; an admin may get every Secret a sample names.
		ns := createNamespace("samples")
		root, err := kubetest.RepoRoot()
		Expect(err).NotTo(HaveOccurred())
		files, err := filepath.Glob(filepath.Join(root, "config", "samples", "rconn_v1_*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(len(files)).To(BeNumerically(">=", 5))
		for _, f := range files {
			out, err := kubectl("apply", "-n", ns, "-f", f).CombinedOutput()
			Expect(err).NotTo(HaveOccurred(), "%s: %s", f, out)
		}
	})
})
