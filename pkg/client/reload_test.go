package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/world/kubeletmount"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// withRconn returns config.json with extra fields merged into its "rconn" section, written as
// raw JSON so that the file is exactly what a controller would render.
func withRconn(t *testing.T, raw []byte, extra map[string]any) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	r, _ := doc["rconn"].(map[string]any)
	if r == nil {
		r = map[string]any{}
	}
	for k, v := range extra {
		r[k] = v
	}
	doc["rconn"] = r
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func waitReloadOK(t *testing.T, rl *reloads) {
	t.Helper()
	waitFor(t, "a successful reload", func() error {
		if rl.ok.Load() > 0 {
			return nil
		}
		_, err := rl.last()
		return fmt.Errorf("%w: last reload: %w", errNotYet, err)
	})
}

func plainStandalone(addr string) *client.Config {
	return &client.Config{RootNodes: []client.RootNodeConfig{{URL: "redis://" + addr}}, Rconn: client.RconnConfig{Mode: client.ModeStandalone}}
}

// A version that fails to read for a reason other than its content (here: the password is a
// directory, as good as EACCES or EMFILE; tests run as root, so chmod would not do) is retried,
// and applied once it reads, although the mount's "..data" never changed.
func TestReloadRetriesTransientReadError(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{Password: "admin", Users: []redistest.User{{Name: "app", Password: "old"}}})
	admin := srv.Client()
	defer func() { _ = admin.Close() }()
	ctx := testCtx(t)
	files := map[string][]byte{
		client.ConfigFileName:    render(t, plainStandalone(srv.Addr())),
		client.SecretKeyUsername: []byte("app"),
		client.SecretKeyPassword: []byte("old"),
	}
	files = bindTo(files[client.ConfigFileName], files)
	m := newMount(t, files)
	var rl reloads
	c, err := client.OpenOptions{ReloadInterval: 50 * time.Millisecond, Dial: (&recorder{}).Dial, OnReload: rl.handle}.Open(ctx, m.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if err := admin.Do(ctx, "ACL", "SETUSER", "app", ">new").Err(); err != nil {
		t.Fatal(err)
	}
	files[client.SecretKeyPassword] = []byte("new")
	var version string
	err = kubeletmount.WriteFunc(m.dir, files, 0o644, func(v string) error {
		version = v
		p := filepath.Join(v, client.SecretKeyPassword)
		if err := os.Remove(p); err != nil {
			return err
		}
		return os.Mkdir(p, 0o755)
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the failed reload", func() error {
		if _, err := rl.last(); err != nil {
			return nil
		}
		return errNotYet
	})
	// Repair in place: "..data" still points at the same version.
	p := filepath.Join(version, client.SecretKeyPassword)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitReloadOK(t, &rl)
	if err := admin.Do(ctx, "ACL", "SETUSER", "app", "resetpass", ">new").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, "CLIENT", "KILL", "USER", "app").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "commands with the new password", func() error { return c.Set(ctx, "k", "v", 0).Err() })
}

// Dropping the username (spec.defaults.acl.usernameKey removed) is a legal update: the client
// authenticates as the default user from then on.
func TestReloadUsernameRemoved(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{Password: "defaultpw", Users: []redistest.User{{Name: "app", Password: "apppw"}}})
	admin := srv.Client()
	defer func() { _ = admin.Close() }()
	ctx := testCtx(t)
	raw := render(t, plainStandalone(srv.Addr()))
	m := newMount(t, map[string][]byte{
		client.ConfigFileName:    withRconn(t, raw, map[string]any{"secretKeys": []string{client.SecretKeyUsername, client.SecretKeyPassword}}),
		client.SecretKeyUsername: []byte("app"),
		client.SecretKeyPassword: []byte("apppw"),
	})
	var rl reloads
	c, err := client.OpenOptions{ReloadInterval: 50 * time.Millisecond, Dial: (&recorder{}).Dial, OnReload: rl.handle}.Open(ctx, m.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if who, err := c.Do(ctx, "ACL", "WHOAMI").Text(); err != nil || who != "app" {
		t.Fatalf("ACL WHOAMI = %q, %v", who, err)
	}
	m.update(t, map[string][]byte{
		client.ConfigFileName:    withRconn(t, raw, map[string]any{"secretKeys": []string{client.SecretKeyPassword}}),
		client.SecretKeyPassword: []byte("defaultpw"),
	})
	waitReloadOK(t, &rl)
	if err := admin.Do(ctx, "CLIENT", "KILL", "USER", "app").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "commands as the default user", func() error {
		who, err := c.Do(ctx, "ACL", "WHOAMI").Text()
		if err == nil && who != "default" {
			return fmt.Errorf("%w: ACL WHOAMI = %q", errNotYet, who)
		}
		return err
	})
}

