package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// Sentinel mode (config.json rconn.mode "sentinel"). The proxy does not forward sentinel
// connections: its sentinel listener IS a sentinel as far as clients can tell (redis-py's
// Sentinel, Jedis' sentinel pool, go-redis's FailoverClient), answering SENTINEL
// GET-MASTER-ADDR-BY-NAME / MASTERS / MASTER / REPLICAS / SLAVES / SENTINELS and publishing
// +switch-master from the proxy's own view, which comes only from the SentinelInspector:
// the master a majority of the real sentinels name AND that says ROLE master through the
// node address map. Nothing a real sentinel (or a client) sends is forwarded to a client, so
// no reply can name an address other than the proxy's listeners, and a minority of lying
// sentinels cannot move the master or make the proxy listen or dial anywhere.
//
// Data listeners: one per data node (the confirmed master and the replicas the agreeing
// sentinels list), taking the ports after the sentinel listener (SeedPort), kept per
// announced address, plain byte copies (the data nodes' replies name no other node a client
// follows). Options.MasterPort adds a listener that always forwards to the confirmed master
// and closes its client connections when the master changes, for clients without Sentinel
// support.

// Sentinel-mode timing.
const (
	// sentinelFastInterval is how often the topology is read for sentinelFastWindow after a
	// sentinel event (+switch-master, +sdown, +odown, a resubscription): the sentinels that
	// did not run the failover learn of it within a couple of hello periods (2 s each), and
	// the new master is confirmed only once a majority names it.
	sentinelFastInterval = 200 * time.Millisecond
	sentinelFastWindow   = 20 * time.Second
	// sentinelForget is the least time a data listener outlives the last read naming its node.
	sentinelForget = 30 * time.Second
)

// sentinelMode is the Sentinel-mode part of a Proxy.
type sentinelMode struct {
	si        *cluster.SentinelInspector
	name      string
	stopSub   func()
	dataTLS   *rtls.Reloadable
	sentTLS   *rtls.Reloadable
	sentCreds atomic.Pointer[[2]string]
	master    *listener // Options.MasterPort's listener, nil without one
	ctx       context.Context
	cancel    context.CancelFunc

	mu        sync.Mutex
	cur       string // announced address of the confirmed master ("" until one is)
	view      sentinelView
	subs      map[*sentConn]bool
	seen      map[*listener]time.Time // data listener -> last read that listed its node (p.mu)
	fastUntil time.Time
	epoch     int64
}

// sentinelView is what the proxy's sentinel listener answers: the confirmed master and its
// replicas, by the proxy's listeners.
type sentinelView struct {
	master   string // listener host:port ("" while no master is confirmed)
	replicas []viewReplica
}

type viewReplica struct {
	listen, flags, linkStatus string
	offset                    int64
	linkDown                  time.Duration
}

// dialer is the mapping dialer of the data nodes.
func (p *Proxy) dialer() *cluster.Dialer {
	if p.sm != nil {
		return p.sm.si.Dialer()
	}
	return p.in.Dialer()
}

// startSentinel finishes Start for a sentinel-mode configuration.
func (p *Proxy) startSentinel(ctx context.Context, r *client.Resolved) (*Proxy, error) {
	sm := &sentinelMode{name: r.Config.Name, subs: map[*sentConn]bool{}, seen: map[*listener]time.Time{}}
	sm.ctx, sm.cancel = context.WithCancel(context.Background())
	p.sm, p.standalone = sm, true // data connections are plain copies
	if err := p.buildSentinel(r); err != nil {
		sm.cancel()
		return nil, err
	}
	seed, err := p.listen(p.o.SeedPort)
	if err != nil {
		_ = sm.si.Close()
		sm.cancel()
		return nil, fmt.Errorf("rconn proxy: sentinel listener: %w", err)
	}
	seed.seed = true
	p.seed = seed
	if p.o.MasterPort != 0 {
		ml, err := p.listen(max(p.o.MasterPort, 0))
		if err != nil {
			_ = seed.ln.Close()
			_ = sm.si.Close()
			sm.cancel()
			return nil, fmt.Errorf("rconn proxy: master listener: %w", err)
		}
		sm.master = ml
	}
	if err := p.sentinelRefresh(ctx); err != nil {
		_ = p.Close()
		return nil, err
	}
	p.serveSentinel(seed)
	if sm.master != nil {
		p.serve(sm.master, sm.master.ln)
	}
	sm.stopSub = sm.si.Subscribe(func(cluster.SentinelEvent) {
		// A hint only: the next reads decide (majority + ROLE), never the event itself.
		sm.mu.Lock()
		sm.fastUntil = time.Now().Add(sentinelFastWindow)
		sm.mu.Unlock()
		p.Refresh()
	})
	p.wg.Add(1)
	go p.sentinelLoop()
	p.log.Info("rconn proxy listening", "sentinel", p.SeedAddr(), "mode", client.ModeSentinel, "master", p.MasterAddr(), "nodes", len(p.Nodes()))
	return p, nil
}

