package e2e

import (
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
)

// ownControlPlane starts a kube-apiserver + etcd (with the CRD) for one test, stopped when the
// test ends, and returns the repository root, the environment and an admin client.
func ownControlPlane(t *testing.T) (root string, env *envtest.Environment, admin client.Client) {
	t.Helper()
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	env, err = kubetest.NewEnvironment()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting the control plane: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	admin, err = client.New(cfg, client.Options{Scheme: kubetest.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return root, env, admin
}
