package main

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// A Sentinel-mode RedisConnection whose outputs (config.json and its Secret, bound with
// client.BindSecret as the controller renders them) describe a real Sentinel group announcing
// names nobody outside it resolves: check discovers through the sentinels and dials every data
// node and sentinel through the map only; status shows the Sentinel section of config.json;
// config --for prints Sentinel snippets (createSentinel, ioredis sentinels+natMap, the proxy's
// sentinel listener for redis-py, Jedis and Lettuce).
func TestSentinelStatusConfigCheck(t *testing.T) {
	t.Parallel() // its own namespace and servers (the control plane is shared, started once): overlaps the other tests' waits
	controlPlane(t)
	const password, sentPassword = "data-s3cret", "sentinel-s3cret"
	g := redistest.StartSentinelGroup(t, redistest.SentinelGroupOptions{Data: redistest.ServerOptions{Password: password}, Sentinel: redistest.ServerOptions{Password: sentPassword}})
	ns := namespace(t)
	ctx := context.Background()

	m := g.AddressMap()
	cfg := &client.Config{Name: g.MasterName(), NodeAddressMap: map[string]client.MappedAddress{}, Rconn: client.RconnConfig{Mode: client.ModeSentinel}}
	for announced, addr := range m {
		cfg.NodeAddressMap[announced] = addrOf(t, addr)
	}
	for _, s := range g.Sentinels {
		cfg.SentinelRootNodes = append(cfg.SentinelRootNodes, addrOf(t, s.Addr()))
		cfg.Rconn.Sentinels = append(cfg.Rconn.Sentinels, s.Announced)
	}
	cfg.URL = "redis://" + g.Data[0].Addr()
	secret := map[string][]byte{client.SecretKeyPassword: []byte(password), "sentinel-password": []byte(sentPassword)}
	raw, err := client.BindSecret(cfg, secret, "t1")
	if err != nil {
		t.Fatal(err)
	}
	rc := &rconnv1.RedisConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sent"},
		Spec: rconnv1.RedisConnectionSpec{
			Mode:     rconnv1.ModeSentinel,
			Sentinel: &rconnv1.SentinelSpec{MasterName: g.MasterName(), RootNodes: []rconnv1.SentinelNode{{Host: "127.0.0.1", Port: int32(g.Sentinels[0].Port)}}},
			Output:   &rconnv1.Output{ConfigMapName: "sent-out", SecretName: "sent-out"},
		},
	}
	for _, o := range []ctrlclient.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sent-out"}, Data: secret},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sent-out"}, Data: map[string]string{client.ConfigFileName: string(raw)}},
		rc,
	} {
		if err := cp.k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("check", func(t *testing.T) {
		dial := nettest.NewRecorder(nil)
		r := kubectlRconn(t, "", dial.Dial, "check", "-n", ns, "sent", "--timeout", "2s")
		if r.code != 0 || !strings.Contains(r.out, "MasterConfirmed; 3 of 3 sentinels that answered agree") || !strings.Contains(r.out, "all 6 nodes OK") ||
			strings.Count(r.out, "\nOK ") != 6 || !strings.Contains(r.out, g.Data[0].Announced) {
			t.Fatalf("check of a healthy sentinel group: exit %d, want 0, the confirmed master and 6 OK lines", r.code)
		}
		var allowed []string
		for _, a := range m {
			allowed = append(allowed, a)
		}
		dial.AssertOnly(t, allowed...)
		if strings.Contains(r.out, password) || strings.Contains(r.out, sentPassword) {
			t.Fatal("check printed a password")
		}
	})

	t.Run("status", func(t *testing.T) {
		r := kubectlRconn(t, "", nil, "status", "-n", ns, "sent")
		for _, want := range []string{"Topology: sentinel, master name \"mymaster\"", "Sentinel (from config.json): master name \"mymaster\"",
			"current master (url): redis://" + g.Data[0].Addr(), g.Sentinels[1].Addr(), g.Sentinels[1].Announced} {
			if !strings.Contains(r.out, want) {
				t.Errorf("status output lacks %q", want)
			}
		}
	})

	t.Run("config", func(t *testing.T) {
		for client, want := range map[string][]string{
			"node-redis": {"createSentinel({", "'sentinel-password'", `name "mymaster"`},
			"ioredis":    {"sentinels: cfg.sentinelRootNodes", "natMap: cfg.nodeAddressMap"},
			"redis-py":   {"rconn-proxy --seed-port 26379 --master-port 6379 --kube " + ns + "/sent", `sentinel.master_for(`, `"mymaster"`, `password=secret("password")`},
			"jedis":      {"new JedisSentinelPool(\"mymaster\"", "rconn-proxy --seed-port 26379"},
			"lettuce":    {"RedisURI.Builder.sentinel(\"127.0.0.1\", 26379, \"mymaster\")"},
			"go":         {"kubesource.Open"},
		} {
			r := kubectlRconn(t, "", nil, "config", "-n", ns, "sent", "--for", client)
			if r.code != 0 {
				t.Errorf("--for %s: exit %d", client, r.code)
			}
			for _, w := range want {
				if !strings.Contains(r.out, w) {
					t.Errorf("--for %s lacks %q", client, w)
				}
			}
			if strings.Contains(r.out, "createCluster") || strings.Contains(r.out, "RedisCluster(") || strings.Contains(r.out, password) {
				t.Errorf("--for %s prints a Cluster snippet or a password", client)
			}
		}
	})
}
