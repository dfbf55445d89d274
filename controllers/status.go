package controllers

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// Status list bounds: the schema's maxItems (a longer list would make every status patch fail).
const (
	maxStatusNodes    = 2000
	maxStatusShards   = 1000
	maxStatusReplicas = 64
	maxStatusMap      = 2000
)

// shardCount counts the shards that own slots or have a live master. After a failover with the
// old master down, CLUSTER SHARDS still lists that master alone with no slots: it is listed in
// status.shards (the node is real and down) but is not a shard of the cluster.
func shardCount(t *cluster.Topology) int {
	n := 0
	for _, s := range t.Shards {
		if len(s.Slots) > 0 || (s.Master != nil && !failedHealth(s.Master.Health)) {
			n++
		}
	}
	return n
}

// failedHealth reports a CLUSTER SHARDS health of a node the cluster marked as failed: "fail"
// (Redis 7.0, seen on a real server) or "failed" (as the documentation spells it).
func failedHealth(h string) bool { return h == "fail" || h == "failed" }

// setTopologyStatus records shards, nodes and counts from a topology and its health. Lists are
// clipped to the schema's bounds while the counts stay true; the returned note says what was
// left out ("" when nothing was).
func setTopologyStatus(rc *rconnv1.RedisConnection, t *cluster.Topology, health []cluster.NodeHealth) string {
	byAddr := map[string]cluster.NodeHealth{}
	for _, h := range health {
		byAddr[h.Announced] = h
	}
	rc.Status.Nodes = nil
	healthy := int32(0)
	for _, n := range t.Nodes {
		ns := rconnv1.NodeStatus{ID: n.ID, Announced: n.Announced, Mapped: n.Mapped, MasterID: n.MasterID}
		if n.Mapped == n.Announced {
			ns.Mapped = ""
		}
		switch n.Role {
		case cluster.RoleMaster:
			ns.Role = rconnv1.RoleMaster
		case cluster.RoleReplica:
			ns.Role = rconnv1.RoleReplica
		}
		h, checked := byAddr[n.Announced]
		switch {
		case !checked:
		case h.Healthy():
			ns.Health = rconnv1.HealthHealthy
			healthy++
		case !h.Reachable:
			ns.Health = rconnv1.HealthUnreachable
		default:
			ns.Health = rconnv1.HealthUnhealthy
		}
		rc.Status.Nodes = append(rc.Status.Nodes, ns)
	}
	rc.Status.Shards = nil
	for _, s := range t.Shards {
		ss := rconnv1.ShardStatus{}
		if s.Master != nil {
			ss.MasterID = s.Master.ID
		}
		for _, r := range s.Replicas {
			ss.ReplicaIDs = append(ss.ReplicaIDs, r.ID)
		}
		sort.Strings(ss.ReplicaIDs)
		for _, r := range s.Slots {
			ss.Slots = append(ss.Slots, r.String())
		}
		rc.Status.Shards = append(rc.Status.Shards, ss)
	}
	rc.Status.ShardCount = int32(shardCount(t))
	rc.Status.NodeCount = int32(len(t.Nodes))
	rc.Status.HealthyNodeCount = healthy
	if t.Standalone {
		rc.Status.SlotsCovered = 0
	} else {
		rc.Status.SlotsCovered = int32(t.SlotsCovered)
	}
	return clipTopologyStatus(&rc.Status, t)
}

// clipTopologyStatus cuts status.nodes, status.shards and each shard's replicas to the schema's
// bounds and says what was left out ("" when nothing was).
func clipTopologyStatus(st *rconnv1.RedisConnectionStatus, t *cluster.Topology) string {
	if len(st.Nodes) > maxStatusNodes {
		st.Nodes = st.Nodes[:maxStatusNodes]
	}
	if len(st.Shards) > maxStatusShards {
		st.Shards = st.Shards[:maxStatusShards]
	}
	for i := range st.Shards {
		if r := st.Shards[i].ReplicaIDs; len(r) > maxStatusReplicas {
			st.Shards[i].ReplicaIDs = r[:maxStatusReplicas]
		}
	}
	return topologyClipNote(t)
}

// topologyClipNote says what the status lists of a topology leave out ("" when nothing).
func topologyClipNote(t *cluster.Topology) string {
	var notes []string
	if len(t.Nodes) > maxStatusNodes {
		notes = append(notes, fmt.Sprintf("status.nodes lists the first %d of %d nodes", maxStatusNodes, len(t.Nodes)))
	}
	if len(t.Shards) > maxStatusShards {
		notes = append(notes, fmt.Sprintf("status.shards lists the first %d of %d shards", maxStatusShards, len(t.Shards)))
	}
	shards := t.Shards[:min(len(t.Shards), maxStatusShards)]
	for _, sh := range shards {
		if n := len(sh.Replicas); n > maxStatusReplicas {
			notes = append(notes, fmt.Sprintf("a shard lists %d of its %d replicas", maxStatusReplicas, n))
		}
	}
	return strings.Join(notes, "; ")
}

