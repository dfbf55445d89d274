package controllers

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// The reconnect strategy's documented defaults reach config.json: jitter 200ms unless set, and
// an explicit 0s stays 0.
func TestRenderReconnectJitter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		jitter *metav1.Duration
		want   int64
	}{
		{"unset", nil, 200},
		{"explicit", &metav1.Duration{Duration: 750 * time.Millisecond}, 750},
		{"off", &metav1.Duration{}, 0},
	} {
		rc := &rconnv1.RedisConnection{Spec: rconnv1.RedisConnectionSpec{
			RootNodes:         []rconnv1.RootNode{{URL: "redis://127.0.0.1:7000"}},
			ReconnectStrategy: &rconnv1.ReconnectStrategy{Type: rconnv1.ReconnectExponentialBackoff, Jitter: tc.jitter},
		}}
		cfg := renderConfig(rc, &credentials{}, &addressMap{}, nil)
		rs := cfg.Rconn.ReconnectStrategy
		if rs == nil || rs.Type != pkgclient.ReconnectTypeExponentialBackoff || rs.JitterMs != tc.want {
			t.Errorf("%s: rendered %+v, want jitterMs %d", tc.name, rs, tc.want)
		}
	}
}

// A node that leaves the topology loses its series; one that stops answering keeps rconn_node_up
// (0) and loses its stale ping.
func TestRecordHealthDropsDepartedNodes(t *testing.T) {
	ns, name := "metrics-unit", "rc"
	series := func(v *prometheus.GaugeVec) map[string]float64 {
		out := map[string]float64{}
		ch := make(chan prometheus.Metric, 64)
		v.Collect(ch)
		close(ch)
		for m := range ch {
			var d dto.Metric
			if err := m.Write(&d); err != nil {
				t.Fatal(err)
			}
			labels := map[string]string{}
			for _, l := range d.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] == ns && labels["name"] == name {
				out[labels["node"]] = d.GetGauge().GetValue()
			}
		}
		return out
	}
	healthy := func(addr string) cluster.NodeHealth {
		return cluster.NodeHealth{Announced: addr, Reachable: true, Latency: time.Millisecond, Role: "master"}
	}
	recordHealth(ns, name, []cluster.NodeHealth{healthy("a:1"), healthy("b:1"), healthy("c:1")})
	if got := series(nodeUp); len(got) != 3 || got["b:1"] != 1 {
		t.Fatalf("rconn_node_up = %v", got)
	}
	recordHealth(ns, name, []cluster.NodeHealth{healthy("a:1"), {Announced: "c:1"}})
	if got := series(nodeUp); len(got) != 2 || got["a:1"] != 1 || got["c:1"] != 0 {
		t.Errorf("rconn_node_up after b left and c went down = %v", got)
	}
	if got := series(nodePing); len(got) != 1 || got["a:1"] == 0 {
		t.Errorf("rconn_node_ping_seconds = %v, want only a:1", got)
	}
	forgetMetrics(ns, name)
	if got := series(nodeUp); len(got) != 0 {
		t.Errorf("after forget: %v", got)
	}
}
