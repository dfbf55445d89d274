// Package hostile starts small, real TCP servers on 127.0.0.1 that misbehave the way a
// hostile or broken "Redis node" named by a tenant can: they answer every command with a
// fixed raw reply (a header declaring a billion elements, a 2 GB bulk, deeply nested
// arrays), accept and never answer, answer like a minimal Redis but late, send bytes that are
// not RESP at all (an SSH banner, an HTTP error page carrying a secret), or close the
// connection right after accepting it.
//
// Every server listens on 127.0.0.1:0 (loopback only; no DNS), handles each connection in its
// own goroutine, and is stopped by Close: the listener and every connection are closed and
// Close waits for all goroutines. Close is idempotent. The constructors taking a TB register
// Close with t.Cleanup, so a server is stopped even when the test fails; Start leaves that to
// the caller. Nothing global is registered.
//
//	srv := hostile.FixedReply(t, hostile.HugeArray)       // "*1000000000\r\n" to every command
//	srv := hostile.Silent(t)                               // accepts, never answers
//	srv := hostile.Slow(t, 10*time.Second, nil)            // minimal Redis, 10 s late
//	srv := hostile.Garbage(t, hostile.SSHBanner)           // non-RESP bytes on accept
//	srv := hostile.CloseOnAccept(t)                        // EOF
//	srv := hostile.MustStart(t, hostile.Config{            // a reply inside every generic cap,
//		Handler:      hostile.Answer("CLUSTER SHARDS", hostile.EmptyNodeShards(15, 65536)),
//		HoldLastByte: 25 * time.Second,                    // its last byte held back
//		HoldCommand:  "CLUSTER SHARDS",
//	})
//	addr := srv.Addr()                                     // "127.0.0.1:port"
//
// Requests are parsed as RESP (arrays of bulk strings, as every client sends them; inline
// commands too), bounded in size, so a reply goes out per command, pipelined or not.
//
// API stability: the names in this file (Config, Request, Handler, Server, Start, FixedReply,
// Silent, Slow, Garbage, CloseOnAccept, MinimalRedis, Nested and the byte constants) are
// used by other packages' tests; extend, do not change them. Answer, EmptyNodeShards,
// RoleReplicas, Config.HoldLastByte/HoldCommand and Server.Holding were added for replies that stay inside
// every per-reply cap and overlap in time; Config.Stream/StreamCommand/StreamEvery,
// Server.Streamed, Subscribing, SubscribeConfirm and Message for subscriptions that never stop
// pushing (a sentinel flooding +switch-master).
package hostile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/tb"
)

// Replies and banners hostile servers send.
const (
	// HugeArray declares an array of a billion elements and sends none of them.
	HugeArray = "*1000000000\r\n"
	// HugeBulk declares a 2 GB bulk string and sends none of it.
	HugeBulk = "$2000000000\r\n"
	// HugeMap declares a RESP3 map of a billion pairs.
	HugeMap = "%1000000000\r\n"
	// SSHBanner is what an SSH server sends on accept.
	SSHBanner = "SSH-2.0-OpenSSH_9.2\r\n"
	// HTTPBadRequest is an HTTP error page carrying a secret that must never reach a status.
	HTTPBadRequest = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nX-Internal: SECRET-TOKEN-5f3a9c\r\nConnection: close\r\n\r\nbad request: SECRET-TOKEN-5f3a9c\r\n"
	// Secret is the marker inside HTTPBadRequest: assert it appears in no error or status.
	Secret = "SECRET-TOKEN-5f3a9c"
)

// Nested returns depth nested one-element arrays around the integer 1:
// "*1\r\n" repeated depth times, then ":1\r\n".
func Nested(depth int) string {
	return strings.Repeat("*1\r\n", depth) + ":1\r\n"
}

// Request is one parsed command.
type Request struct {
	// Args are the command and its arguments as sent ("CLUSTER", "SHARDS").
	Args []string
	// Local is the server's own address ("127.0.0.1:port"), for replies that name it.
	Local string
}

