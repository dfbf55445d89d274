package proxy_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/tb"
	"github.com/rconn-dev/redis-connection-operator/internal/testing/npmtest"
)

var (
	nodeClientsOnce sync.Once
	nodeClientsDir  string
	nodeClientsErr  error
)

// nodeClients is the npm install of the Node.js clients (npmtest.InstallClients), once per run.
func nodeClients(t *testing.T) string {
	tb.Integration(t, "node and npm packages")
	t.Helper()
	nodeClientsOnce.Do(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		nodeClientsDir, nodeClientsErr = npmtest.InstallClients(c)
	})
	if nodeClientsErr != nil {
		t.Fatal(nodeClientsErr)
	}
	return nodeClientsDir
}

// TestIORedisClusterThroughProxy runs ioredis's Cluster without natMap (npmtest.IORedis)
// through the proxy, plaintext and TLS: testdata/ioredis-cluster.cjs.
func TestIORedisClusterThroughProxy(t *testing.T) {
	t.Parallel() // its own cluster and proxy: overlaps the other tests' waits
	testNodeClientThroughProxy(t, "ioredis-cluster.cjs")
}

// TestNodeRedisClusterThroughProxy runs node-redis's createCluster without nodeAddressMap
// (npmtest.NodeRedis) through the proxy, plaintext and TLS: testdata/node-redis-cluster.mjs.
func TestNodeRedisClusterThroughProxy(t *testing.T) {
	t.Parallel() // its own cluster and proxy: overlaps the other tests' waits
	testNodeClientThroughProxy(t, "node-redis-cluster.mjs")
}

// testNodeClientThroughProxy runs a Node.js cluster client script (testdata) with only the
// proxy's seed: SET/GET on every shard, a pipeline, MULTI/EXEC, SUBSCRIBE, SSUBSCRIBE, BLPOP,
// and a MOVED after the test moves a slot. node runs with DNS refused (npmtest.NoDNSArgs), so
// an announced .invalid name reaching the client fails it; the client must also know only
// proxy listeners. Without the proxy (the seed a node's real port) the same script must try an
// announced name: the check that this test depends on the proxy's rewriting.
func testNodeClientThroughProxy(t *testing.T, script string) {
	dir := nodeClients(t)
	src, err := os.ReadFile(filepath.Join("testdata", script))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		o    envOptions
	}{{"plaintext", envOptions{}}, {"tls", envOptions{tls: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, tc.o)
			work := t.TempDir()
			path, err := npmtest.WriteScript(dir, work, script, string(src))
			if err != nil {
				t.Fatal(err)
			}
			guard, err := npmtest.NoDNSArgs(work)
			if err != nil {
				t.Fatal(err)
			}
			keys := shardKeys()
			run := func(seed string) (*proc, *os.File) {
				h, p := hostPort(t, seed)
				// An *os.File stdin: exec copies nothing, so stopping the process never waits on it.
				stdin, feed, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = stdin.Close(); _ = feed.Close() })
				return startProc(t, "node", stdin, append(append(guard, path, h, p), keys...)...), feed
			}

			pr, feed := run(e.p.SeedAddr())
			pr.waitLine(t, "BLPOP-WAITING")
			queue := ""
			for _, l := range pr.out.lines() {
				if q, ok := strings.CutPrefix(l, "BLPOP-WAITING "); ok {
					queue = q
				}
			}
			waitFor(t, "BLPOP to block", func() error { return blocked(ctx(t), e, queue) })
			if _, err := fmt.Fprintln(feed, "blocked"); err != nil {
				t.Fatal(err)
			}
			pr.waitLine(t, "READY-TO-MIGRATE")
			k := keys[0]
			src, dst := e.ownerOf(k), e.rc.Masters()[1]
			if err := e.rc.MigrateSlot(ctx(t), src, dst, slotOf(k), nil, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := fmt.Fprintln(feed, "migrated"); err != nil {
				t.Fatal(err)
			}
			pr.waitLine(t, "ALL-OK")
			known := 0
			for _, l := range pr.out.lines() {
				if strings.HasPrefix(l, npmtest.DNSRefused) {
					t.Errorf("the client tried to resolve a name: %s", l)
				}
				if addr, ok := strings.CutPrefix(l, "NODE "); ok {
					known++
					if !slices.Contains(e.listeners(), addr) {
						t.Errorf("the client knows node %s, not a proxy listener (%v)", addr, e.listeners())
					}
				}
			}
			if known < 6 { // 3 masters, twice
				t.Errorf("the client listed %d nodes, want 3 masters before and after the slot moved:\n%s", known, pr.output())
			}
			dc := dst.Client()
			defer func() { _ = dc.Close() }()
			if v, _ := dc.Get(ctx(t), k).Result(); v != "after" {
				t.Errorf("the slot's new owner has %s = %q, want the client's SET after the move", k, v)
			}
			e.dial.AssertOnlyDialed(t, e.rc.AddressMap())
			if t.Failed() {
				t.Logf("client output:\n%s", pr.output())
			}

			if tc.o.tls {
				return
			}
			// The same script on a node's own port: the announced names reach it and it must
			// try to resolve one (and is refused), or this test would pass without the proxy.
			direct, _ := run(e.rc.Nodes[0].Addr())
			waitFor(t, "the client without the proxy to try an announced name", func() error {
				for _, l := range direct.out.lines() {
					if h, ok := strings.CutPrefix(l, npmtest.DNSRefused); ok && strings.HasSuffix(h, ".invalid") {
						return nil
					}
					if l == "ALL-OK" || l == "SET/GET ok" {
						return fmt.Errorf("the client reached every shard without the proxy: %s", direct.output())
					}
				}
				return fmt.Errorf("output so far: %q", direct.output())
			})
			direct.stop()
		})
	}
}

