package controllers

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// fullTopo is a one-shard cluster serving every slot, with a master and a replica.
func fullTopo() *cluster.Topology {
	m := &cluster.Node{ID: "aaaa", Announced: "m.invalid:6379", Mapped: "127.0.0.1:7000", Role: cluster.RoleMaster}
	r := &cluster.Node{ID: "bbbb", Announced: "r.invalid:6379", Mapped: "127.0.0.1:7001", Role: cluster.RoleReplica, MasterID: "aaaa"}
	return &cluster.Topology{
		Shards:       []cluster.Shard{{Master: m, Replicas: []*cluster.Node{r}, Slots: []cluster.SlotRange{{Start: 0, End: 16383}}}},
		Nodes:        []*cluster.Node{m, r},
		SlotsCovered: cluster.SlotCount, Source: "127.0.0.1:7000", Command: "CLUSTER SHARDS",
	}
}

func healthyOf(t *cluster.Topology) []cluster.NodeHealth {
	var out []cluster.NodeHealth
	for _, n := range t.Nodes {
		out = append(out, cluster.NodeHealth{Announced: n.Announced, Dialed: n.Mapped, Reachable: true, ClusterState: "ok"})
	}
	return out
}

func testScope(gen int64, prior ...metav1.Condition) *scope {
	rc := &rconnv1.RedisConnection{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "rc", Generation: gen}}
	rc.Spec.RootNodes = []rconnv1.RootNode{{Host: "seed.invalid", Port: 6379}}
	rc.Status.Conditions = prior
	return newScope(ctrl.Request{}.NamespacedName, rc, time.Minute)
}

// resolvedScope is a scope whose every phase succeeded.
func resolvedScope() *scope {
	s := testScope(1)
	s.creds = &credentials{}
	s.amap = &addressMap{entries: map[string]rconnv1.AppliedAddressMapping{}}
	t := fullTopo()
	s.probe = &probeResult{at: time.Now(), topo: t, health: healthyOf(t)}
	s.outputsReached = true
	return s
}

// summary writes conditions as "Type=Status/Reason" in order, for table comparisons.
func summary(cs []cond) string {
	var parts []string
	for _, c := range cs {
		st := "False"
		switch {
		case c.ok:
			st = "True"
		case c.unknown:
			st = "Unknown"
		}
		parts = append(parts, fmt.Sprintf("%s=%s/%s", c.typ, st, c.reason))
	}
	return strings.Join(parts, " ")
}