// Name is the upper-cased command name, with the subcommand for container commands
// ("CLUSTER SHARDS", "CLIENT SETINFO", "SENTINEL REPLICAS", "PING").
func (r Request) Name() string {
	if len(r.Args) == 0 {
		return ""
	}
	n := strings.ToUpper(r.Args[0])
	switch n {
	case "CLUSTER", "CLIENT", "CONFIG", "ACL", "COMMAND", "SENTINEL":
		if len(r.Args) > 1 {
			n += " " + strings.ToUpper(r.Args[1])
		}
	}
	return n
}

// Handler returns the raw bytes to send in answer to one request (nil: send nothing).
type Handler func(Request) []byte

// Config says how a server behaves. The zero Config answers every command with
// "-ERR unknown command".
type Config struct {
	// Listen is the address to listen on ("": 127.0.0.1:0). A loopback IP no other test
	// uses keeps dials meant for somebody else (a port of a stopped server, reused for this
	// one) from reaching the server, so what it counts is what the test sent it.
	Listen string
	// Greeting is written right after accept, before anything is read (an SSH banner).
	Greeting []byte
	// CloseOnAccept closes every connection right after accept (after Greeting, if any).
	CloseOnAccept bool
	// Silent reads and discards requests and never answers.
	Silent bool
	// Reply, when set, is the raw answer to every command (Handler is then ignored).
	Reply []byte
	// Handler answers each request when Reply is nil (nil: MinimalRedis).
	Handler Handler
	// Delay is waited before each answer (Close interrupts it).
	Delay time.Duration
	// CloseAfterReply closes the connection after the first answer.
	CloseAfterReply bool
	// HoldLastByte, when positive, writes each answer to HoldCommand but its last byte, then
	// waits this long (Close interrupts it) before the last byte: the client has read, and
	// allocated for, everything the reply declares, and keeps it while it waits.
	HoldLastByte time.Duration
	// HoldCommand is the command (as Request.Name spells it) whose answers HoldLastByte holds
	// ("": every answer).
	HoldCommand string
	// Stream, when set, is written again and again after the answer to StreamCommand (as
	// Request.Name spells it; "": every command), StreamEvery apart (0: as fast as the client
	// reads), until the connection or the server is closed: a subscription that never stops
	// pushing messages. The connection reads no further requests meanwhile.
	Stream []byte
	// StreamCommand is the command whose answer starts the Stream ("SUBSCRIBE").
	StreamCommand string
	// StreamEvery is the pause between two writes of Stream.
	StreamEvery time.Duration
}

// Server is a running hostile server.
type Server struct {
	cfg  Config
	ln   net.Listener
	done chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool

	accepted atomic.Int64
	commands atomic.Int64
	holding  atomic.Int64
	streamed atomic.Int64
}

// TB is internal/tb's: the one interface every local-world helper takes.
type TB = tb.TB

