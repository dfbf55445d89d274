package controllers

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// inspectors keeps the cluster.Inspectors (pooled Redis connections) of every RedisConnection,
// and runs their discovery + health checks in the background.
//
// RedisConnections whose connections would be identical share one inspector: same mode, root
// nodes, credentials (by content: username and a hash of the password), TLS material and
// settings, client name, connect timeout, database, node address map and health timeout. A
// shared inspector is reference counted: a RedisConnection takes a reference when it first uses
// it, moves to another one when any of those inputs change (credential rotation, a new map), and
// drops it on delete; the inspector is closed when its last reference goes.
//
// Isolation: Reconcile never talks to Redis. It reads the latest probe result of its inspector
// (observe) and, when that result is stale, starts one background probe for the inspector; when
// the probe finishes, every RedisConnection using the inspector is enqueued again (notify) and
// reads the new result. A RedisConnection whose root nodes never answer therefore holds a
// goroutine and its own sockets for at most its (capped) timeouts, and no reconcile worker: it
// cannot delay any other RedisConnection (the head-of-line blocking of one worker pool).
//
// One probe serves every RedisConnection on the inspector within half its health interval, so N
// RedisConnections naming the same cluster cost about as many Redis round trips as one. A failed
// probe is retried with exponential backoff (probeRetryBase doubling, up to that same age).
//
// With sharing disabled (DisableTopologySharing) every RedisConnection has its own inspector.
type inspectors struct {
	// noSubscription: Sentinel inspectors do not subscribe (DisableSentinelSubscription).
	noSubscription bool

	mu     sync.Mutex
	byRC   map[types.NamespacedName]string
	shared map[string]*sharedInspector
}

// probeRetryBase is the wait after a first failed probe before the next one.
const probeRetryBase = 500 * time.Millisecond

// sharedInspector is one inspector with its users and last probe result.
type sharedInspector struct {
	in *cluster.Inspector
	// sent replaces in for a Sentinel-mode inspector (inspectors_sentinel.go).
	sent *sentinelShared
	// discoverTimeout bounds discovery (all root nodes are asked in parallel); healthTimeout
	// bounds each node's check.
	discoverTimeout, healthTimeout time.Duration
	// ctx is cancelled when the inspector is closed: a running probe ends early.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	users   map[types.NamespacedName]struct{}
	last    *probeResult
	running bool
}

// probeResult is one discovery + health check.
type probeResult struct {
	at     time.Time
	took   time.Duration
	topo   *cluster.Topology
	health []cluster.NodeHealth
	// Sentinel mode: stopo and shealth instead of topo and health.
	stopo   *cluster.SentinelTopology
	shealth cluster.SentinelHealth
	err     error
	// healthPending: a Sentinel result published before its health checks (a new master,
	// inspectors_sentinel.go); the health conditions keep their value until the full result.
	healthPending bool
	// failures counts consecutive failed or degraded probes (0 when this one found every node
	// healthy).
	failures int
}

// degraded says a probe succeeded but some node did not answer healthily through its mapped
// address: what a pod restart looks like while the node comes back (new IP, loading, rejoining).
// Such a result is re-probed on the failure backoff, not after the full age, so Ready returns
// within seconds of the node instead of up to half a health interval later.
func degraded(health []cluster.NodeHealth) bool {
	for _, h := range health {
		if !h.Reachable || h.Err != nil || h.ClusterState == "fail" {
			return true
		}
	}
	return false
}

// staleAfter is how long the result serves: maxAge when it succeeded with every node healthy,
// an exponential backoff (capped at maxAge) when it failed or was degraded.
func (p *probeResult) staleAfter(maxAge time.Duration) time.Duration {
	if p.failures <= 0 {
		return maxAge
	}
	d := probeRetryBase << min(p.failures-1, 16)
	return min(d, maxAge)
}

// releaseLocked drops the RedisConnection's reference; the caller holds s.mu.
func (s *inspectors) releaseLocked(key types.NamespacedName) {
	sk, ok := s.byRC[key]
	if !ok {
		return
	}
	delete(s.byRC, key)
	if e := s.shared[sk]; e != nil {
		e.mu.Lock()
		delete(e.users, key)
		left := len(e.users)
		e.mu.Unlock()
		if left == 0 {
			e.cancel()
			e.close()
			delete(s.shared, sk)
		}
	}
}

func (s *inspectors) close(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(key)
}

// closeAll closes every inspector (manager shutdown, tests).
func (s *inspectors) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key := range s.byRC {
		s.releaseLocked(key)
	}
}

