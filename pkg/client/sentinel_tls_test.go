package client_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// Sentinel TLS and ACL through Open, and their live rotation: a group whose data nodes and
// sentinels speak TLS only (client certificates required) with ACL users of their own, data
// and sentinel material from different CAs. Open on a config with sentinelClientOptions TLS and
// both sides' users writes through it. Then the sentinels' CA, client certificate and password
// are rotated in the mounted Secret while the sentinels restart with certificates of a new CA
// and the sentinel user's old password is revoked: the running client (hot reload) follows a
// failover through the rotated sentinels; a client opened at the same time with hot reload off
// (what every client did before reload covered the sentinels' material) cannot. A config with
// sentinel TLS off never opens: the sentinels refuse plaintext.
func TestOpenSentinelTLSAndACLLiveRotation(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	dataTLS := redistest.NewTLS(t, redistest.TLSOptions{})
	sentTLS := redistest.NewTLS(t, redistest.TLSOptions{})
	rotatedTLS := redistest.NewTLS(t, redistest.TLSOptions{}) // the sentinels' next CA and certificates
	// The servers trust all three CAs (sentinels dial data nodes and each other with their own
	// certificate, across the rotation); each app trusts exactly one CA per side.
	bundle := append(append(append([]byte(nil), dataTLS.CA.CertPEM...), sentTLS.CA.CertPEM...), rotatedTLS.CA.CertPEM...)
	for _, m := range []*redistest.TLS{dataTLS, sentTLS, rotatedTLS} {
		if err := os.WriteFile(m.CAFile, bundle, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	g := startSentinelGroupWith(t, redistest.SentinelGroupOptions{
		Data: redistest.ServerOptions{TLS: dataTLS, Password: "data-admin", Users: []redistest.User{{Name: "app", Password: "app-pw"}}},
		Sentinel: redistest.ServerOptions{TLS: sentTLS, Password: "sentinel-admin", Users: []redistest.User{
			{Name: "watcher", Password: "watcher-1"},
		}},
	})
	cfg, _, d, proxies := g.config(t)
	cfg.NodeClientOptions.Socket.TLS = true
	cfg.SentinelClientOptions.Socket.TLS = true
	files := map[string][]byte{
		client.SecretKeyUsername: []byte("app"), client.SecretKeyPassword: []byte("app-pw"),
		client.SecretKeyCA: dataTLS.CA.CertPEM, client.SecretKeyCert: dataTLS.Client.CertPEM, client.SecretKeyKey: dataTLS.Client.KeyPEM,
		client.SecretKeySentinelUsername: []byte("watcher"), client.SecretKeySentinelPassword: []byte("watcher-1"),
		client.SecretKeySentinelCA: sentTLS.CA.CertPEM, client.SecretKeySentinelCert: sentTLS.Client.CertPEM, client.SecretKeySentinelKey: sentTLS.Client.KeyPEM,
	}

	// Without the sentinel TLS wiring nothing opens: the sentinels speak TLS only.
	plain := *cfg
	plain.SentinelClientOptions.Socket.TLS = false
	pfiles := maps.Clone(files)
	pfiles[client.ConfigFileName] = render(t, &plain)
	pctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	pc, err := client.OpenOptions{Dial: d.Dial, ReloadInterval: -1}.Open(pctx, newMount(t, pfiles).dir)
	cancel()
	if err == nil {
		_ = pc.Close()
		t.Fatal("Open with sentinel TLS off succeeded against TLS-only sentinels")
	}
	t.Logf("sentinel TLS off: %v", err)

	files[client.ConfigFileName] = render(t, cfg)
	m := newMount(t, files)
	var rl reloads
	live, err := client.OpenOptions{Dial: d.Dial, ReloadInterval: 50 * time.Millisecond, OnReload: rl.handle}.Open(ctx, m.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = live.Close() }()
	fd := &refusingDial{announced: d.announced}
	frozen, err := client.OpenOptions{Dial: fd.Dial, ReloadInterval: -1}.Open(ctx, m.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = frozen.Close() }()
	for _, c := range []*client.Client{live, frozen} {
		if err := c.Set(ctx, "k", "before", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}

	// Rotate: the Secret first (as an operator would, cert-manager renewing the sentinels' CA),
	// then the sentinels, one by one, onto the new CA, and the sentinel user's password.
	files[client.SecretKeySentinelCA] = rotatedTLS.CA.CertPEM
	files[client.SecretKeySentinelCert], files[client.SecretKeySentinelKey] = rotatedTLS.Client.CertPEM, rotatedTLS.Client.KeyPEM
	files[client.SecretKeySentinelPassword] = []byte("watcher-2")
	m.update(t, files)
	waitReloadOK(t, &rl)
	var before int64
	for _, p := range proxies[len(g.Data):] {
		before += p.Accepted.Load()
	}
	liveDials, frozenDials := d.dials.Load(), fd.dials.Load()
	for _, s := range g.Sentinels {
		s.RestartWithTLS(t, rotatedTLS)
		admin := s.Client()
		err := admin.Do(ctx, "ACL", "SETUSER", "watcher", "resetpass", ">watcher-2").Err()
		_ = admin.Close()
		if err != nil {
			t.Fatalf("sentinel %s: ACL SETUSER: %v", s.Announced, err)
		}
	}
	if err := g.WaitSettled(ctx, -1); err != nil {
		t.Fatal(err)
	}

	// A failover: the clients must ask the (rotated) sentinels for the new master.
	old, err := g.Failover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nm, err := g.WaitNewMaster(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	// Until the sentinels turned the old master into a replica it still takes writes: wait,
	// so that a write can only succeed on the new master.
	if err := g.WaitSettled(ctx, nm); err != nil {
		t.Fatal(err)
	}
	admin := g.Data[nm].Client()
	defer func() { _ = admin.Close() }()
	n := 0
	waitFor(t, "the live client's writes on the new master", func() error {
		n++
		if err := live.Set(ctx, "k", "after-"+strconv.Itoa(n), 0).Err(); err != nil {
			return err
		}
		if v, err := admin.Get(ctx, "k").Result(); err != nil || v != "after-"+strconv.Itoa(n) {
			return fmt.Errorf("new master has k=%q (%w)", v, err)
		}
		return nil
	})
	var after int64
	for _, p := range proxies[len(g.Data):] {
		after += p.Accepted.Load()
	}
	if after == before {
		t.Error("no sentinel connection after the rotation")
	}
	// The client with reload off still holds the old CA, certificate and password: it cannot
	// ask the rotated sentinels where the master went.
	var frozenErr error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		err := frozen.Set(wctx, "frozen", "x", 0).Err()
		cancel()
		if err == nil {
			t.Fatal("a client that never reloaded wrote after the sentinels' rotation and a failover: the test does not exercise the rotation")
		}
		frozenErr = err
	}
	if n, err := admin.Exists(ctx, "frozen").Result(); err != nil || n != 0 {
		t.Fatalf("the new master has the frozen client's key (%d, %v)", n, err)
	}
	if errors.Is(frozenErr, context.Canceled) {
		t.Fatal(frozenErr)
	}
	if n := d.refused.Load() + fd.refused.Load(); n != 0 {
		t.Errorf("%d dials of announced or real addresses", n)
	}
	t.Logf("from the rotation to the live client's write on the new master: %d sentinel connections through the map; dials: live client %d, frozen client %d (its last error: %v)",
		after-before, d.dials.Load()-liveDials, fd.dials.Load()-frozenDials, frozenErr)
}
