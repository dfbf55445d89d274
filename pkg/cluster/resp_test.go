package cluster

import (
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
)

// shardsReply builds a CLUSTER SHARDS reply (RESP2) of shards shards with nodesPer nodes and
// one slot range each, as Redis 7 sends it.
func shardsReply(shards, nodesPer int) []byte {
	bulk := func(s string) string { return "$" + strconv.Itoa(len(s)) + "\r\n" + s + "\r\n" }
	var b strings.Builder
	b.WriteString("*" + strconv.Itoa(shards) + "\r\n")
	per := SlotCount / shards
	for s := 0; s < shards; s++ {
		b.WriteString("*4\r\n" + bulk("slots") + "*2\r\n:" + strconv.Itoa(s*per) + "\r\n:" + strconv.Itoa((s+1)*per-1) + "\r\n")
		b.WriteString(bulk("nodes") + "*" + strconv.Itoa(nodesPer) + "\r\n")
		for n := 0; n < nodesPer; n++ {
			role := "master"
			if n > 0 {
				role = "replica"
			}
			host := "node-" + strconv.Itoa(s*nodesPer+n) + ".rconn-test.invalid"
			b.WriteString("*16\r\n" + bulk("id") + bulk(strings.Repeat("a", 40)) + bulk("port") + ":6379\r\n" +
				bulk("ip") + bulk("127.0.0.1") + bulk("endpoint") + bulk(host) + bulk("hostname") + bulk(host) +
				bulk("role") + bulk(role) + bulk("replication-offset") + ":12345\r\n" + bulk("health") + bulk("online"))
		}
	}
	return []byte(b.String())
}

// feedSplit feeds p to a fresh validator in chunks of size n (the last may be shorter).
func feedSplit(l Limits, p []byte, n int) error {
	v := newRESPValidator(l)
	for len(p) > 0 {
		k := min(n, len(p))
		if err := v.feed(p[:k]); err != nil {
			return err
		}
		p = p[k:]
	}
	if !v.sc.Between() {
		return errors.New("validator not at a reply boundary after a complete stream")
	}
	return nil
}

func TestValidatorAcceptsRealReplies(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	valid := map[string]string{
		"shards":          string(shardsReply(3, 2)),
		"simple":          "+OK\r\n-ERR unknown command 'HELLO'\r\n:-42\r\n:0\r\n",
		"nulls":           "$-1\r\n*-1\r\n_\r\n$0\r\n\r\n*0\r\n%0\r\n",
		"resp3 scalars":   ",3.14\r\n#t\r\n(3492890328409238509324850943850943825024385\r\n=15\r\ntxt:Some string\r\n!21\r\nSYNTAX invalid syntax\r\n",
		"resp3 map":       "%2\r\n+first\r\n:1\r\n+second\r\n*2\r\n~1\r\n:1\r\n>2\r\n+a\r\n+b\r\n",
		"attribute":       "|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2039123\r\n|0\r\n:9543892\r\n",
		"nested to limit": strings.Repeat("*1\r\n", DefaultMaxDepth) + ":1\r\n",
		"bulk with CRLF":  "$6\r\na\r\nb\r\n\r\n",
		"max array":       "*" + strconv.Itoa(DefaultMaxArrayLen) + "\r\n" + strings.Repeat(":1\r\n", DefaultMaxArrayLen),
	}
	for name, s := range valid {
		for _, n := range []int{1, 2, 3, 7, 64, 1 << 20} {
			if err := feedSplit(DefaultLimits(), []byte(s), n); err != nil {
				t.Errorf("%s in chunks of %d: %v", name, n, err)
			}
		}
	}
}

