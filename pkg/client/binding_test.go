package client_test

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/testing/hostile"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
)

const appPassword = "app-s3cret-pw"

// boundCluster starts a 3-master cluster announcing names nobody resolves, with ACL user app,
// and renders its pair (token t1) the way the controller does: config.json with a node address
// map and node IDs, and the Secret's files.
func boundCluster(t *testing.T) (rc *redistest.Cluster, raw []byte, secret map[string][]byte, dialed []string) {
	t.Helper()
	rc = redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname,
		Server: redistest.ServerOptions{Password: "admin-pw", Users: []redistest.User{{Name: "app", Password: appPassword}}}})
	cfg, dialed := mappedConfig(rc)
	cfg.Rconn.NodeIDs = map[string]client.MappedAddress{}
	for _, n := range rc.Nodes {
		cfg.Rconn.NodeIDs[n.ID] = mapped(n.Addr())
	}
	secret = map[string][]byte{client.SecretKeyUsername: []byte("app"), client.SecretKeyPassword: []byte(appPassword)}
	raw, err := client.BindSecret(cfg, secret, "t1")
	if err != nil {
		t.Fatal(err)
	}
	return rc, raw, secret, dialed
}

// steer is what someone who may edit the ConfigMap (not the Secret) does: every nodeAddressMap
// and nodeIds value names their listener, rconn.secretToken stays, and the ConfigMap gets a
// config.sha256 of its own that matches the edited file.
func steer(t *testing.T, raw []byte, to string) map[string][]byte {
	t.Helper()
	cfg, err := client.LoadConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	for k := range cfg.NodeAddressMap {
		cfg.NodeAddressMap[k] = mapped(to)
	}
	for k := range cfg.Rconn.NodeIDs {
		cfg.Rconn.NodeIDs[k] = mapped(to)
	}
	edited := render(t, cfg)
	if !strings.Contains(string(edited), `"secretToken": "t1"`) {
		t.Fatalf("the edit lost the token: %s", edited)
	}
	return map[string][]byte{client.ConfigFileName: edited, client.SecretKeyConfigDigest: []byte(client.ConfigDigest(edited))}
}

