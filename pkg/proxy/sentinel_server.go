package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/resp"
)

// The sentinel listener's side of a client connection: a small Redis Sentinel (RESP2) that
// answers from the proxy's confirmed view. Bounds: a command has at most sentMaxArgs
// arguments of at most sentMaxArg bytes (sentMaxCommand in all), a connection at most
// sentMaxSubs subscriptions; beyond them the connection is closed. Every write has a
// deadline, so a client that stops reading cannot hold a publisher.
const (
	sentMaxArgs    = 64
	sentMaxArg     = 4096
	sentMaxCommand = 64 << 10
	sentMaxSubs    = 64
	sentWriteWait  = 5 * time.Second
	// Figures the MASTER and REPLICAS replies carry that the proxy does not own; clients
	// parse them as integers (redis-py), so they are plausible constants.
	sentDownAfter       = "30000"
	sentFailoverTimeout = "180000"
)

var (
	errSentCommand = errors.New("rconn proxy: sentinel listener: command beyond the limits")
	errSentSubs    = fmt.Errorf("rconn proxy: sentinel listener: more than %d subscriptions", sentMaxSubs)
)

// sentConn is one client of the sentinel listener.
type sentConn struct {
	c     net.Conn
	wmu   sync.Mutex
	mu    sync.Mutex
	subs  map[string]bool // channels
	psubs map[string]bool // patterns
}

// serveSentinel accepts clients of the sentinel listener.
func (p *Proxy) serveSentinel(l *listener) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.ln.Accept()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.sentinelClient(c)
			}()
		}
	}()
}

