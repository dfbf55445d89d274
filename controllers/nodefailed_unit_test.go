package controllers

import (
	"errors"
	"testing"

	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// The re-probe backoff (degraded), NodesHealthy (healthCondition) and status agree on which
// check results are a failed node: all ask cluster.NodeHealth.Healthy.
func TestNodeFailedDecidedOnce(t *testing.T) {
	for _, h := range []cluster.NodeHealth{
		{Reachable: true},
		{Reachable: true, ClusterState: "ok"},
		{Reachable: true, ClusterState: "fail", Err: cluster.ErrClusterStateNotOK},
		{Reachable: true, ClusterState: "fail"},
		{Reachable: true, ClusterState: "loading"},
		{Reachable: true, Err: errors.New("ROLE: EOF")},
		{Reachable: false, Err: errors.New("dial: refused")},
		{},
	} {
		hs := []cluster.NodeHealth{h}
		ok, _, _ := healthCondition(hs, false)
		if degraded(hs) == h.Healthy() || ok != h.Healthy() {
			t.Errorf("%+v: Healthy %t, degraded %t, NodesHealthy %t", h, h.Healthy(), degraded(hs), ok)
		}
	}
}
