package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// Apps that mount the outputs must not link client-go: pkg/client depends on no k8s.io module
// (the API source is the separate package kubesource).
func TestNoKubernetesDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/rconn-dev/redis-connection-operator/pkg/client").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "k8s.io/") || strings.HasPrefix(dep, "sigs.k8s.io/") {
			t.Errorf("pkg/client depends on %s", dep)
		}
	}
}
