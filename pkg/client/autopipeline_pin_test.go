package client_test

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const goRedisModule = "github.com/redis/go-redis/v9"

// goRedisVersions returns the go-redis version that the go.mod in dir requires and the one its
// build list selects.
func goRedisVersions(t *testing.T, dir string) (required, selected string) {
	t.Helper()
	cmd := exec.Command("go", "mod", "edit", "-json")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod edit -json in %s: %v", dir, err)
	}
	var mod struct {
		Require []struct{ Path, Version string }
	}
	if err := json.Unmarshal(out, &mod); err != nil {
		t.Fatal(err)
	}
	for _, r := range mod.Require {
		if r.Path == goRedisModule {
			required = r.Version
		}
	}
	cmd = exec.Command("go", "list", "-m", "-f", "{{.Version}}", goRedisModule)
	cmd.Dir = dir
	if out, err = cmd.CombinedOutput(); err != nil {
		t.Fatalf("go list -m %s in %s: %v\n%s", goRedisModule, dir, err, out)
	}
	return required, strings.TrimSpace(string(out))
}

// go-redis is pinned exactly, the same in the module and in bench/ (whose figures compare
// against it): autoPipeline relies on its documented hook semantics only (autopipeline.go),
// but a version change must be a deliberate edit of both go.mod files, re-tested and
// re-measured, never something a dependency drags in.
func TestGoRedisPinned(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	req, sel := goRedisVersions(t, root)
	if req == "" || req != sel {
		t.Fatalf("go.mod requires go-redis %q but the build selects %q", req, sel)
	}
	breq, bsel := goRedisVersions(t, filepath.Join(root, "bench"))
	if breq != req || bsel != req {
		t.Fatalf("bench/go.mod requires go-redis %q and selects %q; the module pins %q", breq, bsel, req)
	}
}
