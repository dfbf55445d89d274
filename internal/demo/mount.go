package demo

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rconn-dev/redis-connection-operator/internal/testing/kubeletmount"
)

// Mount is a kubelet stand-in: it keeps a ConfigMap and a Secret written to two directories in
// kubelet's atomic layout (files are symlinks into "..data", which is swapped in one rename).
type Mount struct {
	ConfigDir, SecretDir string
	// Updates counts the writes after the first one.
	updates chan string
}

// Mount starts syncing ConfigMap and Secret `name` (in Namespace) into Dir/mount/<name>/{config,
// secret}, polling every 200ms like a very fast kubelet, until t's Cleanup. It returns after the
// first write of both (bounded by ctx).
func (w *World) Mount(t TB, ctx context.Context, name string) *Mount {
	t.Helper()
	base := filepath.Join(w.Dir, "mount", name)
	m := &Mount{ConfigDir: filepath.Join(base, "config"), SecretDir: filepath.Join(base, "secret"), updates: make(chan string, 64)}
	for _, d := range []string{m.ConfigDir, m.SecretDir} {
		if err := os.RemoveAll(d); err != nil {
			t.Fatalf("demo: %v", err)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("demo: %v", err)
		}
	}
	syncCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		defer close(done)
		var cmRV, secRV string
		reported := false
		for {
			cm, sec := &corev1.ConfigMap{}, &corev1.Secret{}
			key := client.ObjectKey{Namespace: Namespace, Name: name}
			errCM, errSec := w.Kube.Get(syncCtx, key, cm), w.Kube.Get(syncCtx, key, sec)
			var err error
			switch {
			case errCM != nil && !apierrors.IsNotFound(errCM):
				err = errCM
			case errSec != nil && !apierrors.IsNotFound(errSec):
				err = errSec
			case errCM == nil && errSec == nil:
				if cm.ResourceVersion != cmRV {
					files := map[string][]byte{}
					for k, v := range cm.Data {
						files[k] = []byte(v)
					}
					if err = kubeletmount.Write(m.ConfigDir, files, 0o644); err == nil {
						if cmRV != "" {
							m.notify("ConfigMap")
						}
						cmRV = cm.ResourceVersion
					}
				}
				if err == nil && sec.ResourceVersion != secRV {
					if err = kubeletmount.Write(m.SecretDir, sec.Data, 0o600); err == nil {
						if secRV != "" {
							m.notify("Secret")
						}
						secRV = sec.ResourceVersion
					}
				}
				if err == nil && !reported {
					reported = true
					first <- nil
				}
			}
			if err != nil && !reported && syncCtx.Err() == nil {
				reported = true
				first <- err
			}
			select {
			case <-syncCtx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case err := <-first:
		if err != nil {
			t.Fatalf("demo: mounting %s: %v", name, err)
		}
	case <-ctx.Done():
		t.Fatalf("demo: ConfigMap/Secret %s/%s never appeared", Namespace, name)
	}
	return m
}

func (m *Mount) notify(what string) {
	select {
	case m.updates <- what:
	default:
	}
}

// Updates delivers "ConfigMap" or "Secret" after each rewrite of a mount (after the first).
func (m *Mount) Updates() <-chan string { return m.updates }

// Build compiles the manager (the flags the Dockerfile uses) and the example app into dir and
// returns their paths.
func Build(root, dir string) (manager, app string, err error) {
	manager, app = filepath.Join(dir, "manager"), filepath.Join(dir, "example-app")
	for _, b := range []struct{ out, pkg string }{{manager, "."}, {app, "./examples/app"}} {
		cmd := exec.Command("go", "build", "-trimpath", "-o", b.out, b.pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("go build %s: %w\n%s", b.pkg, err, out)
		}
	}
	return manager, app, nil
}
