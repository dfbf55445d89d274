package helm

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
)

// make release writes what a release publishes, with the version everywhere: install.yaml with
// the pinned image and the generated RBAC, the chart package, a binary that says its version,
// and checksums that verify. A missing or malformed VERSION fails before anything is written.
func TestRelease(t *testing.T) {
	// A cold machine compiles the manager's packages here (about 5 minutes on 2 busy cores).
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	const version, repo = "v0.0.0-test.1", "registry.example.com/rconn-manager"
	dist := t.TempDir()
	env := []string{"RELEASE_ARCHES=" + runtime.GOARCH, "KUBECTL=" + kubectlBin()}
	if out, err := run(ctx, t, env, "make", "-s", "release", "VERSION="+version, "DIST="+dist, "IMAGE_REPO="+repo); err != nil {
		t.Fatalf("make release: %v\n%s", err, out)
	}
	image := repo + ":" + version

	t.Run("install.yaml: CRD, generated RBAC, the manager at the release's image", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(dist, "install.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		objs := kubetest.DecodeObjects(t, b)
		if find(objs, "CustomResourceDefinition", "", "redisconnections.rconn.dev") == nil {
			t.Error("no CRD")
		}
		u := find(objs, "Deployment", "rconn-system", "rconn-controller-manager")
		if u == nil {
			t.Fatal("no manager Deployment")
		}
		var d appsv1.Deployment
		kubetest.FromUnstructured(t, u, &d)
		if got := d.Spec.Template.Spec.Containers[0].Image; got != image {
			t.Errorf("image %q, want %q", got, image)
		}
		cr := find(objs, "ClusterRole", "", "rconn-manager-role")
		if cr == nil {
			t.Fatal("no ClusterRole rconn-manager-role")
		}
		var got, want rbacv1.ClusterRole
		kubetest.FromUnstructured(t, cr, &got)
		kubetest.FromUnstructured(t, kubetest.DecodeObjects(t, readFile(t, "config/rbac/role.yaml"))[0], &want)
		if kubetest.NormalizeRules(got.Rules) != kubetest.NormalizeRules(want.Rules) {
			t.Errorf("install.yaml's manager rules differ from config/rbac/role.yaml")
		}
	})

	t.Run("the chart package: version, appVersion and image of the release", func(t *testing.T) {
		tgz := filepath.Join(dist, "rconn-"+strings.TrimPrefix(version, "v")+".tgz")
		out, err := run(ctx, t, nil, helmBin(t), "show", "chart", tgz)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "\nversion: 0.0.0-test.1\n") || !strings.Contains(out, "\nappVersion: "+version+"\n") {
			t.Errorf("helm show chart:\n%s", out)
		}
		out, err = run(ctx, t, nil, helmBin(t), "template", "rconn", tgz)
		if err != nil {
			t.Fatal(err)
		}
		u := find(kubetest.DecodeObjects(t, []byte(out)), "Deployment", "default", "rconn-controller-manager")
		if u == nil {
			t.Fatal("the packaged chart renders no Deployment")
		}
		var d appsv1.Deployment
		kubetest.FromUnstructured(t, u, &d)
		if got := d.Spec.Template.Spec.Containers[0].Image; got != image {
			t.Errorf("packaged chart image %q, want %q", got, image)
		}
	})

	t.Run("the binary says its version; the checksums verify", func(t *testing.T) {
		out, err := run(ctx, t, nil, filepath.Join(dist, "manager-linux-"+runtime.GOARCH), "--version")
		if err != nil || !strings.HasPrefix(out, "manager "+version+" ") {
			t.Errorf("manager --version: %q (%v), want it to start with %q", out, err, "manager "+version)
		}
		cmd := []string{"-c", "cd " + dist + " && sha256sum -c SHA256SUMS"}
		if out, err := run(ctx, t, nil, "bash", cmd...); err != nil || strings.Count(out, ": OK") != 3 {
			t.Errorf("sha256sum -c: %v\n%s", err, out)
		}
	})

	t.Run("a missing or malformed VERSION fails", func(t *testing.T) {
		for args, want := range map[string]string{
			"":              "make release needs the version",
			"VERSION=1.2.3": "is not vX.Y.Z",
			"VERSION=v1.2":  "is not vX.Y.Z",
		} {
			bad := t.TempDir()
			cmd := []string{"-s", "release", "DIST=" + bad}
			if args != "" {
				cmd = append(cmd, args)
			}
			_, err := run(ctx, t, append(env, "VERSION="), "make", cmd...)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("make release %s: %v, want an error saying %q", args, err, want)
			}
			if entries, _ := os.ReadDir(bad); len(entries) != 0 {
				t.Errorf("make release %s wrote %d files", args, len(entries))
			}
		}
	})
}
