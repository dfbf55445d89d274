// Package managertest builds the repository's manager binary and runs it as a separate process
// against a test API server (envtest), the way a user runs it: its RSS, goroutines, metrics and
// log are observed from outside. Every process it starts is stopped by the test that started it
// (t.Cleanup: SIGTERM, then SIGKILL after 10s, by PID).
//
//	bin := managertest.Build(t)            // once per test process
//	kc := managertest.Kubeconfig(t, env)   // a system:masters user of the envtest API server
//	m := managertest.Start(t, kc, "--max-concurrent-reconciles=8")
//	mfs, err := m.Metrics()
//
// The manager dials what RedisConnections name; tests name loopback IP literals only. The
// manager denies loopback by default, so every manager started here gets --allow-loopback
// (when its binary has the flag); pass "--allow-loopback=false" to test the default.
package managertest

import (
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/tb"
)

// TB is internal/tb's: the one interface every local-world helper takes.
type TB = tb.TB

// StopGrace is how long Stop waits after SIGTERM before SIGKILL.
const StopGrace = 10 * time.Second

// ReadyTimeout bounds how long Start waits for /readyz.
var ReadyTimeout = 60 * time.Second