// Dropping mutual TLS (the client certificate and key) is a legal update: new handshakes send
// no certificate.
func TestReloadClientCertRemoved(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	certs := redistest.NewTLS(t, redistest.TLSOptions{})
	srv := redistest.StartServer(t, redistest.ServerOptions{TLS: certs})
	admin := srv.Client()
	defer func() { _ = admin.Close() }()
	ctx := testCtx(t)
	cfg := &client.Config{
		RootNodes: []client.RootNodeConfig{{URL: "rediss://" + srv.Addr()}},
		Defaults:  client.DefaultsConfig{Socket: client.SocketConfig{TLS: true}},
		Rconn:     client.RconnConfig{Mode: client.ModeStandalone},
	}
	raw := render(t, cfg)
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	m := newMount(t, map[string][]byte{
		client.ConfigFileName: withRconn(t, raw, map[string]any{"secretKeys": []string{client.SecretKeyCA, client.SecretKeyCert, client.SecretKeyKey}}),
		client.SecretKeyCA:    read(certs.CAFile),
		client.SecretKeyCert:  read(certs.ClientCertFile),
		client.SecretKeyKey:   read(certs.ClientKeyFile),
	})
	var rl reloads
	c, err := client.OpenOptions{ReloadInterval: 50 * time.Millisecond, Dial: (&recorder{}).Dial, OnReload: rl.handle, MonitorInterval: time.Hour}.Open(ctx, m.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Set(ctx, "k", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	m.update(t, map[string][]byte{
		client.ConfigFileName: withRconn(t, raw, map[string]any{"secretKeys": []string{client.SecretKeyCA}}),
		client.SecretKeyCA:    read(certs.CAFile),
	})
	waitReloadOK(t, &rl)
	// The server still requires client certificates: new connections must now fail.
	if err := admin.Do(ctx, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "k", "2", 0).Err(); err == nil {
		t.Fatal("a new connection was accepted by a server that requires client certificates: the removed certificate is still sent")
	}
	if err := admin.Do(ctx, "CONFIG", "SET", "tls-auth-clients", "optional").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "SET without a client certificate", func() error { return c.Set(ctx, "k", "3", 0).Err() })
}

// A key named like a secret in the ConfigMap's directory never reaches AUTH: secret material
// comes only from the Secret's directory, whatever the order of the directories.
func TestOpenSecretsOnlyFromSecretDir(t *testing.T) {
	for _, tc := range []struct {
		name, serverPassword string
		secret               map[string][]byte
	}{
		{"secret has a password", "real", map[string][]byte{client.SecretKeyPassword: []byte("real")}},
		{"secret has none", "", map[string][]byte{"type": []byte("redis")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.StartServer(t, redistest.ServerOptions{Password: tc.serverPassword})
			raw := render(t, plainStandalone(srv.Addr()))
			cm := newMount(t, map[string][]byte{ // its config.sha256 (added by newMount) is not read either
				client.ConfigFileName:    raw,
				client.SecretKeyPassword: []byte("attacker"),
				client.SecretKeyUsername: []byte("attacker"),
			})
			sec := newMount(t, bindTo(raw, tc.secret))
			opts := client.OpenOptions{ReloadInterval: -1, Dial: (&recorder{}).Dial, ReconnectStrategy: client.NoReconnect}
			for _, dirs := range [][]string{{cm.dir, sec.dir}, {sec.dir, cm.dir}, {"OpenMounts"}} {
				ctx, cancel := contextWithTimeout(t, 5*time.Second)
				var c *client.Client
				var err error
				if dirs[0] == "OpenMounts" {
					c, err = opts.OpenMounts(ctx, client.Mounts{Config: cm.dir, Secret: sec.dir})
				} else {
					c, err = opts.Open(ctx, dirs...)
				}
				cancel()
				if err != nil {
					t.Fatalf("Open(%v): %v", dirs, err)
				}
				err = c.Ping(testCtx(t)).Err()
				_ = c.Close()
				if err != nil {
					t.Fatalf("PING after Open(%v): %v", dirs, err)
				}
			}
		})
	}
}

// Two directories that both hold config.json leave it open which one is the ConfigMap's.
func TestOpenRefusesTwoConfigDirs(t *testing.T) {
	raw := render(t, plainStandalone("127.0.0.1:6379"))
	a := newMount(t, map[string][]byte{client.ConfigFileName: raw})
	b := newMount(t, map[string][]byte{client.ConfigFileName: raw, client.SecretKeyPassword: []byte("x")})
	if _, err := client.Open(testCtx(t), a.dir, b.dir); err == nil || !strings.Contains(err.Error(), "found in") {
		t.Fatalf("Open with config.json in both directories: %v", err)
	}
}

// A Secret mounted without a key that config.json lists (an app projecting only some of its
// keys) is waited for SecretWait, then what is there is applied and reported; later updates
// with the same mismatch do not wait again. config.json itself is bound to that Secret.
func TestReloadSecretWaitIsBounded(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	announced := "app-redis.rconn-test.invalid:6379"
	cfg := &client.Config{
		RootNodes:      []client.RootNodeConfig{{URL: "redis://" + announced}},
		NodeAddressMap: map[string]client.MappedAddress{announced: mapped(srv.Addr())},
		Rconn:          client.RconnConfig{Mode: client.ModeStandalone},
	}
	// files is one projected volume of the pair with token tok, without the username.
	files := func(tok string) map[string][]byte {
		sec := map[string][]byte{client.SecretKeyUsername: []byte("default")}
		raw, err := client.BindSecret(cfg, sec, tok)
		if err != nil {
			t.Fatal(err)
		}
		delete(sec, client.SecretKeyUsername)
		sec[client.ConfigFileName] = raw
		return sec
	}
	m := newMount(t, files("t1"))
	var rl reloads
	ctx := testCtx(t)
	c, err := client.OpenOptions{ReloadInterval: 20 * time.Millisecond, SecretWait: 300 * time.Millisecond, Dial: (&recorder{}).Dial, OnReload: rl.handle}.Open(ctx, m.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	for i, proxy := range []*proxy{startProxy(t, srv.Addr()), startProxy(t, srv.Addr())} {
		cfg.NodeAddressMap[announced] = mapped(proxy.Addr())
		before, _ := rl.last()
		m.update(t, files(fmt.Sprintf("t%d", i+2)))
		waitFor(t, "the map to apply", func() error {
			if got := c.Config().NodeAddressMap[announced]; got != mapped(proxy.Addr()) {
				return fmt.Errorf("%w: map has %v", errNotYet, got)
			}
			return nil
		})
		errs := rl.since(before)
		switch {
		case len(errs) == 0 || !errors.Is(errs[len(errs)-1], client.ErrSecretPending):
			t.Fatalf("update %d: the mismatch was not reported with the applied update: %v", i, errs)
		case i == 0 && !errors.Is(errs[0], client.ErrSecretPending):
			t.Fatalf("update 0 applied without waiting first: %v", errs)
		case i == 1 && len(errs) != 1:
			t.Fatalf("update 1 waited again for the same mismatch: %v", errs)
		}
	}
}

// A config.json whose digest its Secret never carries is not applied when SecretWait is over:
// it is rejected (ErrConfigNotBound) and the last good pair keeps running; the matching Secret
// arriving later applies it.
func TestReloadUnboundConfigIsNotAppliedAfterTheWait(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	announced := "app-redis.rconn-test.invalid:6379"
	cfg := &client.Config{
		RootNodes:      []client.RootNodeConfig{{URL: "redis://" + announced}},
		NodeAddressMap: map[string]client.MappedAddress{announced: mapped(srv.Addr())},
		Rconn:          client.RconnConfig{Mode: client.ModeStandalone},
	}
	sec1 := map[string][]byte{}
	raw1, err := client.BindSecret(cfg, sec1, "t1")
	if err != nil {
		t.Fatal(err)
	}
	cm, sec := newMount(t, map[string][]byte{client.ConfigFileName: raw1}), newMount(t, sec1)
	var rl reloads
	var ev events
	ctx := testCtx(t)
	c, err := client.OpenOptions{ReloadInterval: 20 * time.Millisecond, SecretWait: 300 * time.Millisecond, Dial: (&recorder{}).Dial, OnReload: rl.handle, OnEvent: ev.handle}.OpenMounts(ctx, client.Mounts{Config: cm.dir, Secret: sec.dir})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	p := startProxy(t, srv.Addr())
	cfg.NodeAddressMap[announced] = mapped(p.Addr())
	sec2 := map[string][]byte{}
	raw2, err := client.BindSecret(cfg, sec2, "t2")
	if err != nil {
		t.Fatal(err)
	}
	cm.update(t, map[string][]byte{client.ConfigFileName: raw2})
	waitFor(t, "the rejection after SecretWait", func() error {
		if _, err := rl.last(); !errors.Is(err, client.ErrConfigNotBound) {
			return fmt.Errorf("%w: %w", errNotYet, err)
		}
		return nil
	})
	if got := c.Config().NodeAddressMap[announced]; got != mapped(srv.Addr()) {
		t.Fatalf("an unbound config.json was applied: map has %v", got)
	}
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil || p.Accepted.Load() != 0 {
		t.Fatalf("SET = %v, %d connections through the unbound mapping", err, p.Accepted.Load())
	}
	sec.update(t, sec2)
	waitFor(t, "the pair to apply", func() error {
		if got := c.Config().NodeAddressMap[announced]; got != mapped(p.Addr()) {
			return fmt.Errorf("%w: map has %v", errNotYet, got)
		}
		return nil
	})
}

// A config.json over the bound is rejected without being parsed, and the last good one keeps
// running.
func TestReloadRejectsOversizedConfig(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	raw := render(t, plainStandalone(srv.Addr()))
	m := newMount(t, map[string][]byte{client.ConfigFileName: raw})
	var rl reloads
	ctx := testCtx(t)
	c, err := client.OpenOptions{ReloadInterval: 20 * time.Millisecond, Dial: (&recorder{}).Dial, OnReload: rl.handle}.Open(ctx, m.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	huge := append(append([]byte{}, raw[:len(raw)-2]...), []byte(`, "pad": "`+strings.Repeat("x", client.MaxConfigBytes)+`"}`)...)
	m.update(t, map[string][]byte{client.ConfigFileName: huge})
	waitFor(t, "the oversized config.json to be rejected", func() error {
		if _, err := rl.last(); err == nil || !strings.Contains(err.Error(), "larger than") {
			return fmt.Errorf("%w: %w", errNotYet, err)
		}
		return nil
	})
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
}

// dispatchers counts the event dispatcher goroutines of all clients.
func dispatchers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "client.(*dispatcher).run")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// No constructor leaves an event dispatcher goroutine behind when it fails.
func TestConstructorErrorsEndTheDispatcher(t *testing.T) {
	before := dispatchers()
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	closed := fmt.Sprintf("127.0.0.1:%d", port)
	ctx := testCtx(t)
	for name, open := range map[string]func() error{
		"NewCluster without root nodes": func() error {
			_, err := client.NewCluster(ctx, client.ClusterOptions{})
			return err
		},
		"NewCluster, nothing listens": func() error {
			_, err := client.NewCluster(ctx, client.ClusterOptions{RootNodes: []string{"redis://" + closed}, ReconnectStrategy: client.NoReconnect, Dial: (&recorder{}).Dial})
			return err
		},
		"NewClient, nothing listens": func() error {
			_, err := client.NewClient(ctx, client.Options{URL: "redis://" + closed, ReconnectStrategy: client.NoReconnect, Dial: (&recorder{}).Dial})
			return err
		},
		"Open, nothing listens": func() error {
			m := newMount(t, map[string][]byte{client.ConfigFileName: render(t, plainStandalone(closed))})
			_, err := client.OpenOptions{ReconnectStrategy: client.NoReconnect, Dial: (&recorder{}).Dial}.Open(ctx, m.dir)
			return err
		},
	} {
		if err := open(); err == nil {
			t.Fatalf("%s: no error", name)
		}
	}
	waitFor(t, "the dispatchers to end", func() error {
		if n := dispatchers(); n > before {
			return fmt.Errorf("%w: %d dispatcher goroutines, %d before", errNotYet, n, before)
		}
		return nil
	})
}

func contextWithTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(testCtx(t), d)
}

// config.json and the Secret are applied as a pair: a config.json rendered for a newer Secret
// (its rconn.secretToken) waits for that Secret, then both apply together.
func TestReloadWaitsForTheMatchingSecret(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	announced := "app-redis.rconn-test.invalid:6379"
	cfg := &client.Config{
		RootNodes:      []client.RootNodeConfig{{URL: "redis://" + announced}},
		NodeAddressMap: map[string]client.MappedAddress{announced: mapped(srv.Addr())},
		Rconn:          client.RconnConfig{Mode: client.ModeStandalone},
	}
	raw := withRconn(t, render(t, cfg), map[string]any{"secretToken": "t1"})
	cm := newMount(t, map[string][]byte{client.ConfigFileName: raw})
	sec := newMount(t, bindTo(raw, map[string][]byte{"rconn-token": []byte("t1")}))
	var rl reloads
	rec := &recorder{}
	ctx := testCtx(t)
	c, err := client.OpenOptions{ReloadInterval: 50 * time.Millisecond, Dial: rec.Dial, OnReload: rl.handle}.Open(ctx, cm.dir, sec.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	p := startProxy(t, srv.Addr())
	cfg.NodeAddressMap[announced] = mapped(p.Addr())
	raw = withRconn(t, render(t, cfg), map[string]any{"secretToken": "t2"})
	cm.update(t, map[string][]byte{client.ConfigFileName: raw})
	waitFor(t, "the report that config.json waits for its Secret", func() error {
		if _, err := rl.last(); !errors.Is(err, client.ErrSecretPending) {
			return fmt.Errorf("%w: %w", errNotYet, err)
		}
		return nil
	})
	if got := c.Config().NodeAddressMap[announced]; got != mapped(srv.Addr()) {
		t.Fatalf("config.json was applied before its Secret: map has %v", got)
	}
	sec.update(t, bindTo(raw, map[string][]byte{"rconn-token": []byte("t2")}))
	waitReloadOK(t, &rl)
	if got := c.Config().NodeAddressMap[announced]; got != mapped(p.Addr()) {
		t.Fatalf("map has %v after the matching Secret arrived", got)
	}
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil || p.Accepted.Load() == 0 {
		t.Fatalf("SET = %v, %d connections through the new mapping", err, p.Accepted.Load())
	}
}