func TestValidatorRejects(t *testing.T) {
	small := DefaultLimits()
	small.MaxReplyElements = 100
	small.MaxReplyBytes = 1000
	small.MaxLineLen = 100
	for _, tc := range []struct {
		name, in string
		lim      Limits
		want     error
	}{
		{"billion array", "*1000000000\r\n", DefaultLimits(), ErrReplyTooLarge},
		{"huge bulk", "$2000000000\r\n", DefaultLimits(), ErrReplyTooLarge},
		{"huge map counts twice", "%" + strconv.Itoa(DefaultMaxArrayLen/2+1) + "\r\n", DefaultLimits(), ErrReplyTooLarge},
		{"huge set", "~70000\r\n", DefaultLimits(), ErrReplyTooLarge},
		{"huge push", ">70000\r\n", DefaultLimits(), ErrReplyTooLarge},
		{"huge attribute", "|40000\r\n", DefaultLimits(), ErrReplyTooLarge},
		{"huge verbatim", "=2000000\r\n", DefaultLimits(), ErrReplyTooLarge},
		{"huge blob error", "!2000000\r\n", DefaultLimits(), ErrReplyTooLarge},
		{"too deep", strings.Repeat("*1\r\n", DefaultMaxDepth+1) + ":1\r\n", DefaultLimits(), ErrReplyTooLarge},
		{"elements summed", "*2\r\n*60\r\n" + strings.Repeat(":1\r\n", 60) + "*60\r\n", small, ErrReplyTooLarge},
		{"bytes summed", "*2\r\n$600\r\n" + strings.Repeat("x", 600) + "\r\n$600\r\n", small, ErrReplyTooLarge},
		{"long line", "+" + strings.Repeat("x", 200), small, ErrReplyTooLarge},
		{"long number", ":" + strings.Repeat("9", 30) + "\r\n", DefaultLimits(), ErrProtocol},
		{"ssh banner", "SSH-2.0-OpenSSH_9.2\r\n", DefaultLimits(), ErrProtocol},
		{"http", "HTTP/1.1 400 Bad Request\r\n", DefaultLimits(), ErrProtocol},
		{"length not a number", "$abc\r\n", DefaultLimits(), ErrProtocol},
		{"negative length", "*-2\r\n", DefaultLimits(), ErrProtocol},
		{"streamed string", "$?\r\n", DefaultLimits(), ErrProtocol},
		{"line without CR", "+OK\n", DefaultLimits(), ErrProtocol},
		{"bulk without CRLF", "$2\r\nabXY", DefaultLimits(), ErrProtocol},
		{"empty length", "*\r\n", DefaultLimits(), ErrProtocol},
		{"bad null", "_x\r\n", DefaultLimits(), ErrProtocol},
		{"garbage after a good reply", "+OK\r\n\x00", DefaultLimits(), ErrProtocol},
	} {
		for _, n := range []int{1, 3, 1 << 20} {
			err := feedSplit(tc.lim, []byte(tc.in), n)
			var pe *ProtocolError
			if !errors.Is(err, tc.want) || !errors.As(err, &pe) {
				t.Errorf("%s in chunks of %d: %v, want %v", tc.name, n, err, tc.want)
			}
		}
	}
	// Limits reset between top-level replies: many small replies are fine.
	if err := feedSplit(small, []byte(strings.Repeat("*2\r\n$400\r\n"+strings.Repeat("x", 400)+"\r\n:1\r\n", 50)), 100); err != nil {
		t.Fatalf("limits must apply per reply: %v", err)
	}
}

// chunkConn returns the chunks of a script, one per Read.
type chunkConn struct {
	net.Conn
	chunks [][]byte
}

func (c *chunkConn) Write(p []byte) (int, error) { return len(p), nil }

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks = c.chunks[1:]
	return n, nil
}

// TestLimitConnWithholdsTheOffendingChunk: the chunk in which the violation is found is not
// returned (not even its valid prefix), and the error is sticky.
func TestLimitConnWithholdsTheOffendingChunk(t *testing.T) {
	c := LimitConn(&chunkConn{chunks: [][]byte{[]byte("+OK\r\n"), []byte("+PONG\r\n*1000000000\r\n"), []byte("+OK\r\n")}}, nil)
	if _, err := c.Write([]byte(strings.Repeat("*1\r\n$4\r\nPING\r\n", 3))); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := c.Read(buf); n != 5 || err != nil {
		t.Fatalf("first chunk: %d, %v", n, err)
	}
	for i := 0; i < 2; i++ {
		n, err := c.Read(buf)
		if n != 0 || !errors.Is(err, ErrReplyTooLarge) {
			t.Fatalf("read %d: %d bytes, %v; want 0 and ErrReplyTooLarge", i, n, err)
		}
		if strings.Contains(err.Error(), "1000000000") {
			t.Fatalf("error quotes server bytes: %v", err)
		}
	}
	if strings.Contains(string(buf), "PONG") {
		t.Fatal("the withheld chunk is still in the caller's buffer")
	}
}
