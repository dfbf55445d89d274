// Package helm tests what ships besides the binary: the Helm chart (lint, template, RBAC against
// controller-gen's, bad values, an install against a real API server with the manager running
// from the installed objects), the alert rules (promtool), the dashboard (every metric it reads
// exists in what the manager exports) and `make release`.
//
// helm is bin/helm (make helm, hack/helm-assets.sh), promtool Debian's (make deps).
package helm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/rconn-dev/redis-connection-operator/internal/tb"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
)

func TestMain(m *testing.M) {
	tb.SkipPackage("helm, kube-apiserver and redis-server")
	ctrllog.SetLogger(logr.Discard())
	nettest.RunWithoutDNS(m)
}

const chartDir = "charts/rconn"

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// helmBin is bin/helm; the test fails (never skips) without it.
func helmBin(t *testing.T) string {
	t.Helper()
	p := filepath.Join(repoRoot(t), "bin", "helm")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no %s: run `make helm` (hack/helm-assets.sh builds the pinned helm)", p)
	}
	return p
}

func kubectlBin() string {
	if a := os.Getenv("KUBEBUILDER_ASSETS"); a != "" {
		if _, err := os.Stat(filepath.Join(a, "kubectl")); err == nil {
			return filepath.Join(a, "kubectl")
		}
	}
	return "kubectl"
}

// run runs a command in the repository root and returns stdout; stderr goes into the error.
func run(ctx context.Context, t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = errors.New(strings.TrimSpace(stderr.String()) + " (" + err.Error() + ")")
	}
	return stdout.String(), err
}

// helmTemplate renders the chart with a release "rconn" in rconn-system plus args.
func helmTemplate(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := run(context.Background(), t, nil, helmBin(t), append([]string{"template", "rconn", chartDir, "-n", "rconn-system"}, args...)...)
	if err != nil {
		t.Fatalf("helm template %v: %v", args, err)
	}
	return kubetest.DecodeObjects(t, []byte(out))
}

func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	out, err := run(context.Background(), t, nil, kubectlBin(), "kustomize", dir)
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v", dir, err)
	}
	return kubetest.DecodeObjects(t, []byte(out))
}

func find(objs []*unstructured.Unstructured, kind, namespace, name string) *unstructured.Unstructured {
	for _, u := range objs {
		if u.GetKind() == kind && u.GetNamespace() == namespace && u.GetName() == name {
			return u
		}
	}
	return nil
}

// rbacObjects maps "Kind namespace/name" to the normalized rules of every Role and ClusterRole.
func rbacObjects(t *testing.T, objs []*unstructured.Unstructured) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, u := range objs {
		switch u.GetKind() {
		case "Role", "ClusterRole":
			var r rbacv1.ClusterRole // same shape for Role
			kubetest.FromUnstructured(t, u, &r)
			out[u.GetKind()+" "+u.GetNamespace()+"/"+u.GetName()] = kubetest.NormalizeRules(r.Rules)
		}
	}
	return out
}

// bindings maps "Kind namespace/name" of every (Cluster)RoleBinding to "roleKind roleName ->
// subjects".
func bindings(t *testing.T, objs []*unstructured.Unstructured) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, u := range objs {
		switch u.GetKind() {
		case "RoleBinding", "ClusterRoleBinding":
			var b rbacv1.ClusterRoleBinding
			kubetest.FromUnstructured(t, u, &b)
			var subj []string
			for _, s := range b.Subjects {
				subj = append(subj, s.Kind+" "+s.Namespace+"/"+s.Name)
			}
			sort.Strings(subj)
			out[u.GetKind()+" "+u.GetNamespace()+"/"+u.GetName()] = b.RoleRef.Kind + " " + b.RoleRef.Name + " -> " + strings.Join(subj, ",")
		}
	}
	return out
}
