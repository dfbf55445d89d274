package controllers

import (
	"time"

	"k8s.io/apimachinery/pkg/types"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// scope is what one reconcile request has learned so far. The phases (phases.go) fill it in
// order; the status step (reconcile_status.go) turns it into status fields, conditions
// (conditions.go, pure functions of the scope), Events and the requeue. A field left at its zero
// value means its phase was not reached.
type scope struct {
	key types.NamespacedName
	// rc is the object being reconciled; before is it as read, for the status patch and the
	// transitions that become Events.
	rc, before *rconnv1.RedisConnection
	// interval and timeout are the health cadence and the per-node health timeout (capped by
	// the manager's --max-redis-timeout).
	interval, timeout time.Duration

	// Credentials phase. credErr is also set by the topology phase when the TLS material cannot
	// be turned into a TLS config.
	creds   *credentials
	credErr *credentialError

	// Address map phase.
	amap *addressMap

	// Topology phase. optionsErr: pkg/cluster refused the connection settings (nothing was
	// dialed). discovering: the first probe through these settings is still running. probe: the
	// latest finished probe (its err, or its topology and node health).
	optionsErr  error
	discovering bool
	probe       *probeResult

	// Outputs phase: reached, and how it ended (outputOutcome).
	outputsReached bool
	outputErr      error

	// retryAfter, when set, replaces the health cadence: a degraded probe (a node down or
	// coming back) is re-run on the retry backoff.
	retryAfter time.Duration
	// stop ends the request after the phase that set it: what the later phases need is missing,
	// and the conditions say why.
	stop bool
}

func newScope(key types.NamespacedName, rc *rconnv1.RedisConnection, maxTimeout time.Duration) *scope {
	interval, timeout := healthSettings(rc)
	return &scope{key: key, rc: rc, before: rc.DeepCopy(), interval: interval, timeout: min(timeout, maxTimeout)}
}

// topology is the latest probe's topology (nil before one succeeded).
func (s *scope) topology() *cluster.Topology {
	if s.probe == nil || s.probe.err != nil {
		return nil
	}
	return s.probe.topo
}

// sentinelTopology is the latest Sentinel probe's topology when it confirmed a master (nil
// otherwise: before one succeeded, outside Sentinel mode, and for NoQuorum, MasterNotConfirmed
// and MasterUnknown, whose outputs keep the last confirmed master).
func (s *scope) sentinelTopology() *cluster.SentinelTopology {
	if s.probe == nil || s.probe.err != nil || s.probe.stopo == nil {
		return nil
	}
	if t := s.probe.stopo; t.MasterConfirmed && t.Master != nil {
		return t
	}
	return nil
}

// health is the latest probe's node health (nil before one succeeded).
func (s *scope) health() []cluster.NodeHealth {
	if s.topology() == nil {
		return nil
	}
	return s.probe.health
}

// resolved reports whether outputs may be rendered: the address map was built (its problems
// cost only their own entries) and a full topology is known.
func (s *scope) resolved() bool {
	if st := s.sentinelTopology(); st != nil {
		return s.amap != nil
	}
	t := s.topology()
	return s.amap != nil && t != nil && t.FullCoverage()
}

// unmappedNodes lists the nodes of the topology whose announced address has no map entry while
// the map reports problems (nil when the map has none, or no topology is known): the nodes apps
// cannot reach through the rendered map because of them. In Sentinel mode the nodes are those
// the group announces (sentinelAnnounced).
func (s *scope) unmappedNodes() []string {
	if s.amap == nil || !s.amap.hasProblems() {
		return nil
	}
	var announced []string
	if t := s.topology(); t != nil {
		for _, n := range t.Nodes {
			announced = append(announced, n.Announced)
		}
	}
	if s.probe != nil && s.probe.err == nil {
		announced = append(announced, sentinelAnnounced(s.probe.stopo)...)
	}
	var out []string
	for _, a := range announced {
		if _, ok := s.amap.entries[a]; !ok {
			out = append(out, a)
		}
	}
	return out
}
