package proxy

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// tcpPair is a connected loopback TCP pair (both *net.TCPConn: readLoop's socket path).
func tcpPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	a, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	return a, b
}

// readLoop waits for the poller after a short read instead of reading until EAGAIN: no byte
// may be lost or delayed by that. Chunks of every size around the buffer's (shorter, equal,
// longer: a full read must be followed by another read, not a wait), with pauses between some
// so that the reader is parked when they arrive, and request/reply turns where a missed edge
// would hang the exchange.
func TestReadLoopDeliversEveryByte(t *testing.T) {
	const bufLen = 64
	for _, viaPlain := range []bool{false, true} {
		a, b := tcpPair(t)
		src := b
		if viaPlain {
			src = struct{ net.Conn }{b} // not a syscall.Conn: the plain loop
		}
		got := make(chan []byte, 1024)
		done := make(chan error, 1)
		go func() {
			done <- readLoop(src, make([]byte, bufLen), func(p []byte) error {
				got <- bytes.Clone(p)
				return nil
			})
		}()
		rng := rand.New(rand.NewPCG(1, 2))
		var want, have []byte
		for i := range 400 {
			n := []int{1, bufLen - 1, bufLen, bufLen + 1, 3 * bufLen, 5000}[rng.IntN(6)]
			chunk := make([]byte, n)
			for k := range chunk {
				chunk[k] = byte(rng.Uint32())
			}
			want = append(want, chunk...)
			if _, err := a.Write(chunk); err != nil {
				t.Fatal(err)
			}
			if i%3 == 0 {
				// A turn: everything written so far must arrive before the next write.
				for len(have) < len(want) {
					select {
					case p := <-got:
						have = append(have, p...)
					case <-time.After(10 * time.Second):
						t.Fatalf("plain=%v turn %d: %d of %d bytes arrived, the rest hangs", viaPlain, i, len(have), len(want))
					}
				}
			}
		}
		_ = a.Close()
		if err := <-done; !errors.Is(err, io.EOF) {
			t.Fatalf("plain=%v: readLoop ended with %v, want io.EOF", viaPlain, err)
		}
		close(got)
		for p := range got {
			have = append(have, p...)
		}
		if !bytes.Equal(have, want) {
			t.Fatalf("plain=%v: %d bytes arrived, want %d (equal prefix: %v)", viaPlain, len(have), len(want), bytes.HasPrefix(want, have))
		}
	}
}

// An error of the handler ends the loop with that error; closing the connection while the loop
// waits ends it with net.ErrClosed.
func TestReadLoopEnds(t *testing.T) {
	a, b := tcpPair(t)
	boom := errors.New("boom")
	done := make(chan error, 1)
	go func() { done <- readLoop(b, make([]byte, 16), func([]byte) error { return boom }) }()
	if _, err := a.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, boom) {
		t.Fatalf("got %v, want the handler's error", err)
	}
	go func() { done <- readLoop(b, make([]byte, 16), func([]byte) error { return nil }) }()
	time.Sleep(50 * time.Millisecond) // parked in the poller
	_ = b.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("got %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("closing the connection does not end a waiting readLoop")
	}
}