func TestDesiredConditions(t *testing.T) {
	const (
		am = rconnv1.ConditionAddressMapResolved
		td = rconnv1.ConditionTopologyDiscovered
	)
	for _, tc := range []struct {
		name  string
		scope func() *scope
		want  string
		// msg, when set, is a substring of the named condition's message.
		msgOf, msg string
	}{
		{"everything resolved", resolvedScope,
			"CredentialsResolved=True/NoCredentials AddressMapResolved=True/NoAddressMap TopologyDiscovered=True/Discovered NodesHealthy=True/AllHealthy ConfigRendered=True/Rendered",
			td, "1 shards, 2 nodes, all slots served (CLUSTER SHARDS via 127.0.0.1:7000)"},
		{"a password counts as credentials", func() *scope { s := resolvedScope(); s.creds.hasPassword = true; return s },
			"CredentialsResolved=True/Resolved AddressMapResolved=True/NoAddressMap TopologyDiscovered=True/Discovered NodesHealthy=True/AllHealthy ConfigRendered=True/Rendered", "", ""},
		{"credentials fail: everything after waits, the output is kept", func() *scope {
			s := testScope(1)
			s.credErr = &credentialError{reason: rconnv1.ReasonSecretNotFound, message: "Secret acl not found"}
			return s
		}, "CredentialsResolved=False/SecretNotFound AddressMapResolved=False/PrerequisitesNotMet TopologyDiscovered=False/PrerequisitesNotMet NodesHealthy=False/PrerequisitesNotMet ConfigRendered=False/PrerequisitesNotMet",
			rconnv1.ConditionConfigRendered, "keeping the previous output until CredentialsResolved is True"},
		{"TLS fails after the map was resolved: the map waits too", func() *scope {
			s := testScope(1)
			s.creds = &credentials{}
			s.amap = &addressMap{}
			s.credErr = &credentialError{reason: rconnv1.ReasonKeyMismatch, message: "key"}
			return s
		}, "CredentialsResolved=False/KeyMismatch AddressMapResolved=False/PrerequisitesNotMet TopologyDiscovered=False/PrerequisitesNotMet NodesHealthy=False/PrerequisitesNotMet ConfigRendered=False/PrerequisitesNotMet",
			am, "waiting for CredentialsResolved"},
		{"an address map problem blocks neither discovery nor the outputs", func() *scope {
			s := resolvedScope()
			s.amap.problem(rconnv1.ReasonNoServices, "Service redis not found")
			return s
		}, "CredentialsResolved=True/NoCredentials AddressMapResolved=False/NoServices TopologyDiscovered=True/Discovered NodesHealthy=True/AllHealthy ConfigRendered=True/Rendered", am, "2 nodes have no entry (m.invalid:6379; r.invalid:6379): Service redis not found"},
		{"a map problem that leaves no node unmapped is advisory", func() *scope {
			s := resolvedScope()
			for _, n := range s.probe.topo.Nodes {
				s.amap.entries[n.Announced] = rconnv1.AppliedAddressMapping{Announced: n.Announced, Reachable: n.Mapped}
			}
			s.amap.problem(rconnv1.ReasonLoadBalancerPending, "Service extra has no load balancer ingress yet")
			return s
		}, "CredentialsResolved=True/NoCredentials AddressMapResolved=False/LoadBalancerPending TopologyDiscovered=True/Discovered NodesHealthy=True/AllHealthy ConfigRendered=True/Rendered", am, "Service extra has no load balancer ingress yet"},
		{"invalid options block", func() *scope {
			s := testScope(1)
			s.creds, s.amap = &credentials{}, &addressMap{}
			s.optionsErr = errors.New("bad map entry")
			return s
		}, "CredentialsResolved=True/NoCredentials AddressMapResolved=True/NoAddressMap TopologyDiscovered=False/InvalidOptions NodesHealthy=False/PrerequisitesNotMet ConfigRendered=False/PrerequisitesNotMet",
			td, "invalid connection settings: bad map entry"},
		{"first probe of a new generation: Discovering", func() *scope {
			s := testScope(2, metav1.Condition{Type: td, Status: metav1.ConditionTrue, Reason: rconnv1.ReasonDiscovered, ObservedGeneration: 1})
			s.creds, s.amap, s.discovering = &credentials{}, &addressMap{}, true
			return s
		}, "CredentialsResolved=True/NoCredentials AddressMapResolved=True/NoAddressMap TopologyDiscovered=False/Discovering NodesHealthy=False/PrerequisitesNotMet ConfigRendered=False/PrerequisitesNotMet", "", ""},
		{"a new probe within the same generation keeps what it showed", func() *scope {
			s := testScope(2, metav1.Condition{Type: td, Status: metav1.ConditionTrue, Reason: rconnv1.ReasonDiscovered, ObservedGeneration: 2})
			s.creds, s.amap, s.discovering = &credentials{}, &addressMap{}, true
			return s
		}, "CredentialsResolved=True/NoCredentials AddressMapResolved=True/NoAddressMap", "", ""},
		{"discovery failed: classified, never the server's bytes", func() *scope {
			s := testScope(1)
			s.creds, s.amap = &credentials{}, &addressMap{}
			s.probe = &probeResult{err: fmt.Errorf("%w: SSH-2.0-OpenSSH", cluster.ErrNoNodeAnswered)}
			return s
		}, "CredentialsResolved=True/NoCredentials AddressMapResolved=True/NoAddressMap TopologyDiscovered=False/RootNodesUnreachable NodesHealthy=False/PrerequisitesNotMet ConfigRendered=False/PrerequisitesNotMet",
			td, "no Redis server answered at seed.invalid:6379"},
		{"slots uncovered: health is still known, no output", func() *scope {
			s := resolvedScope()
			s.probe.topo.SlotsCovered = 100
			s.outputErr = errPrerequisites
			return s
		}, "CredentialsResolved=True/NoCredentials AddressMapResolved=True/NoAddressMap TopologyDiscovered=False/SlotsUncovered NodesHealthy=True/AllHealthy ConfigRendered=False/PrerequisitesNotMet",
			td, "100 of 16384 slots are served"},
		{"a node unreachable", func() *scope {
			s := resolvedScope()
			s.probe.health[1].Reachable = false
			return s
		}, "CredentialsResolved=True/NoCredentials AddressMapResolved=True/NoAddressMap TopologyDiscovered=True/Discovered NodesHealthy=False/NodesUnreachable ConfigRendered=True/Rendered",
			rconnv1.ConditionNodesHealthy, "1 of 2 nodes unreachable: r.invalid:6379 (dialed 127.0.0.1:7001): no Redis server answered"},
		{"output conflict", func() *scope { s := resolvedScope(); s.outputErr = &errOutputConflict{"ConfigMap", "rc"}; return s },
			"CredentialsResolved=True/NoCredentials AddressMapResolved=True/NoAddressMap TopologyDiscovered=True/Discovered NodesHealthy=True/AllHealthy ConfigRendered=False/OutputConflict",
			rconnv1.ConditionConfigRendered, "ConfigMap rc exists and is not controlled by this RedisConnection"},
		{"config too large", func() *scope { s := resolvedScope(); s.outputErr = &errConfigTooLarge{size: 2 << 20}; return s },
			"CredentialsResolved=True/NoCredentials AddressMapResolved=True/NoAddressMap TopologyDiscovered=True/Discovered NodesHealthy=True/AllHealthy ConfigRendered=False/ConfigTooLarge", "", ""},
		{"invalid rendered config", func() *scope {
			s := resolvedScope()
			s.outputErr = &errInvalidConfig{errors.New("nodeAddressMap: bad")}
			return s
		}, "CredentialsResolved=True/NoCredentials AddressMapResolved=True/NoAddressMap TopologyDiscovered=True/Discovered NodesHealthy=True/AllHealthy ConfigRendered=False/PrerequisitesNotMet",
			rconnv1.ConditionConfigRendered, "rendered config is invalid: nodeAddressMap: bad"},
		{"an API error writing outputs makes ConfigRendered Unknown (it may be stale)", func() *scope {
			s := resolvedScope()
			s.outputErr = errors.New("etcdserver: timeout")
			return s
		}, "CredentialsResolved=True/NoCredentials AddressMapResolved=True/NoAddressMap TopologyDiscovered=True/Discovered NodesHealthy=True/AllHealthy ConfigRendered=Unknown/OutputWriteFailed",
			rconnv1.ConditionConfigRendered, "etcdserver: timeout"},
		{"standalone", func() *scope {
			s := resolvedScope()
			n := &cluster.Node{Announced: "s:6379", Role: cluster.RoleMaster}
			s.probe.topo = &cluster.Topology{Standalone: true, Nodes: []*cluster.Node{n}, Source: "s:6379"}
			return s
		}, "CredentialsResolved=True/NoCredentials AddressMapResolved=True/NoAddressMap TopologyDiscovered=True/Discovered NodesHealthy=True/AllHealthy ConfigRendered=True/Rendered", td, "standalone master via s:6379"},
		{"nothing reached (the object could not be read further)", func() *scope { return testScope(1) }, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := desiredConditions(tc.scope())
			if s := summary(got); s != tc.want {
				t.Errorf("conditions\n got %s\nwant %s", s, tc.want)
			}
			if tc.msgOf == "" {
				return
			}
			for _, c := range got {
				if c.typ == tc.msgOf {
					if !strings.Contains(c.message, tc.msg) {
						t.Errorf("%s message %q does not contain %q", c.typ, c.message, tc.msg)
					}
					return
				}
			}
			t.Errorf("no %s condition", tc.msgOf)
		})
	}
}