func (p *Proxy) sentinelClient(c net.Conn) {
	sm := p.sm
	stop := context.AfterFunc(sm.ctx, func() { _ = c.Close() })
	defer stop()
	if p.o.Handshake != nil {
		hc, err := p.o.Handshake(sm.ctx, c)
		if err != nil {
			_ = c.Close()
			return
		}
		c = hc
		stop2 := context.AfterFunc(sm.ctx, func() { _ = c.Close() })
		defer stop2()
	}
	sc := &sentConn{c: c, subs: map[string]bool{}, psubs: map[string]bool{}}
	sm.mu.Lock()
	sm.subs[sc] = true
	sm.mu.Unlock()
	defer func() {
		sm.mu.Lock()
		delete(sm.subs, sc)
		sm.mu.Unlock()
		_ = c.Close()
	}()
	var rd cmdReader
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		for i := 0; i < n; {
			k, args, cerr := rd.next(buf[i:n])
			i += k
			if cerr != nil {
				p.log.Debug("rconn proxy: sentinel listener: closing a connection", "err", cerr)
				_ = sc.write([]byte("-ERR Protocol error: " + cerr.Error() + "\r\n"))
				return
			}
			if args == nil {
				continue
			}
			out, quit := p.sentinelCommand(sc, args)
			if werr := sc.write(out); werr != nil || quit {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (sc *sentConn) write(b []byte) error {
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	_ = sc.c.SetWriteDeadline(time.Now().Add(sentWriteWait))
	_, err := sc.c.Write(b)
	return err
}

// cmdReader splits a client's byte stream into commands (RESP arrays of bulk strings or
// inline lines, the way Redis does) within the sentinel listener's bounds.
type cmdReader struct {
	sc     resp.Scanner
	il     resp.Inline
	init   bool
	inline bool
	args   [][]byte
	size   int
}

// next consumes p up to the end of a command: n bytes consumed, args the command when one
// ended (nil otherwise).
func (r *cmdReader) next(p []byte) (n int, args [][]byte, err error) {
	if !r.init {
		r.init = true
		r.sc.Lim = resp.Limits{MaxBulk: sentMaxArg, MaxAggregate: sentMaxArgs, MaxLine: 32, MaxDepth: 1, MaxBytes: sentMaxCommand, MaxElems: sentMaxArgs}
		r.sc.Request, r.sc.Watch = true, 2
	}
	for i := 0; ; {
		if !r.inline && r.sc.Between() && len(r.args) == 0 && i < len(p) && p[i] != '*' {
			r.inline = true
		}
		var k int
		var ev resp.Event
		if r.inline {
			k, ev, err = r.il.Scan(p[i:])
			if r.size += k; r.size > sentMaxCommand {
				err = errSentCommand
			}
		} else {
			k, ev, err = r.sc.Scan(p[i:])
		}
		i += k
		if err != nil {
			return i, nil, errSentCommand
		}
		switch ev {
		case resp.None:
			return i, nil, nil
		case resp.Begin:
			if r.inline {
				if len(r.args) >= sentMaxArgs {
					return i, nil, errSentCommand
				}
				r.args = append(r.args, nil)
			} else if r.sc.Depth() == 1 {
				r.args = append(r.args, nil)
				r.sc.Capture = true
			}
		case resp.Data:
			d := r.sc.Data()
			if r.inline {
				d = r.il.Data()
			}
			last := len(r.args) - 1
			if last < 0 || len(r.args[last])+len(d) > sentMaxArg {
				return i, nil, errSentCommand
			}
			r.args[last] = append(r.args[last], d...)
		case resp.End:
			args, r.args, r.size, r.inline = r.args, nil, 0, false
			r.il.Reset()
			if len(args) == 0 {
				continue // a blank line or an empty array: no command, no reply
			}
			return i, args, nil
		}
	}
}

// sentinelCommand answers one command; quit: close the connection after the reply.
func (p *Proxy) sentinelCommand(sc *sentConn, args [][]byte) (out []byte, quit bool) {
	name := strings.ToUpper(string(args[0]))
	if sc.subscribed() {
		switch name {
		case "SUBSCRIBE", "PSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "PING", "QUIT", "RESET":
		default:
			return errReply("Can't execute '" + strings.ToLower(name) + "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"), false
		}
	}
	switch name {
	case "PING":
		if sc.subscribed() {
			msg := ""
			if len(args) > 1 {
				msg = string(args[1])
			}
			return appendArray(nil, "pong", msg), false
		}
		if len(args) > 1 {
			return appendBulk(nil, string(args[1])), false
		}
		return []byte("+PONG\r\n"), false
	case "QUIT":
		return []byte("+OK\r\n"), true
	case "RESET":
		sc.unsubscribeAll()
		return []byte("+RESET\r\n"), false
	case "AUTH", "READONLY", "READWRITE":
		// Credentials are the data nodes' business (AUTH through the data listeners reaches
		// them); what this listener tells is the proxy's own listeners.
		return []byte("+OK\r\n"), false
	case "HELLO":
		return p.sentinelHello(args), false
	case "CLIENT":
		return clientReply(args), false
	case "ROLE":
		b := []byte("*2\r\n$8\r\nsentinel\r\n*1\r\n")
		return appendBulk(b, p.sm.name), false
	case "INFO":
		return p.sentinelInfo(), false
	case "COMMAND":
		return []byte("*0\r\n"), false
	case "SENTINEL":
		return p.sentinelSub(args), false
	case "SUBSCRIBE", "PSUBSCRIBE":
		return sc.subscribe(name == "PSUBSCRIBE", args[1:])
	case "UNSUBSCRIBE", "PUNSUBSCRIBE":
		return sc.unsubscribe(name == "PUNSUBSCRIBE", args[1:]), false
	}
	return errReply("unknown command '" + clip(string(args[0])) + "' (rconn-proxy's sentinel listener)"), false
}

func clip(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' {
			return '?'
		}
		return r
	}, s)
}

func errReply(msg string) []byte { return []byte("-ERR " + msg + "\r\n") }

// sentinelHello answers HELLO [2 [AUTH u p] [SETNAME n]] like a sentinel in RESP2; RESP3 is
// refused with NOPROTO, on which clients (go-redis) carry on in RESP2.
func (p *Proxy) sentinelHello(args [][]byte) []byte {
	if len(args) > 1 && string(args[1]) != "2" {
		return []byte("-NOPROTO rconn-proxy's sentinel listener speaks RESP2 only\r\n")
	}
	return appendArray(nil, "server", "redis", "version", "7.0.15", "proto", "2", "id", "1", "mode", "sentinel", "role", "sentinel", "modules", "")
}

