// Package kubetest starts the envtest control plane (a real kube-apiserver + etcd) the way
// every rconn test needs it: the Service CIDR inside loopback (envtest's default 10.0.0.0/24 is
// a private range nothing here may dial), the RedisConnection CRD installed, and the binaries
// from bin/k8s (hack/envtest-assets.sh, `make envtest`) unless KUBEBUILDER_ASSETS says otherwise.
package kubetest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
)

// ServiceCIDR is the Service IP range of the test API server: loopback, so a ClusterIP a test
// dials is always on this machine.
const ServiceCIDR = "127.1.0.0/16"

// RepoRoot finds the directory holding go.mod, starting from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Scheme has the built-in types and rconn.dev/v1.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := rconnv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// NewEnvironment returns an envtest.Environment configured for rconn; call Start on it and Stop
// when done.
func NewEnvironment() (*envtest.Environment, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin", "k8s")
	}
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		return nil, fmt.Errorf("no kube-apiserver in %s: run `make envtest` (hack/envtest-assets.sh)", assets)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                Scheme(),
	}
	api := env.ControlPlane.GetAPIServer()
	// The advertise address would otherwise be this host's first non-loopback IP, published as
	// the endpoint of the "kubernetes" Service. The endpoint reconciler refuses loopback, so it is
	// off: no test uses that Service.
	api.Configure().
		Set("service-cluster-ip-range", ServiceCIDR).
		Set("advertise-address", "127.0.0.1").
		Set("endpoint-reconciler-type", "none")
	// envtest starts both processes in their own process group and stops them only from Stop:
	// a test binary killed by its timeout (or SIGKILL) left them running. Started through
	// setpriv --pdeathsig, they die with the process that started them.
	if api.Path, err = dieWithParent(filepath.Join(assets, "kube-apiserver")); err != nil {
		return nil, err
	}
	env.ControlPlane.Etcd = &envtest.Etcd{}
	if env.ControlPlane.Etcd.Path, err = dieWithParent(filepath.Join(assets, "etcd")); err != nil {
		return nil, err
	}
	return env, nil
}

// dieWithParent returns the path of a launcher that runs bin with SIGKILL as its parent-death
// signal (util-linux setpriv; the signal survives the exec), written once into the user cache
// directory. Without setpriv it returns bin itself. (The signal follows the thread that forked:
// Go ends a thread only when a goroutine locked to it exits, and nothing here uses LockOSThread.)
func dieWithParent(bin string) (string, error) {
	setpriv, lookErr := exec.LookPath("setpriv")
	if lookErr != nil {
		return bin, nil // no setpriv (not util-linux): start bin as it is
	}
	target, err := filepath.EvalSymlinks(bin)
	if err != nil {
		return "", fmt.Errorf("%s: %w", bin, err)
	}
	script := fmt.Sprintf("#!/bin/sh\n# Written by internal/world/kubetest: %s dies with its parent.\nexec '%s' --pdeathsig KILL -- '%s' \"$@\"\n", filepath.Base(bin), setpriv, target)
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(script))
	dir := filepath.Join(cache, "rconn", "pdeathsig", hex.EncodeToString(sum[:8]))
	path := filepath.Join(dir, filepath.Base(bin))
	if b, err := os.ReadFile(path); err == nil && string(b) == script {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Written under a unique name and renamed: test binaries of several packages start at once.
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	if err := os.WriteFile(tmp, []byte(script), 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	return path, nil
}
