package controllers

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// Conditions are pure functions of the request's scope: one per condition, each nil when its
// phase was not reached (the condition keeps its value).

// cond is one condition as the scope describes it.
type cond struct {
	typ             string
	ok              bool
	reason, message string
	// blocks: the conditions after this one wait for it, so Ready names the root cause.
	blocks bool
	// advisory: False, but Ready does not wait for it (an address map problem that leaves no
	// node of the topology unmapped: the outputs render and apps reach every node).
	advisory bool
}

func condTrue(typ, reason, message string) *cond {
	return &cond{typ: typ, ok: true, reason: reason, message: message}
}

func condFalse(typ, reason, message string) *cond {
	return &cond{typ: typ, reason: reason, message: message}
}

func (c *cond) blocking() *cond {
	c.blocks = true
	return c
}

// conditionSteps is the order Ready looks for the first failing condition in, with the
// function that derives each.
var conditionSteps = []struct {
	typ    string
	derive func(*scope) *cond
}{
	{rconnv1.ConditionCredentialsResolved, credentialsCondition},
	{rconnv1.ConditionAddressMapResolved, addressMapCondition},
	{rconnv1.ConditionTopologyDiscovered, topologyCondition},
	{rconnv1.ConditionNodesHealthy, nodesHealthyCondition},
	{rconnv1.ConditionConfigRendered, configRenderedCondition},
}

// desiredConditions derives the conditions of conditionSteps from the scope. After a blocking
// False condition the later ones wait for it (ConfigRendered keeps the previous output).
func desiredConditions(s *scope) []cond {
	var out []cond
	blockedBy := ""
	for _, step := range conditionSteps {
		if blockedBy != "" {
			out = append(out, *waitingCondition(step.typ, blockedBy))
			continue
		}
		c := step.derive(s)
		if c == nil {
			continue
		}
		out = append(out, *c)
		if c.blocks {
			blockedBy = c.typ
		}
	}
	return out
}

// waitingCondition is a condition that waits for a failed earlier one.
func waitingCondition(typ, failed string) *cond {
	if typ == rconnv1.ConditionConfigRendered {
		return condFalse(typ, rconnv1.ReasonPrerequisitesNotMet, "keeping the previous output until "+failed+" is True")
	}
	return condFalse(typ, rconnv1.ReasonPrerequisitesNotMet, "waiting for "+failed)
}

func credentialsCondition(s *scope) *cond {
	const typ = rconnv1.ConditionCredentialsResolved
	switch {
	case s.credErr != nil:
		return condFalse(typ, s.credErr.reason, s.credErr.message).blocking()
	case s.creds == nil:
		return nil
	case s.creds.tls == nil && !s.creds.hasPassword && s.rc.Spec.ControllerACL == nil:
		return condTrue(typ, rconnv1.ReasonNoCredentials, "no ACL or TLS Secret referenced")
	default:
		return condTrue(typ, rconnv1.ReasonCredentialsResolved, "ACL and TLS Secrets are present and valid")
	}
}

// addressMapCondition says what is wrong with the map, entry by entry (bounded). Map problems
// never stop the later phases: each costs only its own entries. The condition is advisory
// (Ready does not copy it) unless a node of the topology is left without an entry.
func addressMapCondition(s *scope) *cond {
	const typ = rconnv1.ConditionAddressMapResolved
	m := s.amap
	switch {
	case m == nil:
		return nil
	case m.hasProblems():
		msgs := make([]string, 0, len(m.problems))
		for _, p := range m.problems {
			msgs = append(msgs, p.message)
		}
		listed := msgs[:min(len(msgs), maxListedNodes)]
		msg := strings.Join(listed, "; ")
		if rest := len(msgs) - len(listed) + m.more; rest > 0 {
			msg += fmt.Sprintf("; and %d more", rest)
		}
		c := condFalse(typ, m.problems[0].reason, msg)
		if unmapped := s.unmappedNodes(); len(unmapped) > 0 {
			c.message = fmt.Sprintf("%d nodes have no entry (%s): ", len(unmapped), clipList(unmapped, maxListedNodes)) + c.message
		} else {
			c.advisory = true
		}
		return c
	case s.rc.Spec.NodeAddressMap == nil:
		return condTrue(typ, rconnv1.ReasonNoAddressMap, "no nodeAddressMap: nodes are dialed as they announce themselves")
	}
	note := ""
	if len(m.entries) > maxStatusMap {
		note = fmt.Sprintf(" (status.nodeAddressMap lists the first %d of %d; the rendered config has all)", maxStatusMap, len(m.entries))
	}
	return condTrue(typ, rconnv1.ReasonAddressMapResolved, fmt.Sprintf("%d entries", len(m.entries))+note)
}

