package proxy_test

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// raw is a bare RESP connection: the test writes exactly the bytes a client would and reads
// replies as text, so that the proxy's reply matching is checked against a real node.
type raw struct {
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &raw{c: c, r: bufio.NewReader(c)}
}

func (r *raw) send(t *testing.T, cmds ...[]string) {
	t.Helper()
	var b strings.Builder
	for _, args := range cmds {
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
	}
	if _, err := r.c.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
}

// read returns one reply, flattened to text.
func (r *raw) read(t *testing.T) string {
	t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	s, err := r.value()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (r *raw) value() (string, error) {
	line, err := r.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	t, body := line[0], line[1:]
	switch t {
	case '$', '=', '!':
		n, _ := strconv.Atoi(body)
		if n < 0 {
			return "(nil)", nil
		}
		b := make([]byte, n+2)
		if _, err := ioReadFull(r.r, b); err != nil {
			return "", err
		}
		return string(b[:n]), nil
	case '*', '%', '~', '>':
		n, _ := strconv.Atoi(body)
		if t == '%' {
			n *= 2
		}
		parts := []string{string(t)}
		for i := 0; i < n; i++ {
			v, err := r.value()
			if err != nil {
				return "", err
			}
			parts = append(parts, v)
		}
		return "[" + strings.Join(parts, " ") + "]", nil
	}
	return string(t) + body, nil
}

func ioReadFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// TestReplyMatching checks that the replies the proxy rewrites are exactly the topology
// replies, whatever came before them on the connection: CLIENT REPLY SKIP/OFF, RESP3 pushes,
// RESP2 pub/sub ended by RESET, MULTI, and values that look like topology.
func TestReplyMatching(t *testing.T) {
	t.Parallel() // its own cluster and proxy: overlaps the other tests' waits
	e := startEnv(t, envOptions{})
	node := e.listenerOf(t, e.rc.Masters()[0])
	key := shardKeys()[0] // served by master 0
	lookalike := "-MOVED 100 " + e.rc.Nodes[1].Announced
	nodesLine := e.rc.Nodes[1].ID + " " + e.rc.Nodes[1].Announced + "@1 master - 0 0 1 connected"
	invalid := func(s string) bool { return strings.Contains(s, ".invalid") }

	t.Run("values that look like topology pass unchanged", func(t *testing.T) {
		r := dialRaw(t, node)
		r.send(t, []string{"SET", key, lookalike}, []string{"GET", key}, []string{"SET", key, nodesLine}, []string{"GET", key})
		r.read(t)
		if got := r.read(t); got != lookalike {
			t.Fatalf("GET of a MOVED-like value = %q, want it unchanged", got)
		}
		r.read(t)
		if got := r.read(t); got != nodesLine {
			t.Fatalf("GET of a CLUSTER NODES-like value = %q, want it unchanged", got)
		}
	})
	t.Run("CLIENT REPLY SKIP and OFF", func(t *testing.T) {
		r := dialRaw(t, node)
		r.send(t,
			[]string{"CLIENT", "REPLY", "SKIP"}, []string{"GET", key},
			[]string{"CLIENT", "REPLY", "OFF"}, []string{"GET", key}, []string{"CLUSTER", "NODES"},
			[]string{"CLIENT", "REPLY", "ON"},
			[]string{"CLUSTER", "SLOTS"}, []string{"GET", key})
		if got := r.read(t); got != "+OK" {
			t.Fatalf("CLIENT REPLY ON = %q", got)
		}
		if got := r.read(t); invalid(got) || !strings.Contains(got, "127.0.0.1") {
			t.Fatalf("CLUSTER SLOTS after CLIENT REPLY SKIP/OFF was not rewritten: %s", got)
		}
		if got := r.read(t); got != nodesLine {
			t.Fatalf("GET after CLUSTER SLOTS = %q", got)
		}
	})
	t.Run("CLIENT REPLY SKIP inline and quoted", func(t *testing.T) {
		// Redis splits an inline command by sdssplitargs: "SKIP", 'skip' and "S\x4bIP" are SKIP.
		// Read as bare words they are not, and the proxy would expect a reply Redis never sends.
		for _, skip := range []string{`"SKIP"`, `'skip'`, `"S\x4bIP"`} {
			r := dialRaw(t, node)
			if _, err := r.c.Write([]byte("CLIENT REPLY " + skip + "\r\n")); err != nil {
				t.Fatal(err)
			}
			r.send(t, []string{"GET", key}, []string{"CLUSTER", "SLOTS"}, []string{"GET", key})
			if got := r.read(t); invalid(got) || !strings.Contains(got, "127.0.0.1") {
				t.Fatalf("CLUSTER SLOTS after inline CLIENT REPLY %s was not rewritten: %s", skip, got)
			}
			if got := r.read(t); got != nodesLine {
				t.Fatalf("GET after CLUSTER SLOTS = %q", got)
			}
		}
	})
	t.Run("RESP3 pushes", func(t *testing.T) {
		r := dialRaw(t, node)
		r.send(t, []string{"HELLO", "3"}, []string{"SUBSCRIBE", "a", "b"}, []string{"CLUSTER", "SLOTS"})
		r.read(t) // HELLO map
		var slots string
		for i := 0; i < 3; i++ { // two push confirmations and the reply, in server order
			if v := r.read(t); strings.HasPrefix(v, "[*") {
				slots = v
			}
		}
		if slots == "" || invalid(slots) {
			t.Fatalf("CLUSTER SLOTS among RESP3 pushes was not rewritten: %q", slots)
		}
		c := e.rc.Masters()[0].Client()
		defer func() { _ = c.Close() }()
		if err := c.Publish(ctx(t), "a", "m1").Err(); err != nil {
			t.Fatal(err)
		}
		if got := r.read(t); !strings.Contains(got, "m1") {
			t.Fatalf("message push = %q", got)
		}
		r.send(t, []string{"CLUSTER", "SHARDS"})
		if got := r.read(t); invalid(got) || !strings.Contains(got, "127.0.0.1") {
			t.Fatalf("CLUSTER SHARDS after a message push was not rewritten: %s", got)
		}
	})
	t.Run("RESP2 pub/sub, then RESET", func(t *testing.T) {
		r := dialRaw(t, node)
		r.send(t, []string{"SUBSCRIBE", "a"}, []string{"PING"}, []string{"RESET"}, []string{"CLUSTER", "NODES"})
		r.read(t)
		r.read(t)
		if got := r.read(t); got != "+RESET" {
			t.Fatalf("RESET = %q", got)
		}
		if got := r.read(t); invalid(got) || !strings.Contains(got, "127.0.0.1") {
			t.Fatalf("CLUSTER NODES after RESET was not rewritten: %s", got)
		}
	})
	t.Run("MOVED from a pipeline", func(t *testing.T) {
		other := e.listenerOf(t, e.rc.Masters()[1])
		r := dialRaw(t, other)
		r.send(t, []string{"PING"}, []string{"GET", key}, []string{"PING"})
		r.read(t)
		got := r.read(t)
		if want := fmt.Sprintf("-MOVED %d %s", slotOf(key), node); got != want {
			t.Fatalf("redirection = %q, want %q", got, want)
		}
		if got := r.read(t); got != "+PONG" {
			t.Fatalf("PING after MOVED = %q", got)
		}
	})
}
