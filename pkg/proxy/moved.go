package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/resp"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// A down node whose slots the topology gives to another node has nothing to forward to, but
// clients whose slot map is stale still come to its listener. Rather than refusing them
// (which some clients retry without reloading their map), the listener reopens and answers
// every command on a key with "-MOVED <slot> <new owner's listener>", which every cluster
// client follows, as it would a MOVED from a node that lost the slot. Commands without a key
// get what a connection handshake needs (PING, AUTH, SELECT, READONLY, CLIENT SETNAME, ...:
// +OK/+PONG) or -CLUSTERDOWN, which cluster clients answer by reloading the topology.

// Bounds of the responder: a command line or an argument it must read (the key) is at most
// movedMaxArg bytes, other arguments are skipped unread; a connection lives at most
// movedIdle without a command.
const (
	movedMaxArg  = 64 << 10
	movedMaxArgs = 1 << 20
	movedIdle    = 30 * time.Second
)

var errMovedProtocol = errors.New("rconn proxy: malformed command on a moved listener")

// owner is a range of slots and the listener of its master.
type owner struct {
	start, end int
	l          *listener
}

// ownerOf returns the listener serving slot (nil: none known). Callers hold p.mu.
func (p *Proxy) ownerOfLocked(slot int) *listener {
	for _, o := range p.owners {
		if slot >= o.start && slot <= o.end {
			return o.l
		}
	}
	return nil
}

// movedTargetLocked tells whether down listener l has lost some of its slots to a live node.
func (p *Proxy) movedTargetLocked(l *listener) bool {
	for _, r := range l.slots {
		for s := r.Start; s <= r.End; s++ {
			if o := p.ownerOfLocked(s); o != nil && o != l && !o.down {
				return true
			}
			s = p.rangeEndLocked(s, r.End)
		}
	}
	return false
}

// rangeEndLocked is the last slot of the owner range holding s, capped at end.
func (p *Proxy) rangeEndLocked(s, end int) int {
	for _, o := range p.owners {
		if s >= o.start && s <= o.end {
			return min(o.end, end)
		}
	}
	return s
}

// answerMoved serves one client connection on a moved listener.
func (p *Proxy) answerMoved(l *listener, c net.Conn) {
	defer func() { _ = c.Close() }()
	r := bufio.NewReaderSize(c, 4096)
	for {
		_ = c.SetReadDeadline(time.Now().Add(movedIdle))
		args, err := readCommand(r)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				p.log.Debug("rconn proxy: moved listener closes a connection", "listen", p.addr(l), "err", err)
			}
			return
		}
		if len(args) == 0 {
			continue
		}
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, p.movedReply(l, args)); err != nil {
			return
		}
		if strings.EqualFold(args[0], "QUIT") {
			return
		}
	}
}

// movedReply is the answer to one command on a moved listener.
func (p *Proxy) movedReply(l *listener, args []string) string {
	name := strings.ToUpper(args[0])
	switch name {
	case "PING":
		if len(args) > 1 {
			return "$" + strconv.Itoa(len(args[1])) + "\r\n" + args[1] + "\r\n"
		}
		return "+PONG\r\n"
	case "AUTH", "SELECT", "READONLY", "READWRITE", "ASKING", "QUIT", "RESET":
		return "+OK\r\n"
	case "CLIENT":
		if len(args) > 1 && (strings.EqualFold(args[1], "SETNAME") || strings.EqualFold(args[1], "SETINFO")) {
			return "+OK\r\n"
		}
	case "HELLO":
		// Clients fall back to RESP2 and AUTH on an error here (go-redis, node-redis).
		return "-NOPROTO this node is down; its slots moved\r\n"
	}
	key, ok := commandKey(name, args)
	if !ok {
		return "-CLUSTERDOWN the node behind " + p.addr(l) + " is down\r\n"
	}
	slot := cluster.Slot(key)
	p.mu.Lock()
	o := p.ownerOfLocked(slot)
	ok = o != nil && o != l && !o.down
	var to string
	if ok {
		to = p.addr(o)
	}
	p.mu.Unlock()
	if !ok {
		return "-CLUSTERDOWN Hash slot not served\r\n"
	}
	return fmt.Sprintf("-MOVED %d %s\r\n", slot, to)
}

// commandKey is the first key of a command: the first argument for most, the fourth for
// EVAL/EVALSHA/FCALL with keys; ok=false for commands without one.
func commandKey(name string, args []string) (string, bool) {
	switch name {
	case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
		if len(args) > 3 && args[2] != "0" {
			return args[3], true
		}
		return "", false
	case "MULTI", "EXEC", "DISCARD", "UNWATCH", "INFO", "DBSIZE", "COMMAND", "CONFIG", "CLUSTER",
		"CLIENT", "SCRIPT", "FUNCTION", "TIME", "ECHO", "SCAN", "RANDOMKEY", "KEYS", "FLUSHALL",
		"FLUSHDB", "WAIT", "ROLE", "LASTSAVE", "MEMORY", "LATENCY", "SLOWLOG", "ACL", "MODULE", "PUBSUB",
		"SUBSCRIBE", "PSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "PUBLISH", "MONITOR", "DEBUG":
		return "", false
	}
	if len(args) > 1 && args[1] != "" {
		return args[1], true
	}
	return "", false
}

// readCommand reads one command: a RESP array of bulk strings or an inline line (split by
// Redis's rules). Only the first four arguments are kept (at most movedMaxArg bytes each).
func readCommand(r *bufio.Reader) ([]string, error) {
	b, err := r.Peek(1)
	if err != nil {
		return nil, err
	}
	if b[0] != '*' {
		return readInline(r)
	}
	n, err := readHeader(r, '*')
	if err != nil {
		return nil, err
	}
	if n <= 0 || n > movedMaxArgs {
		return nil, errMovedProtocol
	}
	args := make([]string, 0, min(n, 4))
	for i := 0; i < n; i++ {
		size, err := readHeader(r, '$')
		if err != nil {
			return nil, err
		}
		if size < 0 || (i < 4 && size > movedMaxArg) || size > 512<<20 {
			return nil, errMovedProtocol
		}
		if i >= 4 {
			if _, err := r.Discard(size + 2); err != nil {
				return nil, err
			}
			continue
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args = append(args, string(buf[:size]))
	}
	return args, nil
}

func readHeader(r *bufio.Reader, want byte) (int, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return 0, errMovedProtocol
		}
		return 0, err
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
	if len(s) < 2 || s[0] != want {
		return 0, errMovedProtocol
	}
	n, err := strconv.Atoi(s[1:])
	if err != nil {
		return 0, errMovedProtocol
	}
	return n, nil
}

func readInline(r *bufio.Reader) ([]string, error) {
	var il resp.Inline
	var args []string
	var cur []byte
	total := 0
	for {
		b, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		if total++; total > movedMaxArg {
			return nil, errMovedProtocol
		}
		for one := []byte{b}; len(one) > 0; {
			n, ev, err := il.Scan(one)
			one = one[n:]
			if err != nil {
				return nil, fmt.Errorf("%w: %w", errMovedProtocol, err)
			}
			switch ev {
			case resp.Begin:
				if cur != nil {
					args = append(args, string(cur))
				}
				cur = []byte{}
			case resp.Data:
				cur = append(cur, il.Data()...)
			case resp.End:
				if cur != nil {
					args = append(args, string(cur))
				}
				return args, nil
			}
		}
	}
}