// count returns how many inspectors (distinct sets of Redis connections) are open.
func (s *inspectors) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.shared)
}

// references returns how many RedisConnections hold an inspector.
func (s *inspectors) references() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byRC)
}

// acquire returns the shared inspector for the RedisConnection's current settings (sk), creating
// it when none is open, and moving the RedisConnection's reference from the one it used before
// when its settings changed (that one is closed when nobody else uses it).
func (s *inspectors) acquire(key types.NamespacedName, o cluster.Options, sk string, discoverTimeout, healthTimeout time.Duration) (*sharedInspector, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byRC == nil {
		s.byRC = map[types.NamespacedName]string{}
		s.shared = map[string]*sharedInspector{}
	}
	if cur, ok := s.byRC[key]; ok && cur == sk {
		return s.shared[sk], nil
	}
	e := s.shared[sk]
	if e == nil {
		ctx, cancel := context.WithCancel(context.Background())
		e = &sharedInspector{ctx: ctx, cancel: cancel, discoverTimeout: discoverTimeout, healthTimeout: healthTimeout,
			users: map[types.NamespacedName]struct{}{}}
		var err error
		if o.Sentinel != nil {
			e.sent, err = newSentinelShared(e, o, !s.noSubscription)
		} else {
			e.in, err = cluster.NewInspector(o)
		}
		if err != nil {
			cancel()
			return nil, err
		}
		s.shared[sk] = e
	}
	// Take the new reference before dropping the old one, so a key that did not change in
	// substance never closes the connections in between.
	e.mu.Lock()
	e.users[key] = struct{}{}
	e.mu.Unlock()
	s.releaseLocked(key)
	s.byRC[key] = sk
	return e, nil
}

// observe returns the latest probe result (nil until the first probe finished) without waiting,
// and starts a background probe when there is none running and the result is stale (older than
// maxAge, or than the retry backoff after a failure). notify is told about every user when the
// probe finishes.
func (e *sharedInspector) observe(maxAge time.Duration, notify func(types.NamespacedName)) *probeResult {
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.last
	if e.sent != nil {
		e.sent.notify = notify
	}
	if !e.running && e.ctx.Err() == nil && (l == nil || time.Since(l.at) >= l.staleAfter(maxAge)) {
		e.running = true
		go e.run(notify)
	}
	return l
}

// close closes the inspector's connections (and a Sentinel inspector's subscription).
func (e *sharedInspector) close() {
	if e.sent != nil {
		e.sent.close()
		return
	}
	_ = e.in.Close()
}

// run is one background probe: discovery, then the health of every node through its mapped
// address. Both are bounded by the inspector's timeouts and end when it is closed.
func (e *sharedInspector) run(notify func(types.NamespacedName)) {
	start := time.Now()
	res := &probeResult{}
	if e.sent != nil {
		e.sent.probe(res, notify)
	} else {
		dctx, cancel := context.WithTimeout(e.ctx, e.discoverTimeout)
		res.topo, res.err = e.in.Discover(dctx)
		cancel()
		if res.err == nil {
			res.health = e.in.CheckHealth(e.ctx, res.topo, e.healthTimeout)
		}
	}
	res.at = time.Now()
	res.took = res.at.Sub(start)
	result := "ok"
	if res.err != nil {
		result = "failed"
	}
	probeDuration.WithLabelValues(result).Observe(res.took.Seconds())

	e.mu.Lock()
	if res.err != nil || degraded(res.health) || sentinelDegraded(res) {
		res.failures = 1
		if e.last != nil {
			res.failures = e.last.failures + 1
		}
	}
	e.last = res
	e.running = false
	if e.sent != nil && e.ctx.Err() == nil {
		if more, after := e.sent.again(res); more {
			// A sentinel event arrived during this probe, or a switch is not confirmed yet.
			e.running = true
			go e.runAfter(after, notify)
		}
	}
	users := e.usersLocked()
	closed := e.ctx.Err() != nil
	e.mu.Unlock()
	if closed || notify == nil {
		return
	}
	for _, k := range users {
		notify(k)
	}
}

// runAfter is run after a pause (ended early, with no probe, when the inspector closes).
func (e *sharedInspector) runAfter(d time.Duration, notify func(types.NamespacedName)) {
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-e.ctx.Done():
			t.Stop()
			e.mu.Lock()
			e.running = false
			e.mu.Unlock()
			return
		}
	}
	e.run(notify)
}
