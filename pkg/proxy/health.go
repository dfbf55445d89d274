package proxy

import (
	"context"
	"net"
	"strconv"
	"time"
)

// Node failure as clients understand it: while the proxy knows a node is down (a dial to it
// failed, or the topology marks it failed), its listener's socket is closed, so clients get
// "connection refused" as they would from the node itself (not a connection accepted and then
// reset, which some clients retry forever without reloading their slot map). The port stays
// reserved for the node ID; the socket reopens on it when a dial succeeds again. Each change
// of state is logged once.

// nodeUnreachable marks l down after a failed dial.
func (p *Proxy) nodeUnreachable(l *listener, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || !p.all[l] {
		return
	}
	p.downLocked(l, "unreachable: "+err.Error())
}

// downLocked closes l's socket (once per state change).
func (p *Proxy) downLocked(l *listener, why string) {
	if l.down {
		return
	}
	l.down = true
	if l.ln != nil {
		_ = l.ln.Close()
		l.ln = nil
	}
	p.log.Warn("rconn proxy: node down, its listener refuses connections until it is back",
		"node", l.id, "announced", *l.target.Load(), "listen", p.addr(l), "why", why)
}

// probeDown dials every node marked down that the topology does not mark failed, and reopens
// the listener of each that answers.
func (p *Proxy) probeDown() {
	p.mu.Lock()
	var ls []*listener
	for l := range p.all {
		if l.down && !l.failed {
			ls = append(ls, l)
		}
	}
	p.mu.Unlock()
	for _, l := range ls {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := p.in.Dialer().DialContext(ctx, "tcp", *l.target.Load())
		cancel()
		if err != nil {
			continue
		}
		_ = c.Close()
		p.up(l)
	}
}

// up reopens l's socket on its port.
func (p *Proxy) up(l *listener) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || !p.all[l] || !l.down || l.failed {
		return
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(p.o.ListenHost, strconv.Itoa(l.port)))
	if err != nil {
		p.log.Warn("rconn proxy: node is back but its port cannot be reopened", "node", l.id, "listen", p.addr(l), "err", err)
		return
	}
	l.ln, l.down = ln, false
	p.serve(l, ln)
	p.log.Info("rconn proxy: node is back, its listener accepts again", "node", l.id, "announced", *l.target.Load(), "listen", p.addr(l))
}
