package client_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// A node that comes back under an announced address the mounted map does not have yet is
// reached through rconn.nodeIds; an update that adds nodeIds applies live.
func TestOpenNodeIDsFollowARenamedNode(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	ctx := testCtx(t)
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname})
	cfg, _ := mappedConfig(rc)
	m := newMount(t, map[string][]byte{client.ConfigFileName: render(t, cfg)})
	rec := &recorder{}
	var rl reloads
	c, err := client.OpenOptions{ReloadInterval: 50 * time.Millisecond, Dial: rec.Dial, OnReload: rl.handle}.Open(ctx, m.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	host, _, _ := net.SplitHostPort(rc.Nodes[1].Announced)
	renamed, err := rc.Reannounce(ctx, 1, "node-1-restarted."+strings.SplitN(host, ".", 2)[1])
	if err != nil {
		t.Fatal(err)
	}
	key := cluster.KeyForSlot(8000)
	// No nodeIds: the renamed node is unreachable once go-redis follows the new name.
	c.Cluster().ReloadState(ctx)
	waitFor(t, "a failure on the renamed node without nodeIds", func() error {
		if err := c.Cluster().Set(ctx, key, "v", 0).Err(); err == nil || !strings.Contains(err.Error(), renamed) {
			return errNotYet
		}
		return nil
	})

	cfg.Rconn.NodeIDs = map[string]client.MappedAddress{}
	for _, n := range rc.Nodes {
		cfg.Rconn.NodeIDs[n.ID] = mapped(n.Addr())
	}
	m.update(t, map[string][]byte{client.ConfigFileName: render(t, cfg)})
	waitFor(t, "the nodeIds update", func() error {
		if rl.ok.Load() == 0 {
			return errNotYet
		}
		return nil
	})
	waitFor(t, "SET on the renamed node through its node ID", func() error {
		return c.Cluster().Set(ctx, key, "v", 0).Err()
	})
	if err := setGetAcrossSlots(t, c, "ids"); err != nil {
		t.Fatal(err)
	}
	if got := c.Config().Rconn.NodeIDs[rc.Nodes[1].ID]; got != mapped(rc.Nodes[1].Addr()) {
		t.Fatalf("Config().Rconn.NodeIDs = %v", c.Config().Rconn.NodeIDs)
	}
}

// nodeIds are validated like the rest of config.json.
func TestConfigNodeIDsValidated(t *testing.T) {
	for name, ids := range map[string]map[string]client.MappedAddress{
		"not hex":    {"node-1": {Host: "127.0.0.1", Port: 1}},
		"no host":    {strings.Repeat("a", 40): {Port: 1}},
		"port range": {strings.Repeat("a", 40): {Host: "h", Port: 70000}},
	} {
		cfg := &client.Config{RootNodes: []client.RootNodeConfig{{URL: "redis://127.0.0.1:6379"}}, Rconn: client.RconnConfig{NodeIDs: ids}}
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	standalone := &client.Config{RootNodes: []client.RootNodeConfig{{URL: "redis://127.0.0.1:6379"}},
		Rconn: client.RconnConfig{Mode: client.ModeStandalone, NodeIDs: map[string]client.MappedAddress{strings.Repeat("a", 40): {Host: "h", Port: 1}}}}
	if err := standalone.Validate(); err == nil {
		t.Error("nodeIds in standalone mode: accepted")
	}
}

// A map update that drops an announced address (a restarted pod's old IP) keeps its old entry
// as a fallback: go-redis may still route to the old address until its slot map catches up,
// and the old entry's reachable address (per pod) reaches the same node. An entry of the new
// map for that address wins.
func TestOpenDroppedMapEntryStaysAFallback(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	ctx := testCtx(t)
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname})
	cfg, _ := mappedConfig(rc)
	m := newMount(t, map[string][]byte{client.ConfigFileName: render(t, cfg)})
	var rl reloads
	c, err := client.OpenOptions{ReloadInterval: 50 * time.Millisecond, Dial: (&recorder{}).Dial, OnReload: rl.handle}.Open(ctx, m.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	old := rc.Nodes[1].Announced
	want := rc.Nodes[1].Addr()
	delete(cfg.NodeAddressMap, old)
	cfg.NodeAddressMap["node-1-new.rconn-test.invalid:1"] = mapped(want)
	m.update(t, map[string][]byte{client.ConfigFileName: render(t, cfg)})
	waitFor(t, "the update", func() error {
		if rl.ok.Load() == 0 {
			return errNotYet
		}
		return nil
	})
	if got, ok := c.Cluster().Dialer().Resolve(old); !ok || got != want {
		t.Fatalf("dropped %s resolves to %s (%t), want its old entry %s", old, got, ok, want)
	}
	other := rc.Nodes[2].Addr()
	cfg.NodeAddressMap[old] = mapped(other)
	m.update(t, map[string][]byte{client.ConfigFileName: render(t, cfg)})
	waitFor(t, "the second update", func() error {
		if got, _ := c.Cluster().Dialer().Resolve(old); got != other {
			return errNotYet
		}
		return nil
	})
}
