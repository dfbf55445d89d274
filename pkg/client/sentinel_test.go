package client_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rconn-dev/redis-connection-operator/internal/testing/npmtest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// A real Sentinel group for pkg/client (redistest.StartSentinelGroup, the one every package
// shares): 1 master + 2 replicas (data password) and 3 sentinels (their own password), all
// announcing pod names only the group resolves. Every node is put behind a loopback proxy and
// the node address map sends each announced name:port to its proxy; the test's base dialer
// refuses the announced names and the real listening addresses alike, so every connection, to
// a sentinel or a data node, must go through the map to a proxy.

const (
	sentinelMaster = "mymaster"
	dataPassword   = "data-pw"
	sentinelPass   = "sentinel-pw"
)

type sentinelGroup struct {
	*redistest.SentinelGroup
}

func startSentinelGroup(t *testing.T) *sentinelGroup {
	t.Helper()
	return startSentinelGroupWith(t, redistest.SentinelGroupOptions{
		Data: redistest.ServerOptions{Password: dataPassword}, Sentinel: redistest.ServerOptions{Password: sentinelPass},
	})
}

func startSentinelGroupWith(t *testing.T, o redistest.SentinelGroupOptions) *sentinelGroup {
	t.Helper()
	o.MasterName = sentinelMaster
	return &sentinelGroup{redistest.StartSentinelGroup(t, o)}
}

// masterAddr is the master's announced address as sentinel 0 names it.
func (g *sentinelGroup) masterAddr(ctx context.Context) (string, error) {
	return g.MasterBy(ctx, 0)
}

// sentinelAdmin is a SENTINEL client of sentinel i's real address (the admin's password).
func (g *sentinelGroup) sentinelAdmin(i int) *redis.SentinelClient {
	return redis.NewSentinelClient(g.Sentinels[i].Options())
}

// refusingDial dials loopback IP literals only, and never an address the group announces or
// really listens on: those are reachable only through the node address map (its proxies). It
// records what it dialed.
type refusingDial struct {
	announced map[string]bool
	refused   atomic.Int64
	dials     atomic.Int64
	mu        sync.Mutex
	dialed    []string
}

func (d *refusingDial) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); d.announced[addr] || err != nil || ip == nil || !ip.IsLoopback() {
		d.refused.Add(1)
		return nil, fmt.Errorf("test: %s is announced, really listening or not a loopback IP: reachable only through the map", addr)
	}
	d.dials.Add(1)
	d.mu.Lock()
	d.dialed = append(d.dialed, addr)
	d.mu.Unlock()
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