func (p *Proxy) buildSentinel(r *client.Resolved) error {
	sm := p.sm
	cfg := r.Config
	// The address policy judges every dial, to sentinels and data nodes alike (as in Cluster
	// mode, build).
	dial := p.o.Dial
	if p.o.AddressPolicy != nil {
		dial = p.o.AddressPolicy.Dial(dial)
	}
	o, err := r.SentinelInspectorOptions(dial)
	if err != nil {
		return fmt.Errorf("rconn proxy: %w", err)
	}
	u, pw := r.Credentials()
	p.creds.Store(&[2]string{u, pw})
	su, spw := r.SentinelCredentials()
	sm.sentCreds.Store(&[2]string{su, spw})
	// Live credentials and TLS material: providers and reloadable configs of the proxy's own.
	o.Defaults.Username, o.Defaults.Password = "", ""
	o.Defaults.CredentialsProvider = func() (string, string) { c := p.creds.Load(); return c[0], c[1] }
	o.Sentinel.Defaults.Username, o.Sentinel.Defaults.Password = "", ""
	o.Sentinel.Defaults.CredentialsProvider = func() (string, string) { c := sm.sentCreds.Load(); return c[0], c[1] }
	if s := cfg.NodeClientOptions.Socket; s.TLS {
		if sm.dataTLS, err = rtls.NewReloadable(rtls.Options{Material: r.TLS, ServerName: s.ServerName, InsecureSkipVerify: cfg.Rconn.TLSInsecureSkipVerify}); err != nil {
			return fmt.Errorf("rconn proxy: TLS material: %w", err)
		}
		o.Defaults.TLSConfigFor = sm.dataTLS.ConfigFor
	}
	if s := cfg.SentinelClientOptions.Socket; s.TLS {
		if sm.sentTLS, err = rtls.NewReloadable(rtls.Options{Material: r.SentinelTLS(), ServerName: s.ServerName, InsecureSkipVerify: cfg.Rconn.SentinelTLSInsecureSkipVerify}); err != nil {
			return fmt.Errorf("rconn proxy: sentinel TLS material: %w", err)
		}
		o.Sentinel.Defaults.TLSConfigFor = sm.sentTLS.ConfigFor
	}
	if sm.si, err = cluster.NewSentinelInspector(o); err != nil {
		return fmt.Errorf("rconn proxy: %w", err)
	}
	return nil
}

// applySentinel is Apply in sentinel mode: map, credentials and TLS material live.
func (p *Proxy) applySentinel(r *client.Resolved) error {
	sm := p.sm
	p.mu.Lock()
	prev := p.cfg
	p.cfg = r.Config
	p.mu.Unlock()
	if sm.dataTLS != nil && r.TLS != nil {
		if err := sm.dataTLS.Update(r.TLS); err != nil {
			return fmt.Errorf("rconn proxy: TLS material: %w", err)
		}
	}
	if sm.sentTLS != nil && r.SentinelTLS() != nil {
		if err := sm.sentTLS.Update(r.SentinelTLS()); err != nil {
			return fmt.Errorf("rconn proxy: sentinel TLS material: %w", err)
		}
	}
	u, pw := r.Credentials()
	p.creds.Store(&[2]string{u, pw})
	su, spw := r.SentinelCredentials()
	sm.sentCreds.Store(&[2]string{su, spw})
	if !reflect.DeepEqual(prev.NodeAddressMap, r.Config.NodeAddressMap) {
		o, err := r.SentinelInspectorOptions(nil)
		if err != nil {
			return err
		}
		sm.si.SetNodeAddressMap(o.NodeAddressMap)
	}
	p.log.Info("rconn proxy: configuration applied", "version", r.Version)
	p.Refresh()
	if changed := client.RestartFields(prev, r.Config); len(changed) > 0 {
		err := fmt.Errorf("rconn proxy: %w to apply changed %s", client.ErrRestartRequired, strings.Join(changed, ", "))
		p.log.Warn(err.Error())
		return err
	}
	return nil
}

// MasterAddr is the master listener's address (Options.MasterPort), "" without one.
func (p *Proxy) MasterAddr() string {
	if p.sm == nil || p.sm.master == nil {
		return ""
	}
	return p.addr(p.sm.master)
}

// shutdown ends what sentinel mode runs beside the listeners (Close calls it).
func (sm *sentinelMode) shutdown() {
	if sm.stopSub != nil {
		sm.stopSub()
	}
	sm.cancel() // closes the sentinel listener's connections
	if sm.master != nil {
		_ = sm.master.ln.Close()
		sm.master.closePipes()
	}
}

