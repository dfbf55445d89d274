package cluster

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// fuzzLimits are small so that the fuzzer reaches every bound.
var fuzzLimits = Limits{MaxArrayLen: 8, MaxBulkLen: 16, MaxReplyElements: 20, MaxReplyBytes: 200, MaxDepth: 3, MaxLineLen: 32}

var errIncomplete = errors.New("incomplete")

// fixedErrors are the only errors the validator returns: fixed values, no input bytes.
var fixedErrors = map[error]bool{
	errUnknownType: true, errBadNumber: true, errBadLineEnd: true, errBadBulkEnd: true,
	errArrayTooLong: true, errBulkTooLong: true, errTooManyElems: true, errTooManyBytes: true,
	errTooDeep: true, errLineTooLong: true,
}

// checker is an independent recursive-descent reading of what the validator let through: it
// fails on any header beyond the limits and on anything that is not RESP. It stops (without
// failing) where the prefix ends.
type checker struct {
	t     *testing.T
	lim   Limits
	p     []byte
	elems int64
}

func (c *checker) line() ([]byte, error) {
	i := bytes.IndexByte(c.p, '\n')
	if i < 0 {
		if len(c.p) > c.lim.MaxLineLen+1 {
			c.t.Fatalf("a line of %d bytes without LF passed (MaxLineLen %d)", len(c.p), c.lim.MaxLineLen)
		}
		return nil, errIncomplete
	}
	if i == 0 || c.p[i-1] != '\r' {
		c.t.Fatalf("a line without CRLF passed: %q", c.p[:i+1])
	}
	l := c.p[:i-1]
	if len(l) > c.lim.MaxLineLen {
		c.t.Fatalf("a line of %d bytes passed (MaxLineLen %d)", len(l), c.lim.MaxLineLen)
	}
	c.p = c.p[i+1:]
	return l, nil
}

func (c *checker) value(depth int) error {
	if len(c.p) == 0 {
		return errIncomplete
	}
	typ := c.p[0]
	c.p = c.p[1:]
	l, err := c.line()
	if err != nil {
		return err
	}
	switch typ {
	case '+', '-', ',', '(', '#':
		return nil
	case '_':
		if len(l) != 0 {
			c.t.Fatalf("null with payload passed")
		}
		return nil
	}
	n, perr := strconv.ParseInt(string(l), 10, 64)
	if perr != nil {
		c.t.Fatalf("type %q with a non-integer %q passed", typ, l)
	}
	switch typ {
	case ':':
		return nil
	case '$', '=', '!':
		if n == -1 {
			return nil
		}
		if n < 0 || n > c.lim.MaxBulkLen {
			c.t.Fatalf("bulk of %d passed (MaxBulkLen %d)", n, c.lim.MaxBulkLen)
		}
		if int64(len(c.p)) < n+2 {
			return errIncomplete
		}
		if c.p[n] != '\r' || c.p[n+1] != '\n' {
			c.t.Fatalf("bulk without CRLF passed")
		}
		c.p = c.p[n+2:]
		return nil
	case '*', '%', '~', '>', '|':
		if n == -1 {
			return nil
		}
		if typ == '%' || typ == '|' {
			n *= 2
		}
		if n < 0 || n > c.lim.MaxArrayLen {
			c.t.Fatalf("aggregate of %d passed (MaxArrayLen %d)", n, c.lim.MaxArrayLen)
		}
		if n > 0 && depth+1 > c.lim.MaxDepth {
			c.t.Fatalf("nesting %d passed (MaxDepth %d)", depth+1, c.lim.MaxDepth)
		}
		c.elems += n
		if c.elems > c.lim.MaxReplyElements {
			c.t.Fatalf("a reply declaring %d elements passed (MaxReplyElements %d)", c.elems, c.lim.MaxReplyElements)
		}
		for i := int64(0); i < n; i++ {
			if err := c.value(depth + 1); err != nil {
				return err
			}
		}
		if typ == '|' {
			return c.value(depth) // the annotated value
		}
		return nil
	}
	c.t.Fatalf("unknown type %q passed", typ)
	return nil
}