func TestAddressMapConditionNamesTheClippedStatusList(t *testing.T) {
	s := resolvedScope()
	s.rc.Spec.NodeAddressMap = &rconnv1.NodeAddressMap{}
	for i := range maxStatusMap + 5 {
		k := fmt.Sprintf("n%d.invalid:6379", i)
		s.amap.entries[k] = rconnv1.AppliedAddressMapping{Announced: k, Reachable: "127.0.0.1:7000"}
	}
	c := addressMapCondition(s)
	want := fmt.Sprintf("%d entries (status.nodeAddressMap lists the first %d of %d; the rendered config has all)", maxStatusMap+5, maxStatusMap, maxStatusMap+5)
	if c == nil || !c.ok || c.message != want {
		t.Fatalf("got %+v, want True %q", c, want)
	}
	setStatusData(s)
	if n := len(s.rc.Status.NodeAddressMap); n != maxStatusMap {
		t.Fatalf("status lists %d entries, want %d", n, maxStatusMap)
	}
}

func TestReadyCondition(t *testing.T) {
	all := func(mod func([]metav1.Condition) []metav1.Condition) []metav1.Condition {
		var cs []metav1.Condition
		for _, st := range conditionSteps {
			cs = append(cs, metav1.Condition{Type: st.typ, Status: metav1.ConditionTrue, Reason: "R", Message: "ok"})
		}
		return mod(cs)
	}
	for _, tc := range []struct {
		name          string
		conds         []metav1.Condition
		advisory      map[string]bool
		ok            bool
		reason, msgIs string
	}{
		{"all True", all(func(c []metav1.Condition) []metav1.Condition { return c }), nil, true, rconnv1.ReasonReady, "apps can use the rendered ConfigMap and Secret"},
		{"none yet", nil, nil, false, rconnv1.ReasonReconciling, "waiting for CredentialsResolved"},
		{"one missing", all(func(c []metav1.Condition) []metav1.Condition { return c[:3] }), nil, false, rconnv1.ReasonReconciling, "waiting for NodesHealthy"},
		{"the first False one names the root cause", all(func(c []metav1.Condition) []metav1.Condition {
			c[1].Status, c[1].Reason, c[1].Message = metav1.ConditionFalse, rconnv1.ReasonNoServices, "Service x not found"
			c[4].Status, c[4].Reason = metav1.ConditionFalse, rconnv1.ReasonPrerequisitesNotMet
			return c
		}), nil, false, rconnv1.ReasonNoServices, "AddressMapResolved: Service x not found"},
		{"Unknown counts as not True", all(func(c []metav1.Condition) []metav1.Condition {
			c[3].Status, c[3].Reason, c[3].Message = metav1.ConditionUnknown, "U", "?"
			return c
		}), nil, false, "U", "NodesHealthy: ?"},
		{"an advisory False condition does not hold Ready", all(func(c []metav1.Condition) []metav1.Condition {
			c[1].Status, c[1].Reason, c[1].Message = metav1.ConditionFalse, rconnv1.ReasonLoadBalancerPending, "Service extra has no load balancer ingress yet"
			return c
		}), map[string]bool{rconnv1.ConditionAddressMapResolved: true}, true, rconnv1.ReasonReady, "apps can use the rendered ConfigMap and Secret"},
		{"the first non-advisory False one names the root cause", all(func(c []metav1.Condition) []metav1.Condition {
			c[1].Status, c[1].Reason = metav1.ConditionFalse, rconnv1.ReasonLoadBalancerPending
			c[3].Status, c[3].Reason, c[3].Message = metav1.ConditionFalse, rconnv1.ReasonNodesUnreachable, "n"
			return c
		}), map[string]bool{rconnv1.ConditionAddressMapResolved: true}, false, rconnv1.ReasonNodesUnreachable, "NodesHealthy: n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := readyCondition(tc.conds, tc.advisory)
			if c.typ != rconnv1.ConditionReady || c.ok != tc.ok || c.reason != tc.reason || c.message != tc.msgIs {
				t.Errorf("got %+v, want ok=%v %s %q", c, tc.ok, tc.reason, tc.msgIs)
			}
		})
	}
}