// setStatusData records the address map and the topology the scope holds (what is unknown
// keeps its previous value).
func setStatusData(s *scope) {
	if s.amap != nil {
		s.rc.Status.NodeAddressMap = s.amap.list()
		if len(s.rc.Status.NodeAddressMap) > maxStatusMap {
			s.rc.Status.NodeAddressMap = s.rc.Status.NodeAddressMap[:maxStatusMap]
		}
	}
	if t := s.topology(); t != nil {
		setTopologyStatus(s.rc, t, s.health())
	}
	if s.probe != nil && s.probe.err == nil && s.probe.stopo != nil {
		setSentinelStatus(s)
	}
}

// clipList joins at most n items and says how many were left out.
func clipList(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, "; ")
	}
	return strings.Join(items[:n], "; ") + fmt.Sprintf("; and %d more", len(items)-n)
}

// transitions compares the previous and new status and returns the Events to emit.
type statusEvent struct {
	typ, reason, message string
}

func transitions(old, cur *rconnv1.RedisConnectionStatus) []statusEvent {
	var out []statusEvent
	if len(old.Nodes) > 0 && len(cur.Nodes) > 0 {
		if nodeSet(old) != nodeSet(cur) {
			out = append(out, statusEvent{corev1.EventTypeNormal, rconnv1.EventReasonTopologyChanged, fmt.Sprintf("topology is now %d shards, %d nodes", cur.ShardCount, cur.NodeCount)})
		}
		// A shard's master changed: the same slots now served by another node.
		oldMaster := map[string]string{}
		for _, s := range old.Shards {
			if len(s.Slots) > 0 {
				oldMaster[s.Slots[0]] = s.MasterID
			}
		}
		for _, s := range cur.Shards {
			if len(s.Slots) == 0 {
				continue
			}
			if prev, ok := oldMaster[s.Slots[0]]; ok && prev != s.MasterID && prev != "" {
				out = append(out, statusEvent{corev1.EventTypeWarning, rconnv1.EventReasonFailoverDetected, fmt.Sprintf("slots %s moved from master %s to %s", strings.Join(s.Slots, ","), short(prev), short(s.MasterID))})
			}
		}
		oldHealth := map[string]rconnv1.Health{}
		for _, n := range old.Nodes {
			oldHealth[n.Announced] = n.Health
		}
		for _, n := range cur.Nodes {
			prev, seen := oldHealth[n.Announced]
			switch {
			case seen && prev == rconnv1.HealthHealthy && n.Health != rconnv1.HealthHealthy && n.Health != "":
				out = append(out, statusEvent{corev1.EventTypeWarning, rconnv1.EventReasonNodeUnreachable, fmt.Sprintf("node %s is %s", n.Announced, n.Health)})
			case seen && prev != rconnv1.HealthHealthy && prev != "" && n.Health == rconnv1.HealthHealthy:
				out = append(out, statusEvent{corev1.EventTypeNormal, rconnv1.EventReasonNodeRecovered, fmt.Sprintf("node %s is healthy again", n.Announced)})
			}
		}
	}
	// Credentials that fail (again, or differently) are a Warning: nothing else can proceed.
	if c := meta.FindStatusCondition(cur.Conditions, rconnv1.ConditionCredentialsResolved); c != nil && c.Status == metav1.ConditionFalse {
		if prev := meta.FindStatusCondition(old.Conditions, c.Type); old.ObservedGeneration == 0 || !sameCondition(prev, c) {
			out = append(out, statusEvent{corev1.EventTypeWarning, c.Reason, c.Message})
		}
	}
	out = append(out, sentinelTransitions(old, cur)...)
	if old.ObservedGeneration != 0 && mappingKey(old.NodeAddressMap) != mappingKey(cur.NodeAddressMap) {
		out = append(out, statusEvent{corev1.EventTypeNormal, rconnv1.EventReasonAddressMapChanged, fmt.Sprintf("node address map now has %d entries", len(cur.NodeAddressMap))})
	}
	return out
}

// sameCondition reports whether a (nil: absent) says what b says.
func sameCondition(a, b *metav1.Condition) bool {
	return a != nil && b != nil && a.Status == b.Status && a.Reason == b.Reason && a.Message == b.Message
}

func nodeSet(s *rconnv1.RedisConnectionStatus) string {
	var parts []string
	for _, n := range s.Nodes {
		parts = append(parts, n.ID+"@"+n.Announced+"/"+string(n.Role))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func mappingKey(m []rconnv1.AppliedAddressMapping) string {
	var b strings.Builder
	for _, e := range m {
		b.WriteString(e.Announced + "=" + e.Reachable + ";")
	}
	return b.String()
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