// check reads every complete top-level reply of p and the incomplete rest.
func check(t *testing.T, lim Limits, p []byte) {
	c := &checker{t: t, lim: lim, p: p}
	for len(c.p) > 0 {
		start := len(c.p)
		c.elems = 0
		if err := c.value(0); err != nil {
			return
		}
		if used := int64(start - len(c.p)); used > lim.MaxReplyBytes {
			t.Fatalf("a reply of %d bytes passed (MaxReplyBytes %d)", used, lim.MaxReplyBytes)
		}
	}
}

// pipeServer plays the server end of a net.Pipe: it drains whatever the client writes and
// sends reply twice (go-redis reads it as the HELLO reply, then as the command's), then
// closes. A write deadline keeps a client that stopped reading from blocking it.
func pipeServer(srv net.Conn, reply []byte) {
	defer func() { _ = srv.Close() }()
	go func() { _, _ = io.Copy(io.Discard, srv) }()
	_ = srv.SetWriteDeadline(time.Now().Add(time.Second))
	for i := 0; i < 2; i++ {
		if _, err := srv.Write(reply); err != nil {
			return
		}
	}
}

// FuzzBoundedReader feeds arbitrary reply bytes through LimitConn, in chunks whose size the
// input chooses, and asserts that it never panics and that every byte it lets through reads,
// by an independent parser, as RESP within the limits. The same bytes then go through a real
// go-redis client (over net.Pipe) reading them as HELLO and CLUSTER SHARDS replies: it must
// not panic either.
//
//	go test ./pkg/cluster -run '^$' -fuzz FuzzBoundedReader -fuzztime 60s
func FuzzBoundedReader(f *testing.F) {
	for _, s := range []string{
		"*1000000000\r\n", "$2000000000\r\n", "%1000000000\r\n", "*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
		"SSH-2.0-OpenSSH_9.2\r\n", "HTTP/1.1 400 Bad Request\r\n\r\nSECRET-TOKEN\r\n",
		"+OK\r\n", "-ERR unknown command\r\n", ":1\r\n$-1\r\n*-1\r\n_\r\n",
		"|1\r\n+a\r\n:1\r\n*2\r\n:1\r\n:2\r\n", "%1\r\n+k\r\n~2\r\n#t\r\n,1.5\r\n",
		"=8\r\ntxt:abcd\r\n!3\r\nERR\r\n(123\r\n>1\r\n+x\r\n",
		string(shardsReply(1, 1)), string(shardsReply(3, 2)),
	} {
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(7))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		n := int(chunk%64) + 1
		for _, lim := range []Limits{fuzzLimits, DefaultLimits()} {
			v := newRESPValidator(lim)
			var passed []byte
			for p := data; len(p) > 0; {
				k := min(n, len(p))
				if err := v.feed(p[:k]); err != nil {
					var pe *ProtocolError
					known := errors.Is(err, ErrProtocol) || errors.Is(err, ErrReplyTooLarge)
					if !errors.As(err, &pe) || !known {
						t.Fatalf("error %v is not a *ProtocolError of a known kind", err)
					}
					if !fixedErrors[err] {
						t.Fatalf("error %v is not one of the fixed errors (it must never carry input bytes)", err)
					}
					break
				}
				passed = append(passed, p[:k]...)
				p = p[k:]
			}
			check(t, lim, passed)
		}

		cli, srv := net.Pipe()
		go pipeServer(srv, data)
		c := redis.NewClient(&redis.Options{
			Addr: "pipe:0",
			Dialer: func(context.Context, string, string) (net.Conn, error) {
				return LimitConn(cli, &fuzzLimits), nil
			},
			Protocol: 3, DisableIdentity: true, MaxRetries: -1, PoolSize: 1, ReadTimeout: time.Second,
			MaintNotificationsConfig: NoMaintNotifications(),
		})
		defer func() { _ = c.Close() }()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, _ = c.ClusterShards(ctx).Result()
	})
}
