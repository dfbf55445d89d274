package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// useAllSlotRanges writes and reads a key at the first and last slot of every shard, and does
// an MGET within one slot.
func useAllSlotRanges(t *testing.T, ctx context.Context, c *cluster.Client, topo *cluster.Topology) {
	t.Helper()
	if len(topo.Shards) == 0 {
		t.Fatal("no shards")
	}
	for _, sh := range topo.Shards {
		for _, r := range sh.Slots {
			for _, slot := range []int{r.Start, r.End} {
				key := "{" + cluster.KeyForSlot(slot) + "}k"
				if cluster.Slot(key) != slot {
					t.Fatalf("KeyForSlot(%d) hashes to %d", slot, cluster.Slot(key))
				}
				if err := c.Set(ctx, key, slot, 0).Err(); err != nil {
					t.Fatalf("SET slot %d: %v", slot, err)
				}
				if got, err := c.Get(ctx, key).Int(); err != nil || got != slot {
					t.Fatalf("GET slot %d = %v, %v", slot, got, err)
				}
			}
		}
	}
	if err := c.MSet(ctx, "{user:1}a", "1", "{user:1}b", "2").Err(); err != nil {
		t.Fatalf("MSET one slot: %v", err)
	}
	vals, err := c.MGet(ctx, "{user:1}a", "{user:1}b").Result()
	if err != nil || fmt.Sprint(vals) != "[1 2]" {
		t.Fatalf("MGET one slot = %v, %v", vals, err)
	}
}

