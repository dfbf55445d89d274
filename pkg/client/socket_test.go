package client_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// unixServer is a real redis-server listening on a Unix socket in a temp dir (and on its TCP
// port, which the tests below never dial: that is the controller's).
func unixServer(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "redis.sock")
	redistest.StartServer(t, redistest.ServerOptions{Config: []string{"unixsocket " + sock, "unixsocketperm 700"}})
	return sock
}

// overSocket checks through CLIENT INFO that c's connection is the Unix socket (redis reports a
// Unix client's addr as "<path>:0") and that it works.
func overSocket(t *testing.T, c *client.Client, sock string, db int) {
	t.Helper()
	ctx := testCtx(t)
	if err := c.Set(ctx, "k", "over the socket", 0).Err(); err != nil {
		t.Fatal(err)
	}
	info, err := c.ClientInfo(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if info.Addr != sock+":0" || info.DB != db {
		t.Fatalf("connection addr %q db %d, want the socket %q, db %d", info.Addr, info.DB, sock, db)
	}
}

// node-redis createClient({socket: {path}}), and {url, socket: {path}}: the path wins over the
// URL's host and port, the URL's database applies.
func TestNewClientUnixSocket(t *testing.T) {
	sock := unixServer(t)
	ctx := testCtx(t)
	c, err := client.NewClient(ctx, client.Options{Socket: client.Socket{Path: sock}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	overSocket(t, c, sock, 0)

	// 127.0.0.1:1: nothing listens there; dialing it would fail.
	c2, err := client.NewClient(ctx, client.Options{URL: "redis://127.0.0.1:1/2", Socket: client.Socket{Path: sock}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c2.Close() }()
	overSocket(t, c2, sock, 2)

	if _, err := client.NewClient(ctx, client.Options{URL: "rediss://127.0.0.1:1", Socket: client.Socket{Path: sock}}); err == nil {
		t.Fatal("Socket.Path with TLS accepted")
	}
}

// The rendered standalone config.json with defaults.socket.path: Open dials the socket, never
// rootNodes[0] (the controller's address).
func TestOpenStandaloneUnixSocket(t *testing.T) {
	sock := unixServer(t)
	cfg := &client.Config{
		RootNodes: []client.RootNodeConfig{{URL: "redis://127.0.0.1:1"}}, // the controller's; unreachable here
		Defaults:  client.DefaultsConfig{Socket: client.SocketConfig{Path: sock}, Database: 1},
		Rconn:     client.RconnConfig{Mode: client.ModeStandalone},
	}
	b := render(t, cfg)
	if !strings.Contains(string(b), `"path": "`+sock+`"`) {
		t.Fatalf("config.json lacks defaults.socket.path:\n%s", b)
	}
	m := newMount(t, map[string][]byte{client.ConfigFileName: b})
	ctx, cancel := context.WithTimeout(testCtx(t), 10*time.Second)
	defer cancel()
	c, err := client.Open(ctx, m.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	overSocket(t, c, sock, 1)
}

func TestValidateSocketPath(t *testing.T) {
	long := "/" + strings.Repeat("s", client.MaxSocketPathLen)
	for _, tc := range []struct {
		name string
		edit func(*client.Config)
		want string // "" = valid
	}{
		{"standalone", func(*client.Config) {}, ""},
		{"cluster mode", func(c *client.Config) { c.Rconn.Mode = client.ModeCluster }, "standalone mode only"},
		{"TLS", func(c *client.Config) {
			c.Defaults.Socket.TLS = true
			c.RootNodes[0].URL = "rediss://127.0.0.1:6379"
		}, "does not go with TLS"},
		{"relative", func(c *client.Config) { c.Defaults.Socket.Path = "run/redis.sock" }, "clean absolute"},
		{"dot-dot", func(c *client.Config) { c.Defaults.Socket.Path = "/run/../redis.sock" }, "clean absolute"},
		{"too long", func(c *client.Config) { c.Defaults.Socket.Path = long }, "at most 107"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &client.Config{
				RootNodes: []client.RootNodeConfig{{URL: "redis://127.0.0.1:6379"}},
				Defaults:  client.DefaultsConfig{Socket: client.SocketConfig{Path: "/var/run/redis/redis.sock"}},
				Rconn:     client.RconnConfig{Mode: client.ModeStandalone},
			}
			tc.edit(c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, client.ErrInvalidConfig)):
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}
