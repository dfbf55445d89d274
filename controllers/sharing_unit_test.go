package controllers

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// sharingMutations change one thing the controller's connections are made of: each makes a
// RedisConnection that must never share the base one's inspector.
var sharingMutations = map[string]func(rc *rconnv1.RedisConnection, c *credentials, m *addressMap){
	"rootNodes url": func(rc *rconnv1.RedisConnection, _ *credentials, _ *addressMap) {
		rc.Spec.RootNodes[0] = rconnv1.RootNode{URL: "redis://127.0.0.1:7001"}
	},
	"rootNodes host": func(rc *rconnv1.RedisConnection, _ *credentials, _ *addressMap) {
		rc.Spec.RootNodes[0] = rconnv1.RootNode{Host: "127.0.0.2", Port: 7000}
	},
	"second root node": func(rc *rconnv1.RedisConnection, _ *credentials, _ *addressMap) {
		rc.Spec.RootNodes = append(rc.Spec.RootNodes, rconnv1.RootNode{Host: "127.0.0.1", Port: 7002})
	},
	"mode": func(rc *rconnv1.RedisConnection, _ *credentials, _ *addressMap) {
		rc.Spec.Mode = rconnv1.ModeStandalone
	},
	"useReplicas":         func(rc *rconnv1.RedisConnection, _ *credentials, _ *addressMap) { rc.Spec.UseReplicas = true },
	"minimizeConnections": func(rc *rconnv1.RedisConnection, _ *credentials, _ *addressMap) { rc.Spec.MinimizeConnections = true },
	"maxCommandRedirections": func(rc *rconnv1.RedisConnection, _ *credentials, _ *addressMap) {
		rc.Spec.MaxCommandRedirections = ptr(int32(3))
	},
	"connectTimeout": func(rc *rconnv1.RedisConnection, _ *credentials, _ *addressMap) {
		rc.Spec.Defaults = &rconnv1.NodeDefaults{ConnectTimeout: &metav1.Duration{Duration: 3 * time.Second}}
	},
	"database": func(rc *rconnv1.RedisConnection, _ *credentials, _ *addressMap) {
		rc.Spec.Mode = rconnv1.ModeStandalone
		rc.Spec.Defaults = &rconnv1.NodeDefaults{Database: ptr(int32(2))}
	},
	"clientName": func(rc *rconnv1.RedisConnection, _ *credentials, _ *addressMap) {
		rc.Spec.Defaults = &rconnv1.NodeDefaults{ClientName: "other"}
	},
	"tls": func(rc *rconnv1.RedisConnection, _ *credentials, _ *addressMap) {
		rc.Spec.Defaults = &rconnv1.NodeDefaults{TLS: &rconnv1.TLSConfig{Enabled: true}}
	},
	"tls serverName": func(rc *rconnv1.RedisConnection, _ *credentials, _ *addressMap) {
		rc.Spec.Defaults = &rconnv1.NodeDefaults{TLS: &rconnv1.TLSConfig{Enabled: true, ServerName: "redis.example"}}
	},
	"tls insecureSkipVerify": func(rc *rconnv1.RedisConnection, _ *credentials, _ *addressMap) {
		rc.Spec.Defaults = &rconnv1.NodeDefaults{TLS: &rconnv1.TLSConfig{Enabled: true, InsecureSkipVerify: true}}
	},
	"nodeAddressMap": func(_ *rconnv1.RedisConnection, _ *credentials, m *addressMap) {
		m.entries = map[string]rconnv1.AppliedAddressMapping{"redis-0.redis.ns.svc:6379": {Announced: "redis-0.redis.ns.svc:6379", Reachable: "127.0.0.1:7000"}}
	},
	"controller username": func(_ *rconnv1.RedisConnection, c *credentials, _ *addressMap) { c.ctrlUsername = "other" },
	"controller password": func(_ *rconnv1.RedisConnection, c *credentials, _ *addressMap) { c.ctrlPassword = "other" },
	"tls material": func(rc *rconnv1.RedisConnection, c *credentials, _ *addressMap) {
		rc.Spec.Defaults = &rconnv1.NodeDefaults{TLS: &rconnv1.TLSConfig{Enabled: true}}
		c.tls = &rtls.Material{}
	},
}

func sharingBase() (*rconnv1.RedisConnection, *credentials, *addressMap) {
	rc := &rconnv1.RedisConnection{Spec: rconnv1.RedisConnectionSpec{RootNodes: []rconnv1.RootNode{{Host: "127.0.0.1", Port: 7000}}}}
	return rc, &credentials{ctrlUsername: "u", ctrlPassword: "p"}, &addressMap{}
}

// inspectorKey is the inspector a RedisConnection in ns gets: what reconcileTopology passes to
// inspectors.acquire.
func inspectorKey(t *testing.T, r *RedisConnectionReconciler, ns string, rc *rconnv1.RedisConnection, c *credentials, m *addressMap) string {
	t.Helper()
	_, fp, err := r.clusterOptions(rc, c, m)
	if err != nil {
		t.Fatalf("clusterOptions: %v", err)
	}
	_, timeout := healthSettings(rc)
	return r.sharedKey(types.NamespacedName{Namespace: ns, Name: "rc"}, fp, m, timeout)
}

// Two RedisConnections that differ in anything their connections are made of never share an
// inspector; equal ones in different namespaces do.
func TestInspectorSharingKey(t *testing.T) {
	r := &RedisConnectionReconciler{}
	rc0, c0, m0 := sharingBase()
	k0 := inspectorKey(t, r, "a", rc0, c0, m0)
	if rc, c, m := sharingBase(); inspectorKey(t, r, "b", rc, c, m) != k0 {
		t.Fatal("equal RedisConnections in two namespaces do not share")
	}
	for name, mutate := range sharingMutations {
		rc, c, m := sharingBase()
		mutate(rc, c, m)
		if inspectorKey(t, r, "b", rc, c, m) == k0 {
			t.Errorf("%s differs, yet the RedisConnections share an inspector", name)
		}
	}
}

// sharingMutations reach every key field of pkgclient.ConnectionKey that a spec renders: a key
// field added there without a mutation here fails.
func TestSharingMutationsCoverConnectionKey(t *testing.T) {
	rendered := func(rc *rconnv1.RedisConnection, m *addressMap) map[string]any {
		b, err := json.Marshal(renderConfig(rc, m, nil))
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	at := func(m map[string]any, path string) string {
		var v any = m
		for _, p := range strings.Split(path, ".") {
			mm, _ := v.(map[string]any)
			v = mm[p]
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	rc0, _, m0 := sharingBase()
	base := rendered(rc0, m0)
	covered := map[string]bool{}
	for _, mutate := range sharingMutations {
		rc, c, m := sharingBase()
		mutate(rc, c, m)
		got := rendered(rc, m)
		for _, path := range pkgclient.ConnectionKeyFields() {
			if at(got, path) != at(base, path) {
				covered[path] = true
			}
		}
	}
	// Sentinel-mode fields: a Cluster/Standalone spec never renders them; the controller's
	// Sentinel key is sentinelOptions' (topology_sentinel.go, sentinel sharing specs).
	sentinelOnly := map[string]bool{"name": true, "sentinelRootNodes": true, "nodeClientOptions": true,
		"sentinelClientOptions": true, "replicaPoolSize": true, "rconn.sentinelTlsInsecureSkipVerify": true, "rconn.sentinels": true}
	for _, path := range pkgclient.ConnectionKeyFields() {
		if !covered[path] && !sentinelOnly[path] {
			t.Errorf("no sharing mutation changes key field %q", path)
		}
	}
}