// dialedOnly fails t when d dialed an address that is not one of proxies'.
func (d *refusingDial) dialedOnly(t *testing.T, proxies []*proxy) {
	t.Helper()
	ok := map[string]bool{}
	for _, p := range proxies {
		ok[p.Addr()] = true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range d.dialed {
		if !ok[a] {
			t.Errorf("dialed %s, not a proxy of the node address map", a)
		}
	}
}

// config maps every announced address to a new proxy (returned too: data nodes first, then
// sentinels) and renders the pair. The dialer refuses every announced and every real address.
func (g *sentinelGroup) config(t *testing.T) (*client.Config, map[string][]byte, *refusingDial, []*proxy) {
	t.Helper()
	cfg := &client.Config{Name: sentinelMaster, NodeAddressMap: map[string]client.MappedAddress{}, Rconn: client.RconnConfig{Mode: client.ModeSentinel}}
	d := &refusingDial{announced: map[string]bool{}}
	var proxies []*proxy
	for _, n := range append(append([]*redistest.Node(nil), g.Data...), g.Sentinels...) {
		d.announced[n.Announced], d.announced[n.Addr()] = true, true
		p := startProxy(t, n.Addr())
		proxies = append(proxies, p)
		cfg.NodeAddressMap[n.Announced] = mapped(p.Addr())
	}
	for _, n := range g.Sentinels {
		cfg.SentinelRootNodes = append(cfg.SentinelRootNodes, cfg.NodeAddressMap[n.Announced])
		cfg.Rconn.Sentinels = append(cfg.Rconn.Sentinels, n.Announced)
	}
	files := map[string][]byte{client.SecretKeyPassword: []byte(dataPassword), client.SecretKeySentinelPassword: []byte(sentinelPass)}
	return cfg, files, d, proxies
}

func TestOpenSentinelFailover(t *testing.T) {
	t.Parallel()
	g := startSentinelGroup(t)
	cfg, files, d, proxies := g.config(t)
	files[client.ConfigFileName] = render(t, cfg)
	m := newMount(t, files)
	ctx := testCtx(t)
	c, err := client.OpenOptions{Dial: d.Dial}.Open(ctx, m.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Set(ctx, "k", "0", 0).Err(); err != nil {
		t.Fatal(err)
	}
	old, err := g.masterAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Keep writing through the failover; count failed commands and the longest stall.
	var (
		mu         sync.Mutex
		failed     int
		written    int
		stall      time.Duration
		lastOK     = time.Now()
		stop       = make(chan struct{})
		writerDone = make(chan struct{})
	)
	go func() {
		defer close(writerDone)
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := c.Set(cctx, "k", strconv.Itoa(i), 0).Err()
			cancel()
			now := time.Now()
			mu.Lock()
			if err != nil {
				failed++
			} else {
				written++
				stall = max(stall, now.Sub(lastOK))
				lastOK = now
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	sc := g.sentinelAdmin(0)
	defer func() { _ = sc.Close() }()
	if err := sc.Failover(ctx, sentinelMaster).Err(); err != nil {
		t.Fatal(err)
	}
	var now string
	waitFor(t, "the sentinels to name a new master", func() error {
		if now, err = g.masterAddr(ctx); err != nil || now == old {
			return fmt.Errorf("master still %s (%w)", now, err)
		}
		return nil
	})
	// Writes must reach the new master: its own value of k follows the client's.
	admin := g.Data[g.DataIndex(now)].Client()
	defer func() { _ = admin.Close() }()
	waitFor(t, "writes on the new master", func() error {
		mu.Lock()
		w := written
		mu.Unlock()
		if err := c.Set(ctx, "probe", strconv.Itoa(w), 0).Err(); err != nil {
			return err
		}
		if v, err := admin.Get(ctx, "probe").Result(); err != nil || v != strconv.Itoa(w) {
			return fmt.Errorf("new master has probe=%q (%w), want %d", v, err, w)
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond)
	close(stop)
	<-writerDone
	mu.Lock()
	defer mu.Unlock()
	t.Logf("SENTINEL FAILOVER %s -> %s: %d writes ok, %d failed, longest stall %s; %d dials, %d refused announced dials",
		old, now, written, failed, stall.Round(time.Millisecond), d.dials.Load(), d.refused.Load())
	if d.refused.Load() != 0 {
		t.Errorf("%d dials of announced addresses: every connection must go through the map", d.refused.Load())
	}
	if written == 0 {
		t.Error("no write succeeded")
	}
	d.dialedOnly(t, proxies)
}

// The node address map and the sentinels' password change live: every proxy is replaced and
// the sentinels' password rotated; once the old proxies are gone (their connections cut), the
// client reconnects to sentinels and master through the new map with the new password.
func TestOpenSentinelLiveMapAndSentinelPassword(t *testing.T) {
	t.Parallel()
	g := startSentinelGroup(t)
	cfg, files, d, oldProxies := g.config(t)
	files[client.ConfigFileName] = render(t, cfg)
	m := newMount(t, files)
	ctx := testCtx(t)
	var rl reloads
	c, err := client.OpenOptions{Dial: d.Dial, ReloadInterval: 50 * time.Millisecond, OnReload: rl.handle}.Open(ctx, m.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}

	// New proxies for every node; sentinelRootNodes (a restart field) stay the old proxies,
	// which go away: the sentinels are then reached as discovered, through the new map.
	next, _, _, newProxies := g.config(t)
	next.SentinelRootNodes = cfg.SentinelRootNodes
	const rotated = "sentinel-pw-2"
	for _, n := range g.Sentinels {
		a := n.Addr()
		sc := redis.NewClient(&redis.Options{Addr: a, Password: sentinelPass})
		err := sc.Do(ctx, "ACL", "SETUSER", "default", ">"+rotated).Err() // both passwords valid
		_ = sc.Close()
		if err != nil {
			t.Fatalf("sentinel %s ACL SETUSER: %v", a, err)
		}
	}
	files[client.ConfigFileName] = render(t, next)
	files[client.SecretKeySentinelPassword] = []byte(rotated)
	m.update(t, files)
	waitFor(t, "the reload", func() error {
		if _, err := rl.last(); rl.ok.Load() == 0 {
			return fmt.Errorf("not reloaded yet (%w)", err)
		}
		return nil
	})
	for _, n := range g.Sentinels {
		a := n.Addr()
		sc := redis.NewClient(&redis.Options{Addr: a, Password: rotated})
		err := sc.Do(ctx, "ACL", "SETUSER", "default", "resetpass", ">"+rotated).Err() // the old one no longer
		_ = sc.Close()
		if err != nil {
			t.Fatalf("sentinel %s ACL SETUSER: %v", a, err)
		}
	}
	for _, p := range oldProxies {
		p.Close()
	}
	waitFor(t, "writes through the new proxies", func() error { return c.Set(ctx, "k", "w", 0).Err() })
	// A failover makes the client ask the sentinels again (new password, new map).
	sc := redis.NewSentinelClient(&redis.Options{Addr: g.Sentinels[0].Addr(), Password: rotated})
	defer func() { _ = sc.Close() }()
	old, _ := sc.GetMasterAddrByName(ctx, sentinelMaster).Result()
	if err := sc.Failover(ctx, sentinelMaster).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new master", func() error {
		now, err := sc.GetMasterAddrByName(ctx, sentinelMaster).Result()
		if err != nil || (len(old) == 2 && len(now) == 2 && now[1] == old[1]) {
			return fmt.Errorf("master still %v (%w)", now, err)
		}
		return nil
	})
	waitFor(t, "writes on the new master", func() error {
		if err := c.Set(ctx, "k", "x", 0).Err(); err != nil {
			return err
		}
		role, err := c.Do(ctx, "ROLE").Slice()
		if err != nil || len(role) == 0 || role[0] != "master" {
			return fmt.Errorf("ROLE %v (%w)", role, err)
		}
		return nil
	})
	var sentinelConns int64
	for _, p := range newProxies[len(g.Data):] {
		sentinelConns += p.Accepted.Load()
	}
	if sentinelConns == 0 {
		t.Error("no connection reached a sentinel through the new map")
	}
	if d.refused.Load() != 0 {
		t.Errorf("%d dials of announced addresses", d.refused.Load())
	}
	t.Logf("after the reload: %d sentinel connections through the new proxies", sentinelConns)
}

// The docs/consuming.md node-redis createSentinel snippet, as is, on a hand-written
// sentinel-mode config.json: node-redis reaches the sentinels and the master only through
// nodeAddressMap (the master's proxy sees its connections) with both sides' passwords.
func TestNodeRedisSentinelSnippet(t *testing.T) {
	t.Parallel()
	runSentinelSnippet(t, "node-redis", "nodeAddressMap", "### Sentinel: node-redis", `
await redis.set('k', 'from-node-redis');
console.log('node-redis-sentinel', await redis.get('k'));
await redis.close();
`, "node-redis-sentinel from-node-redis")
}

// The docs/consuming.md ioredis snippet, as is, on a hand-written sentinel-mode config.json:
// ioredis reaches the master through natMap (its proxy sees the connection).
func TestIORedisSentinelSnippet(t *testing.T) {
	t.Parallel()
	runSentinelSnippet(t, "ioredis", "natMap", "### Sentinel: ioredis", `
await redis.set('k', 'from-ioredis');
console.log('ioredis-sentinel', await redis.get('k'));
redis.disconnect();
`, "ioredis-sentinel from-ioredis")
}

// runSentinelSnippet runs the docs/consuming.md snippet under heading, followed by tail, with
// node against a real sentinel group (config.json and the Secret mounted), wants want in its
// output, and checks that the client reached the master through the map (mapName in messages).
func runSentinelSnippet(t *testing.T, clientName, mapName, heading, tail, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(testCtx(t), 5*time.Minute)
	defer cancel()
	dir, err := npmtest.InstallClients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g := startSentinelGroup(t)
	cfg, files, _, proxies := g.config(t)
	m := newMount(t, map[string][]byte{client.ConfigFileName: render(t, cfg)})
	secretDir := t.TempDir()
	for k, v := range files {
		if err := os.WriteFile(filepath.Join(secretDir, k), v, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	snippet, err := npmtest.DocsSnippet(filepath.Join("..", ".."), heading)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	script, err := npmtest.WriteScript(dir, work, "sentinel.mjs", snippet+tail)
	if err != nil {
		t.Fatal(err)
	}
	args, err := npmtest.NoDNSArgs(work)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "node", append(args, script)...)
	cmd.Env = append(os.Environ(), "RCONN_CONFIG_DIR="+m.dir, "RCONN_SECRET_DIR="+secretDir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), want) {
		t.Fatalf("node %s: %v\n%s", script, err, out)
	}
	master, err := g.masterAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range g.Data {
		if n.Announced == master && proxies[i].Accepted.Load() == 0 {
			t.Errorf("%s did not reach the master through %s (its proxy saw no connection):\n%s", clientName, mapName, out)
		}
	}
}

// useReplicas: the failover cluster client (go-redis NewFailoverClusterClient, RouteRandomly)
// connects through the sentinels, writes, reads, and follows a failover, every connection
// through the map. (go-redis's cluster client rewrites a loopback node address it did not get
// from a loopback seed to ":port"; the group announces pod names, as a real deployment does, so
// that rewrite never applies and the data nodes are dialed through their map entries.)
func TestOpenSentinelUseReplicas(t *testing.T) {
	t.Parallel()
	g := startSentinelGroup(t)
	cfg, files, d, proxies := g.config(t)
	cfg.UseReplicas, cfg.ReplicaPoolSize = true, 1
	files[client.ConfigFileName] = render(t, cfg)
	m := newMount(t, files)
	ctx := testCtx(t)
	c, err := client.OpenOptions{Dial: d.Dial}.Open(ctx, m.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reads", func() error {
		if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
			return fmt.Errorf("GET k = %q (%w)", v, err)
		}
		return nil
	})
	sc := g.sentinelAdmin(0)
	defer func() { _ = sc.Close() }()
	old, err := g.masterAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Failover(ctx, sentinelMaster).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new master", func() error {
		if now, err := g.masterAddr(ctx); err != nil || now == old {
			return fmt.Errorf("master still %s (%w)", now, err)
		}
		return nil
	})
	waitFor(t, "writes after the failover", func() error { return c.Set(ctx, "k", "w", 0).Err() })
	if d.refused.Load() != 0 {
		t.Errorf("%d dials of announced addresses", d.refused.Load())
	}
	d.dialedOnly(t, proxies)
	var dataConns int64
	for _, p := range proxies[:len(g.Data)] {
		dataConns += p.Accepted.Load()
	}
	if dataConns == 0 {
		t.Error("no data connection went through the map")
	}
}

