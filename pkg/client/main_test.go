package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
)

// TestMain makes every DNS query in this package fail and be recorded, then fails the run if
// any was attempted: tests must dial loopback through the recording base dialer and never
// resolve a name (announced .invalid names least of all).
func TestMain(m *testing.M) {
	var mu sync.Mutex
	var queries []string
	net.DefaultResolver = &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			mu.Lock()
			queries = append(queries, network+" "+address)
			mu.Unlock()
			return nil, errors.New("DNS is disabled in tests")
		},
	}
	code := m.Run()
	mu.Lock()
	if len(queries) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d DNS queries were attempted (first: %s)\n", len(queries), queries[0])
		code = 1
	}
	mu.Unlock()
	os.Exit(code)
}
