package controllers

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
)

// TestConflictingClaimsNeverMoveAnEntryInUse: a key two Services map differently keeps the
// target it had when its node was announced, is left out (never guessed) when it had none or
// was not in use, and a Service whose own address is unknown (a pending load balancer) still
// counts: another Service's entry is not taken for its endpoints.
func TestConflictingClaimsNeverMoveAnEntryInUse(t *testing.T) {
	const key, legit, hostile = "10.0.0.1:6379", "127.2.0.1:6379", "127.9.9.9:6379"
	inUse := previousMap{entries: map[string]string{key: legit}, announced: map[string]bool{key: true}}
	notAnnounced := previousMap{entries: map[string]string{key: hostile}, announced: map[string]bool{}}
	for _, tc := range []struct {
		name   string
		claims []claim
		prev   previousMap
		want   string // "" when left out
		report string // "" when nothing is reported
	}{
		{"one target", []claim{{reachable: legit, service: "a"}}, previousMap{}, legit, ""},
		{"two Services agree", []claim{{reachable: legit, service: "a"}, {reachable: legit, service: "b"}}, previousMap{}, legit, ""},
		{"a new conflicting Service does not move an entry in use",
			[]claim{{reachable: hostile, service: "evil"}, {reachable: legit, service: "a"}}, inUse, legit, "keeping " + legit + " from the last map"},
		{"two targets, no previous one: left out",
			[]claim{{reachable: legit, service: "a"}, {reachable: hostile, service: "evil"}}, previousMap{}, "", "left out"},
		{"the previous target is no longer named: left out",
			[]claim{{reachable: "127.2.0.2:6379", service: "a"}, {reachable: hostile, service: "evil"}}, inUse, "", "left out"},
		{"a pre-claimed entry no node announced protects nothing",
			[]claim{{reachable: legit, service: "a"}, {reachable: hostile, service: "evil"}}, notAnnounced, "", "left out"},
		{"a pending Service's endpoint is not taken by another Service",
			[]claim{{service: "a", why: "load balancer pending"}, {reachable: hostile, service: "evil"}}, previousMap{}, "", "an unknown address (Service a: load balancer pending)"},
		{"a pending conflicting Service does not move an entry in use",
			[]claim{{reachable: legit, service: "a"}, {service: "evil", why: "load balancer pending"}}, inUse, legit, "keeping"},
		{"only pending claims: no entry, no conflict", []claim{{service: "a", why: "load balancer pending"}}, previousMap{}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &addressMap{entries: map[string]rconnv1.AppliedAddressMapping{}}
			m.resolve(map[string][]claim{key: tc.claims}, tc.prev)
			if got := m.entries[key].Reachable; got != tc.want {
				t.Errorf("entry %q, want %q", got, tc.want)
			}
			var msgs []string
			for _, p := range m.problems {
				if p.reason != rconnv1.ReasonMappingConflict {
					t.Errorf("reason %s", p.reason)
				}
				msgs = append(msgs, p.message)
			}
			all := strings.Join(msgs, "; ")
			if (tc.report == "") != (all == "") || !strings.Contains(all, tc.report) {
				t.Errorf("reported %q, want %q", all, tc.report)
			}
		})
	}
}

func TestStaticEntriesWinOverClaims(t *testing.T) {
	const key = "10.0.0.1:6379"
	m := &addressMap{entries: map[string]rconnv1.AppliedAddressMapping{key: {Announced: key, Reachable: "127.0.0.1:1", Source: rconnv1.MappingSourceStatic}}}
	m.resolve(map[string][]claim{key: {{reachable: "127.0.0.2:1", service: "a"}, {reachable: "127.0.0.3:1", service: "b"}}}, previousMap{})
	if e := m.entries[key]; e.Reachable != "127.0.0.1:1" || m.hasProblems() {
		t.Errorf("entry %+v, problems %v", e, m.problems)
	}
}

func TestMapProblemsAreBounded(t *testing.T) {
	m := &addressMap{}
	for range maxMapProblems + 50 {
		m.problem(rconnv1.ReasonNodeAddressUnknown, "endpoint on node x")
	}
	if len(m.problems) != maxMapProblems || m.more != 50 {
		t.Fatalf("kept %d, more %d", len(m.problems), m.more)
	}
	s := resolvedScope()
	s.amap = m
	c := addressMapCondition(s)
	if !strings.HasSuffix(c.message, "; and 130 more") {
		t.Errorf("message %q", c.message)
	}
}

func TestCacheTransformKeepsOnlyNodeAddresses(t *testing.T) {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "u", ResourceVersion: "7", Labels: map[string]string{"a": "b"}, Annotations: map[string]string{"x": strings.Repeat("y", 4096)}},
		Status: corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "n1"}, {Type: corev1.NodeInternalIP, Address: "10.0.0.1"}, {Type: corev1.NodeExternalIP, Address: "203.0.113.1"}},
			Images:    []corev1.ContainerImage{{Names: []string{strings.Repeat("i", 4096)}}},
		},
	}
	out, err := CacheTransform()(n)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*corev1.Node)
	want := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "u", ResourceVersion: "7"},
		Status:     corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}, {Type: corev1.NodeExternalIP, Address: "203.0.113.1"}}},
	}
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("got %+v", got)
	}
	if a := nodeAddress(got); a != "203.0.113.1" {
		t.Errorf("address %q, want the ExternalIP", a)
	}
	// Idempotent: the informer may transform an object twice.
	again, _ := CacheTransform()(got)
	if !equality.Semantic.DeepEqual(again, want) {
		t.Errorf("second transform: %+v", again)
	}
}

// TestEntriesWaitForTheNodeCache: while the Node cache is loading (a manager restart), a NodePort
// entry keeps its previous target instead of leaving the rendered map; without one it is absent.
func TestEntriesWaitForTheNodeCache(t *testing.T) {
	const key, prevTarget = "10.0.0.1:6379", "127.3.0.1:30001"
	cs := []claim{{service: "np", why: whyNodeCacheLoading}}
	m := &addressMap{entries: map[string]rconnv1.AppliedAddressMapping{}}
	m.resolve(map[string][]claim{key: cs}, previousMap{entries: map[string]string{key: prevTarget}})
	if got := m.entries[key].Reachable; got != prevTarget {
		t.Errorf("entry %q, want the previous %q", got, prevTarget)
	}
	m = &addressMap{entries: map[string]rconnv1.AppliedAddressMapping{}}
	m.resolve(map[string][]claim{key: {{service: "np", why: "load balancer pending"}}}, previousMap{entries: map[string]string{key: prevTarget}})
	if _, ok := m.entries[key]; ok {
		t.Error("a pending load balancer kept its entry")
	}
}
