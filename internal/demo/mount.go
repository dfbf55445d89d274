package demo

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rconn-dev/redis-connection-operator/internal/world/kubeletmount"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// Kubelet's volume semantics, which the Mount below reproduces. A running pod's ConfigMap and
// Secret volumes are rewritten only when kubelet syncs the pod: every --sync-frequency
// (KubeletSyncPeriod, default 1m), the pod worker requeued with wait.Jitter(period, 0.5), so
// each sync comes 60-90 s after the previous one. The content comes from the Watch-based cache
// (the default configMapAndSecretChangeDetectionStrategy), so it is current at each sync; a
// ConfigMap change therefore lands in the pod after a delay anywhere between 0 and ~90 s
// ("the kubelet sync period + cache propagation delay", as the ConfigMap docs put it). At pod
// start the volumes are written before the containers run.
const (
	// KubeletSyncPeriod is kubelet's default --sync-frequency.
	KubeletSyncPeriod = time.Minute
	// KubeletSyncJitter is kubelet's workerResyncIntervalJitterFactor.
	KubeletSyncJitter = 0.5
)

// MountOptions configure a kubelet stand-in.
type MountOptions struct {
	// SyncPeriod is the stand-in's --sync-frequency (0: KubeletSyncPeriod, the real default).
	// Each sync comes SyncPeriod..1.5*SyncPeriod after the previous one.
	SyncPeriod time.Duration
	// ConfigFilter, when set, rewrites each ConfigMap file before it is written (a benchmark's
	// "client that ignores a field"). The Secret's config.sha256 is then rebound to the
	// rewritten config.json (rebinder), so the client accepts what stands in for the pair.
	ConfigFilter func(key string, data []byte) []byte
}

// rebinder maps the digest of each config.json a ConfigFilter rewrote to the digest of what it
// wrote, for the Secret of the same pair (kept for the last few: a Secret follows its
// config.json within a sync or two).
type rebinder struct{ from, to []string }

func (r *rebinder) add(orig, filtered []byte) {
	r.from = append(r.from, pkgclient.ConfigDigest(orig))
	r.to = append(r.to, pkgclient.ConfigDigest(filtered))
	if over := len(r.from) - 8; over > 0 {
		r.from, r.to = r.from[over:], r.to[over:]
	}
}

// rebind returns the Secret's data with its digest replaced, when it is one the filter rewrote.
func (r *rebinder) rebind(data map[string][]byte) map[string][]byte {
	have := string(data[pkgclient.SecretKeyConfigDigest])
	for i, d := range r.from {
		if d == have {
			out := maps.Clone(data)
			out[pkgclient.SecretKeyConfigDigest] = []byte(r.to[i])
			return out
		}
	}
	return data
}

// Mount is a kubelet stand-in: it keeps a ConfigMap and a Secret written to two directories in
// kubelet's atomic layout (files are symlinks into "..data", which is swapped in one rename).
type Mount struct {
	ConfigDir, SecretDir string
	// SyncPeriod is the period in use.
	SyncPeriod time.Duration
	// Updates counts the writes after the first one.
	updates chan string
}

// Mount syncs ConfigMap and Secret `name` of Namespace into Dir/mount/<name>/{config,secret}
// with a 200 ms sync period (a very fast kubelet: the e2e tests' setting), until t's Cleanup.
func (w *World) Mount(t TB, ctx context.Context, name string) *Mount {
	t.Helper()
	return StartMount(t, ctx, w.Kube, Namespace, name, filepath.Join(w.Dir, "mount", name), MountOptions{SyncPeriod: 200 * time.Millisecond})
}

// StartMount starts syncing ConfigMap and Secret namespace/name into base/{config,secret} with
// kubelet's semantics (see KubeletSyncPeriod), until t's Cleanup. It returns after the first
// write of both (the pod's start; bounded by ctx).
func StartMount(t TB, ctx context.Context, kube client.Reader, namespace, name, base string, o MountOptions) *Mount {
	t.Helper()
	if o.SyncPeriod <= 0 {
		o.SyncPeriod = KubeletSyncPeriod
	}
	m := &Mount{ConfigDir: filepath.Join(base, "config"), SecretDir: filepath.Join(base, "secret"), SyncPeriod: o.SyncPeriod, updates: make(chan string, 64)}
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
		var rb rebinder
		reported := false
		for {
			cm, sec := &corev1.ConfigMap{}, &corev1.Secret{}
			key := client.ObjectKey{Namespace: namespace, Name: name}
			errCM, errSec := kube.Get(syncCtx, key, cm), kube.Get(syncCtx, key, sec)
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
						if o.ConfigFilter != nil {
							files[k] = o.ConfigFilter(k, files[k])
							rb.add([]byte(v), files[k])
						}
					}
					if err = kubeletmount.Write(m.ConfigDir, files, 0o644); err == nil {
						if cmRV != "" {
							m.notify("ConfigMap")
						}
						cmRV = cm.ResourceVersion
					}
				}
				if err == nil && sec.ResourceVersion != secRV {
					if err = kubeletmount.Write(m.SecretDir, rb.rebind(sec.Data), 0o600); err == nil {
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
			case <-time.After(m.nextSync(reported)):
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
		t.Fatalf("demo: ConfigMap/Secret %s/%s never appeared", namespace, name)
	}
	return m
}

// nextSync is the wait before the next sync: 200 ms while the pod waits for its volumes to
// exist, then kubelet's jittered period.
func (m *Mount) nextSync(started bool) time.Duration {
	if !started {
		return 200 * time.Millisecond
	}
	return m.SyncPeriod + time.Duration(rand.Float64()*KubeletSyncJitter*float64(m.SyncPeriod))
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
