package proxy

import (
	"context"

	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
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
	if l.ln != nil && !l.movedMode.Load() {
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
	if l.ln != nil { // answering -MOVED: forward again on the same socket
		l.down = false
		l.movedMode.Store(false)
		p.log.Info("rconn proxy: node is back, its listener forwards again", "node", l.id, "announced", *l.target.Load(), "listen", p.addr(l))
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

// ownersLocked records which listener serves which slots, and opens the socket of every down
// node whose slots another live node now serves, answering -MOVED (moved.go).
func (p *Proxy) ownersLocked(t *cluster.Topology) {
	p.owners = p.owners[:0]
	for _, sh := range t.Shards {
		if sh.Master == nil || len(sh.Slots) == 0 {
			continue
		}
		l := p.lookupLocked(sh.Master.ID, sh.Master.Announced)
		if l == nil {
			continue
		}
		l.slots = append(l.slots[:0], sh.Slots...)
		for _, r := range sh.Slots {
			p.owners = append(p.owners, owner{start: r.Start, end: r.End, l: l})
		}
	}
	for l := range p.all {
		if !l.down || l.ln != nil || !p.movedTargetLocked(l) {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(p.o.ListenHost, strconv.Itoa(l.port)))
		if err != nil {
			p.log.Warn("rconn proxy: cannot reopen a down node's port to redirect its clients", "node", l.id, "listen", p.addr(l), "err", err)
			continue
		}
		l.ln = ln
		l.movedMode.Store(true)
		p.serve(l, ln)
		p.log.Info("rconn proxy: node still down, its slots have a new owner: its listener answers -MOVED", "node", l.id, "listen", p.addr(l))
	}
}