func TestUnreachableHostnamesNeedAMap(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	ctx := testCtx(t)
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1, Announce: redistest.AnnounceHostname})
	m := rc.AddressMap()

	t.Run("without a map the client fails with a clear error", func(t *testing.T) {
		rec := newRecorder(nil)
		c, err := cluster.NewClient(cluster.Options{RootNodes: rootURLs(rc, 1, "redis"), Dial: rec.Dial, Defaults: cluster.NodeOptions{ConnectTimeout: time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		_, err = c.Connect(ctx)
		if err == nil {
			t.Fatal("Connect succeeded without a map to unreachable hostnames")
		}
		var de *cluster.DialError
		if !errors.As(err, &de) || !errors.Is(err, cluster.ErrNoNodeAnswered) {
			t.Fatalf("want ErrNoNodeAnswered wrapping a DialError, got %v", err)
		}
		if !strings.Contains(err.Error(), "no nodeAddressMap entry") || !strings.Contains(err.Error(), rc.Nodes[0].Announced) {
			t.Fatalf("error should name the announced address and the missing map entry: %v", err)
		}
	})

	staticMap, err := cluster.StaticMap(m)
	if err != nil {
		t.Fatal(err)
	}
	for name, nm := range map[string]cluster.NodeAddressMap{"static map": staticMap, "function map": funcMap(rc)} {
		t.Run(name, func(t *testing.T) {
			rec := newRecorder(nil)
			c, err := cluster.NewClient(cluster.Options{RootNodes: rootURLs(rc, 3, "redis"), NodeAddressMap: nm, Dial: rec.Dial})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = c.Close() }()
			topo, err := c.Connect(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(topo.Shards) != 3 || len(topo.Nodes) != 6 || !topo.FullCoverage() || topo.Command != "CLUSTER SHARDS" {
				t.Fatalf("topology: %d shards, %d nodes, %d slots via %s", len(topo.Shards), len(topo.Nodes), topo.SlotsCovered, topo.Command)
			}
			for _, n := range topo.Nodes {
				if m[n.Announced] != n.Mapped {
					t.Fatalf("node %s mapped to %s, want %s", n.Announced, n.Mapped, m[n.Announced])
				}
				if n.Role == cluster.RoleReplica && n.MasterID == "" {
					t.Fatalf("replica %s without master id", n.Announced)
				}
			}
			useAllSlotRanges(t, ctx, c, topo)
			rec.AssertOnlyDialed(t, m)
		})
	}
}

func TestMovedAndAskFollowTheMap(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	for _, tc := range []struct {
		name     string
		announce redistest.Announce
		replicas int
	}{
		{"hostnames", redistest.AnnounceHostname, 1},
		{"translated ports", redistest.AnnounceTranslatedPort, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: tc.replicas, Announce: tc.announce})
			m := rc.AddressMap()
			rec := newRecorder(nil)
			c, err := cluster.NewClient(cluster.Options{RootNodes: rootURLs(rc, 1, "redis"), NodeAddressMap: funcMap(rc), Dial: rec.Dial})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = c.Close() }()
			topo, err := c.Connect(ctx)
			if err != nil {
				t.Fatal(err)
			}
			useAllSlotRanges(t, ctx, c, topo)

			masters := rc.Masters()
			slot := topo.Shards[0].Slots[0].Start // served by masters[0]
			k1, k2 := "{"+cluster.KeyForSlot(slot)+"}one", "{"+cluster.KeyForSlot(slot)+"}two"
			for _, k := range []string{k1, k2} {
				if err := c.Set(ctx, k, k, 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			err = rc.MigrateSlot(ctx, masters[0], masters[1], slot, []string{k1, k2}, func(moved string) {
				if moved != k1 {
					return
				}
				// k1 now lives on masters[1] while the slot still belongs to masters[0]: ASK.
				raw := masters[0].Client()
				defer func() { _ = raw.Close() }()
				if err := raw.Get(ctx, k1).Err(); err == nil || !strings.HasPrefix(err.Error(), "ASK") {
					t.Fatalf("source master should answer ASK for a migrated key, got %v", err)
				}
				if got, err := c.Get(ctx, k1).Result(); err != nil || got != k1 {
					t.Fatalf("GET during migration (ASK) = %q, %v", got, err)
				}
				if got, err := c.Get(ctx, k2).Result(); err != nil || got != k2 {
					t.Fatalf("GET of a key not yet migrated = %q, %v", got, err)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			raw := masters[0].Client()
			defer func() { _ = raw.Close() }()
			if err := raw.Get(ctx, k1).Err(); err == nil || !strings.HasPrefix(err.Error(), "MOVED") {
				t.Fatalf("old master should answer MOVED, got %v", err)
			} else if tc.announce == redistest.AnnounceHostname && !strings.Contains(err.Error(), ".invalid:") {
				t.Fatalf("MOVED should name an unreachable hostname: %v", err)
			}
			for _, k := range []string{k1, k2} {
				if got, err := c.Get(ctx, k).Result(); err != nil || got != k {
					t.Fatalf("GET %s after the slot moved = %q, %v", k, got, err)
				}
			}
			// The MOVED replies made the client refresh its slot table in the background.
			var id string
			for i := 0; i < 100 && id != masters[1].ID; i++ {
				dst, err := c.SlotMaster(ctx, slot)
				if err != nil {
					t.Fatal(err)
				}
				if id, err = dst.Do(ctx, "CLUSTER", "MYID").Text(); err != nil {
					t.Fatal(err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if id != masters[1].ID {
				t.Fatalf("SlotMaster(%d) is %s, want %s", slot, id, masters[1].ID)
			}
			rec.AssertOnlyDialed(t, m)
		})
	}
}

func TestMaxCommandRedirectionsHonoured(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	ctx := testCtx(t)
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3})
	masters := rc.Masters()
	slot := 0
	key := "{" + cluster.KeyForSlot(slot) + "}k"
	newClient := func(redirections int) *cluster.Client {
		c, err := cluster.NewClient(cluster.Options{RootNodes: rootURLs(rc, 1, "redis"), MaxCommandRedirections: redirections, Dial: newRecorder(nil).Dial})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if err := c.Set(ctx, key, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	none, def := newClient(-1), newClient(0)
	if err := rc.MigrateSlot(ctx, masters[0], masters[1], slot, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := none.Get(ctx, key).Err(); err == nil || !strings.HasPrefix(err.Error(), "MOVED") {
		t.Fatalf("with redirections disabled the MOVED error must surface, got %v", err)
	}
	if got, err := def.Get(ctx, key).Result(); err != nil || got != "v" {
		t.Fatalf("with the default 16 redirections GET = %q, %v", got, err)
	}
}

func TestTLSCertificatesForNamesWhileNodesAnnounceIPs(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	ctx := testCtx(t)
	certs := redistest.NewTLS(t, redistest.TLSOptions{DNSNames: []string{"*.redis.rconn.test"}})
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1, Server: redistest.ServerOptions{TLS: certs}})
	names := map[string]string{}
	byName := map[string]string{}
	for _, n := range rc.Nodes {
		name := fmt.Sprintf("node-%d.redis.rconn.test", n.Index)
		names[name] = "127.0.0.1"
		byName[n.Announced] = net.JoinHostPort(name, strconv.Itoa(n.Port))
	}
	tlsConfig := certs.ClientConfig("")
	tlsConfig.ServerName = ""

	t.Run("without a map the handshake fails on the IP", func(t *testing.T) {
		c, err := cluster.NewClient(cluster.Options{RootNodes: rootURLs(rc, 1, "rediss"), Dial: newRecorder(names).Dial,
			Defaults: cluster.NodeOptions{TLS: tlsConfig}})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		_, err = c.Connect(ctx)
		// Users of plain go-redis see x509's "doesn't contain any IP SANs"; we explain it.
		if !errors.Is(err, rtls.ErrHostnameMismatch) || !strings.Contains(err.Error(), "certificate has DNS names only") {
			t.Fatalf("want an explained hostname mismatch, got %v", err)
		}
	})
	t.Run("with a map to the certificate's names it works", func(t *testing.T) {
		nm, err := cluster.StaticMap(byName)
		if err != nil {
			t.Fatal(err)
		}
		rec := newRecorder(names)
		c, err := cluster.NewClient(cluster.Options{RootNodes: rootURLs(rc, 1, "rediss"), Dial: rec.Dial, NodeAddressMap: nm,
			Defaults: cluster.NodeOptions{TLS: tlsConfig}})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		topo, err := c.Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		useAllSlotRanges(t, ctx, c, topo)
		rec.AssertOnlyDialed(t, byName)
	})
	t.Run("a server name override works without a map", func(t *testing.T) {
		c, err := cluster.NewClient(cluster.Options{RootNodes: rootURLs(rc, 1, "rediss"), Dial: newRecorder(names).Dial,
			Defaults: cluster.NodeOptions{TLS: tlsConfig, TLSServerName: "any.redis.rconn.test"}})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		if _, err := c.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	})
}

// MinimalACL is the ACL the controller needs for discovery and health checks (documented).
const MinimalACL = "-@all +ping +role +info +cluster|shards +cluster|slots +cluster|info +cluster|myid"

func TestMinimalACLForDiscoveryAndHealth(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	ctx := testCtx(t)
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1, Announce: redistest.AnnounceHostname,
		Server: redistest.ServerOptions{Users: []redistest.User{
			{Name: "rconn", Password: "observer", Rules: MinimalACL},
			{Name: "old", Password: "observer", Rules: "-@all +ping +role +info +cluster|slots +cluster|info"},
		}}})
	for _, user := range []string{"rconn", "old"} {
		t.Run(user, func(t *testing.T) {
			in, err := cluster.NewInspector(cluster.Options{RootNodes: rootURLs(rc, 1, "redis"), NodeAddressMap: funcMap(rc),
				Dial: newRecorder(nil).Dial, Defaults: cluster.NodeOptions{Username: user, Password: "observer"}})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = in.Close() }()
			topo, err := in.Discover(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := "CLUSTER SHARDS"
			if user == "old" {
				want = "CLUSTER SLOTS" // denied CLUSTER SHARDS: the fallback
			}
			if topo.Command != want || len(topo.Shards) != 3 || len(topo.Nodes) != 6 || !topo.FullCoverage() {
				t.Fatalf("via %s: %d shards, %d nodes, %d slots", topo.Command, len(topo.Shards), len(topo.Nodes), topo.SlotsCovered)
			}
			for _, h := range in.CheckHealth(ctx, topo, 2*time.Second) {
				if !h.Healthy() {
					t.Fatalf("%s unhealthy with the minimal ACL: %v", h.Announced, h.Err)
				}
			}
		})
	}
	t.Run("wrong password is an auth error", func(t *testing.T) {
		in, err := cluster.NewInspector(cluster.Options{RootNodes: rootURLs(rc, 1, "redis"), NodeAddressMap: funcMap(rc),
			Dial: newRecorder(nil).Dial, Defaults: cluster.NodeOptions{Username: "rconn", Password: "wrong"}})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = in.Close() }()
		if _, err := in.Discover(ctx); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
			t.Fatalf("want WRONGPASS, got %v", err)
		}
	})
}

func TestDeadNodes(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	ctx := testCtx(t)
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1, Announce: redistest.AnnounceHostname, NodeTimeout: 5 * time.Second})
	dead, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	roots := append([]cluster.RootNode{{Address: cluster.Address{Host: "127.0.0.1", Port: dead}}}, rootURLs(rc, 1, "redis")...)
	in, err := cluster.NewInspector(cluster.Options{RootNodes: roots, NodeAddressMap: funcMap(rc), Dial: newRecorder(nil).Dial})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = in.Close() }()
	topo, err := in.Discover(ctx)
	if err != nil {
		t.Fatalf("one dead root node must not fail discovery: %v", err)
	}
	if topo.Source != rc.Nodes[0].Announced {
		t.Fatalf("answered by %s", topo.Source)
	}

	var master, replica *redistest.Node
	for _, n := range rc.Nodes {
		if n.MasterIndex >= 0 && replica == nil {
			replica = n
		}
	}
	master = rc.Nodes[(replica.MasterIndex+1)%3] // a master of another shard
	replica.Kill()
	master.Kill()
	health := in.CheckHealth(ctx, topo, time.Second)
	down := map[string]bool{}
	for _, h := range health {
		if !h.Reachable {
			down[h.Announced] = true
			if h.Err == nil {
				t.Fatalf("%s unreachable without an error", h.Announced)
			}
		} else if h.Role == "" {
			t.Fatalf("%s reachable without a role", h.Announced)
		}
	}
	if len(down) != 2 || !down[replica.Announced] || !down[master.Announced] {
		t.Fatalf("unreachable: %v; want exactly %s and %s", down, replica.Announced, master.Announced)
	}
	// Discovery still works from the surviving root (node 0, never killed here), and all nodes
	// dead is a clear error.
	if master.Index == 0 || replica.Index == 0 {
		t.Fatalf("test setup: the root node must survive")
	}
	if _, err := in.Discover(ctx); err != nil {
		t.Fatalf("discovery with two nodes down: %v", err)
	}
	for _, n := range rc.Nodes {
		n.Kill()
	}
	if _, err := in.Discover(ctx); !errors.Is(err, cluster.ErrNoNodeAnswered) {
		t.Fatalf("all nodes dead: want ErrNoNodeAnswered, got %v", err)
	}
}

