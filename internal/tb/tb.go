// Package tb holds the one interface the local world's helpers (internal/world/*,
// internal/testing/hostile, internal/demo) take from their caller: the part of testing.TB they use. A *testing.T, a
// *testing.B, GinkgoT() and the demo's runner all satisfy it.
package tb

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
)

// TB is what the helpers need from a test, a benchmark or the demo's runner.
type TB interface {
	Helper()
	Cleanup(func())
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
	TempDir() string
}

// Integration skips the calling test when the test binary runs with -short (make test-unit):
// what follows needs a real process (redis-server, kube-apiserver, a build, node, root). It does
// nothing outside tests (the demo's runner) and when -short is not set (make test).
func Integration(t TB, needs string) {
	if !testing.Testing() || !testing.Short() {
		return
	}
	t.Helper()
	if s, ok := t.(interface{ Skip(args ...any) }); ok {
		s.Skip("make test-unit (-short) skips what needs " + needs)
	}
}

// SkipPackage ends a test binary at once (exit 0) when it runs with -short: call it from the
// TestMain of a package whose every test needs real processes, before any setup.
func SkipPackage(needs string) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("make test-unit (-short) skips this package: it needs " + needs)
		os.Exit(0)
	}
}

// WideParallel sets go test's -parallel to twice GOMAXPROCS (its default is GOMAXPROCS) unless
// the command line set it: call it from the TestMain of a package whose t.Parallel tests each
// own a world (servers, proxies) and mostly wait on it, before m.Run. make test cannot pass
// -parallel to every package: Ginkgo fails its suites (api/v1, controllers) when it is set.
// pkg/proxy took 95 s at the default and 58 s at twice it (2 cores).
func WideParallel() {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", strconv.Itoa(2*runtime.GOMAXPROCS(0)))
	}
}
