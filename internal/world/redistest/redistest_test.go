package redistest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStandaloneWithACLUserAndPassword(t *testing.T) {
	t.Parallel() // its own servers: overlaps the other tests' waits
	ctx := ctxT(t)
	s := StartServer(t, ServerOptions{
		Password: "admin-pw",
		Users:    []User{{Name: "app", Password: "app-pw", Rules: "~app:* +get +set +ping +client"}},
	})
	admin := s.Client()
	defer func() { _ = admin.Close() }()
	if err := admin.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("admin SET: %v", err)
	}

	app := redis.NewClient(&redis.Options{Addr: s.Addr(), Username: "app", Password: "app-pw", DisableIdentity: true, MaxRetries: -1})
	defer func() { _ = app.Close() }()
	if err := app.Set(ctx, "app:k", "v", 0).Err(); err != nil {
		t.Fatalf("app SET on its own keys: %v", err)
	}
	if err := app.Set(ctx, "other", "v", 0).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("app SET outside its key pattern: got %v, want NOPERM", err)
	}
	who, err := app.Do(ctx, "ACL", "WHOAMI").Result()
	if err == nil {
		t.Fatalf("ACL WHOAMI should be denied to app, got %v", who)
	}

	anon := redis.NewClient(&redis.Options{Addr: s.Addr(), DisableIdentity: true, MaxRetries: -1})
	defer func() { _ = anon.Close() }()
	if err := anon.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("PING without password: got %v, want NOAUTH", err)
	}
}

func TestKillAndRestart(t *testing.T) {
	t.Parallel() // its own servers: overlaps the other tests' waits
	ctx := ctxT(t)
	s := StartServer(t, ServerOptions{})
	c := s.Client()
	defer func() { _ = c.Close() }()
	s.Kill()
	if s.Running() {
		t.Fatal("Running() after Kill")
	}
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING succeeded against a killed server")
	}
	s.Restart(t)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after restart: %v", err)
	}
	s.Stop()
	if _, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		t.Fatal("port still accepts connections after Stop")
	}
}

func TestTLSMutualAuth(t *testing.T) {
	t.Parallel() // its own servers: overlaps the other tests' waits
	ctx := ctxT(t)
	m := NewTLS(t, TLSOptions{})
	s := StartServer(t, ServerOptions{TLS: m})

	c := s.Client()
	defer func() { _ = c.Close() }()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET over mutual TLS: %v", err)
	}

	noCert := m.ClientConfig("")
	noCert.Certificates = nil
	nc := redis.NewClient(&redis.Options{Addr: s.Addr(), TLSConfig: noCert, DisableIdentity: true, MaxRetries: -1})
	defer func() { _ = nc.Close() }()
	if err := nc.Ping(ctx).Err(); err == nil {
		t.Fatal("PING without a client certificate succeeded; the server must require one")
	}

	plain := redis.NewClient(&redis.Options{Addr: s.Addr(), DisableIdentity: true, MaxRetries: -1, ReadTimeout: time.Second})
	defer func() { _ = plain.Close() }()
	if err := plain.Ping(ctx).Err(); err == nil {
		t.Fatal("PING in plaintext succeeded against a TLS-only server")
	}

	wrongName := m.ClientConfig("not-in-the-cert.example")
	wc := redis.NewClient(&redis.Options{Addr: s.Addr(), TLSConfig: wrongName, DisableIdentity: true, MaxRetries: -1})
	defer func() { _ = wc.Close() }()
	if err := wc.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("PING with a server name the certificate lacks: got %v, want a certificate error", err)
	}
}

// useEverySlotRange writes and reads a key in every master's slot range through mapped options.
func useEverySlotRange(t *testing.T, ctx context.Context, c *Cluster) {
	t.Helper()
	cc := redis.NewClusterClient(c.ClusterOptions())
	defer func() { _ = cc.Close() }()
	var mu sync.Mutex // ForEachMaster calls back concurrently
	masters := map[string]bool{}
	for i := 0; i < 200; i++ {
		key := fmt.Sprintf("key-%d", i)
		if err := cc.Set(ctx, key, i, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
		got, err := cc.Get(ctx, key).Int()
		if err != nil || got != i {
			t.Fatalf("GET %s = %v, %v; want %d", key, got, err, i)
		}
	}
	err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		n, err := m.DBSize(ctx).Result()
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("master %s holds no keys: slots not spread", m.Options().Addr)
		}
		mu.Lock()
		masters[m.Options().Addr] = true
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(masters) != len(c.Masters()) {
		t.Fatalf("keys landed on %d masters, want %d", len(masters), len(c.Masters()))
	}
}

func TestClusterWithReplicas(t *testing.T) {
	t.Parallel() // its own servers: overlaps the other tests' waits
	ctx := ctxT(t)
	c := StartCluster(t, ClusterOptions{Masters: 3, ReplicasPerMaster: 1})
	if len(c.Nodes) != 6 {
		t.Fatalf("%d nodes, want 6", len(c.Nodes))
	}
	for _, n := range c.Nodes {
		cl := n.Client()
		repl, err := Info(ctx, cl, "replication")
		_ = cl.Close()
		if err != nil {
			t.Fatal(err)
		}
		wantRole := "master"
		if n.MasterIndex >= 0 {
			wantRole = "slave"
			if repl["master_link_status"] != "up" {
				t.Fatalf("replica %d link %q", n.Index, repl["master_link_status"])
			}
			if repl["master_port"] != strconv.Itoa(c.Nodes[n.MasterIndex].Port) {
				t.Fatalf("replica %d follows port %s, want %d", n.Index, repl["master_port"], c.Nodes[n.MasterIndex].Port)
			}
		}
		if repl["role"] != wantRole {
			t.Fatalf("node %d role %q, want %q", n.Index, repl["role"], wantRole)
		}
	}
	useEverySlotRange(t, ctx, c)
}