func TestStandaloneDiscovery(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	ctx := testCtx(t)
	s := redistest.StartServer(t, redistest.ServerOptions{})
	in, err := cluster.NewInspector(cluster.Options{Standalone: true, RootNodes: []cluster.RootNode{{URL: "redis://" + s.Addr() + "/2"}}, Dial: newRecorder(nil).Dial})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = in.Close() }()
	topo, err := in.Discover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !topo.Standalone || len(topo.Nodes) != 1 || topo.Nodes[0].Role != cluster.RoleMaster || !topo.FullCoverage() {
		t.Fatalf("standalone topology: %+v", topo)
	}
	h := in.CheckHealth(ctx, topo, time.Second)
	if len(h) != 1 || !h[0].Healthy() || h[0].ClusterState != "" {
		t.Fatalf("health: %+v", h)
	}

	rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3})
	in2, _ := cluster.NewInspector(cluster.Options{Standalone: true, RootNodes: rootURLs(rc, 1, "redis"), Dial: newRecorder(nil).Dial})
	defer func() { _ = in2.Close() }()
	if _, err := in2.Discover(ctx); !errors.Is(err, cluster.ErrClusterModeServer) {
		t.Fatalf("Standalone against a cluster node: want ErrClusterModeServer, got %v", err)
	}
	in3, _ := cluster.NewInspector(cluster.Options{RootNodes: []cluster.RootNode{{URL: "redis://" + s.Addr()}}, Dial: newRecorder(nil).Dial})
	defer func() { _ = in3.Close() }()
	if _, err := in3.Discover(ctx); !errors.Is(err, cluster.ErrNotCluster) {
		t.Fatalf("Cluster against a standalone server: want ErrNotCluster, got %v", err)
	}
}

