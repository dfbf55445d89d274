package client_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/rconn-dev/redis-connection-operator/pkg/client"
)

func fullConfig() *client.Config {
	return &client.Config{
		RootNodes: []client.RootNodeConfig{{URL: "rediss://node-0.rconn-test.invalid:6379"}, {URL: "rediss://node-1.rconn-test.invalid:6379"}},
		Defaults: client.DefaultsConfig{
			Socket: client.SocketConfig{TLS: true, ServerName: "redis.rconn.test", ConnectTimeout: 2500},
			Name:   "app",
		},
		UseReplicas:            true,
		MaxCommandRedirections: 16,
		NodeAddressMap: map[string]client.MappedAddress{
			"node-1.rconn-test.invalid:6379": {Host: "127.0.0.1", Port: 30001},
			"node-0.rconn-test.invalid:6379": {Host: "127.0.0.1", Port: 30000},
		},
		Rconn: client.RconnConfig{
			Mode:              client.ModeCluster,
			ReconnectStrategy: &client.ReconnectConfig{Type: client.ReconnectTypeExponentialBackoff, BaseMs: 50, CapMs: 2000, JitterMs: 200},
			AutoPipeline:      true,
			SecretFiles:       client.SecretFiles{Password: "redis-password"},
		},
	}
}

func standaloneConfig() *client.Config {
	return &client.Config{
		RootNodes: []client.RootNodeConfig{{URL: "rediss://app-redis.rconn-test.invalid:6380"}},
		Defaults: client.DefaultsConfig{
			Socket:   client.SocketConfig{TLS: true, ServerName: "redis.rconn.test", ConnectTimeout: 2500},
			Database: 3,
			Name:     "app",
		},
		NodeAddressMap: map[string]client.MappedAddress{"app-redis.rconn-test.invalid:6380": {Host: "127.0.0.1", Port: 30000}},
		Rconn:          client.RconnConfig{Mode: client.ModeStandalone, AutoPipeline: true},
	}
}