func TestTransitionsBecomeEvents(t *testing.T) {
	node := func(id, addr string, role rconnv1.Role, h rconnv1.Health) rconnv1.NodeStatus {
		return rconnv1.NodeStatus{ID: id, Announced: addr, Role: role, Health: h}
	}
	base := func() rconnv1.RedisConnectionStatus {
		return rconnv1.RedisConnectionStatus{
			ObservedGeneration: 1, ShardCount: 1, NodeCount: 2,
			Nodes:          []rconnv1.NodeStatus{node("a", "a:1", rconnv1.RoleMaster, rconnv1.HealthHealthy), node("b", "b:1", rconnv1.RoleReplica, rconnv1.HealthHealthy)},
			Shards:         []rconnv1.ShardStatus{{MasterID: "a", ReplicaIDs: []string{"b"}, Slots: []string{"0-16383"}}},
			NodeAddressMap: []rconnv1.AppliedAddressMapping{{Announced: "a:1", Reachable: "127.0.0.1:1"}},
		}
	}
	credsFalse := func(msg string) []metav1.Condition {
		return []metav1.Condition{{Type: rconnv1.ConditionCredentialsResolved, Status: metav1.ConditionFalse, Reason: rconnv1.ReasonSecretNotFound, Message: msg}}
	}
	for _, tc := range []struct {
		name string
		old  func(*rconnv1.RedisConnectionStatus)
		cur  func(*rconnv1.RedisConnectionStatus)
		want []string // "Type/Reason"
	}{
		{"nothing changed", nil, nil, nil},
		{"failover", nil, func(s *rconnv1.RedisConnectionStatus) {
			s.Nodes = []rconnv1.NodeStatus{node("a", "a:1", rconnv1.RoleReplica, rconnv1.HealthHealthy), node("b", "b:1", rconnv1.RoleMaster, rconnv1.HealthHealthy)}
			s.Shards[0].MasterID, s.Shards[0].ReplicaIDs = "b", []string{"a"}
		}, []string{"Normal/TopologyChanged", "Warning/FailoverDetected"}},
		{"a node goes down and comes back", nil, func(s *rconnv1.RedisConnectionStatus) {
			s.Nodes[1].Health = rconnv1.HealthUnreachable
		}, []string{"Warning/NodeUnreachable"}},
		{"a node recovers", func(s *rconnv1.RedisConnectionStatus) { s.Nodes[1].Health = rconnv1.HealthUnhealthy }, nil, []string{"Normal/NodeRecovered"}},
		{"health unknown is not a transition", nil, func(s *rconnv1.RedisConnectionStatus) { s.Nodes[1].Health = "" }, nil},
		{"the map changed", nil, func(s *rconnv1.RedisConnectionStatus) { s.NodeAddressMap[0].Reachable = "127.0.0.1:2" }, []string{"Normal/AddressMapChanged"}},
		{"the first map is not a change", func(s *rconnv1.RedisConnectionStatus) { s.ObservedGeneration = 0; s.NodeAddressMap = nil }, nil, nil},
		{"credentials fail on the first reconcile", func(s *rconnv1.RedisConnectionStatus) { s.ObservedGeneration = 0 },
			func(s *rconnv1.RedisConnectionStatus) { s.Conditions = credsFalse("Secret acl not found") }, []string{"Warning/SecretNotFound"}},
		{"credentials that stay failed the same way are not repeated", func(s *rconnv1.RedisConnectionStatus) { s.Conditions = credsFalse("Secret acl not found") },
			func(s *rconnv1.RedisConnectionStatus) { s.Conditions = credsFalse("Secret acl not found") }, nil},
		{"credentials that fail differently are", func(s *rconnv1.RedisConnectionStatus) { s.Conditions = credsFalse("Secret acl not found") },
			func(s *rconnv1.RedisConnectionStatus) { s.Conditions = credsFalse("Secret acl2 not found") }, []string{"Warning/SecretNotFound"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, cur := base(), base()
			if tc.old != nil {
				tc.old(&old)
			}
			if tc.cur != nil {
				tc.cur(&cur)
			}
			var got []string
			for _, e := range transitions(&old, &cur) {
				got = append(got, e.typ+"/"+e.reason)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("events %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRequeue(t *testing.T) {
	r := func(d time.Duration) ctrl.Result { return ctrl.Result{RequeueAfter: d} }
	for _, tc := range []struct {
		name     string
		a, b     ctrl.Result
		want     ctrl.Result
		retry    time.Duration
		min, max time.Duration // of the final requeue
	}{
		{"both zero: the health cadence with up to 10% jitter", ctrl.Result{}, ctrl.Result{}, ctrl.Result{}, 0, 30 * time.Second, 33 * time.Second},
		{"the shortest wins", r(5 * time.Second), r(2 * time.Second), r(2 * time.Second), 0, 2 * time.Second, 2 * time.Second},
		{"zero loses", r(5 * time.Second), ctrl.Result{}, r(5 * time.Second), 0, 5 * time.Second, 5 * time.Second},
		{"zero loses, other side", ctrl.Result{}, r(7 * time.Second), r(7 * time.Second), 0, 7 * time.Second, 7 * time.Second},
		{"a degraded probe retries sooner than the cadence", ctrl.Result{}, ctrl.Result{}, ctrl.Result{}, 400 * time.Millisecond, 400 * time.Millisecond, 400 * time.Millisecond},
		{"a phase's requeue beats the retry", r(time.Second), ctrl.Result{}, r(time.Second), 400 * time.Millisecond, time.Second, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := lowestNonZeroResult(tc.a, tc.b)
			if got != tc.want {
				t.Fatalf("lowestNonZeroResult = %v, want %v", got, tc.want)
			}
			s := testScope(1)
			s.retryAfter = tc.retry
			final := s.requeue(got).RequeueAfter
			if final < tc.min || final > tc.max {
				t.Fatalf("requeue %v, want within [%v, %v]", final, tc.min, tc.max)
			}
		})
	}
}