func TestRoutingOptions(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	ctx := testCtx(t)
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1, Announce: redistest.AnnounceHostname})
	m := rc.AddressMap()
	stat := func(n *redistest.Node, cmd string) int {
		c := n.Client()
		defer func() { _ = c.Close() }()
		info, err := redistest.Info(ctx, c, "commandstats")
		if err != nil {
			t.Fatal(err)
		}
		v := info["cmdstat_"+cmd]
		calls, _ := strconv.Atoi(strings.TrimPrefix(strings.Split(v, ",")[0], "calls="))
		return calls
	}

	t.Run("PUBLISH is spread over nodes", func(t *testing.T) {
		c, _ := cluster.NewClient(cluster.Options{RootNodes: rootURLs(rc, 1, "redis"), NodeAddressMap: funcMap(rc), Dial: newRecorder(nil).Dial})
		defer func() { _ = c.Close() }()
		for i := 0; i < 60; i++ {
			if err := c.Publish(ctx, "events", i).Err(); err != nil {
				t.Fatal(err)
			}
		}
		used := 0
		for _, n := range rc.Masters() {
			if stat(n, "publish") > 0 {
				used++
			}
		}
		if used < 2 {
			t.Fatalf("PUBLISH went to %d masters; node-redis spreads forwarded commands", used)
		}
	})

	t.Run("useReplicas sends reads to replicas", func(t *testing.T) {
		c, _ := cluster.NewClient(cluster.Options{RootNodes: rootURLs(rc, 1, "redis"), NodeAddressMap: funcMap(rc), Dial: newRecorder(nil).Dial, UseReplicas: true})
		defer func() { _ = c.Close() }()
		if _, err := c.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Set(ctx, "r", "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 100; i++ {
			if err := c.Get(ctx, "r").Err(); err != nil && !errors.Is(err, redis.Nil) {
				t.Fatal(err)
			}
		}
		reads := 0
		for _, n := range rc.Nodes {
			if n.MasterIndex >= 0 {
				reads += stat(n, "get")
			}
		}
		if reads == 0 {
			t.Fatal("no GET reached a replica with useReplicas")
		}
	})

	t.Run("minimizeConnections connects to the root only", func(t *testing.T) {
		for _, minimize := range []bool{true, false} {
			rec := newRecorder(nil)
			c, _ := cluster.NewClient(cluster.Options{RootNodes: rootURLs(rc, 1, "redis"), NodeAddressMap: funcMap(rc), Dial: rec.Dial, MinimizeConnections: minimize})
			if _, err := c.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			distinct := map[string]bool{}
			for _, a := range rec.Dialed() {
				distinct[a] = true
			}
			_ = c.Close()
			if minimize && len(distinct) != 1 {
				t.Fatalf("minimizeConnections dialed %v", distinct)
			}
			if !minimize && len(distinct) < 3 {
				t.Fatalf("Connect without minimizeConnections dialed only %v; want every master", distinct)
			}
		}
	})

	t.Run("replacing the map retires connections to moved entries", func(t *testing.T) {
		// Route every node through its own proxy first, then swap the map to direct addresses.
		proxies := map[string]*proxy{}
		viaProxy := map[string]string{}
		for announced, real := range m {
			p := startProxy(t, real)
			proxies[announced] = p
			viaProxy[announced] = p.Addr()
		}
		pm, _ := cluster.StaticMap(viaProxy)
		rec := newRecorder(nil)
		c, _ := cluster.NewClient(cluster.Options{RootNodes: rootURLs(rc, 1, "redis"), NodeAddressMap: pm, Dial: rec.Dial})
		defer func() { _ = c.Close() }()
		topo, err := c.Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		useAllSlotRanges(t, ctx, c, topo)
		rec.AssertOnlyDialed(t, viaProxy)

		direct, _ := cluster.StaticMap(m)
		c.SetNodeAddressMap(direct)
		rec.Reset()
		before := int64(0)
		for _, p := range proxies {
			before += p.Accepted.Load()
		}
		useAllSlotRanges(t, ctx, c, topo)
		after := int64(0)
		for _, p := range proxies {
			after += p.Accepted.Load()
		}
		if after != before {
			t.Fatalf("%d new connections went through the old targets after the map changed", after-before)
		}
		if len(rec.Dialed()) == 0 {
			t.Fatal("no connection was dialed at the new targets: pooled connections to old targets were reused")
		}
		rec.AssertOnlyDialed(t, m)
	})
}