func clientReply(args [][]byte) []byte {
	if len(args) > 1 {
		switch strings.ToUpper(string(args[1])) {
		case "GETNAME":
			return []byte("$-1\r\n")
		case "ID":
			return []byte(":1\r\n")
		}
	}
	return []byte("+OK\r\n")
}

func (p *Proxy) sentinelInfo() []byte {
	v, _ := p.sm.snapshot()
	status := "ok"
	if v.master == "" {
		status = "odown"
	}
	text := fmt.Sprintf("# Sentinel\r\nsentinel_masters:1\r\nsentinel_tilt:0\r\nmaster0:name=%s,status=%s,address=%s,slaves=%d,sentinels=1\r\n",
		p.sm.name, status, v.master, len(v.replicas))
	return appendBulk(nil, text)
}

// sentinelSub answers the SENTINEL subcommands clients use to find the master, replicas and
// sentinels.
func (p *Proxy) sentinelSub(args [][]byte) []byte {
	if len(args) < 2 {
		return errReply("wrong number of arguments for 'sentinel' command")
	}
	sub := strings.ToUpper(string(args[1]))
	v, epoch := p.sm.snapshot()
	named := len(args) > 2 && string(args[2]) == p.sm.name
	switch sub {
	case "GET-MASTER-ADDR-BY-NAME":
		if !named || v.master == "" {
			return []byte("*-1\r\n")
		}
		h, port := splitListen(v.master)
		return appendArray(nil, h, port)
	case "MASTERS":
		if v.master == "" {
			return []byte("*0\r\n")
		}
		return append([]byte("*1\r\n"), p.masterFields(v, epoch)...)
	case "MASTER":
		if !named || v.master == "" {
			return errReply("No such master with that name")
		}
		return p.masterFields(v, epoch)
	case "REPLICAS", "SLAVES":
		if !named {
			return errReply("No such master with that name")
		}
		b := []byte("*" + strconv.Itoa(len(v.replicas)) + "\r\n")
		for _, r := range v.replicas {
			b = replicaFields(b, r, v.master)
		}
		return b
	case "SENTINELS":
		if !named {
			return errReply("No such master with that name")
		}
		return []byte("*0\r\n") // this listener is the only sentinel clients need
	case "MYID":
		return appendBulk(nil, "0000000000000000000000000000000000000000")
	case "CKQUORUM":
		if !named || v.master == "" {
			return errReply("No such master with that name")
		}
		return []byte("+OK 1 usable Sentinels. Quorum and failover authorization can be reached\r\n")
	}
	return errReply("rconn-proxy's sentinel listener answers SENTINEL GET-MASTER-ADDR-BY-NAME, MASTERS, MASTER, REPLICAS, SLAVES, SENTINELS, MYID and CKQUORUM only")
}

func (p *Proxy) masterFields(v sentinelView, epoch int64) []byte {
	h, port := splitListen(v.master)
	return appendArray(nil, "name", p.sm.name, "ip", h, "port", port, "runid", "", "flags", "master",
		"link-pending-commands", "0", "link-refcount", "1", "last-ping-sent", "0", "last-ok-ping-reply", "0",
		"last-ping-reply", "0", "down-after-milliseconds", sentDownAfter, "info-refresh", "0",
		"role-reported", "master", "role-reported-time", "0", "config-epoch", strconv.FormatInt(epoch, 10),
		"num-slaves", strconv.Itoa(len(v.replicas)), "num-other-sentinels", "0", "quorum", "1",
		"failover-timeout", sentFailoverTimeout, "parallel-syncs", "1")
}