// Issue #24: after a rollout the sentinels' old announced addresses are gone from the map. The
// client must still reach the sentinels by sentinelRootNodes as configured (reachable, stable
// names), not only by the announced aliases the inspector names them by. The sentinels'
// proxies (the roots) restart on their addresses, cutting every sentinel connection, as a
// rolled pod behind a stable LoadBalancer does; then a failover: the client must find the new
// master through the roots.
func TestOpenSentinelRootsAfterRollout(t *testing.T) {
	t.Parallel()
	g := startSentinelGroup(t)
	cfg, files, d, proxies := g.config(t)
	files[client.ConfigFileName] = render(t, cfg)
	m := newMount(t, files)
	ctx := testCtx(t)
	var rl reloads
	c, err := client.OpenOptions{Dial: d.Dial, ReloadInterval: 50 * time.Millisecond, OnReload: rl.handle}.Open(ctx, m.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}

	// The map keeps the data nodes and loses every sentinel's announced address.
	next := *cfg
	next.NodeAddressMap = map[string]client.MappedAddress{}
	for _, n := range g.Data {
		next.NodeAddressMap[n.Announced] = cfg.NodeAddressMap[n.Announced]
	}
	next.Rconn.Sentinels = nil
	files[client.ConfigFileName] = render(t, &next)
	m.update(t, files)
	waitFor(t, "the reload", func() error {
		if _, err := rl.last(); rl.ok.Load() == 0 {
			return fmt.Errorf("not reloaded yet (%w)", err)
		}
		return nil
	})
	for i, n := range g.Sentinels {
		p := proxies[len(g.Data)+i]
		addr := p.Addr()
		p.Close()
		proxies[len(g.Data)+i] = nettest.StartProxyAt(t, addr, n.Addr())
	}

	old, err := g.Failover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now, err := g.WaitNewMaster(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	admin := g.Data[now].Client()
	defer func() { _ = admin.Close() }()
	start := time.Now()
	nettest.WaitFor(t, 20*time.Second, "writes on the new master", func() error {
		if err := c.Set(ctx, "probe", "after-rollout", 0).Err(); err != nil {
			return err
		}
		if v, err := admin.Get(ctx, "probe").Result(); err != nil || v != "after-rollout" {
			return fmt.Errorf("new master has probe=%q (%w)", v, err)
		}
		return nil
	})
	var sentinelConns int64
	for _, p := range proxies[len(g.Data):] {
		sentinelConns += p.Accepted.Load()
	}
	t.Logf("failover %d -> %d after the rollout: writing to the new master %s after the new master was known; %d sentinel connections through the roots, %d refused dials",
		old, now, time.Since(start).Round(time.Millisecond), sentinelConns, d.refused.Load())
	if sentinelConns == 0 {
		t.Error("no sentinel connection through the sentinelRootNodes after the rollout")
	}
}