func (p *Proxy) sentinelLoop() {
	defer p.wg.Done()
	t := time.NewTimer(p.o.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-p.life.Done():
			return
		case <-t.C:
		case <-p.kick:
		}
		ctx, cancel := context.WithTimeout(p.sm.ctx, 10*time.Second)
		if err := p.sentinelRefresh(ctx); err != nil && !errors.Is(err, context.Canceled) {
			p.log.Warn("rconn proxy: sentinel discovery failed, keeping the listeners", "err", err)
		}
		cancel()
		next := p.o.RefreshInterval
		p.sm.mu.Lock()
		if time.Now().Before(p.sm.fastUntil) {
			next = min(next, sentinelFastInterval)
		}
		p.sm.mu.Unlock()
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(next)
	}
}

// sentinelRefresh discovers the group and makes the listeners and the answers follow it. A
// master that is not confirmed (no quorum, ROLE not master, unknown) changes nothing: the
// proxy keeps answering with the last confirmed master. Only an error of Discover (no
// sentinel answered) is returned.
func (p *Proxy) sentinelRefresh(ctx context.Context) error {
	sm := p.sm
	t, err := sm.si.Discover(ctx)
	if err != nil {
		return fmt.Errorf("rconn proxy: asking the sentinels: %w", err)
	}
	if !t.MasterConfirmed {
		p.log.Warn("rconn proxy: no confirmed master, keeping the last one", "reason", t.Reason, "err", t.MasterErr)
		return nil
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	ml, err := p.ensureLocked(t.Master.Announced, t.Master.Announced)
	if err != nil {
		p.mu.Unlock()
		return fmt.Errorf("rconn proxy: no listener for the master %s: %w", t.Master.Announced, err)
	}
	seen := map[*listener]bool{ml: true}
	view := sentinelView{master: p.addr(ml)}
	for _, r := range t.Replicas {
		l, err := p.ensureLocked(r.Announced, r.Announced)
		if err != nil {
			p.log.Warn("rconn proxy: no listener for replica", "announced", r.Announced, "err", err)
			continue
		}
		seen[l] = true
		view.replicas = append(view.replicas, viewReplica{listen: p.addr(l), flags: r.Flags, linkStatus: r.MasterLinkStatus,
			offset: r.ReplicationOffset, linkDown: r.MasterLinkDownTime})
	}
	oldListen := ""
	sm.mu.Lock()
	old := sm.cur
	if l := p.byAddr[old]; old != "" {
		if l != nil {
			oldListen = p.addr(l)
		} else {
			oldListen = sm.view.master
		}
	}
	sm.cur, sm.view = t.Master.Announced, view
	switched := old != "" && old != t.Master.Announced
	if switched {
		sm.epoch++
	}
	sm.mu.Unlock()
	now := time.Now()
	for l := range p.all {
		if seen[l] {
			sm.seen[l] = now
			continue
		}
		// By time, not by reads: reads come every 200 ms after an event, and a demoted
		// master is missing from SENTINEL REPLICAS until it has reconfigured.
		if last, ok := sm.seen[l]; !ok || now.Sub(last) > p.forgetAfter() {
			delete(sm.seen, l)
			p.removeLocked(l)
		}
	}
	p.mu.Unlock()
	if sm.master != nil {
		a := t.Master.Announced
		sm.master.target.Store(&a)
	}
	if switched {
		p.log.Info("rconn proxy: the master changed", "old", old, "new", t.Master.Announced, "listen", view.master)
		if sm.master != nil {
			sm.master.resetPipes() // clients without Sentinel support reconnect to the new master
		}
		sm.publish("+switch-master", switchMessage(sm.name, oldListen, view.master))
	}
	return nil
}

// forgetAfter is how long a data node's listener outlives the last read that listed the
// node: three refresh intervals, at least sentinelForget.
func (p *Proxy) forgetAfter() time.Duration { return max(3*p.o.RefreshInterval, sentinelForget) }

// switchMessage is the +switch-master payload "<name> <old ip> <old port> <new ip> <new port>".
func switchMessage(name, old, cur string) string {
	oh, op, _ := net.SplitHostPort(old)
	nh, np, _ := net.SplitHostPort(cur)
	return strings.Join([]string{name, oh, op, nh, np}, " ")
}

// resetPipes closes the listener's connections and keeps it accepting new ones.
func (l *listener) resetPipes() {
	l.mu.Lock()
	ps := make([]*pipe, 0, len(l.pipes))
	for p := range l.pipes {
		ps = append(ps, p)
	}
	l.mu.Unlock()
	for _, p := range ps {
		p.close()
	}
}

// snapshot returns what the sentinel listener answers.
func (sm *sentinelMode) snapshot() (sentinelView, int64) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return sm.view, sm.epoch
}

// splitListen splits a listener address for replies.
func splitListen(a string) (string, string) {
	h, p, err := net.SplitHostPort(a)
	if err != nil {
		return "", "0"
	}
	if _, err := strconv.Atoi(p); err != nil {
		return h, "0"
	}
	return h, p
}