func TestBadInputIsAnErrorNotAPanic(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    cluster.Options
		want string
	}{
		{"no root nodes", cluster.Options{}, "no root nodes"},
		{"unknown scheme", cluster.Options{RootNodes: []cluster.RootNode{{URL: "http://a:1"}}}, `unknown scheme "http"`},
		{"port 0", cluster.Options{RootNodes: []cluster.RootNode{{URL: "redis://a:0"}}}, "port 0 out of range"},
		{"port 70000", cluster.Options{RootNodes: []cluster.RootNode{{URL: "redis://a:70000"}}}, "port 70000 out of range"},
		{"address port 70000", cluster.Options{RootNodes: []cluster.RootNode{{Address: cluster.Address{Host: "a", Port: 70000}}}}, "out of range"},
		{"mixed TLS", cluster.Options{RootNodes: []cluster.RootNode{{URL: "redis://a"}, {URL: "rediss://b"}}}, "mix redis:// and rediss://"},
		{"db in cluster", cluster.Options{RootNodes: []cluster.RootNode{{URL: "redis://a/3"}}}, "only has database 0"},
		{"url and address", cluster.Options{RootNodes: []cluster.RootNode{{URL: "redis://a", Address: cluster.Address{Host: "a"}}}}, "not both"},
		{"standalone with two roots", cluster.Options{Standalone: true, RootNodes: []cluster.RootNode{{URL: "redis://a"}, {URL: "redis://b"}}}, "exactly one root node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cluster.NewInspector(tc.o)
			if err == nil || !errors.Is(err, cluster.ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalidOptions containing %q", err, tc.want)
			}
		})
	}
	for _, bad := range []map[string]string{
		{"10.0.0.1": "a:1"}, {"10.0.0.1:6379": "a"}, {"a:0": "b:1"}, {"a:1": "b:70000"}, {"fd00::1:6379": "a:1"}, {":6379": "a:1"},
	} {
		if _, err := cluster.StaticMap(bad); err == nil || !errors.Is(err, cluster.ErrInvalidAddress) {
			t.Fatalf("StaticMap(%v) = %v, want ErrInvalidAddress", bad, err)
		}
	}
}

