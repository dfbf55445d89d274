package client_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
)

func mapped(addr string) client.MappedAddress {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return client.MappedAddress{Host: host, Port: p}
}

func render(t *testing.T, c *client.Config) []byte {
	t.Helper()
	b, err := client.Render(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// setGetAcrossSlots writes and reads keys that land on every master.
func setGetAcrossSlots(t *testing.T, c *client.Client, tag string) error {
	t.Helper()
	ctx := testCtx(t)
	for i := range 12 {
		k := fmt.Sprintf("%s-key-%d", tag, i)
		if err := c.Set(ctx, k, tag, 0).Err(); err != nil {
			return err
		}
		v, err := c.Get(ctx, k).Result()
		if err != nil {
			return err
		}
		if v != tag {
			return fmt.Errorf("GET %s = %q, want %q", k, v, tag)
		}
	}
	return nil
}

// (a) announced hostnames that never resolve, map in config.json; (b) a swapped map is followed
// without restart.
func TestOpenClusterMapAndLiveMapSwap(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname})
	cfg, dialed := mappedConfig(rc)
	m := newMount(t, map[string][]byte{client.ConfigFileName: render(t, cfg)})
	rec := &recorder{}
	var rl reloads
	// OnReload may use the client (e.g. log c.Config()): that must not deadlock the reloader.
	var opened atomic.Pointer[client.Client]
	onReload := func(err error) {
		if c := opened.Load(); c != nil {
			_ = c.Config()
		}
		rl.handle(err)
	}
	c, err := client.OpenOptions{ReloadInterval: 50 * time.Millisecond, Dial: rec.Dial, OnReload: onReload}.Open(testCtx(t), m.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	opened.Store(c)
	if err := setGetAcrossSlots(t, c, "a"); err != nil {
		t.Fatal(err)
	}
	rec.AssertOnly(t, dialed...)

	// (b) route every node through a loopback proxy.
	var proxied []string
	proxies := map[string]*proxy{}
	for announced, addr := range rc.AddressMap() {
		p := startProxy(t, addr)
		proxies[announced] = p
		cfg.NodeAddressMap[announced] = mapped(p.Addr())
		proxied = append(proxied, p.Addr())
	}
	m.update(t, map[string][]byte{client.ConfigFileName: render(t, cfg)})
	waitFor(t, "reload", func() error {
		if rl.ok.Load() == 0 {
			return errNotYet
		}
		return nil
	})
	if err := setGetAcrossSlots(t, c, "b"); err != nil {
		t.Fatal(err)
	}
	for _, n := range rc.Masters() {
		if p := proxies[n.Announced]; p.Accepted.Load() == 0 {
			t.Errorf("no connection went through the new mapping of %s (%s)", n.Announced, p.Addr())
		}
	}
	rec.AssertOnly(t, append(dialed, proxied...)...)
	if got := c.Config().NodeAddressMap[rc.Nodes[0].Announced]; got != mapped(proxies[rc.Nodes[0].Announced].Addr()) {
		t.Fatalf("Config() has %v", got)
	}
}

// (c) password rotation through the Secret file.
func TestOpenPasswordRotation(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{Password: "admin", Users: []redistest.User{{Name: "app", Password: "old"}}})
	admin := srv.Client()
	defer func() { _ = admin.Close() }()
	cfg := &client.Config{RootNodes: []client.RootNodeConfig{{URL: "redis://" + srv.Addr()}}, Rconn: client.RconnConfig{Mode: client.ModeStandalone}}
	files := map[string][]byte{client.ConfigFileName: render(t, cfg), client.SecretKeyUsername: []byte("app"), client.SecretKeyPassword: []byte("old")}
	m := newMount(t, files)
	var rl reloads
	rec := &recorder{}
	ctx := testCtx(t)
	c, err := client.OpenOptions{ReloadInterval: 50 * time.Millisecond, Dial: rec.Dial, OnReload: rl.handle}.Open(ctx, m.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if who, err := c.Do(ctx, "ACL", "WHOAMI").Text(); err != nil || who != "app" {
		t.Fatalf("ACL WHOAMI = %q, %v", who, err)
	}
	// Rotation: both passwords valid, then the Secret changes, then the old one is removed.
	if err := admin.Do(ctx, "ACL", "SETUSER", "app", ">new").Err(); err != nil {
		t.Fatal(err)
	}
	files[client.SecretKeyPassword] = []byte("new\n")
	m.update(t, files)
	waitFor(t, "reload", func() error {
		if rl.ok.Load() == 0 {
			return errNotYet
		}
		return nil
	})
	if err := admin.Do(ctx, "ACL", "SETUSER", "app", "resetpass", ">new").Err(); err != nil {
		t.Fatal(err)
	}
	killed, err := admin.Do(ctx, "CLIENT", "KILL", "USER", "app").Int()
	if err != nil || killed == 0 {
		t.Fatalf("CLIENT KILL USER app = %d, %v", killed, err)
	}
	before := len(rec.Dialed())
	waitFor(t, "commands on new connections", func() error { return c.Set(ctx, "k", "v", 0).Err() })
	if who, err := c.Do(ctx, "ACL", "WHOAMI").Text(); err != nil || who != "app" {
		t.Fatalf("ACL WHOAMI = %q, %v", who, err)
	}
	if len(rec.Dialed()) == before {
		t.Fatal("no new connection was made after CLIENT KILL")
	}
}

// (d) new CA and client certificate through the Secret files.
func TestOpenTLSRotation(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	certs1 := redistest.NewTLS(t, redistest.TLSOptions{})
	srv := redistest.StartServer(t, redistest.ServerOptions{TLS: certs1})
	cfg := &client.Config{
		RootNodes: []client.RootNodeConfig{{URL: "rediss://" + srv.Addr()}},
		Defaults:  client.DefaultsConfig{Socket: client.SocketConfig{TLS: true}},
		Rconn:     client.RconnConfig{Mode: client.ModeStandalone, ReconnectStrategy: &client.ReconnectConfig{Type: client.ReconnectTypeFixedDelay, DelayMs: 50}},
	}
	tlsFiles := func(c *redistest.TLS) map[string][]byte {
		f := map[string][]byte{client.ConfigFileName: render(t, cfg)}
		for name, path := range map[string]string{client.SecretKeyCA: c.CAFile, client.SecretKeyCert: c.ClientCertFile, client.SecretKeyKey: c.ClientKeyFile} {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			f[name] = b
		}
		return f
	}
	m := newMount(t, tlsFiles(certs1))
	var rl reloads
	ctx := testCtx(t)
	c, err := client.OpenOptions{ReloadInterval: 50 * time.Millisecond, Dial: (&recorder{}).Dial, OnReload: rl.handle, MonitorInterval: time.Hour}.Open(ctx, m.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Set(ctx, "k", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// The server moves to a new CA; existing connections are cut.
	certs2 := redistest.NewTLS(t, redistest.TLSOptions{})
	admin := srv.Client()
	defer func() { _ = admin.Close() }()
	// All three at once: the server refuses a certificate that does not match its key.
	if err := admin.Do(ctx, "CONFIG", "SET", "tls-ca-cert-file", certs2.CAFile, "tls-cert-file", certs2.ServerCertFile, "tls-key-file", certs2.ServerKeyFile).Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	// With the old material new connections fail.
	if err := c.Set(ctx, "k", "2", 0).Err(); err == nil {
		t.Fatal("SET succeeded with the old CA and client certificate")
	}
	m.update(t, tlsFiles(certs2))
	waitFor(t, "reload", func() error {
		if rl.ok.Load() == 0 {
			_, err := rl.last()
			return fmt.Errorf("%w: %w", errNotYet, err)
		}
		return nil
	})
	waitFor(t, "SET with the new material", func() error { return c.Set(ctx, "k", "3", 0).Err() })
}

// (e) a broken update keeps the old config running; the fix is applied.
func TestOpenBrokenUpdateKeepsLastGood(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	announced := "app-redis.rconn-test.invalid:6379"
	cfg := &client.Config{
		RootNodes:      []client.RootNodeConfig{{URL: "redis://" + announced}},
		NodeAddressMap: map[string]client.MappedAddress{announced: mapped(srv.Addr())},
		Rconn:          client.RconnConfig{Mode: client.ModeStandalone},
	}
	m := newMount(t, map[string][]byte{client.ConfigFileName: render(t, cfg)})
	var ev events
	var rl reloads
	rec := &recorder{}
	ctx := testCtx(t)
	c, err := client.OpenOptions{ReloadInterval: 50 * time.Millisecond, Dial: rec.Dial, OnEvent: ev.handle, OnReload: rl.handle}.Open(ctx, m.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()

	for _, broken := range []map[string][]byte{
		{client.ConfigFileName: []byte(`{"rootNodes": [`)},
		{client.ConfigFileName: []byte(`{"rootNodes":[{"url":"redis://` + announced + `"}],"nodeAddressMap":{"x":{"host":"127.0.0.1","port":1}},"rconn":{"mode":"standalone"}}`)},
	} {
		n := len(ev.list())
		m.update(t, broken)
		waitFor(t, "error event", func() error {
			for _, e := range ev.list()[n:] {
				if e.Type == client.EventError && strings.Contains(e.Err.Error(), "keeping the last good configuration") {
					return nil
				}
			}
			return errNotYet
		})
		if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
			t.Fatalf("traffic broke after a broken update: %v", err)
		}
	}
	// Fix it, through a proxy so that the new map is visible.
	p := startProxy(t, srv.Addr())
	cfg.NodeAddressMap[announced] = mapped(p.Addr())
	m.update(t, map[string][]byte{client.ConfigFileName: render(t, cfg)})
	waitFor(t, "reload", func() error {
		if _, err := rl.last(); err != nil || rl.ok.Load() == 0 {
			return fmt.Errorf("%w: %w", errNotYet, err)
		}
		return nil
	})
	if err := c.Set(ctx, "k", "w", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if p.Accepted.Load() == 0 || !rec.Has(p.Addr()) {
		t.Fatalf("the fixed config was not applied: dialed %v", rec.Dialed())
	}
	rec.AssertOnly(t, srv.Addr(), p.Addr())

	// A change that needs a restart is reported as such.
	cfg.RootNodes[0].URL = "redis://other.rconn-test.invalid:6379"
	m.update(t, map[string][]byte{client.ConfigFileName: render(t, cfg)})
	waitFor(t, "restart error", func() error {
		if _, err := rl.last(); !errors.Is(err, client.ErrRestartRequired) {
			return fmt.Errorf("%w: %w", errNotYet, err)
		}
		return nil
	})
	if err := c.Set(ctx, "k", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
}
