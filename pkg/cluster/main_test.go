package cluster_test

import (
	"testing"

	"github.com/rconn-dev/redis-connection-operator/internal/tb"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
)

// TestMain fails the package if any test attempted a DNS query: tests dial loopback through
// the recording base dialer and never resolve a name (announced .invalid names least of all).
func TestMain(m *testing.M) {
	tb.WideParallel() // the t.Parallel tests each own their servers and mostly wait
	nettest.RunWithoutDNS(m)
}
