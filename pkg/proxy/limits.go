package proxy

import (
	"net"
	"slices"
	"sync/atomic"
	"time"
)

// limitDefaults fills the limits of o: 0 takes the default, a negative value turns a cap off.
func limitDefaults(o Options) Options {
	if o.MaxConns == 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.MaxConnsPerNode == 0 {
		o.MaxConnsPerNode = DefaultMaxConnsPerNode
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxTopologyBuffer <= 0 {
		o.MaxTopologyBuffer = DefaultMaxTopologyBuffer
	}
	return o
}

// admit counts a new client connection of l against the caps; false: over a cap.
func (p *Proxy) admit(l *listener) bool {
	total, mine := p.conns.Add(1), l.conns.Add(1)
	if (p.o.MaxConns > 0 && total > int64(p.o.MaxConns)) || (p.o.MaxConnsPerNode > 0 && mine > int64(p.o.MaxConnsPerNode)) {
		p.release(l)
		p.log.Debug("rconn proxy: connection over the caps refused", "listen", p.addr(l), "total", total-1, "listener", mine-1)
		return false
	}
	return true
}

func (p *Proxy) release(l *listener) {
	p.conns.Add(-1)
	l.conns.Add(-1)
}

// refuse answers a connection over a cap as Redis answers one over maxclients, and closes it.
func refuse(c net.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write([]byte(maxClientsReply))
	_ = c.Close()
}

// sweepLoop advances the coarse clock the pipes stamp their activity with, and closes the
// connections idle for longer than IdleTimeout. A stamp per read (an atomic store of this
// clock) costs the forwarding path nothing measurable, unlike a deadline per read.
func (p *Proxy) sweepLoop() {
	defer p.wg.Done()
	every := time.Second
	if p.o.IdleTimeout > 0 && p.o.IdleTimeout/4 < every {
		every = max(p.o.IdleTimeout/4, 10*time.Millisecond)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.life.Done():
			return
		case now := <-t.C:
			p.clock.Store(now.UnixNano())
			if p.o.IdleTimeout > 0 {
				p.closeIdle(now.Add(-p.o.IdleTimeout).UnixNano())
			}
		}
	}
}

func (p *Proxy) closeIdle(before int64) {
	p.mu.Lock()
	ls := []*listener{p.seed}
	for l := range p.all {
		ls = append(ls, l)
	}
	p.mu.Unlock()
	for _, l := range ls {
		l.mu.Lock()
		var idle []*pipe
		for pp := range l.pipes {
			if pp.last.Load() < before {
				idle = append(idle, pp)
			}
		}
		l.mu.Unlock()
		for _, pp := range idle {
			p.log.Debug("rconn proxy: closing an idle connection", "listen", p.addr(l), "idle", p.o.IdleTimeout)
			pp.close()
		}
	}
}

// reserveLocked keeps port for node id after the node leaves, so that it gets the same port
// back; at most NodePorts reservations are kept: beyond that the oldest of the nodes that
// have no listener is forgotten (a stream of departed node IDs cannot hold every port).
func (p *Proxy) reserveLocked(id string, port int) {
	if _, ok := p.reserved[id]; !ok {
		p.order = append(p.order, id)
	}
	p.reserved[id] = port
	for len(p.reserved) > p.o.NodePorts {
		i := slices.IndexFunc(p.order, func(rid string) bool { return p.byID[rid] == nil })
		if i < 0 {
			return
		}
		delete(p.reserved, p.order[i])
		p.order = slices.Delete(p.order, i, i+1)
	}
}

// budget is the topology reply bytes all connections may hold at once.
type budget struct {
	max  int64
	used atomic.Int64
}

// take reserves n bytes; false: over the budget (nothing reserved).
func (b *budget) take(n int) bool {
	if b == nil {
		return true
	}
	if b.used.Add(int64(n)) > b.max {
		b.used.Add(-int64(n))
		return false
	}
	return true
}

func (b *budget) give(n int) {
	if b != nil && n > 0 {
		b.used.Add(-int64(n))
	}
}
