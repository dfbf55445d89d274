package demo

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDemoDependsOnNoTestHelper keeps `make demo` (hack/demo) free of this repository's test
// helpers: the local world it runs lives in internal/world and internal/demo; internal/testing
// holds what only tests use.
func TestDemoDependsOnNoTestHelper(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/rconn-dev/redis-connection-operator/hack/demo").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const helpers = "github.com/rconn-dev/redis-connection-operator/internal/testing/"
	n := 0
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/rconn-dev/redis-connection-operator/") {
			n++
		}
		if strings.HasPrefix(p, helpers) {
			t.Errorf("hack/demo depends on the test helper %s", p)
		}
	}
	if n < 5 {
		t.Fatalf("go list found only %d of this repository's packages: the check is broken\n%s", n, out)
	}
}