// Start listens on cfg.Listen (127.0.0.1:0) and serves cfg until Close.
func Start(cfg Config) (*Server, error) {
	listen := cfg.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, ln: ln, done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// MustStart starts cfg and registers Close with t.Cleanup.
func MustStart(t TB, cfg Config) *Server {
	t.Helper()
	s, err := Start(cfg)
	if err != nil {
		t.Fatalf("hostile: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// FixedReply answers every command with raw (HugeArray, HugeBulk, Nested(100), ...).
func FixedReply(t TB, raw string) *Server {
	t.Helper()
	return MustStart(t, Config{Reply: []byte(raw)})
}

// Silent accepts connections, reads what is sent and never answers.
func Silent(t TB) *Server {
	t.Helper()
	return MustStart(t, Config{Silent: true})
}

// Slow answers each command after delay with h (nil: MinimalRedis).
func Slow(t TB, delay time.Duration, h Handler) *Server {
	t.Helper()
	return MustStart(t, Config{Delay: delay, Handler: h})
}

// Garbage sends raw (not RESP: SSHBanner, HTTPBadRequest) right after accept and again in
// answer to every command.
func Garbage(t TB, raw string) *Server {
	t.Helper()
	return MustStart(t, Config{Greeting: []byte(raw), Reply: []byte(raw)})
}

// CloseOnAccept closes every connection right after accepting it (the client sees EOF).
func CloseOnAccept(t TB) *Server {
	t.Helper()
	return MustStart(t, Config{CloseOnAccept: true})
}

// Addr is the address the server listens on ("127.0.0.1:port").
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Accepted counts the connections accepted so far.
func (s *Server) Accepted() int { return int(s.accepted.Load()) }

// Commands counts the requests parsed so far.
func (s *Server) Commands() int { return int(s.commands.Load()) }

// Streamed counts the writes of Config.Stream so far (on every connection together).
func (s *Server) Streamed() int { return int(s.streamed.Load()) }

// Holding counts the answers whose last byte is being held back right now (HoldLastByte).
func (s *Server) Holding() int { return int(s.holding.Load()) }

// Close stops listening, closes every connection and waits for every goroutine. Idempotent.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return
	}
	s.closed = true
	close(s.done)
	_ = s.ln.Close()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.accepted.Add(1)
		go s.serve(c)
	}
}

func (s *Server) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		_ = c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	if len(s.cfg.Greeting) > 0 {
		if _, err := c.Write(s.cfg.Greeting); err != nil {
			return
		}
	}
	if s.cfg.CloseOnAccept {
		return
	}
	r := bufio.NewReader(c)
	local := s.Addr()
	for {
		args, err := readRequest(r)
		if err != nil {
			return
		}
		s.commands.Add(1)
		if s.cfg.Silent {
			continue
		}
		var out []byte
		switch {
		case s.cfg.Reply != nil:
			out = s.cfg.Reply
		case s.cfg.Handler != nil:
			out = s.cfg.Handler(Request{Args: args, Local: local})
		default:
			out = MinimalRedis(Request{Args: args, Local: local})
		}
		if s.cfg.Delay > 0 {
			t := time.NewTimer(s.cfg.Delay)
			select {
			case <-t.C:
			case <-s.done:
				t.Stop()
				return
			}
		}
		name := (Request{Args: args}).Name()
		hold := s.cfg.HoldLastByte > 0 && (s.cfg.HoldCommand == "" || s.cfg.HoldCommand == name)
		if !s.write(c, out, hold) {
			return
		}
		if s.cfg.CloseAfterReply {
			return
		}
		if len(s.cfg.Stream) > 0 && (s.cfg.StreamCommand == "" || s.cfg.StreamCommand == name) {
			s.stream(c)
			return
		}
	}
}

// stream writes Config.Stream until the connection or the server closes.
func (s *Server) stream(c net.Conn) {
	for {
		if _, err := c.Write(s.cfg.Stream); err != nil {
			return
		}
		s.streamed.Add(1)
		if s.cfg.StreamEvery <= 0 {
			select {
			case <-s.done:
				return
			default:
			}
			continue
		}
		t := time.NewTimer(s.cfg.StreamEvery)
		select {
		case <-t.C:
		case <-s.done:
			t.Stop()
			return
		}
	}
}

// write sends one answer, holding its last byte back when the Config says so. It reports
// whether the connection is still usable.
func (s *Server) write(c net.Conn, out []byte, hold bool) bool {
	if len(out) == 0 {
		return true
	}
	if !hold || len(out) < 2 {
		_, err := c.Write(out)
		return err == nil
	}
	if _, err := c.Write(out[:len(out)-1]); err != nil {
		return false
	}
	s.holding.Add(1)
	t := time.NewTimer(s.cfg.HoldLastByte)
	select {
	case <-t.C:
	case <-s.done:
		t.Stop()
		s.holding.Add(-1)
		return false
	}
	s.holding.Add(-1)
	_, err := c.Write(out[len(out)-1:])
	return err == nil
}

// Answer is a Handler that answers the command named cmd (as Request.Name spells it, e.g.
// "CLUSTER SHARDS" or "ROLE") with reply, and everything else like MinimalRedis. The reply is
// shared, not copied: build it once.
func Answer(cmd string, reply []byte) Handler {
	return func(r Request) []byte {
		if r.Name() == cmd {
			return reply
		}
		return MinimalRedis(r)
	}
}