// The attack of issue 23 item 2: a client runs on a good pair; config.json is edited so that
// every nodeAddressMap and nodeIds value names an attacker's listener, the token unchanged.
// The client refuses the edit (an EventError wrapping ErrConfigNotBound), keeps working on the
// map it had, and the listener is never dialed: no HELLO/AUTH with the password reaches it.
func TestReloadRefusesASteeredConfig(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	rc, raw, secret, dialed := boundCluster(t)
	sink := hostile.StartSink(t)
	cm, sec := newMount(t, map[string][]byte{client.ConfigFileName: raw}), newMount(t, secret)
	var ev events
	rec := &recorder{}
	ctx := testCtx(t)
	c, err := client.OpenOptions{ReloadInterval: 20 * time.Millisecond, SecretWait: 200 * time.Millisecond, Dial: rec.Dial, OnEvent: ev.handle}.OpenMounts(ctx, client.Mounts{Config: cm.dir, Secret: sec.dir})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	before := c.Config()
	if err := setGetAcrossSlots(t, c, "before"); err != nil {
		t.Fatal(err)
	}

	cm.writeRaw(t, steer(t, raw, sink.Addr()))
	refused := func() bool {
		for _, e := range ev.list() {
			if e.Type == client.EventError && errors.Is(e.Err, client.ErrConfigNotBound) {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(5 * time.Second); !refused() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	defer func() {
		if !refused() {
			t.Errorf("no EventError wrapping ErrConfigNotBound; events %v", ev.types())
		}
	}()
	// New connections must be made through the map in use: drop every connection of app.
	for _, n := range rc.Nodes {
		admin := n.Client()
		err := admin.Do(ctx, "CLIENT", "KILL", "USER", "app").Err()
		_ = admin.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // longer than SecretWait: the edit is not applied late either
	worked := setGetAcrossSlots(t, c, "after")
	if sink.Saw(appPassword) || sink.Accepted() > 0 {
		t.Fatalf("the attacker's listener was dialed %d times and saw the password: %v; requests %q", sink.Accepted(), sink.Saw(appPassword), sink.Requests())
	}
	if worked != nil {
		t.Fatalf("commands after the edit: %v", worked)
	}
	if got := c.Config(); !maps.Equal(got.NodeAddressMap, before.NodeAddressMap) || !maps.Equal(got.Rconn.NodeIDs, before.Rconn.NodeIDs) {
		t.Errorf("the client now runs on another map: %v, node IDs %v", got.NodeAddressMap, got.Rconn.NodeIDs)
	}
	rec.AssertOnly(t, dialed...)
}

// Open refuses a tampered pair at once, naming the problem (no wait, no hang), and so does it a
// Secret without the digest: this API was never released without it, so none means "not ours".
func TestOpenRefusesAnUnboundConfig(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	_, raw, secret, _ := boundCluster(t)
	sink := hostile.StartSink(t)
	noDigest := maps.Clone(secret)
	delete(noDigest, client.SecretKeyConfigDigest)
	for _, tc := range []struct {
		name   string
		config map[string][]byte
		secret map[string][]byte
		want   string
	}{
		{"edited, token unchanged", steer(t, raw, sink.Addr()), secret, "was edited after the controller rendered it"},
		{"a Secret without config.sha256", map[string][]byte{client.ConfigFileName: raw}, noDigest, "has no config.sha256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cm, sec := newMount(t, nil), newMount(t, tc.secret)
			cm.writeRaw(t, tc.config)
			ctx, cancel := contextWithTimeout(t, 20*time.Second)
			defer cancel()
			start := time.Now()
			c, err := client.OpenOptions{Dial: (&recorder{}).Dial, SecretWait: time.Minute}.OpenMounts(ctx, client.Mounts{Config: cm.dir, Secret: sec.dir})
			if err == nil {
				_ = c.Close()
				t.Fatal("Open accepted the pair")
			}
			if !errors.Is(err, client.ErrConfigNotBound) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v; want ErrConfigNotBound saying %q", err, tc.want)
			}
			if waited := time.Since(start); waited > 10*time.Second {
				t.Errorf("Open took %s to refuse (it must not wait for a Secret that cannot come)", waited)
			}
		})
	}
	if sink.Accepted() > 0 {
		t.Fatalf("the attacker's listener was dialed")
	}
}

// A re-rendered pair (new map, new token, new digest) is applied once both halves arrived,
// in either order; the half that came first waits.
func TestReloadAppliesARerenderedPairInEitherOrder(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	rc, raw, secret, _ := boundCluster(t)
	cm, sec := newMount(t, map[string][]byte{client.ConfigFileName: raw}), newMount(t, secret)
	var rl reloads
	ctx := testCtx(t)
	c, err := client.OpenOptions{ReloadInterval: 20 * time.Millisecond, Dial: (&recorder{}).Dial, OnReload: rl.handle}.OpenMounts(ctx, client.Mounts{Config: cm.dir, Secret: sec.dir})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	for i, secretFirst := range []bool{false, true} {
		cfg := c.Config()
		proxies := map[string]*proxy{}
		for announced, addr := range rc.AddressMap() {
			proxies[announced] = startProxy(t, addr)
			cfg.NodeAddressMap[announced] = mapped(proxies[announced].Addr())
		}
		next := map[string][]byte{client.SecretKeyUsername: []byte("app"), client.SecretKeyPassword: []byte(appPassword)}
		nextRaw, err := client.BindSecret(cfg, next, fmt.Sprintf("t%d", i+2))
		if err != nil {
			t.Fatal(err)
		}
		first, second := func() { cm.writeRaw(t, map[string][]byte{client.ConfigFileName: nextRaw}) }, func() { sec.writeRaw(t, next) }
		if secretFirst {
			first, second = second, first
		}
		n, _ := rl.last()
		first()
		waitFor(t, "the half that came first to wait", func() error {
			for _, err := range rl.since(n) {
				if errors.Is(err, client.ErrSecretPending) {
					return nil
				}
			}
			return errNotYet
		})
		if got := c.Config().NodeAddressMap; maps.Equal(got, cfg.NodeAddressMap) {
			t.Fatalf("update %d applied before its other half", i)
		}
		second()
		waitFor(t, "the pair to apply", func() error {
			if got := c.Config().NodeAddressMap; !maps.Equal(got, cfg.NodeAddressMap) {
				return fmt.Errorf("%w: map %v", errNotYet, got)
			}
			return nil
		})
		for _, err := range rl.since(n) {
			if errors.Is(err, client.ErrConfigNotBound) {
				t.Errorf("update %d: a legitimate pair was reported as not bound: %v", i, err)
			}
		}
	}
}

// BenchmarkConfigDigest is what binding adds to decoding a new version: one SHA-256 of
// config.json, here of the largest one a ConfigMap can hold.
func BenchmarkConfigDigest(b *testing.B) {
	raw := make([]byte, client.MaxConfigBytes)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		_ = client.ConfigDigest(raw)
	}
}
