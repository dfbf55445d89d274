package controllers

import (
	"context"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/types"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// Sentinel mode: a shared inspector holds a cluster.SentinelInspector and one bounded
// subscription per sentinel root node to the sentinels' +switch-master, +sdown, -sdown and
// +odown (however many RedisConnections share it; see subscribeRoots). An event is a hint, never the truth (a sentinel may lie): it
// starts a probe at once (Discover: majority + ROLE through the map) while the inspector's
// event-probe bucket has tokens (a flood waits; see eventProbeBurst), and the probe's end
// enqueues every RedisConnection on the inspector, as the periodic probe does. The periodic
// probe stays the fallback for events missed while the subscription reconnects.

var sentinelLog = ctrllog.Log.WithName("sentinel")

// Chasing a +switch-master: the sentinels learn a switch from each other within a couple of
// seconds (hello messages), so the first probe after the event may still see the old
// majority or a master not yet promoted. Probes repeat every chaseEvery until the new master is
// confirmed or chaseFor has passed; then the health cadence (and its failure backoff) rules.
const (
	chaseEvery = 100 * time.Millisecond
	chaseFor   = 5 * time.Second
)

// Event-driven probes (an event's, and the chase's) take a token from a bucket per shared
// inspector: eventProbeBurst at once, then one per eventProbeEvery. A sentinel is tenant
// input: one that pushes +switch-master (or +sdown, +odown) nonstop, naming a master that is
// never confirmed, would otherwise keep its inspector probing back to back (every event during
// a probe asks for another one, and every +switch-master re-arms the chase), each probe
// enqueueing every RedisConnection on the inspector. The burst covers a whole chase
// (chaseFor/chaseEvery = 50 probes) plus the events of a failover (+sdown, +odown and
// +switch-master from each root), so a real failover after a quiet spell is probed at once
// and chased at full speed; a flood costs at most eventProbeBurst + 12 probes in its first
// minute and 12 a minute after that. Periodic probes take no token.
const (
	eventProbeBurst = 60
	eventProbeEvery = 5 * time.Second
)

func newEventProbeLimiter() *rate.Limiter {
	return rate.NewLimiter(rate.Every(eventProbeEvery), eventProbeBurst)
}

// sentinelShared is the Sentinel part of a sharedInspector. Its fields after unsub are guarded
// by the sharedInspector's mu.
type sentinelShared struct {
	e     *sharedInspector
	si    *cluster.SentinelInspector
	unsub func()

	// notify is the reconciler's "probe finished" callback (set by observe).
	notify func(types.NamespacedName)
	// pending: an event arrived since the running probe started.
	pending bool
	// chase is the announced new master of a +switch-master not confirmed yet, until chaseUntil.
	chase      string
	chaseUntil time.Time
	// confirmed is the last confirmed master's announced address.
	confirmed string
	// probes is the event-driven probes' bucket (eventProbeBurst, eventProbeEvery).
	probes *rate.Limiter
	// started counts the probes run (every kind), for tests.
	started atomic.Int64
}

func newSentinelShared(e *sharedInspector, o cluster.Options, subscribe bool) (*sentinelShared, error) {
	si, err := cluster.NewSentinelInspector(o)
	if err != nil {
		return nil, err
	}
	s := &sentinelShared{e: e, si: si, unsub: func() {}, probes: newEventProbeLimiter()}
	if subscribe {
		s.unsub = s.subscribeRoots(o)
	}
	return s, nil
}

// subscribeRoots holds one subscription per sentinel root node (at most 16, the API's bound),
// each through its own single-root SentinelInspector: a sentinel announces +switch-master only
// once it switched itself, and the sentinels that did not lead the failover learn it from the
// leader's hello messages, seconds later (measured: up to 4 s). Listening on one sentinel only
// would see the switch as late as that sentinel learns it; listening on each, the first
// announcement starts the probe, which confirms the master as soon as a majority names it.
func (s *sentinelShared) subscribeRoots(o cluster.Options) (stop func()) {
	var stops []func()
	var extra []*cluster.SentinelInspector
	for _, rn := range o.Sentinel.RootNodes {
		one := *o.Sentinel
		one.RootNodes = []cluster.RootNode{rn}
		oo := o
		oo.Sentinel = &one
		si, err := cluster.NewSentinelInspector(oo)
		if err != nil {
			continue // validated with every root above: cannot happen
		}
		extra = append(extra, si)
		stops = append(stops, si.Subscribe(s.onEvent))
	}
	return func() {
		for i, stop := range stops {
			stop()
			_ = extra[i].Close()
		}
	}
}

// onEvent runs on the subscription's goroutine: it only marks the event and starts a probe
// when none is running (a running one probes again when it ends), never blocking.
func (s *sentinelShared) onEvent(ev cluster.SentinelEvent) {
	e := s.e
	e.mu.Lock()
	defer e.mu.Unlock()
	sentinelEvents.WithLabelValues(string(ev.Kind)).Inc()
	// Addresses only (announced, bounded by the subscription's caps): never a payload's free text.
	sentinelLog.V(1).Info("sentinel event", "kind", string(ev.Kind), "sentinel", ev.Sentinel, "old", ev.OldMaster, "new", ev.NewMaster, "probing", !e.running)
	if ev.Kind == cluster.EventSwitchMaster && ev.NewMaster != "" {
		s.chase, s.chaseUntil = ev.NewMaster, time.Now().Add(chaseFor)
	}
	s.pending = true
	if !e.running && e.ctx.Err() == nil && s.notify != nil {
		e.running = true
		go e.runAfter(s.eventProbeDelay(time.Now(), 0), s.notify)
	}
}

// eventProbeDelay takes a token for an event-driven probe wanted after (from now) and
// returns how long to wait for it: after itself while the bucket has tokens, longer during a
// flood. The caller holds e.mu; only one probe is ever waiting, so a flood holds one
// reservation, not one per event.
func (s *sentinelShared) eventProbeDelay(now time.Time, after time.Duration) time.Duration {
	d := s.probes.ReserveN(now.Add(after), 1).DelayFrom(now)
	if d > after {
		sentinelProbesDelayed.Inc()
	}
	return d
}

// probe is one Sentinel discovery and health check into res. A newly confirmed master is
// published (and its RedisConnections enqueued) before the health checks: after a killed
// master those wait for its connect timeout, and the outputs must not.
func (s *sentinelShared) probe(res *probeResult, notify func(types.NamespacedName)) {
	e := s.e
	s.started.Add(1)
	e.mu.Lock()
	s.pending = false
	e.mu.Unlock()
	dctx, cancel := context.WithTimeout(e.ctx, e.discoverTimeout)
	res.stopo, res.err = s.si.Discover(dctx)
	cancel()
	if res.stopo != nil {
		sentinelLog.V(1).Info("sentinel discovery", "reason", string(res.stopo.Reason), "answered", res.stopo.Answered, "agreeing", res.stopo.Agreeing)
	}
	if res.err != nil {
		return
	}
	t := res.stopo
	if t.MasterConfirmed && t.Master != nil {
		e.mu.Lock()
		moved := s.confirmed != "" && s.confirmed != t.Master.Announced
		s.confirmed = t.Master.Announced
		if moved {
			early := *res
			early.at, early.healthPending = time.Now(), true
			e.last = &early
		}
		users := e.usersLocked()
		e.mu.Unlock()
		if moved && notify != nil && e.ctx.Err() == nil {
			for _, k := range users {
				notify(k)
			}
		}
	}
	res.shealth = s.si.CheckHealth(e.ctx, t, e.healthTimeout)
}

// again says whether another probe should follow the one that just ended (res), and after
// how long (the event probes' bucket decides how much longer); the caller holds e.mu.
func (s *sentinelShared) again(res *probeResult) (bool, time.Duration) {
	now := time.Now()
	if s.chase != "" {
		if t := res.stopo; (t != nil && t.MasterConfirmed && t.Master != nil && t.Master.Announced == s.chase) || now.After(s.chaseUntil) {
			s.chase = ""
		}
	}
	switch {
	case s.pending:
		return true, s.eventProbeDelay(now, 0)
	case s.chase != "":
		return true, s.eventProbeDelay(now, chaseEvery)
	}
	return false, 0
}

// usersLocked lists the inspector's RedisConnections; the caller holds e.mu.
func (e *sharedInspector) usersLocked() []types.NamespacedName {
	users := make([]types.NamespacedName, 0, len(e.users))
	for k := range e.users {
		users = append(users, k)
	}
	return users
}

// sentinelDegraded: a Sentinel probe that did not confirm a master, or found a node or
// sentinel unhealthy, is re-run on the failure backoff.
func sentinelDegraded(res *probeResult) bool {
	t := res.stopo
	if t == nil || res.err != nil {
		return false
	}
	return !t.MasterConfirmed || degraded(res.shealth.Data) || degraded(res.shealth.Sentinels)
}

func (s *sentinelShared) close() {
	s.unsub()
	_ = s.si.Close()
}
