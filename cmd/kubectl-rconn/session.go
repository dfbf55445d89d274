package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// The session password of port-forward.
//
// The proxy's listeners are TCP on loopback, and every local user can connect to a loopback
// port. Behind them are the API server's port-forward (the kubectl user's identity), TLS with
// the Secret's client certificate, and the Secret's credentials: without a gate, any local
// user of a shared host would use all three. A Unix socket (mode 0600) would close that for one
// listener, but cluster clients follow MOVED/ASK and CLUSTER SLOTS to host:port — redis-cli -c
// -s reconnects to the same socket after a MOVED, and go-redis, node-redis and redis-py name
// cluster nodes by host:port — so the per-node listeners must stay TCP. Instead, every
// connection must first authenticate with a password made for this run: AUTH [user] <session
// password> or HELLO <proto> AUTH <user> <session password>, which every cluster client sends on
// each connection to each node. The gate answers before any node is dialed; the accepted
// command is then sent upstream with the Secret's credentials in place of the session password
// (or answered +OK locally when the Secret has none), so the real password never reaches the
// local client. The password is written to a 0600 file in a 0700 directory, not printed and
// never put on a command line (/proc/PID/cmdline is world-readable).

const (
	// sessionPasswordBytes of randomness (128 bits), hex-encoded.
	sessionPasswordBytes = 16
	// maxPreAuthCommand bounds one command read before authentication (AUTH and HELLO are
	// short); longer closes the connection.
	maxPreAuthCommand = 4 << 10
	// maxPreAuthCommands is how many commands (answered -NOAUTH) a connection may send before
	// it authenticates: redis-cli sends COMMAND DOCS first when interactive.
	maxPreAuthCommands = 8
	// preAuthTimeout bounds the time from accept to authentication.
	preAuthTimeout = 30 * time.Second
	// maxPendingAuth bounds the connections authenticating at once; more are closed at once.
	maxPendingAuth = 64
)

// Replies of the gate, worded as Redis words them.
const (
	replyNoAuth      = "-NOAUTH Authentication required.\r\n"
	replyHelloNoAuth = "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n"
	replyWrongPass   = "-WRONGPASS invalid username-password pair or user is disabled. (kubectl rconn port-forward: use the session password)\r\n"
)

// errSessionAuth says why the gate closed a connection.
var errSessionAuth = errors.New("port-forward session authentication")

// session is the per-run password every connection to port-forward's listeners must present.
type session struct {
	password string
	dir      string
	file     string
	// creds are the Secret's username and password, sent upstream in place of the session
	// password (followed live).
	creds   atomic.Pointer[[2]string]
	pending chan struct{}
}

// newSession makes a password and writes it to <dir>/password, mode 0600, in a new directory
// of mode 0700 under base ("": $XDG_RUNTIME_DIR when set, else the temp directory).
func newSession(base string) (*session, error) {
	b := make([]byte, sessionPasswordBytes)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("session password: %w", err)
	}
	if base == "" {
		base = os.Getenv("XDG_RUNTIME_DIR")
	}
	if base == "" {
		base = os.TempDir()
	}
	// MkdirTemp creates the directory with mode 0700 (less with a stricter umask) under a name
	// nobody else can have created.
	dir, err := os.MkdirTemp(base, fmt.Sprintf("rconn-%d-", os.Getuid()))
	if err != nil {
		return nil, fmt.Errorf("session directory: %w", err)
	}
	s := &session{password: hex.EncodeToString(b), dir: dir, file: filepath.Join(dir, "password"), pending: make(chan struct{}, maxPendingAuth)}
	s.creds.Store(&[2]string{})
	f, err := os.OpenFile(s.file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, err = f.WriteString(s.password + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		s.remove()
		return nil, fmt.Errorf("session password file: %w", err)
	}
	return s, nil
}

// remove deletes the password file and its directory.
func (s *session) remove() { _ = os.RemoveAll(s.dir) }

// setCredentials sets the Secret's credentials the gate sends upstream.
func (s *session) setCredentials(user, password string) { s.creds.Store(&[2]string{user, password}) }