// ioredisHarness runs after the docs snippet (which leaves a `redis` Cluster): SET/GET each
// key given on the command line, list the nodes ioredis knows, close.
const ioredisHarness = `
const keys = process.argv.slice(2);
for (const k of keys) {
  if (await redis.set(k, 'natmap-' + k) !== 'OK') throw new Error('SET ' + k);
  const v = await redis.get(k);
  if (v !== 'natmap-' + k) throw new Error('GET ' + k + ' = ' + v);
}
for (const n of redis.nodes('all')) console.log('NODE ' + n.options.host + ':' + n.options.port);
console.log('ioredis natMap ok ' + keys.length);
redis.disconnect();
process.exit(0);
`

// TestIORedisNatMapFromConfigJSON runs the ioredis recipe of docs/consuming.md ("## Node.js:
// ioredis", natMap = config.json's nodeAddressMap as is) without the proxy, on the mount
// startEnv renders the way the controller does (client.Render), against the cluster announcing
// unreachable names, plaintext and TLS.
func TestIORedisNatMapFromConfigJSON(t *testing.T) {
	t.Parallel() // its own cluster and proxy: overlaps the other tests' waits
	dir := nodeClients(t)
	snippet, err := npmtest.DocsSnippet(filepath.Join("..", ".."), "## Node.js: ioredis")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		o    envOptions
	}{{"plaintext", envOptions{}}, {"tls", envOptions{tls: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, tc.o)
			work := t.TempDir()
			path, err := npmtest.WriteScript(dir, work, "natmap.mjs", snippet+ioredisHarness)
			if err != nil {
				t.Fatal(err)
			}
			guard, err := npmtest.NoDNSArgs(work)
			if err != nil {
				t.Fatal(err)
			}
			keys := shardKeys()
			c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(c, "node", append(append(guard, path), keys...)...)
			cmd.Env = append(os.Environ(), "RCONN_CONFIG_DIR="+e.mount, "RCONN_SECRET_DIR="+e.mount)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), fmt.Sprintf("ioredis natMap ok %d", len(keys))) {
				t.Fatalf("node %s: %v\n%s", path, err, out)
			}
			reachable := slices.Collect(maps.Values(e.rc.AddressMap()))
			known := 0
			for _, l := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(l, npmtest.DNSRefused) {
					t.Errorf("ioredis tried to resolve a name: %s", l)
				}
				if addr, ok := strings.CutPrefix(l, "NODE "); ok {
					known++
					if !slices.Contains(reachable, addr) {
						t.Errorf("ioredis knows node %s, not a mapped address (%v)", addr, reachable)
					}
				}
			}
			if known < 3 {
				t.Errorf("ioredis listed %d nodes, want the 3 masters:\n%s", known, out)
			}
			for _, k := range keys {
				oc := e.ownerOf(k).Client()
				v, err := oc.Get(ctx(t), k).Result()
				_ = oc.Close()
				if v != "natmap-"+k {
					t.Errorf("%s on its master = %q, %v", k, v, err)
				}
			}
		})
	}
}
