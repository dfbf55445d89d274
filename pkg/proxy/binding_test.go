package proxy_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/rconn-dev/redis-connection-operator/internal/testing/hostile"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubeletmount"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// Issue 23 item 2 through the proxy: config.json is edited so that every nodeAddressMap value
// names an attacker's listener, the token unchanged (the Secret is not touched). The proxy's
// Watcher refuses the edit (ErrConfigNotBound), the proxy keeps reaching the nodes it had, and
// the listener never sees a connection, let alone the password.
func TestProxyRefusesASteeredConfig(t *testing.T) {
	t.Parallel() // its own cluster and proxy: overlaps the other tests' waits
	const password = "proxy-s3cret-pw"
	e := startEnv(t, envOptions{password: password})
	sink := hostile.StartSink(t)
	// The app authenticates through the proxy with the Secret's password, as rconn-demo does.
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{e.p.SeedAddr()}, Password: password, Dialer: nettest.NewRecorder(nil).Dial, MaxRedirects: 8,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
	t.Cleanup(func() { _ = c.Close() })
	setGet := func(tag string) error {
		for _, k := range shardKeys() {
			if err := c.Set(ctx(t), k, tag, 0).Err(); err != nil {
				return fmt.Errorf("SET %s: %w", k, err)
			}
			if v, err := c.Get(ctx(t), k).Result(); err != nil || v != tag {
				return fmt.Errorf("GET %s = %q, %w", k, v, err)
			}
		}
		return nil
	}
	if err := setGet("before"); err != nil {
		t.Fatal(err)
	}

	files := map[string][]byte{}
	for _, name := range []string{client.ConfigFileName, client.SecretKeyPassword, client.SecretKeyToken, client.SecretKeyConfigDigest} {
		b, err := os.ReadFile(filepath.Join(e.mount, name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	cfg, err := client.LoadConfig(files[client.ConfigFileName])
	if err != nil {
		t.Fatal(err)
	}
	h, p, _ := net.SplitHostPort(sink.Addr())
	port, _ := strconv.Atoi(p)
	for k := range cfg.NodeAddressMap {
		cfg.NodeAddressMap[k] = client.MappedAddress{Host: h, Port: port}
	}
	if files[client.ConfigFileName], err = client.Render(cfg); err != nil {
		t.Fatal(err)
	}
	if err := kubeletmount.Write(e.mount, files, 0o644); err != nil {
		t.Fatal(err)
	}
	refused := func() bool {
		for _, err := range e.watchErrs.list() {
			if errors.Is(err, client.ErrConfigNotBound) {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(5 * time.Second); !refused() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !refused() {
		t.Errorf("the proxy's Watcher did not report ErrConfigNotBound: %v", e.watchErrs.list())
	}
	// The proxy's own connections to the nodes must be made anew, through the map in use.
	for _, n := range e.rc.Nodes {
		admin := n.Client()
		err := admin.Do(ctx(t), "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err()
		_ = admin.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	worked := setGet("after")
	for deadline := time.Now().Add(10 * time.Second); worked != nil && time.Now().Before(deadline); worked = setGet("after") {
		time.Sleep(50 * time.Millisecond)
	}
	if sink.Accepted() > 0 || sink.Saw(password) {
		t.Fatalf("the attacker's listener accepted %d connections (password seen: %v): %q", sink.Accepted(), sink.Saw(password), sink.Requests())
	}
	if worked != nil {
		t.Fatalf("commands through the proxy on the map in use: %v", worked)
	}
	e.dial.AssertOnlyDialed(t, e.rc.AddressMap())
}