// handshake is the proxy's Options.Handshake: it reads commands until the client
// authenticates with the session password and returns the connection the proxy forwards,
// whose first bytes are the accepted command with the Secret's credentials (if any) and what
// the client sent after it. Anything else gets Redis's -NOAUTH, and a wrong
// password gets -WRONGPASS; too many commands, a long command or preAuthTimeout close the
// connection.
func (s *session) handshake(ctx context.Context, c net.Conn) (net.Conn, error) {
	select {
	case s.pending <- struct{}{}:
		defer func() { <-s.pending }()
	default:
		return nil, fmt.Errorf("%w: %d connections are authenticating already", errSessionAuth, maxPendingAuth)
	}
	// The proxy closing ends ctx: a past deadline unblocks the read.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := c.SetDeadline(time.Now().Add(preAuthTimeout)); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(c, maxPreAuthCommand)
	for i := 0; i < maxPreAuthCommands; i++ {
		args, err := readCommand(br)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errSessionAuth, err)
		}
		first, ok, wrong := s.accept(args)
		if !ok {
			// As Redis does, a wrong password is an error reply, not a closed connection
			// (go-redis falls back from HELLO to AUTH on it); the attempts count.
			reply := noAuthReply(args)
			if wrong {
				reply = replyWrongPass
			}
			if _, err := c.Write([]byte(reply)); err != nil {
				return nil, err
			}
			continue
		}
		if first == nil {
			if _, err := c.Write([]byte("+OK\r\n")); err != nil {
				return nil, err
			}
		}
		if !stop() { // ctx ended: the past deadline may be set after any clearing here
			return nil, ctx.Err()
		}
		if err := c.SetDeadline(time.Time{}); err != nil {
			return nil, err
		}
		rest, _ := br.Peek(br.Buffered()) // what the client pipelined after it
		return &prefixConn{Conn: c, pre: append(first, rest...)}, nil
	}
	return nil, fmt.Errorf("%w: %d commands without authenticating", errSessionAuth, maxPreAuthCommands)
}

func noAuthReply(args []string) string {
	if len(args) > 0 && strings.EqualFold(args[0], "HELLO") {
		return replyHelloNoAuth
	}
	return replyNoAuth
}

// accept checks one command: ok when it authenticates with the session password, first then
// being the command to send upstream (nil: answer +OK here); wrong when it names another
// password.
func (s *session) accept(args []string) (first []byte, ok, wrong bool) {
	if len(args) == 0 {
		return nil, false, false
	}
	creds := *s.creds.Load()
	switch strings.ToUpper(args[0]) {
	case "AUTH":
		if len(args) != 2 && len(args) != 3 {
			return nil, false, false
		}
		if !s.matches(args[len(args)-1]) {
			return nil, false, true
		}
		switch {
		case creds[1] == "":
			return nil, true, false
		case creds[0] == "":
			return encodeCommand("AUTH", creds[1]), true, false
		default:
			return encodeCommand("AUTH", creds[0], creds[1]), true, false
		}
	case "HELLO":
		return s.acceptHello(args, creds)
	}
	return nil, false, false
}

// acceptHello accepts HELLO <proto> AUTH <user> <session password> [...], rewritten with the
// Secret's credentials (or without AUTH when it has none); HELLO without AUTH is not accepted.
func (s *session) acceptHello(args []string, creds [2]string) (first []byte, ok, wrong bool) {
	out := []string{args[0]}
	authed := false
	for i := 1; i < len(args); i++ {
		if !strings.EqualFold(args[i], "AUTH") {
			out = append(out, args[i])
			continue
		}
		if i+2 >= len(args) || authed {
			return nil, false, false
		}
		if !s.matches(args[i+2]) {
			return nil, false, true
		}
		authed = true
		if creds[1] != "" {
			user := creds[0]
			if user == "" {
				user = "default"
			}
			out = append(out, "AUTH", user, creds[1])
		}
		i += 2
	}
	if !authed {
		return nil, false, false
	}
	return encodeCommand(out...), true, false
}

func (s *session) matches(pw string) bool {
	return subtle.ConstantTimeCompare([]byte(pw), []byte(s.password)) == 1
}

// readCommand reads one command: a RESP array of bulk strings or an inline command line, at
// most maxPreAuthCommand bytes.
func readCommand(br *bufio.Reader) ([]string, error) {
	line, err := readLine(br)
	if err != nil {
		return nil, err
	}
	if len(line) == 0 || line[0] != '*' {
		return strings.Fields(string(line)), nil // inline (nc, telnet)
	}
	n, err := strconv.Atoi(string(line[1:]))
	if err != nil || n < 0 || n > 16 {
		return nil, fmt.Errorf("not a short command (array header %q)", line)
	}
	args := make([]string, 0, n)
	total := 0
	for range n {
		h, err := readLine(br)
		if err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(string(bytes.TrimPrefix(h, []byte("$"))))
		if len(h) == 0 || h[0] != '$' || err != nil || size < 0 {
			return nil, fmt.Errorf("malformed command (bulk header %q)", h)
		}
		if total += size; total > maxPreAuthCommand {
			return nil, fmt.Errorf("command longer than %d bytes before authentication", maxPreAuthCommand)
		}
		b := make([]byte, size+2)
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, err
		}
		args = append(args, string(b[:size]))
	}
	return args, nil
}

func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("line longer than %d bytes before authentication", maxPreAuthCommand)
	}
	if err != nil {
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

func encodeCommand(args ...string) []byte {
	b := []byte("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, "\r\n"...)
		b = append(b, a...)
		b = append(b, "\r\n"...)
	}
	return b
}

// prefixConn reads pre before the connection.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}