func TestClusterAnnouncingUnreachableHostnames(t *testing.T) {
	t.Parallel() // its own servers: overlaps the other tests' waits
	ctx := ctxT(t)
	c := StartCluster(t, ClusterOptions{Masters: 3, ReplicasPerMaster: 1, Announce: AnnounceHostname})
	cl := c.Nodes[0].Client()
	defer func() { _ = cl.Close() }()
	slots, err := cl.ClusterSlots(ctx).Result() //nolint:staticcheck // CLUSTER SLOTS must show the announced names too, not only SHARDS
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		for _, n := range s.Nodes {
			if !strings.HasSuffix(strings.Split(n.Addr, ":")[0], ".rconn-test.invalid") {
				t.Fatalf("CLUSTER SLOTS hands out %q; want an unreachable .invalid hostname", n.Addr)
			}
		}
	}
	// A MOVED reply names the hostname too.
	for i := 0; i < 50; i++ {
		err := cl.Get(ctx, fmt.Sprintf("k%d", i)).Err()
		if err != nil && strings.HasPrefix(err.Error(), "MOVED") {
			if !strings.Contains(err.Error(), ".rconn-test.invalid:") {
				t.Fatalf("MOVED names %q, want a hostname", err)
			}
			break
		}
	}
	for _, n := range c.Nodes {
		if n.Announced != net.JoinHostPort(c.NodeName(n.Index), strconv.Itoa(n.Port)) {
			t.Fatalf("node %d Announced %q", n.Index, n.Announced)
		}
	}
	useEverySlotRange(t, ctx, c)
}

func TestMastersOnlyClusterAnnouncingTranslatedPorts(t *testing.T) {
	t.Parallel() // its own servers: overlaps the other tests' waits
	ctx := ctxT(t)
	c := StartCluster(t, ClusterOptions{Masters: 3, Announce: AnnounceTranslatedPort})
	for _, n := range c.Nodes {
		if n.Announced == n.Addr() {
			t.Fatalf("node %d announces its real address", n.Index)
		}
		if conn, err := net.DialTimeout("tcp", n.Announced, time.Second); err == nil {
			_ = conn.Close()
			t.Fatalf("something listens on announced %s; it must be unreachable", n.Announced)
		}
	}
	useEverySlotRange(t, ctx, c)
}

func TestTLSClusterWithACL(t *testing.T) {
	t.Parallel() // its own servers: overlaps the other tests' waits
	ctx := ctxT(t)
	m := NewTLS(t, TLSOptions{})
	c := StartCluster(t, ClusterOptions{Masters: 3, ReplicasPerMaster: 1, Server: ServerOptions{
		TLS:   m,
		Users: []User{{Name: "app", Password: "pw"}},
	}})
	useEverySlotRange(t, ctx, c)
	o := c.ClusterOptions()
	o.Username, o.Password = "app", "pw"
	cc := redis.NewClusterClient(o)
	defer func() { _ = cc.Close() }()
	if who, err := cc.Do(ctx, "ACL", "WHOAMI").Text(); err != nil || who != "app" {
		t.Fatalf("ACL WHOAMI = %q, %v; want app", who, err)
	}
}

func TestSentinelGroupAnnouncesNamesAndFailsOver(t *testing.T) {
	t.Parallel() // its own servers: overlaps the other tests' waits
	ctx := ctxT(t)
	g := StartSentinelGroup(t, SentinelGroupOptions{})
	// Announced names are pod names nobody outside resolves.
	a, err := g.MasterBy(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if a != g.Data[0].Announced || !strings.HasPrefix(a, "redis-0.redis-headless.") {
		t.Fatalf("master announced as %q, want %q", a, g.Data[0].Announced)
	}
	old, err := g.Failover(ctx)
	if err != nil {
		t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	m, err := g.WaitNewMaster(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.WaitSettled(ctx, m); err != nil {
		t.Fatal(err)
	}
	killed, err := g.KillMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.WaitNewMaster(ctx, killed); err != nil {
		t.Fatal(err)
	}
}

// RestartWithTLS serves the new material on the same port: a client of the old CA is refused,
// Client (the new CA) is served.
func TestRestartWithTLS(t *testing.T) {
	ctx := ctxT(t)
	old, next := NewTLS(t, TLSOptions{}), NewTLS(t, TLSOptions{})
	s := StartServer(t, ServerOptions{TLS: old})
	oldOpts := s.Options()
	s.RestartWithTLS(t, next)
	c := s.Client()
	defer func() { _ = c.Close() }()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING with the new CA: %v", err)
	}
	oc := redis.NewClient(oldOpts)
	defer func() { _ = oc.Close() }()
	if err := oc.Ping(ctx).Err(); err == nil {
		t.Fatal("PING with the old CA succeeded: the server still serves the old certificate")
	}
}
