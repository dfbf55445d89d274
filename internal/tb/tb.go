// Package tb holds the one interface the local world's helpers (internal/world/*,
// internal/testing/hostile, internal/demo) take from their caller: the part of testing.TB they use. A *testing.T, a
// *testing.B, GinkgoT() and the demo's runner all satisfy it.
package tb

// TB is what the helpers need from a test, a benchmark or the demo's runner.
type TB interface {
	Helper()
	Cleanup(func())
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
	TempDir() string
}