func topologyCondition(s *scope) *cond {
	const typ = rconnv1.ConditionTopologyDiscovered
	switch {
	case s.optionsErr != nil:
		// Nothing was dialed: the message names only what the spec and the address map hold.
		return condFalse(typ, rconnv1.ReasonInvalidOptions, "invalid connection settings: "+s.optionsErr.Error()).blocking()
	case s.discovering:
		// Keep what this generation already showed while a probe through new settings runs.
		if c := meta.FindStatusCondition(s.before.Status.Conditions, typ); c != nil && c.ObservedGeneration == s.rc.Generation {
			return nil
		}
		return condFalse(typ, rconnv1.ReasonDiscovering, "discovering the topology through the root nodes").blocking()
	case s.probe == nil:
		return nil
	case s.probe.err != nil:
		reason, msg := topologyFailure(s.rc, s.probe.err)
		return condFalse(typ, reason, msg).blocking()
	case s.probe.stopo != nil:
		return sentinelTopologyCondition(s)
	}
	t := s.probe.topo
	clipped := ""
	if note := topologyClipNote(t); note != "" {
		clipped = " (" + note + ")"
	}
	switch {
	case !t.FullCoverage():
		return condFalse(typ, rconnv1.ReasonSlotsUncovered, fmt.Sprintf("%d of %d slots are served", t.SlotsCovered, cluster.SlotCount)+clipped)
	case t.Standalone:
		return condTrue(typ, rconnv1.ReasonDiscovered, fmt.Sprintf("standalone %s via %s", t.Nodes[0].Role, t.Source))
	default:
		return condTrue(typ, rconnv1.ReasonDiscovered,
			fmt.Sprintf("%d shards, %d nodes, all slots served (%s via %s)", shardCount(t), len(t.Nodes), t.Command, t.Source)+clipped)
	}
}

func nodesHealthyCondition(s *scope) *cond {
	if s.probe != nil && s.probe.err == nil && s.probe.stopo != nil {
		return sentinelHealthCondition(s)
	}
	if s.topology() == nil {
		return nil
	}
	ok, reason, msg := healthCondition(s.health(), usesTLS(s.rc))
	if ok {
		return condTrue(rconnv1.ConditionNodesHealthy, reason, msg)
	}
	return condFalse(rconnv1.ConditionNodesHealthy, reason, msg)
}

func configRenderedCondition(s *scope) *cond {
	const typ = rconnv1.ConditionConfigRendered
	if !s.outputsReached {
		return nil
	}
	reason, ok, reported := outputOutcome(s.outputErr)
	switch {
	case !reported:
		return nil
	case ok:
		cm, sec := outputNames(s.rc)
		return condTrue(typ, reason, fmt.Sprintf("ConfigMap %s and Secret %s are current", cm, sec))
	default:
		return condFalse(typ, reason, s.outputErr.Error())
	}
}

// readyCondition derives Ready from the other conditions: True when all are (advisory ones
// aside: their types, from this request's desiredConditions), else False with the reason and
// message of the first that is not.
func readyCondition(conds []metav1.Condition, advisory map[string]bool) *cond {
	const typ = rconnv1.ConditionReady
	for _, step := range conditionSteps {
		c := meta.FindStatusCondition(conds, step.typ)
		if c == nil {
			return condFalse(typ, rconnv1.ReasonReconciling, "waiting for "+step.typ)
		}
		if c.Status != metav1.ConditionTrue && !advisory[step.typ] {
			return condFalse(typ, c.Reason, step.typ+": "+c.Message)
		}
	}
	return condTrue(typ, rconnv1.ReasonReady, "apps can use the rendered ConfigMap and Secret")
}

// setCondition records one condition; LastTransitionTime changes only when Status does.
func setCondition(rc *rconnv1.RedisConnection, c *cond) {
	status := metav1.ConditionFalse
	if c.ok {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&rc.Status.Conditions, metav1.Condition{
		Type: c.typ, Status: status, Reason: c.reason, Message: truncate(c.message, 32000), ObservedGeneration: rc.Generation,
	})
}

// healthCondition summarises node health with fixed messages: which node, at which address,
// and the class of failure, never what a node sent. With TLS, unreachable nodes get the same
// hint as an unreachable root (tlsHint): a certificate that failed verification reads like a
// closed port here too, since announced addresses come from servers a tenant may control.
func healthCondition(health []cluster.NodeHealth, tls bool) (ok bool, reason, message string) {
	var unreachable, unhealthy []string
	for _, h := range health {
		switch {
		case h.Healthy():
		case !h.Reachable:
			unreachable = append(unreachable, fmt.Sprintf("%s (dialed %s): %s", h.Announced, h.Dialed, nodeFailure(h)))
		default:
			unhealthy = append(unhealthy, fmt.Sprintf("%s: %s", h.Announced, nodeFailure(h)))
		}
	}
	switch {
	case len(unreachable) > 0:
		return false, rconnv1.ReasonNodesUnreachable, fmt.Sprintf("%d of %d nodes unreachable: %s", len(unreachable), len(health), clipList(unreachable, maxListedNodes)) + tlsHint(tls)
	case len(unhealthy) > 0:
		return false, rconnv1.ReasonNodesUnhealthy, fmt.Sprintf("%d of %d nodes unhealthy: %s", len(unhealthy), len(health), clipList(unhealthy, maxListedNodes))
	}
	return true, rconnv1.ReasonAllNodesHealthy, fmt.Sprintf("all %d nodes answered through their mapped addresses", len(health))
}

// maxListedNodes bounds how many nodes a condition message names (the count stays true).
const maxListedNodes = 20

// nodeFailure is a fixed description of why a node failed its check.
func nodeFailure(h cluster.NodeHealth) string {
	if h.Reachable && h.ClusterState != "" && h.ClusterState != "ok" {
		return "cluster_state is not ok"
	}
	class, _ := cluster.Classify(h.Err)
	switch class {
	case cluster.ClassAuthenticationFailed:
		return "authentication failed"
	case cluster.ClassReplyTooLarge:
		return "reply larger than the manager's caps"
	case cluster.ClassAddressDenied:
		return "address denied by the manager's address policy"
	case cluster.ClassManagerBusy:
		return "not checked: the manager's budget for replies in flight was exhausted"
	}
	if h.Reachable {
		return "did not answer ROLE / CLUSTER INFO"
	}
	return "no Redis server answered"
}
