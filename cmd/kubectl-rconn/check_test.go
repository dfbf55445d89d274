package main

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/testing/hostile"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// Someone who may edit the ConfigMap (not the Secret) points its config.json at their listener,
// token unchanged: check refuses it against the Secret's config.sha256 and dials nothing. The
// outputs here are written by hand with client.BindSecret under names the RedisConnection's
// spec.output names, so the controller (which does not take over objects it does not control)
// leaves the edit in place, as a frozen controller would (issue 23, items 2 and 3).
func TestCheckRefusesASteeredConfig(t *testing.T) {
	t.Parallel() // its own namespace and servers (the control plane is shared, started once): overlaps the other tests' waits
	controlPlane(t)
	const password = "check-s3cret"
	srv := redistest.StartServer(t, redistest.ServerOptions{Password: password})
	sink := hostile.StartSink(t)
	ns := namespace(t)
	ctx := context.Background()

	announced := "redis.check-test.invalid:6379"
	cfg := &client.Config{
		RootNodes:      []client.RootNodeConfig{{URL: "redis://" + announced}},
		NodeAddressMap: map[string]client.MappedAddress{announced: addrOf(t, srv.Addr())},
		Rconn:          client.RconnConfig{Mode: client.ModeStandalone},
	}
	secret := map[string][]byte{client.SecretKeyPassword: []byte(password)}
	if _, err := client.BindSecret(cfg, secret, "t1"); err != nil {
		t.Fatal(err)
	}
	cfg.NodeAddressMap[announced] = addrOf(t, sink.Addr()) // the edit: same token, other map
	steered, err := client.Render(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []ctrlclient.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "steer-out"}, Data: secret},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "steer-out"}, Data: map[string]string{client.ConfigFileName: string(steered)}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "steer-acl"}, StringData: map[string]string{"password": password}},
	} {
		if err := cp.k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	root := netip.MustParseAddrPort(srv.Addr())
	rc := &rconnv1.RedisConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "steer"},
		Spec: rconnv1.RedisConnectionSpec{
			Mode:      rconnv1.ModeStandalone,
			RootNodes: []rconnv1.RootNode{{Host: root.Addr().String(), Port: int32(root.Port())}},
			Defaults:  &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "steer-acl"}}},
			Output:    &rconnv1.Output{ConfigMapName: "steer-out", SecretName: "steer-out"},
		},
	}
	if err := cp.k8s.Create(ctx, rc); err != nil {
		t.Fatal(err)
	}
	dial := nettest.NewRecorder(nil)
	r := kubectlRconn(t, "", dial.Dial, "check", "-n", ns, "steer", "--timeout", "2s")
	if r.code == 0 || !strings.Contains(r.err, "refusing to check") || !strings.Contains(r.err, "config.sha256") {
		t.Errorf("exit %d, want an error refusing config.json against the Secret's config.sha256", r.code)
	}
	time.Sleep(100 * time.Millisecond)
	if len(dial.Dialed()) > 0 || sink.Accepted() > 0 || sink.Saw(password) {
		t.Fatalf("check dialed %v; the listener accepted %d connections (password seen: %v)", dial.Dialed(), sink.Accepted(), sink.Saw(password))
	}
}

// Status is not bound to the Secret: its nodes are checked only where config.json maps them.
func TestStatusNodesOnlyWhereConfigMapsThem(t *testing.T) {
	cfg := &client.Config{
		RootNodes:      []client.RootNodeConfig{{URL: "redis://root.example.invalid:6379"}},
		NodeAddressMap: map[string]client.MappedAddress{"a.example.invalid:6379": {Host: "127.0.0.1", Port: 7000}},
		Rconn:          client.RconnConfig{NodeIDs: map[string]client.MappedAddress{"id-c": {Host: "127.0.0.1", Port: 7002}}},
	}
	rc := &rconnv1.RedisConnection{Status: rconnv1.RedisConnectionStatus{Nodes: []rconnv1.NodeStatus{
		{ID: "id-a", Announced: "a.example.invalid:6379"},
		{ID: "id-root", Announced: "root.example.invalid:6379"},
		{ID: "id-b", Announced: "127.0.0.1:6666"},         // status alone names it
		{ID: "id-c", Announced: "c.example.invalid:6379"}, // an ID is not an address config.json maps
	}}}
	topo, skipped := statusNodes(rc, cfg)
	var checked []string
	for _, n := range topo.Nodes {
		checked = append(checked, n.Announced)
	}
	if !slices.Equal(checked, []string{"a.example.invalid:6379", "root.example.invalid:6379"}) || !slices.Equal(skipped, []string{"127.0.0.1:6666", "c.example.invalid:6379"}) {
		t.Fatalf("checked %v, skipped %v", checked, skipped)
	}
}

func addrOf(t *testing.T, addr string) client.MappedAddress {
	t.Helper()
	ap := netip.MustParseAddrPort(addr)
	return client.MappedAddress{Host: ap.Addr().String(), Port: int(ap.Port())}
}
