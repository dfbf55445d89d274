package controllers

import (
	"testing"
	"time"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// sentinelScope is a Sentinel-mode scope whose probe found topo, with a map problem and
// entries for mapped.
func sentinelScope(topo *cluster.SentinelTopology, mapped ...string) *scope {
	s := testScope(1)
	s.rc.Spec.Mode = rconnv1.ModeSentinel
	s.rc.Spec.RootNodes = nil
	s.creds = &credentials{}
	s.amap = &addressMap{entries: map[string]rconnv1.AppliedAddressMapping{}}
	for _, a := range mapped {
		s.amap.entries[a] = rconnv1.AppliedAddressMapping{Announced: a, Reachable: "127.0.0.1:1"}
	}
	s.amap.problem(rconnv1.ReasonNoServices, "Service redis not found")
	s.probe = &probeResult{at: time.Now(), stopo: topo}
	return s
}

// TestUnmappedNodesCoverSentinelMode (issue 24): the AddressMapResolved note of announced
// addresses the map does not cover looks at what a Sentinel group announces (the master the
// majority names, confirmed or not, its replicas, the peer sentinels asked), not only at
// Cluster topologies; root nodes (the spec's own addresses) and peers only listed are left
// out. On the code before, a Sentinel topology never had unmapped nodes: the map problem was
// advisory and Ready did not say that apps cannot reach a replica or a sentinel.
func TestUnmappedNodesCoverSentinelMode(t *testing.T) {
	topo := func(confirmed bool) *cluster.SentinelTopology {
		return &cluster.SentinelTopology{
			MasterName:      "mymaster",
			Master:          &cluster.SentinelNode{Announced: "m.invalid:6379"},
			MasterConfirmed: confirmed,
			Replicas:        []*cluster.SentinelNode{{Announced: "r1.invalid:6379"}, {Announced: "r2.invalid:6379"}},
			Sentinels: []cluster.SentinelPeer{
				{Announced: "root.invalid:26379", Root: true, Asked: true, Answered: true},
				{Announced: "s1.invalid:26379", Asked: true, Answered: true},
				{Announced: "s2.invalid:26379", Asked: true},
				{Announced: "listed-only.invalid:26379"},
			},
		}
	}
	for _, tc := range []struct {
		name     string
		s        *scope
		unmapped []string
		message  string
	}{
		{"replica and sentinels unmapped", sentinelScope(topo(true), "m.invalid:6379", "r1.invalid:6379"),
			[]string{"r2.invalid:6379", "s1.invalid:26379", "s2.invalid:26379"},
			"3 nodes have no entry (r2.invalid:6379; s1.invalid:26379; s2.invalid:26379): Service redis not found"},
		{"an unconfirmed master without an entry", sentinelScope(topo(false), "r1.invalid:6379", "r2.invalid:6379", "s1.invalid:26379", "s2.invalid:26379"),
			[]string{"m.invalid:6379"}, "1 nodes have no entry (m.invalid:6379): Service redis not found"},
		{"everything announced is mapped: advisory", sentinelScope(topo(true), "m.invalid:6379", "r1.invalid:6379", "r2.invalid:6379", "s1.invalid:26379", "s2.invalid:26379"),
			nil, "Service redis not found"},
		{"no sentinel answered: nothing known", func() *scope {
			s := sentinelScope(nil)
			s.probe.err = cluster.ErrNoSentinelAnswered
			return s
		}(), nil, "Service redis not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.s.unmappedNodes()
			if len(got) != len(tc.unmapped) {
				t.Fatalf("unmappedNodes = %v, want %v", got, tc.unmapped)
			}
			for i := range got {
				if got[i] != tc.unmapped[i] {
					t.Fatalf("unmappedNodes = %v, want %v", got, tc.unmapped)
				}
			}
			c := addressMapCondition(tc.s)
			if c == nil || c.ok || c.message != tc.message || c.advisory != (len(tc.unmapped) == 0) {
				t.Fatalf("AddressMapResolved = %+v, want False %q (advisory %t)", c, tc.message, len(tc.unmapped) == 0)
			}
		})
	}
}