func replicaFields(b []byte, r viewReplica, master string) []byte {
	h, port := splitListen(r.listen)
	mh, mp := splitListen(master)
	flags := r.flags
	if flags == "" || len(flags) > 64 || strings.Trim(flags, "abcdefghijklmnopqrstuvwxyz_,") != "" {
		flags = "slave"
	}
	link := r.linkStatus
	if link != "ok" {
		link = "err"
	}
	return appendArray(b, "name", r.listen, "ip", h, "port", port, "runid", "", "flags", flags,
		"link-pending-commands", "0", "link-refcount", "1", "last-ping-sent", "0", "last-ok-ping-reply", "0",
		"last-ping-reply", "0", "down-after-milliseconds", sentDownAfter, "info-refresh", "0",
		"role-reported", "slave", "role-reported-time", "0",
		"master-link-down-time", strconv.FormatInt(r.linkDown.Milliseconds(), 10), "master-link-status", link,
		"master-host", mh, "master-port", mp, "slave-priority", "100",
		"slave-repl-offset", strconv.FormatInt(r.offset, 10), "replica-announced", "1")
}

func appendBulk(b []byte, s string) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, "\r\n"...)
	b = append(b, s...)
	return append(b, "\r\n"...)
}

func appendArray(b []byte, items ...string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(items)), 10)
	b = append(b, "\r\n"...)
	for _, s := range items {
		b = appendBulk(b, s)
	}
	return b
}

func (sc *sentConn) subscribed() bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return len(sc.subs)+len(sc.psubs) > 0
}

func (sc *sentConn) subscribe(pattern bool, names [][]byte) ([]byte, bool) {
	if len(names) == 0 {
		return errReply("wrong number of arguments"), false
	}
	kind, set := "subscribe", sc.subs
	if pattern {
		kind, set = "psubscribe", sc.psubs
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	var b []byte
	for _, n := range names {
		set[string(n)] = true
		if len(sc.subs)+len(sc.psubs) > sentMaxSubs {
			return append(b, errReply(errSentSubs.Error())...), true
		}
		b = appendSubReply(b, kind, string(n), len(sc.subs)+len(sc.psubs))
	}
	return b, false
}

func (sc *sentConn) unsubscribe(pattern bool, names [][]byte) []byte {
	kind, set := "unsubscribe", sc.subs
	if pattern {
		kind, set = "punsubscribe", sc.psubs
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if len(names) == 0 {
		for n := range set {
			names = append(names, []byte(n))
		}
	}
	if len(names) == 0 {
		return append([]byte("*3\r\n$"+strconv.Itoa(len(kind))+"\r\n"+kind+"\r\n$-1\r\n:"), strconv.Itoa(len(sc.subs)+len(sc.psubs))+"\r\n"...)
	}
	var b []byte
	for _, n := range names {
		delete(set, string(n))
		b = appendSubReply(b, kind, string(n), len(sc.subs)+len(sc.psubs))
	}
	return b
}

func (sc *sentConn) unsubscribeAll() {
	sc.mu.Lock()
	clear(sc.subs)
	clear(sc.psubs)
	sc.mu.Unlock()
}

func appendSubReply(b []byte, kind, name string, count int) []byte {
	b = append(b, "*3\r\n"...)
	b = appendBulk(b, kind)
	b = appendBulk(b, name)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(count), 10)
	return append(b, "\r\n"...)
}

// messageFor is what the connection receives for a message on channel ("" if nothing).
func (sc *sentConn) messageFor(channel, payload string) []byte {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	var b []byte
	if sc.subs[channel] {
		b = appendArray(b, "message", channel, payload)
	}
	for pat := range sc.psubs {
		if ok, _ := path.Match(pat, channel); ok || pat == "*" {
			b = appendArray(b, "pmessage", pat, channel, payload)
		}
	}
	return b
}

// publish sends a message to every subscribed client of the sentinel listener, each write
// bounded by sentWriteWait (a client that does not read is dropped, the others still get it).
func (sm *sentinelMode) publish(channel, payload string) {
	sm.mu.Lock()
	conns := make([]*sentConn, 0, len(sm.subs))
	for c := range sm.subs {
		conns = append(conns, c)
	}
	sm.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range conns {
		b := c.messageFor(channel, payload)
		if len(b) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.write(b); err != nil {
				_ = c.c.Close()
			}
		}()
	}
	wg.Wait()
}
