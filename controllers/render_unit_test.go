package controllers

import (
	"maps"
	"strings"
	"testing"
	"time"

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
		cfg := renderConfig(rc, &addressMap{}, nil)
		rs := cfg.Rconn.ReconnectStrategy
		if rs == nil || rs.Type != pkgclient.ReconnectTypeExponentialBackoff || rs.JitterMs != tc.want {
			t.Errorf("%s: rendered %+v, want jitterMs %d", tc.name, rs, tc.want)
		}
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
	cfg := renderConfig(rc, m, topo)
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
	data := renderSecretData(&credentials{}, renderConfig(clusterRC, m, nil))
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
	if got := string(renderSecretData(&credentials{}, renderConfig(clusterRC, m, nil))["cluster.max-redirects"]); got != "3" {
		t.Errorf("cluster.max-redirects = %q with maxCommandRedirections 3", got)
	}

	standalone := &rconnv1.RedisConnection{Spec: rconnv1.RedisConnectionSpec{
		Mode:      rconnv1.ModeStandalone,
		RootNodes: []rconnv1.RootNode{{URL: "redis://127.0.0.1:6379"}},
		Defaults:  &rconnv1.NodeDefaults{Database: &db},
	}}
	data = renderSecretData(&credentials{}, renderConfig(standalone, &addressMap{}, nil))
	if string(data["database"]) != "2" || string(data["host"]) != "127.0.0.1" || string(data["port"]) != "6379" {
		t.Errorf("standalone: database %q host %q port %q", data["database"], data["host"], data["port"])
	}
	for _, k := range []string{"cluster.nodes", "cluster.max-redirects", "ssl", "client-name"} {
		if v, ok := data[k]; ok {
			t.Errorf("standalone: %s = %q, want absent", k, v)
		}
	}
}
