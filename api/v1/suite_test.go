package v1_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/rconn-dev/redis-connection-operator/internal/tb"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
)

var (
	env        *envtest.Environment
	k8sClient  client.Client
	ctx        context.Context
	kubeconfig string
)

// kubectl runs the kubectl that `make envtest` linked into the assets directory as the admin.
func kubectl(args ...string) *exec.Cmd {
	return exec.Command(filepath.Join(env.BinaryAssetsDirectory, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
}

func TestAPI(t *testing.T) {
	tb.Integration(t, "kube-apiserver (envtest)")
	RegisterFailHandler(Fail)
	RunSpecs(t, "RedisConnection API validation (envtest)")
}

var _ = BeforeSuite(func() {
	ctx = context.Background()
	var err error
	env, err = kubetest.NewEnvironment()
	Expect(err).NotTo(HaveOccurred())
	cfg, err := env.Start()
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(env.Stop)
	k8sClient, err = client.New(cfg, client.Options{Scheme: kubetest.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	admin, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	Expect(err).NotTo(HaveOccurred())
	kc, err := admin.KubeConfig()
	Expect(err).NotTo(HaveOccurred())
	kubeconfig = filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(os.WriteFile(kubeconfig, kc, 0o600)).To(Succeed())
	// Every spec runs with the shipped admission policy enforced, as a deployment has it.
	installAdmissionPolicy()
})
