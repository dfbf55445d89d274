package e2e

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/rconn-dev/redis-connection-operator/internal/testing/kubetest"
)

// No container engine runs here, so this replays the Dockerfile's builder stage without one:
// only what its COPY lines bring into /workspace, then its RUN go build line as written. A
// source directory the image forgets to copy fails here, not at release time.
func TestDockerfileBuildStep(t *testing.T) {
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	var build string
	stages := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "FROM":
			stages++
		case "COPY":
			if stages != 1 || strings.HasPrefix(f[1], "--") {
				continue
			}
			if len(f) != 3 {
				t.Fatalf("unexpected COPY line: %s", line)
			}
			cp := exec.Command("cp", "-r", filepath.Join(root, f[1]), filepath.Join(work, f[2]))
			if out, err := cp.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", line, err, out)
			}
		case "RUN":
			if stages == 1 && strings.Contains(line, "go build") {
				build = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "RUN"))
			}
		}
	}
	if build == "" {
		t.Fatal("no RUN ... go build line in the Dockerfile's builder stage")
	}
	cmd := exec.Command("bash", "-c", build)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "TARGETOS=linux", "TARGETARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s (with only the Dockerfile's COPY lines): %v\n%s", build, err, out)
	}
	bin, err := elf.Open(filepath.Join(work, "manager"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bin.Close() }()
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the manager is dynamically linked: distroless/static has no libc")
		}
	}
}
