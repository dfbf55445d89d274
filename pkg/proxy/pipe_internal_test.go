package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

type fixedRouter struct{}

func (fixedRouter) local(_, _ string) (string, int, bool) { return "127.0.0.1", 7001, true }

// pipeWithServer runs a pipe between a test client and a scripted server, on loopback.
func pipeWithServer(t *testing.T, maxTopo int, serve func(c net.Conn)) (client net.Conn, p *pipe, done chan error) {
	t.Helper()
	srv, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	go func() {
		c, err := srv.Accept()
		if err != nil {
			return
		}
		defer func() { _ = c.Close() }()
		serve(c)
	}()
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = front.Close() })
	client, err = net.Dial("tcp", front.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	down, err := front.Accept()
	if err != nil {
		t.Fatal(err)
	}
	up, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p = newPipe(down, up, fixedRouter{}, maxTopo, true)
	done = make(chan error, 1)
	go func() { done <- p.run() }()
	t.Cleanup(p.close)
	return client, p, done
}

// A server declaring a 1 GiB bulk: the proxy streams what arrives and buffers none of it.
func TestHugeBulkIsStreamedNotBuffered(t *testing.T) {
	const sent = 1 << 20
	release := make(chan struct{})
	client, p, _ := pipeWithServer(t, 0, func(c net.Conn) {
		buf := make([]byte, 64)
		_, _ = c.Read(buf) // the GET
		_, _ = io.WriteString(c, "$1073741824\r\n")
		_, _ = c.Write(bytes.Repeat([]byte("x"), sent))
		<-release // and then nothing more: the reply never completes
	})
	defer close(release)
	if _, err := io.WriteString(client, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	want := len("$1073741824\r\n") + sent
	got := make([]byte, want)
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatalf("the client got %v before the reply was complete: the proxy must stream it", err)
	}
	if !strings.HasPrefix(string(got), "$1073741824\r\nxxx") {
		t.Fatalf("forwarded bytes changed: %q", got[:20])
	}
	if p.capOn || cap(p.capBuf) != 0 {
		t.Fatalf("the proxy buffered a non-topology reply (capture on %v, buffer %d bytes)", p.capOn, cap(p.capBuf))
	}
}

// A topology reply larger than the limit closes the connection instead of growing a buffer.
func TestTopologyReplyOverLimitClosesTheConnection(t *testing.T) {
	client, _, done := pipeWithServer(t, 1<<20, func(c net.Conn) {
		buf := make([]byte, 64)
		_, _ = c.Read(buf) // CLUSTER SLOTS
		_, _ = io.WriteString(c, "*1\r\n$4000000\r\n")
		_, _ = c.Write(bytes.Repeat([]byte("y"), 2<<20))
		time.Sleep(10 * time.Second)
	})
	if _, err := io.WriteString(client, "*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrTopologyReplyTooLarge) {
			t.Fatalf("the pipe ended with %v, want ErrTopologyReplyTooLarge", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the pipe kept buffering a topology reply over the limit")
	}
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(client)
	if err != nil || len(b) != 0 {
		t.Fatalf("the client got %d bytes (%v), want a closed connection and none of the reply", len(b), err)
	}
}

// A small topology reply split over many chunks is rewritten whole.
func TestTopologyReplyAcrossChunks(t *testing.T) {
	reply := "*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$20\r\nnode-0.x.invalid.com\r\n:6379\r\n$3\r\nabc\r\n"
	client, _, _ := pipeWithServer(t, 0, func(c net.Conn) {
		buf := make([]byte, 64)
		_, _ = c.Read(buf)
		for i := 0; i < len(reply); i++ {
			_, _ = c.Write([]byte{reply[i]})
			time.Sleep(time.Millisecond)
		}
		time.Sleep(5 * time.Second)
	})
	if _, err := io.WriteString(client, "CLUSTER SLOTS\r\n"); err != nil { // inline command
		t.Fatal(err)
	}
	want := "*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$3\r\nabc\r\n"
	got := make([]byte, len(want))
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(client, got); err != nil || string(got) != want {
		t.Fatalf("got %q (%v), want %q", got, err, want)
	}
}

// discardConn is a net.Conn whose writes go nowhere (benchmarks of the forwarding path).
type discardConn struct{ net.Conn }

func (discardConn) Write(b []byte) (int, error) { return len(b), nil }
func (discardConn) Close() error                { return nil }

// BenchmarkForwardSteadyState is the per-command cost of the proxy's own forwarding path (no
// network): scanning a chunk of 100 pipelined GETs, queueing their expectations, and scanning
// and forwarding their 100 replies. Steady forwarding of non-topology replies allocates
// nothing.
func BenchmarkForwardSteadyState(b *testing.B) {
	var req, rep bytes.Buffer
	for i := 0; i < 100; i++ {
		req.WriteString("*2\r\n$3\r\nGET\r\n$8\r\nkey:0001\r\n")
		rep.WriteString("$16\r\nvalue-0123456789\r\n")
	}
	p := newPipe(discardConn{}, discardConn{}, fixedRouter{}, 0, true)
	reqB, repB := req.Bytes(), rep.Bytes()
	b.ReportAllocs()
	b.SetBytes(int64(len(reqB) + len(repB)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.onRequests(reqB); err != nil {
			b.Fatal(err)
		}
		if err := p.onReplies(repB); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/command")
}