// EmptyNodeShards is a CLUSTER SHARDS reply (RESP2) of shards shards without slots, each
// listing entries empty node entries ("*0"): 4 bytes per entry, for which go-redis allocates
// a whole node struct. EmptyNodeShards(15, 65536) declares about 983,000 elements in 3.9 MB:
// inside the generic caps (DefaultMaxReplyElements, DefaultMaxArrayLen, DefaultMaxReplyBytes).
func EmptyNodeShards(shards, entries int) []byte {
	shard := "*4\r\n$5\r\nslots\r\n*0\r\n$5\r\nnodes\r\n*" + strconv.Itoa(entries) + "\r\n" + strings.Repeat("*0\r\n", entries)
	return []byte("*" + strconv.Itoa(shards) + "\r\n" + strings.Repeat(shard, shards))
}

// RoleReplicas is a ROLE reply (RESP2) of a master listing entries replicas, each an array of
// fields integers: RoleReplicas(65536, 14) declares about 983,000 elements in 4 MB, inside
// the generic caps, and go-redis builds an []interface{} for every entry.
func RoleReplicas(entries, fields int) []byte {
	entry := "*" + strconv.Itoa(fields) + "\r\n" + strings.Repeat(":1\r\n", fields)
	return []byte("*3\r\n$6\r\nmaster\r\n:0\r\n*" + strconv.Itoa(entries) + "\r\n" + strings.Repeat(entry, entries))
}

// Request size bounds: these servers are test fixtures, not a target for clients' floods.
const (
	maxArgs   = 1024
	maxArgLen = 1 << 20
	maxLine   = 64 << 10
)

var errBadRequest = errors.New("hostile: malformed request")

func readLine(r *bufio.Reader) (string, error) {
	var b []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			return "", err
		}
		b = append(b, chunk...)
		if len(b) > maxLine {
			return "", errBadRequest
		}
		if !isPrefix {
			return string(b), nil
		}
	}
}

// readRequest parses one RESP request: an array of bulk strings, or an inline command.
func readRequest(r *bufio.Reader) ([]string, error) {
	for {
		line, err := readLine(r)
		if err != nil {
			return nil, err
		}
		if line == "" {
			continue
		}
		if line[0] != '*' {
			return strings.Fields(line), nil
		}
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 || n > maxArgs {
			return nil, errBadRequest
		}
		args := make([]string, 0, n)
		for i := 0; i < n; i++ {
			h, err := readLine(r)
			if err != nil {
				return nil, err
			}
			if len(h) < 2 || h[0] != '$' {
				return nil, errBadRequest
			}
			l, err := strconv.Atoi(h[1:])
			if err != nil || l < 0 || l > maxArgLen {
				return nil, errBadRequest
			}
			buf := make([]byte, l+2)
			if _, err := io.ReadFull(r, buf); err != nil {
				return nil, err
			}
			args = append(args, string(buf[:l]))
		}
		if len(args) == 0 {
			continue
		}
		return args, nil
	}
}

// MinimalRedis answers like a one-node Redis Cluster at req.Local owning every slot: PING,
// ROLE, INFO, CLUSTER SHARDS/SLOTS/INFO/MYID, and +OK for AUTH, SELECT, CLIENT *, READONLY;
// HELLO and anything else get "-ERR unknown command" (so clients fall back to RESP2).
func MinimalRedis(req Request) []byte {
	host, portS, _ := net.SplitHostPort(req.Local)
	port, _ := strconv.Atoi(portS)
	const id = "0123456789abcdef0123456789abcdef01234567"
	switch req.Name() {
	case "PING":
		return []byte("+PONG\r\n")
	case "AUTH", "SELECT", "READONLY", "CLIENT SETNAME", "CLIENT SETINFO":
		return []byte("+OK\r\n")
	case "ROLE":
		return []byte("*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n")
	case "INFO":
		return bulk("# Server\r\nredis_version:7.0.15\r\nredis_mode:cluster\r\n# Replication\r\nrole:master\r\nmaster_repl_offset:0\r\n")
	case "CLUSTER INFO":
		return bulk("cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_known_nodes:1\r\n")
	case "CLUSTER MYID":
		return bulk(id)
	case "CLUSTER SLOTS":
		return fmt.Appendf(nil, "*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n%s:%d\r\n%s\r\n", bulkS(host), port, bulkS(id))
	case "CLUSTER SHARDS":
		node := fmt.Sprintf("*14\r\n$2\r\nid\r\n%s$4\r\nport\r\n:%d\r\n$2\r\nip\r\n%s$8\r\nendpoint\r\n%s$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n:0\r\n$6\r\nhealth\r\n$6\r\nonline\r\n",
			bulkS(id), port, bulkS(host), bulkS(host))
		return []byte("*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\nnodes\r\n*1\r\n" + node)
	default:
		return []byte("-ERR unknown command '" + sanitize(req.Args[0]) + "'\r\n")
	}
}

