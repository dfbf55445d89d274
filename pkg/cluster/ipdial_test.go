package cluster

import (
	"context"
	"errors"
	"net"
	"testing"
)

func TestIPOnlyDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	c, err := IPOnlyDial(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dialing an IP literal: %v", err)
	}
	_ = c.Close()
	// A name is refused without a lookup (main_test.go fails the package on any DNS query).
	for _, addr := range []string{"node-0.rconn-test.invalid:6379", "localhost:6379"} {
		_, err := IPOnlyDial(context.Background(), "tcp", addr)
		if !errors.Is(err, ErrNameResolutionDisabled) {
			t.Errorf("IPOnlyDial(%s) = %v, want ErrNameResolutionDisabled", addr, err)
		}
	}
	if _, err := IPOnlyDial(context.Background(), "tcp", "no-port"); err == nil {
		t.Error("IPOnlyDial(no-port) succeeded")
	}
}