// A node that comes back under a new announced address (a pod restart: new pod IP) is followed
// as soon as the new map arrives: SetNodeAddressMap refreshes the slot map instead of leaving
// go-redis on the old, now unmapped, address until its own periodic refresh (10s).
func TestRenamedNodeIsFollowedWhenTheMapChanges(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	ctx := testCtx(t)
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname})
	m := rc.AddressMap()
	sm, err := cluster.StaticMap(m)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(nil)
	c, err := cluster.NewClient(cluster.Options{RootNodes: rootURLs(rc, 1, "redis"), NodeAddressMap: sm, Dial: rec.Dial})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if _, err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	node := rc.Nodes[1]
	key := cluster.KeyForSlot(8000)
	if master, err := c.SlotMaster(ctx, 8000); err != nil || master.Options().Addr != node.Announced {
		t.Fatalf("slot 8000 on %v (%v), want node 1 %s", master.Options().Addr, err, node.Announced)
	}
	if err := c.Set(ctx, key, "before", 0).Err(); err != nil {
		t.Fatal(err)
	}

	// Every node hands out the new name before the map follows (as an EndpointSlice follows a
	// pod that passed its readiness probe).
	before := node.Announced
	host, _, _ := net.SplitHostPort(before)
	renamed, err := rc.Reannounce(ctx, 1, "node-1-restarted."+strings.SplitN(host, ".", 2)[1])
	if err != nil {
		t.Fatal(err)
	}

	next := map[string]string{}
	for k, v := range m {
		if k != before {
			next[k] = v
		}
	}
	next[renamed] = m[before]
	nm, err := cluster.StaticMap(next)
	if err != nil {
		t.Fatal(err)
	}
	c.SetNodeAddressMap(nm)

	// Well inside go-redis's own 10s state refresh: the command reaches the node under its new
	// name. Bounded: 40 tries, 50ms apart.
	var lastErr error
	for try := 0; try < 40; try++ {
		lastErr = c.Set(ctx, key, "after", 0).Err()
		if lastErr == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if lastErr != nil {
		t.Fatalf("SET after the map change: %v", lastErr)
	}
	if master, err := c.SlotMaster(ctx, 8000); err != nil || master.Options().Addr != renamed {
		t.Fatalf("slot 8000 on %v (%v), want %s", master.Options().Addr, err, renamed)
	}
}
