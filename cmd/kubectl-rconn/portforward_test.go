package main

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
	"github.com/rconn-dev/redis-connection-operator/pkg/proxy"
)

// TestProxyOverForwards is port-forward without the API server: the proxy of port-forward
// over local listeners that stand in for client-go's forwards (one per node, keyed by the
// announced address as podTargets keys them), a cluster whose nodes announce names nobody
// resolves, and a config.json whose root node is an unreachable Service name. Every shard
// must answer SET/GET through the seed, and every node only through its forward.
func TestProxyOverForwards(t *testing.T) {
	c := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname})
	secret := map[string][]byte{}
	raw, err := client.BindSecret(&client.Config{RootNodes: []client.RootNodeConfig{{URL: "redis://redis.shop.svc.cluster.invalid:6379"}}}, secret, "t1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := resolve(ctx, raw, secret)
	if err != nil {
		t.Fatal(err)
	}
	fw := &forwards{byAddr: map[string]*forward{}}
	var targets []podTarget
	tunnels := map[string]*nettest.Proxy{}
	for _, n := range c.Nodes {
		tunnels[n.Announced] = nettest.StartProxy(t, n.Addr())
		f := &forward{pod: n.Announced}
		l := tunnels[n.Announced].Addr()
		f.addr.Store(&l)
		fw.byAddr[n.Announced] = f
		targets = append(targets, podTarget{announced: n.Announced})
	}
	p, err := proxy.Start(ctx, throughForwards(r, rootsThrough(targets)), proxy.Options{Dial: fw.dial})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	rc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{p.SeedAddr()}, Dialer: nettest.NewRecorder(nil).Dial,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
	defer func() { _ = rc.Close() }()
	for _, slot := range []int{0, 8000, 16383} {
		key := cluster.KeyForSlot(slot)
		if err := rc.Set(ctx, key, key, 0).Err(); err != nil {
			t.Fatalf("SET %s (slot %d) through the seed: %v", key, slot, err)
		}
		if v, err := rc.Get(ctx, key).Result(); err != nil || v != key {
			t.Fatalf("GET %s = %q, %v", key, v, err)
		}
	}
	for _, n := range c.Nodes {
		if tunnels[n.Announced].Accepted.Load() == 0 {
			t.Errorf("no connection went through the forward of %s", n.Announced)
		}
	}
	if _, err := fw.dial(ctx, "tcp", "10.0.0.1:6379"); err == nil {
		t.Errorf("the forward table dialed an address it has no forward for")
	}
}
