package controllers

import (
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// Sentinel-mode status, conditions and Events (the Cluster-mode ones are in status.go and
// conditions.go).

// maxStatusSentinelList bounds status.sentinel.replicas and .sentinels (the schema's maxItems).
const maxStatusSentinelList = 64

// sentinelTopologyCondition is TopologyDiscovered for a Sentinel probe that reached sentinels.
// Every False reason blocks: the outputs keep the last confirmed master.
func sentinelTopologyCondition(s *scope) *cond {
	const typ = rconnv1.ConditionTopologyDiscovered
	t := s.probe.stopo
	switch t.Reason {
	case cluster.SentinelMasterConfirmed:
		return condTrue(typ, rconnv1.ReasonDiscovered, fmt.Sprintf("master %s (%s) confirmed by %d of %d sentinels that answered and by its ROLE; %d replicas, %d sentinels",
			t.Master.Announced, mappedOr(t.Master.Mapped, t.Master.Announced), t.Agreeing, t.Answered, len(t.Replicas), len(t.Sentinels)))
	case cluster.SentinelNoQuorum:
		return condFalse(typ, rconnv1.ReasonNoQuorum, fmt.Sprintf("no master of %q is named by more than half of the %d sentinels that answered; keeping the last confirmed master",
			t.MasterName, t.Answered)).blocking()
	case cluster.SentinelMasterUnknown:
		return condFalse(typ, rconnv1.ReasonMasterUnknown, fmt.Sprintf("none of the %d sentinels that answered monitors a master named %q", t.Answered, t.MasterName)).blocking()
	default:
		named := ""
		if t.Master != nil {
			named = " " + t.Master.Announced + " (dialed " + mappedOr(t.Master.Mapped, t.Master.Announced) + ")"
		}
		why := "it did not answer through the map"
		if t.MasterErr != nil && errors.Is(t.MasterErr, cluster.ErrNotMaster) {
			why = "its ROLE is not master"
		}
		return condFalse(typ, rconnv1.ReasonMasterNotConfirmed, fmt.Sprintf("%d of %d sentinels name the master%s, but %s (a failover in progress?); keeping the last confirmed master",
			t.Agreeing, t.Answered, named, why)).blocking()
	}
}

func mappedOr(mapped, announced string) string {
	if mapped == "" {
		return announced
	}
	return mapped
}

// sentinelHealthCondition is NodesHealthy over every data node and sentinel (nil while a
// new master's result waits for its health checks).
func sentinelHealthCondition(s *scope) *cond {
	if s.probe.healthPending {
		return nil
	}
	all := append(append([]cluster.NodeHealth(nil), s.probe.shealth.Data...), s.probe.shealth.Sentinels...)
	ok, reason, msg := healthCondition(all, usesTLS(s.rc))
	if ok {
		return condTrue(rconnv1.ConditionNodesHealthy, reason, msg)
	}
	return condFalse(rconnv1.ConditionNodesHealthy, reason, msg)
}

// setSentinelStatus records status.sentinel from a Sentinel probe. The master is the last
// confirmed one: an unconfirmed answer keeps it (the outputs name it too). A node whose
// health was not checked yet keeps its previous health.
func setSentinelStatus(s *scope) {
	t := s.probe.stopo
	prev := s.before.Status.Sentinel
	health := map[string]cluster.NodeHealth{}
	for _, h := range append(append([]cluster.NodeHealth(nil), s.probe.shealth.Data...), s.probe.shealth.Sentinels...) {
		health[h.Announced] = h
	}
	prevHealth := map[string]rconnv1.Health{}
	if prev != nil {
		if prev.Master != nil {
			prevHealth[prev.Master.Announced] = prev.Master.Health
		}
		for _, r := range prev.Replicas {
			prevHealth[r.Announced] = r.Health
		}
		for _, p := range prev.Sentinels {
			prevHealth["s/"+p.Announced] = p.Health
		}
	}
	healthOf := func(key, announced string) rconnv1.Health {
		h, ok := health[announced]
		switch {
		case !ok:
			return prevHealth[key]
		case h.Healthy():
			return rconnv1.HealthHealthy
		case !h.Reachable:
			return rconnv1.HealthUnreachable
		}
		return rconnv1.HealthUnhealthy
	}
	st := &rconnv1.SentinelStatus{MasterName: t.MasterName, Answered: int32(t.Answered), Agreeing: int32(t.Agreeing)}
	if t.MasterConfirmed && t.Master != nil {
		st.Master = &rconnv1.SentinelDataNodeStatus{Announced: t.Master.Announced, Mapped: mappedOnly(t.Master.Mapped, t.Master.Announced),
			Health: healthOf(t.Master.Announced, t.Master.Announced)}
	} else if prev != nil && prev.Master != nil {
		m := *prev.Master
		st.Master = &m
	}
	if t.MasterConfirmed {
		for _, r := range t.Replicas[:min(len(t.Replicas), maxStatusSentinelList)] {
			rs := rconnv1.SentinelDataNodeStatus{Announced: r.Announced, Mapped: mappedOnly(r.Mapped, r.Announced),
				Health: healthOf(r.Announced, r.Announced), MasterLinkStatus: r.MasterLinkStatus}
			if r.Lag >= 0 {
				kib := r.Lag / 1024
				rs.LagKiB = &kib
			}
			st.Replicas = append(st.Replicas, rs)
		}
	} else if prev != nil {
		st.Replicas = prev.Replicas
	}
	for _, p := range t.Sentinels[:min(len(t.Sentinels), maxStatusSentinelList)] {
		st.Sentinels = append(st.Sentinels, rconnv1.SentinelPeerStatus{Announced: p.Announced, Mapped: mappedOnly(p.Mapped, p.Announced),
			Health: sentinelHealthOf(health, prevHealth, p.Announced), Master: p.Master})
	}
	s.rc.Status.Sentinel = st
	// The printer columns: one shard, its data nodes.
	nodes, healthy := int32(0), int32(0)
	if st.Master != nil {
		nodes++
		if st.Master.Health == rconnv1.HealthHealthy {
			healthy++
		}
	}
	for _, r := range st.Replicas {
		nodes++
		if r.Health == rconnv1.HealthHealthy {
			healthy++
		}
	}
	s.rc.Status.ShardCount, s.rc.Status.NodeCount, s.rc.Status.HealthyNodeCount = 1, nodes, healthy
}

func sentinelHealthOf(health map[string]cluster.NodeHealth, prev map[string]rconnv1.Health, announced string) rconnv1.Health {
	h, ok := health[announced]
	switch {
	case !ok:
		return prev["s/"+announced]
	case h.Healthy():
		return rconnv1.HealthHealthy
	case !h.Reachable:
		return rconnv1.HealthUnreachable
	}
	return rconnv1.HealthUnhealthy
}

// mappedOnly is mapped, or "" when it is the announced address (dialed as announced).
func mappedOnly(mapped, announced string) string {
	if mapped == announced {
		return ""
	}
	return mapped
}

// sentinelTransitions are the Sentinel-mode Events: FailoverDetected when the confirmed
// master changed, naming the old and the new one (announced and mapped).
func sentinelTransitions(old, cur *rconnv1.RedisConnectionStatus) []statusEvent {
	if old.Sentinel == nil || cur.Sentinel == nil || old.Sentinel.Master == nil || cur.Sentinel.Master == nil {
		return nil
	}
	o, n := old.Sentinel.Master, cur.Sentinel.Master
	if o.Announced == n.Announced {
		return nil
	}
	return []statusEvent{{corev1.EventTypeWarning, rconnv1.EventReasonFailoverDetected,
		fmt.Sprintf("master %s moved from %s (dialed %s) to %s (dialed %s)", cur.Sentinel.MasterName,
			o.Announced, mappedOr(o.Mapped, o.Announced), n.Announced, mappedOr(n.Mapped, n.Announced))}}
}
