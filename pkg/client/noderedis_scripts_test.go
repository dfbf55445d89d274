package client_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/tb"
	"github.com/rconn-dev/redis-connection-operator/internal/testing/npmtest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// scriptsConfig is a cluster config.json declaring a script and a function library, rooted at
// node 0's real address (node-redis maps only discovered nodes).
func scriptsConfig(rc *redistest.Cluster) *client.Config {
	cfg, _ := mappedConfig(rc)
	cfg.RootNodes = []client.RootNodeConfig{{URL: "redis://" + rc.Nodes[0].Addr()}}
	cfg.Scripts = map[string]client.ScriptConfig{
		"incrby2": {Script: "return redis.call('INCRBY', KEYS[1], ARGV[1])", NumberOfKeys: 1},
		"getro":   {Script: "return redis.call('GET', KEYS[1])", NumberOfKeys: 1, ReadOnly: true},
	}
	cfg.Functions = map[string]map[string]client.FunctionConfig{"rconntest": {
		"rconn_incr": {NumberOfKeys: 1},
		"rconn_get":  {NumberOfKeys: 1, ReadOnly: true},
	}}
	cfg.Rconn.FunctionLibraries = map[string]string{"rconntest": testLibrary}
	return cfg
}

// nodeRedisScriptsHarness runs after the docs snippet: scripts and functions by name on a key
// of every shard.
const nodeRedisScriptsHarness = `
const keys = process.argv.slice(2);
for (const k of keys) {
  const a = await redis.incrby2(k, 2);
  const b = await redis.rconntest.rconn_incr(k, 5);
  const c = await redis.getro(k);
  const d = await redis.rconntest.rconn_get(k);
  console.log('key', k, a, b, c, d);
}
console.log('node-redis scripts ok', keys.length);
await redis.close();
`

// config.json's scripts and functions, rendered, used as is by the docs/consuming.md node-redis
// snippet (node-redis npmtest.NodeRedis on a real cluster, DNS refused) and by Open.
func TestNodeRedisScriptsAndFunctions(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	tb.Integration(t, "node and npm packages")
	ctx, cancel := context.WithTimeout(testCtx(t), 5*time.Minute)
	defer cancel()
	dir, err := npmtest.InstallClients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname})
	m := newMount(t, map[string][]byte{client.ConfigFileName: render(t, scriptsConfig(rc))})
	snippet, err := npmtest.DocsSnippet(filepath.Join("..", ".."), "## Node.js: node-redis")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	script, err := npmtest.WriteScript(dir, work, "scripts.mjs", snippet+nodeRedisScriptsHarness)
	if err != nil {
		t.Fatal(err)
	}
	guard, err := npmtest.NoDNSArgs(work)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "node", append(guard, append([]string{script}, shardKeys3...)...)...)
	cmd.Env = append(os.Environ(), "RCONN_CONFIG_DIR="+m.dir, "RCONN_SECRET_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "node-redis scripts ok 3") {
		t.Fatalf("node %s: %v\n%s", script, err, out)
	}
	for _, k := range shardKeys3 {
		if want := fmt.Sprintf("key %s 2 7 7 7", k); !strings.Contains(string(out), want) {
			t.Fatalf("want %q in\n%s", want, out)
		}
	}

	// Go, from the same file: Run and FCall by name, then the values node-redis left.
	c, err := client.OpenOptions{Dial: (&recorder{}).Dial, MonitorInterval: time.Hour}.Open(ctx, m.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	for _, k := range shardKeys3 {
		if n, err := c.Run(ctx, "incrby2", []string{k}, 1).Int(); err != nil || n != 8 {
			t.Fatalf("Go Run incrby2 %s = %d, %v", k, n, err)
		}
		if n, err := c.FCall(ctx, "rconn_incr", []string{k}, 1).Int(); err != nil || n != 9 {
			t.Fatalf("Go FCall rconn_incr %s = %d, %v", k, n, err)
		}
	}
}
