package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"
)

// The dialer's per-target state lives only as long as connections to the target do: dialing
// announced address after announced address (MOVED targets, nodes that came and went) and
// closing the connections leaves nothing behind, while a live connection still gets retired
// when its mapping changes.
func TestDialerForgetsClosedTargets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer func() { _ = c.Close() }()
		}
	}()
	to := ln.Addr().String()
	m := func(Address) (Address, bool) {
		a, _ := ParseAddress(to)
		return a, true
	}
	d := NewDialer(DialerOptions{Map: m, Dial: IPOnlyDial})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 200 {
		c, err := d.DialContext(ctx, "tcp", fmt.Sprintf("node-%d.rconn-test.invalid:6379", i))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		_ = c.Close() // closing twice must not count twice
	}
	live, err := d.DialContext(ctx, "tcp", "kept.rconn-test.invalid:6379")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = live.Close() }()
	d.mu.Lock()
	n := len(d.targets)
	d.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d targets remembered after 200 closed connections and 1 live one, want 1", n)
	}
	d.SetMap(func(Address) (Address, bool) { return Address{Host: "127.0.0.1", Port: 1}, true })
	if _, err := live.(*mappedConn).SyscallConn(); !errors.Is(err, ErrRetired) {
		t.Fatalf("live connection after its mapping changed: SyscallConn error %v, want ErrRetired", err)
	}
}
