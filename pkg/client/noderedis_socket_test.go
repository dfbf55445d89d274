package client_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/tb"
	"github.com/rconn-dev/redis-connection-operator/internal/testing/npmtest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// nodeRedisSocketHarness runs after the docs snippet (which connected "redis"): it reports the
// address the server sees for the connection and round-trips a value.
const nodeRedisSocketHarness = `
await redis.set('k', 'from-node-redis');
const info = await redis.sendCommand(['CLIENT', 'INFO']);
const addr = /addr=(\S+)/.exec(info)[1];
const db = /db=(\d+)/.exec(info)[1];
console.log('node-redis', addr, db, await redis.get('k'));
await redis.close();
`

// The docs/consuming.md node-redis snippet, as is, on a rendered standalone config.json with
// defaults.socket.path and a root node nothing listens on: node-redis (npmtest.NodeRedis) dials
// the socket, with the url's database.
func TestNodeRedisSnippetUnixSocket(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	tb.Integration(t, "node and npm packages")
	ctx, cancel := context.WithTimeout(testCtx(t), 5*time.Minute)
	defer cancel()
	dir, err := npmtest.InstallClients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sock := unixServer(t)
	cfg := &client.Config{
		RootNodes: []client.RootNodeConfig{{URL: "redis://127.0.0.1:1/3"}},
		Defaults:  client.DefaultsConfig{Socket: client.SocketConfig{Path: sock}},
		Rconn:     client.RconnConfig{Mode: client.ModeStandalone},
	}
	m := newMount(t, map[string][]byte{client.ConfigFileName: render(t, cfg)})
	snippet, err := npmtest.DocsSnippet(filepath.Join("..", ".."), "## Node.js: node-redis")
	if err != nil {
		t.Fatal(err)
	}
	script, err := npmtest.WriteScript(dir, t.TempDir(), "socket.mjs", snippet+nodeRedisSocketHarness)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Env = append(os.Environ(), "RCONN_CONFIG_DIR="+m.dir, "RCONN_SECRET_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if want := "node-redis " + sock + ":0 3 from-node-redis"; err != nil || !strings.Contains(string(out), want) {
		t.Fatalf("node %s: %v, want %q in\n%s", script, err, want, out)
	}
}
