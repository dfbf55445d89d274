package managertest

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestLoopbackArgsFollowTheBinary: a manager that has --allow-loopback gets it (its tests' Redis
// servers are on loopback, denied by default); a baseline built before the flag existed does not
// (it would refuse to start on an unknown flag). Stand-in binaries print the two -help texts.
func TestLoopbackArgsFollowTheBinary(t *testing.T) {
	dir := t.TempDir()
	script := func(name, help string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\ncat >&2 <<'EOF'\n"+help+"\nEOF\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	current := script("current", "Usage of manager:\n  -allow-cidrs string\n  -allow-loopback\n    \tLet the controller dial loopback")
	old := script("old", "Usage of manager:\n  -allow-cidrs string\n  -deny-cidrs string")
	if got := loopbackArgs(current); !slices.Equal(got, []string{"--allow-loopback"}) {
		t.Errorf("current binary: %v", got)
	}
	if got := loopbackArgs(old); len(got) != 0 {
		t.Errorf("baseline binary: %v", got)
	}
	if got := loopbackArgs(filepath.Join(dir, "missing")); len(got) != 0 {
		t.Errorf("missing binary: %v", got)
	}
}