// Standalone configs also carry node-redis createClient's top-level url; Render fills it in
// without touching the caller's Config, and LoadConfig reads it back.
func TestRenderLoadRoundTripStandaloneURL(t *testing.T) {
	c := standaloneConfig()
	b, err := client.Render(c)
	if err != nil {
		t.Fatal(err)
	}
	if c.URL != "" {
		t.Fatalf("Render modified its argument: url %q", c.URL)
	}
	s := string(b)
	for _, want := range []string{`"url": "rediss://app-redis.rconn-test.invalid:6380/3",`, `"rootNodes": [`, `"url": "rediss://app-redis.rconn-test.invalid:6380"` + "\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("rendered standalone config lacks %s:\n%s", want, s)
		}
	}
	if !strings.HasPrefix(s, "{\n  \"url\": ") {
		t.Errorf("url is not the first key:\n%s", s)
	}
	back, err := client.LoadConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	want := standaloneConfig()
	want.URL = "rediss://app-redis.rconn-test.invalid:6380/3"
	if !reflect.DeepEqual(want, back) {
		t.Fatalf("round trip:\n%+v\n%+v", want, back)
	}
	if b2, _ := client.Render(back); string(b2) != s {
		t.Fatalf("Render of the loaded config differs:\n%s\n%s", s, b2)
	}
	// The database of the root node's URL wins; IPv6 stays bracketed; no database, no path.
	for root, wantURL := range map[string]string{
		"redis://127.0.0.1:7000/5": "redis://127.0.0.1:7000/5",
		"redis://[::1]:7000":       "redis://[::1]:7000",
		"redis://redis":            "redis://redis:6379",
	} {
		c := &client.Config{RootNodes: []client.RootNodeConfig{{URL: root}}, Rconn: client.RconnConfig{Mode: client.ModeStandalone}}
		b, err := client.Render(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := client.LoadConfig(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.URL != wantURL {
			t.Errorf("root %s: url %q, want %q", root, got.URL, wantURL)
		}
	}
	// Cluster configs have no top-level url; standalone files from before it still load.
	if b, _ := client.Render(fullConfig()); strings.Contains(string(b), "\n  \"url\"") {
		t.Errorf("cluster config has a top-level url:\n%s", b)
	}
	if _, err := client.LoadConfig([]byte(`{"rootNodes":[{"url":"redis://x:1"}],"rconn":{"mode":"standalone"}}`)); err != nil {
		t.Fatal(err)
	}
}

func TestRenderLoadRoundTrip(t *testing.T) {
	c := fullConfig()
	b, err := client.Render(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := client.LoadConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, back) {
		t.Fatalf("round trip changed the config:\n%+v\n%+v", c, back)
	}
	b2, _ := client.Render(back)
	if string(b) != string(b2) {
		t.Fatalf("Render is not deterministic:\n%s\n%s", b, b2)
	}
	s := string(b)
	// node-redis field names, sorted map keys, no secrets.
	for _, want := range []string{`"rootNodes"`, `"url": "rediss://node-0`, `"servername": "redis.rconn.test"`, `"connectTimeout": 2500`, `"useReplicas": true`, `"nodeAddressMap"`, `"host": "127.0.0.1"`, `"rconn"`, `"mode": "cluster"`} {
		if !strings.Contains(s, want) {
			t.Errorf("rendered config lacks %s:\n%s", want, s)
		}
	}
	if strings.Index(s, "node-0.rconn-test.invalid:6379\": {") > strings.Index(s, "node-1.rconn-test.invalid:6379\": {") {
		t.Errorf("map keys not sorted:\n%s", s)
	}
	for _, bad := range []string{"username\": \"", "\"password\":"} {
		if strings.Contains(s, `"defaults": {`+bad) {
			t.Errorf("credentials in config")
		}
	}
}

func TestLoadConfigIgnoresUnknownNodeRedisFields(t *testing.T) {
	c, err := client.LoadConfig([]byte(`{"rootNodes":[{"url":"redis://127.0.0.1:7000"}],"defaults":{"socket":{"keepAlive":5000}},"somethingElse":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.ModeOrDefault() != client.ModeCluster || len(c.RootNodes) != 1 {
		t.Fatalf("got %+v", c)
	}
}

func TestValidateErrors(t *testing.T) {
	cases := []struct {
		name, json, want string
	}{
		{"not json", `{"rootNodes": [`, "not valid JSON"},
		{"empty", ``, "empty"},
		{"no roots", `{}`, "at least one root node"},
		{"bad url", `{"rootNodes":[{"url":"http://x:1"}]}`, "rootNodes[0].url"},
		{"password in url", `{"rootNodes":[{"url":"redis://u:hunter2@x:1"}]}`, "credentials do not belong"},
		{"bad mode", `{"rootNodes":[{"url":"redis://x:1"}],"rconn":{"mode":"replication"}}`, `rconn.mode "replication"`},
		{"map key", `{"rootNodes":[{"url":"redis://x:1"}],"nodeAddressMap":{"nope":{"host":"a","port":1}}}`, "nodeAddressMap key"},
		{"map port", `{"rootNodes":[{"url":"redis://x:1"}],"nodeAddressMap":{"a:1":{"host":"b","port":70000}}}`, `nodeAddressMap["a:1"].port 70000`},
		{"map host", `{"rootNodes":[{"url":"redis://x:1"}],"nodeAddressMap":{"a:1":{"host":"","port":7}}}`, "empty host"},
		{"strategy type", `{"rootNodes":[{"url":"redis://x:1"}],"rconn":{"reconnectStrategy":{"type":"sometimes"}}}`, "reconnectStrategy.type"},
		{"fixed no delay", `{"rootNodes":[{"url":"redis://x:1"}],"rconn":{"reconnectStrategy":{"type":"fixedDelay"}}}`, "needs delayMs"},
		{"standalone two roots", `{"rootNodes":[{"url":"redis://x:1"},{"url":"redis://y:1"}],"rconn":{"mode":"standalone"}}`, "exactly one root node"},
		{"cluster db", `{"rootNodes":[{"url":"redis://x:1"}],"defaults":{"database":2}}`, "only has database 0"},
		{"rediss without tls", `{"rootNodes":[{"url":"rediss://x:1"}]}`, "defaults.socket.tls is false"},
		{"url in cluster mode", `{"url":"redis://x:1","rootNodes":[{"url":"redis://x:1"}]}`, "top-level url is for standalone mode"},
		{"url disagrees", `{"url":"redis://y:1","rootNodes":[{"url":"redis://x:1"}],"rconn":{"mode":"standalone"}}`, "disagrees with rootNodes[0]"},
		{"url database disagrees", `{"url":"redis://x:1/2","rootNodes":[{"url":"redis://x:1"}],"defaults":{"database":3},"rconn":{"mode":"standalone"}}`, "want redis://x:1/3"},
		{"url with password", `{"url":"redis://u:hunter2@x:1","rootNodes":[{"url":"redis://x:1"}],"rconn":{"mode":"standalone"}}`, "disagrees"},
		{"secret file path", `{"rootNodes":[{"url":"redis://x:1"}],"rconn":{"secretFiles":{"password":"../etc/passwd"}}}`, "rconn.secretFiles.password"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.LoadConfig([]byte(tc.json))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, client.ErrInvalidConfig) {
				t.Fatalf("got %v, want an ErrInvalidConfig containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

// An empty rconn.secretKeys ("no secret material configured") survives rendering and loading:
// it must not turn into "not listed" (nil), which means "a config.json without pairing".
func TestSecretKeysEmptyIsRendered(t *testing.T) {
	cfg := &client.Config{RootNodes: []client.RootNodeConfig{{URL: "redis://127.0.0.1:6379"}}, Rconn: client.RconnConfig{SecretKeys: []string{}}}
	b, err := client.Render(cfg)
	if err != nil {
		t.Fatal(err)
	}
	back, err := client.LoadConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.Rconn.SecretKeys == nil {
		t.Fatalf("empty secretKeys lost in %s", b)
	}
}