func bulkS(s string) string { return "$" + strconv.Itoa(len(s)) + "\r\n" + s + "\r\n" }
func bulk(s string) []byte  { return []byte(bulkS(s)) }

func sanitize(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

// Sentinel is a Handler that speaks the Sentinel commands a client asks (ROLE "sentinel",
// SENTINEL GET-MASTER-ADDR-BY-NAME, REPLICAS, SENTINELS) and naming master ("host:port") as
// the master of every name: a lying or stale sentinel ("": it knows no master by that name). replicas and sentinels are raw replies
// to SENTINEL REPLICAS and SENTINELS (nil: an empty array), so a test can also send one beyond
// every cap. Everything else is answered like MinimalRedis.
func Sentinel(master string, replicas, sentinels []byte) Handler {
	host, port, _ := net.SplitHostPort(master)
	addr := []byte("*2\r\n" + bulkS(host) + bulkS(port))
	if master == "" {
		addr = []byte("*-1\r\n") // no master by that name
	}
	if replicas == nil {
		replicas = []byte("*0\r\n")
	}
	if sentinels == nil {
		sentinels = []byte("*0\r\n")
	}
	return func(r Request) []byte {
		if strings.EqualFold(r.Args[0], "ROLE") {
			return []byte("*2\r\n$8\r\nsentinel\r\n*1\r\n$8\r\nmymaster\r\n")
		}
		if !strings.EqualFold(r.Args[0], "SENTINEL") || len(r.Args) < 2 {
			return MinimalRedis(r)
		}
		switch strings.ToUpper(r.Args[1]) {
		case "GET-MASTER-ADDR-BY-NAME":
			return addr
		case "REPLICAS", "SLAVES":
			return replicas
		case "SENTINELS":
			return sentinels
		}
		return []byte("-ERR unknown sentinel subcommand\r\n")
	}
}

// SentinelEntries is a SENTINEL REPLICAS/SENTINELS reply (RESP2) of n entries of pairs
// key/value pairs each: SentinelEntries(5000, 2) declares 25,001 elements in about 200 KB,
// inside every generic cap but beyond the per-command cap (MaxTopologyNodes entries).
func SentinelEntries(n, pairs int) []byte {
	entry := "*" + strconv.Itoa(2*pairs) + "\r\n" + strings.Repeat("$1\r\nk\r\n$1\r\nv\r\n", pairs)
	return []byte("*" + strconv.Itoa(n) + "\r\n" + strings.Repeat(entry, n))
}

// Subscribing wraps h (nil: MinimalRedis) to answer SUBSCRIBE as Redis does: one
// confirmation per channel ("subscribe", the channel, the count so far). With Config.Stream
// and StreamCommand "SUBSCRIBE", the server then pushes messages forever.
func Subscribing(h Handler) Handler {
	if h == nil {
		h = MinimalRedis
	}
	return func(r Request) []byte {
		if !strings.EqualFold(r.Args[0], "SUBSCRIBE") {
			return h(r)
		}
		return SubscribeConfirm(r.Args[1:]...)
	}
}

// SubscribeConfirm is what Redis answers to SUBSCRIBE channels... (RESP2).
func SubscribeConfirm(channels ...string) []byte {
	var b strings.Builder
	for i, ch := range channels {
		b.WriteString("*3\r\n$9\r\nsubscribe\r\n" + bulkS(ch) + ":" + strconv.Itoa(i+1) + "\r\n")
	}
	return []byte(b.String())
}

// Message is a pub/sub message push (RESP2): ["message", channel, payload].
func Message(channel, payload string) []byte {
	return []byte("*3\r\n$7\r\nmessage\r\n" + bulkS(channel) + bulkS(payload))
}
