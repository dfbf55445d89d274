package controllers

import (
	"testing"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
)

// TestMapProblemsDoNotHoldTheOutputs: a map problem (one more labelled Service without a load
// balancer) costs only its own entries; the outputs still render from a full topology (issue 23,
// item 3: before, one such Service froze config.json and the Secret).
func TestMapProblemsDoNotHoldTheOutputs(t *testing.T) {
	s := resolvedScope()
	s.amap.problem(rconnv1.ReasonLoadBalancerPending, "Service extra has no load balancer ingress yet")
	if !s.resolved() {
		t.Fatal("a map problem holds the outputs back")
	}
	s.probe.topo.SlotsCovered = 100
	if s.resolved() {
		t.Fatal("outputs from a topology that does not serve every slot")
	}
}
