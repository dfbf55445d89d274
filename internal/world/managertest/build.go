package managertest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"github.com/rconn-dev/redis-connection-operator/internal/tb"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
)

// Building the manager binary: at the working tree, or at a git revision (for baselines).

var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Build compiles the repository's main package (CGO_ENABLED=0 -trimpath: the flags of make
// build, make release and the demo, so all of them share one set of compiled packages) into a
// temporary directory, once per test process, and returns the binary's path. The directory is
// removed by RemoveBuild (call it from TestMain after m.Run if you want it gone; it lives under
// os.TempDir otherwise).
func Build(t TB) string {
	tb.Integration(t, "a go build of the manager")
	t.Helper()
	build.once.Do(func() {
		root, err := kubetest.RepoRoot()
		if err != nil {
			build.err = err
			return
		}
		dir, err := os.MkdirTemp("", "rconn-managertest-")
		if err != nil {
			build.err = err
			return
		}
		build.dir = dir
		out := filepath.Join(dir, "manager")
		cmd := exec.Command(goTool(), "build", "-trimpath", "-o", out, ".")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build of the manager failed: %w\n%s", err, b)
			return
		}
		build.path = out
	})
	if build.err != nil {
		t.Fatalf("managertest: %v", build.err)
	}
	return build.path
}

var revisions struct {
	mu    sync.Mutex
	paths map[string]string
	dirs  []string
}

// BuildRevision compiles the manager as it was at a git revision of this repository (git
// archive into a temporary directory, then go build with the module cache), once per revision
// per test process: a baseline to run side by side with Build's. RemoveBuild deletes it too.
func BuildRevision(t TB, rev string) string {
	tb.Integration(t, "a go build of the manager")
	t.Helper()
	revisions.mu.Lock()
	defer revisions.mu.Unlock()
	if p, ok := revisions.paths[rev]; ok {
		return p
	}
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatalf("managertest: %v", err)
	}
	dir, err := os.MkdirTemp("", "rconn-managertest-rev-")
	if err != nil {
		t.Fatalf("managertest: %v", err)
	}
	revisions.dirs = append(revisions.dirs, dir)
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatalf("managertest: %v", err)
	}
	archive := exec.Command("git", "-C", root, "archive", "--format=tar", rev)
	untar := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		t.Fatalf("managertest: %v", err)
	}
	untar.Stdin = pipe
	var archErr bytes.Buffer
	archive.Stderr = &archErr
	if err := untar.Start(); err != nil {
		t.Fatalf("managertest: tar: %v", err)
	}
	if err := archive.Run(); err != nil {
		_ = untar.Wait()
		t.Fatalf("managertest: git archive %s: %v: %s", rev, err, archErr.String())
	}
	if err := untar.Wait(); err != nil {
		t.Fatalf("managertest: tar: %v", err)
	}
	out := filepath.Join(dir, "manager")
	cmd := exec.Command(goTool(), "build", "-trimpath", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("managertest: go build of the manager at %s failed: %v\n%s", rev, err, b)
	}
	if revisions.paths == nil {
		revisions.paths = map[string]string{}
	}
	revisions.paths[rev] = out
	return out
}

// RemoveBuild deletes the directories Build and BuildRevision compiled into.
func RemoveBuild() {
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
	revisions.mu.Lock()
	defer revisions.mu.Unlock()
	for _, d := range revisions.dirs {
		_ = os.RemoveAll(d)
	}
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if p := filepath.Join(os.Getenv("GOROOT"), "bin", "go"); os.Getenv("GOROOT") != "" {
		return p
	}
	return "/usr/local/go/bin/go"
}
