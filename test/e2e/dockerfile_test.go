package e2e

import (
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
)

// dockerStage is one FROM ... [AS name] stage of the Dockerfile, as written.
type dockerStage struct {
	from, name string
	lines      []string // the instructions after FROM, comments and blank lines dropped
}

func dockerStages(t *testing.T, root string) []*dockerStage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var stages []*dockerStage
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if f[0] == "FROM" {
			s := &dockerStage{from: f[1]}
			if len(f) == 4 && strings.EqualFold(f[2], "AS") {
				s.name = f[3]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			continue // ARG before the first FROM
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, strings.TrimSpace(line))
	}
	if len(stages) == 0 {
		t.Fatal("the Dockerfile has no FROM")
	}
	return stages
}

// builds are a stage's RUN ... go build commands.
func (s *dockerStage) builds() []string {
	var out []string
	for _, l := range s.lines {
		if strings.HasPrefix(l, "RUN ") && strings.Contains(l, "go build") {
			out = append(out, strings.TrimSpace(strings.TrimPrefix(l, "RUN")))
		}
	}
	return out
}

// No container engine runs here, so this replays the Dockerfile without one: the builder stage
// gets only what its COPY lines bring into /workspace, then each go-build stage's RUN go build
// line runs as written (the builder's for the manager, `proxy-builder`'s for rconn-proxy), and
// each image stage (the default last one, and `--target proxy`) must copy a static binary the
// builds produced and run it as its ENTRYPOINT. A source directory the image forgets to copy, a
// stage copying a file no build wrote, fails here, not at release time.
func TestDockerfileBuildStep(t *testing.T) {
	t.Parallel() // its own control plane, processes and addresses: overlaps the other e2e tests' waits
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	stages := dockerStages(t, root)
	byName := map[string]*dockerStage{}
	for _, s := range stages {
		if s.name != "" {
			byName[s.name] = s
		}
	}
	builder := stages[0]
	work := t.TempDir()
	for _, l := range builder.lines {
		f := strings.Fields(l)
		if f[0] != "COPY" || strings.HasPrefix(f[1], "--") {
			continue
		}
		if len(f) != 3 {
			t.Fatalf("unexpected COPY line: %s", l)
		}
		cp := exec.Command("cp", "-r", filepath.Join(root, f[1]), filepath.Join(work, f[2]))
		if out, err := cp.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", l, err, out)
		}
	}
	run := func(t *testing.T, build string) {
		t.Helper()
		cmd := exec.Command("bash", "-c", build)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "TARGETOS=linux", "TARGETARCH="+runtime.GOARCH)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s (with only the Dockerfile's COPY lines): %v\n%s", build, err, out)
		}
	}
	if len(builder.builds()) == 0 {
		t.Fatal("no RUN ... go build line in the Dockerfile's builder stage")
	}
	for _, b := range builder.builds() {
		run(t, b)
	}

	// image checks an image stage: its COPY --from=<a stage FROM the builder> brings a static
	// binary the replayed builds wrote, and its ENTRYPOINT runs that binary.
	image := func(t *testing.T, s *dockerStage, wantBinary string) {
		var copied, entry string
		for _, l := range s.lines {
			f := strings.Fields(l)
			switch {
			case f[0] == "COPY" && strings.HasPrefix(f[1], "--from="):
				if len(f) != 4 {
					t.Fatalf("unexpected COPY line: %s", l)
				}
				from := byName[strings.TrimPrefix(f[1], "--from=")]
				if from == nil || (from != builder && from.from != builder.name) {
					t.Fatalf("%s: not a stage built on the builder", l)
				}
				if from != builder {
					for _, b := range from.builds() {
						run(t, b)
					}
				}
				copied = strings.TrimPrefix(f[2], "/workspace/")
			case f[0] == "ENTRYPOINT":
				var argv []string
				if err := json.Unmarshal([]byte(strings.TrimSpace(strings.TrimPrefix(l, "ENTRYPOINT"))), &argv); err != nil || len(argv) == 0 {
					t.Fatalf("ENTRYPOINT is not an exec-form array: %s", l)
				}
				entry = argv[0]
			}
		}
		if copied != wantBinary || entry != "/"+path.Base(copied) {
			t.Fatalf("stage %q copies %q and runs %q, want %s and /%s", s.name, copied, entry, wantBinary, wantBinary)
		}
		bin, err := elf.Open(filepath.Join(work, copied))
		if err != nil {
			t.Fatalf("stage %q copies %s, which no build wrote: %v", s.name, copied, err)
		}
		defer func() { _ = bin.Close() }()
		for _, p := range bin.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked: distroless/static has no libc", copied)
			}
		}
	}
	t.Run("manager (the default target)", func(t *testing.T) { image(t, stages[len(stages)-1], "manager") })
	t.Run("rconn-proxy (--target proxy)", func(t *testing.T) {
		s := byName["proxy"]
		if s == nil {
			t.Fatal("the Dockerfile has no proxy stage")
		}
		image(t, s, "rconn-proxy")
	})
}
