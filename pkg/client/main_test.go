package client_test

import (
	"testing"

	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
)

// TestMain fails the package if any test attempted a DNS query.
func TestMain(m *testing.M) { nettest.RunWithoutDNS(m) }
