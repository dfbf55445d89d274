package controllers

import (
	"maps"
	"strings"
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

// A node still in the topology whose announced address lost its map entry (a restarting pod,
// gossiped under its old IP while its endpoint is gone) keeps its last rendered ID entry;
// nodes that left the topology drop out.
func TestStickyNodeIDs(t *testing.T) {
	a, b, c := strings.Repeat("a", 40), strings.Repeat("b", 40), strings.Repeat("c", 40)
	addr := func(h string) pkgclient.MappedAddress { return pkgclient.MappedAddress{Host: h, Port: 6379} }
	prev := map[string]pkgclient.MappedAddress{a: addr("redis-0"), b: addr("redis-1"), c: addr("redis-2")}
	topo := &cluster.Topology{Nodes: []*cluster.Node{{ID: a}, {ID: b}}}
	now := map[string]pkgclient.MappedAddress{a: addr("redis-0-new")}
	got := stickyNodeIDs(prev, now, topo)
	want := map[string]pkgclient.MappedAddress{a: addr("redis-0-new"), b: addr("redis-1")}
	if !maps.Equal(got, want) {
		t.Fatalf("stickyNodeIDs = %v, want %v", got, want)
	}
	if got := stickyNodeIDs(nil, nil, topo); got != nil {
		t.Fatalf("no previous render: %v", got)
	}
}

// rconn.nodeIds come from the topology's IDs and the rendered map; a node whose ID pkg/client
// would refuse (a hostile server) or whose address is unmapped is left out.
func TestRenderNodeIDs(t *testing.T) {
	a, b := strings.Repeat("a", 40), strings.Repeat("b", 40)
	rc := &rconnv1.RedisConnection{Spec: rconnv1.RedisConnectionSpec{RootNodes: []rconnv1.RootNode{{Host: "h", Port: 6379}}}}
	m := &addressMap{entries: map[string]rconnv1.AppliedAddressMapping{"10.0.0.1:6379": {Reachable: "redis-0:6379"}, "10.0.0.2:6379": {Reachable: "redis-1:6379"}, "10.0.0.9:6379": {Reachable: "x:6379"}}}
	topo := &cluster.Topology{Nodes: []*cluster.Node{
		{ID: a, Announced: "10.0.0.1:6379"},
		{ID: "not-an-id\r\n", Announced: "10.0.0.9:6379"},
		{ID: b, Announced: "10.0.0.3:6379"},
	}}
	cfg := renderConfig(rc, &credentials{}, m, topo)
	want := map[string]pkgclient.MappedAddress{a: {Host: "redis-0", Port: 6379}}
	if !maps.Equal(cfg.Rconn.NodeIDs, want) {
		t.Fatalf("nodeIds = %v, want %v", cfg.Rconn.NodeIDs, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

// The binding Secret carries Spring Cloud Bindings' redis keys: cluster.nodes lists reachable
// seeds only (root nodes, then mapped targets, each once), cluster.max-redirects the effective
// value; standalone mode has neither; ssl, client-name and database follow the spec.
func TestRenderSpringBindingKeys(t *testing.T) {
	three := int32(3)
	db := int32(2)
	clusterRC := &rconnv1.RedisConnection{Spec: rconnv1.RedisConnectionSpec{
		RootNodes: []rconnv1.RootNode{{URL: "rediss://redis.example.test:6380"}, {Host: "127.0.0.1", Port: 7001}},
		Defaults:  &rconnv1.NodeDefaults{ClientName: "orders", TLS: &rconnv1.TLSConfig{Enabled: true}},
	}}
	m := &addressMap{entries: map[string]rconnv1.AppliedAddressMapping{
		"node-0.invalid:7000": {Reachable: "127.0.0.1:7001"}, // a root node already
		"node-1.invalid:7000": {Reachable: "127.0.0.1:7003"},
		"node-2.invalid:7000": {Reachable: "127.0.0.1:7002"},
	}}
	data := renderSecretData(clusterRC, &credentials{}, renderConfig(clusterRC, &credentials{}, m, nil))
	for k, want := range map[string]string{
		"type": "redis", "host": "redis.example.test", "port": "6380", "ssl": "true", "client-name": "orders",
		"cluster.nodes":         "redis.example.test:6380,127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003",
		"cluster.max-redirects": "16",
	} {
		if got := string(data[k]); got != want {
			t.Errorf("cluster: %s = %q, want %q", k, got, want)
		}
	}
	if _, ok := data["database"]; ok {
		t.Errorf("cluster: database %q rendered for database 0", data["database"])
	}

	clusterRC.Spec.MaxCommandRedirections = &three
	if got := string(renderSecretData(clusterRC, &credentials{}, renderConfig(clusterRC, &credentials{}, m, nil))["cluster.max-redirects"]); got != "3" {
		t.Errorf("cluster.max-redirects = %q with maxCommandRedirections 3", got)
	}

	standalone := &rconnv1.RedisConnection{Spec: rconnv1.RedisConnectionSpec{
		Mode:      rconnv1.ModeStandalone,
		RootNodes: []rconnv1.RootNode{{URL: "redis://127.0.0.1:6379"}},
		Defaults:  &rconnv1.NodeDefaults{Database: &db},
	}}
	data = renderSecretData(standalone, &credentials{}, renderConfig(standalone, &credentials{}, &addressMap{}, nil))
	if string(data["database"]) != "2" || string(data["host"]) != "127.0.0.1" || string(data["port"]) != "6379" {
		t.Errorf("standalone: database %q host %q port %q", data["database"], data["host"], data["port"])
	}
	for _, k := range []string{"cluster.nodes", "cluster.max-redirects", "ssl", "client-name"} {
		if v, ok := data[k]; ok {
			t.Errorf("standalone: %s = %q, want absent", k, v)
		}
	}
}

// rconn_ready_reason holds exactly one series per RedisConnection, the current reason;
// rconn_topology_changes_total exists at 0 from the first reconcile; the certificate gauge
// follows the credentials; forgetMetrics removes all of them.
func TestRecordReadyReasonAndCertificateExpiry(t *testing.T) {
	ns, name := "metrics-unit", "reason"
	collect := func(c prometheus.Collector) []*dto.Metric {
		ch := make(chan prometheus.Metric, 64)
		c.Collect(ch)
		close(ch)
		var out []*dto.Metric
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
				out = append(out, &d)
			}
		}
		return out
	}
	reasons := func() []string {
		var out []string
		for _, m := range collect(readyReason) {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					out = append(out, l.GetValue())
				}
			}
		}
		return out
	}
	recordReady(ns, name, false, rconnv1.ReasonSecretNotFound)
	if got := reasons(); len(got) != 1 || got[0] != rconnv1.ReasonSecretNotFound {
		t.Fatalf("rconn_ready_reason = %v", got)
	}
	if got := collect(topologyChanges); len(got) != 1 || got[0].GetCounter().GetValue() != 0 {
		t.Errorf("rconn_topology_changes_total after the first reconcile = %v, want one series at 0", got)
	}
	recordReady(ns, name, true, rconnv1.ReasonReady)
	if got := reasons(); len(got) != 1 || got[0] != rconnv1.ReasonReady {
		t.Errorf("rconn_ready_reason after becoming Ready = %v", got)
	}
	if got := readyReasonOf(nil); got != rconnv1.ReasonReconciling {
		t.Errorf("reason without a Ready condition = %q", got)
	}

	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	recordCertificateExpiry(ns, name, at)
	if got := collect(certExpiry); len(got) != 1 || got[0].GetGauge().GetValue() != float64(at.Unix()) {
		t.Errorf("rconn_certificate_expiry_timestamp_seconds = %v, want %d", got, at.Unix())
	}
	recordCertificateExpiry(ns, name, time.Time{})
	if got := collect(certExpiry); len(got) != 0 {
		t.Errorf("after TLS was removed: %v", got)
	}
	recordCertificateExpiry(ns, name, at)
	forgetMetrics(ns, name)
	for what, c := range map[string]prometheus.Collector{"reason": readyReason, "expiry": certExpiry, "topology": topologyChanges} {
		if got := collect(c); len(got) != 0 {
			t.Errorf("%s after forget: %v", what, got)
		}
	}
}
