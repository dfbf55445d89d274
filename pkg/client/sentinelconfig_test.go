package client_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// sentinelConfigJSON is a sentinel-mode config.json as the controller renders it.
const sentinelConfigJSON = `{
  "url": "rediss://127.0.0.1:7001/2",
  "nodeAddressMap": {
    "redis-0.redis-headless.ns.svc:6379": {"host": "127.0.0.1", "port": 7001},
    "redis-0.redis-headless.ns.svc:26379": {"host": "127.0.0.1", "port": 7101}
  },
  "useReplicas": true,
  "name": "mymaster",
  "sentinelRootNodes": [{"host": "127.0.0.1", "port": 7101}, {"host": "127.0.0.1", "port": 7102}],
  "nodeClientOptions": {"socket": {"tls": true, "servername": "redis.example", "connectTimeout": 5000}, "database": 2, "name": "app"},
  "sentinelClientOptions": {"socket": {"tls": true, "connectTimeout": 5000}},
  "replicaPoolSize": 1,
  "rconn": {"mode": "sentinel", "sentinels": ["redis-0.redis-headless.ns.svc:26379"],
            "secretKeys": ["username", "password", "sentinel-password", "sentinel-ca.crt"]}
}`

func TestSentinelConfigLoads(t *testing.T) {
	c, err := client.LoadConfig([]byte(sentinelConfigJSON))
	if err != nil {
		t.Fatal(err)
	}
	if c.ModeOrDefault() != client.ModeSentinel || c.Name != "mymaster" || len(c.SentinelRootNodes) != 2 || !c.NodeClientOptions.Socket.TLS ||
		c.NodeClientOptions.Database != 2 || !c.SentinelClientOptions.Socket.TLS || c.ReplicaPoolSize != 1 || len(c.Rconn.Sentinels) != 1 {
		t.Fatalf("decoded %+v", c)
	}
	// Render keeps the node-redis createSentinel field names.
	out, err := client.Render(c)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "sentinelRootNodes", "nodeClientOptions", "sentinelClientOptions", "nodeAddressMap", "url", "useReplicas", "replicaPoolSize"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("rendered config lacks %q:\n%s", k, out)
		}
	}
	for _, k := range []string{"rootNodes", "defaults"} {
		if v, ok := doc[k]; ok && v != nil {
			t.Errorf("rendered sentinel config has %q = %v", k, v)
		}
	}
}

func TestSentinelConfigErrors(t *testing.T) {
	base := func(mut string) string {
		return `{"name":"mymaster","sentinelRootNodes":[{"host":"127.0.0.1","port":26379}],` + mut + `"rconn":{"mode":"sentinel"}}`
	}
	for _, tc := range []struct{ name, json, want string }{
		{"no master name", `{"sentinelRootNodes":[{"host":"127.0.0.1","port":26379}],"rconn":{"mode":"sentinel"}}`, "sentinel mode needs the master name"},
		{"master name with a space", `{"name":"my master","sentinelRootNodes":[{"host":"127.0.0.1","port":26379}],"rconn":{"mode":"sentinel"}}`, "sentinel mode needs the master name"},
		{"no sentinels", `{"name":"m","rconn":{"mode":"sentinel"}}`, "at least one sentinel is required"},
		{"sentinel port 0", `{"name":"m","sentinelRootNodes":[{"host":"127.0.0.1","port":0}],"rconn":{"mode":"sentinel"}}`, "sentinelRootNodes[0].port 0"},
		{"rootNodes in sentinel mode", base(`"rootNodes":[{"url":"redis://x:1"}],`), "do not apply to sentinel mode"},
		{"defaults in sentinel mode", base(`"defaults":{"database":1},`), "do not apply to sentinel mode"},
		{"minimizeConnections in sentinel mode", base(`"minimizeConnections":true,`), "do not apply to sentinel mode"},
		{"socket path for data nodes", base(`"nodeClientOptions":{"socket":{"path":"/run/redis.sock"}},`), "nodeClientOptions.socket.path"},
		{"database on sentinels", base(`"sentinelClientOptions":{"database":1},`), "sentinels have no databases"},
		{"url with a password", base(`"url":"redis://:pw@127.0.0.1:6379",`), "credentials do not belong in the config"},
		{"url scheme against tls", base(`"url":"rediss://127.0.0.1:6379",`), "rediss:// exactly when nodeClientOptions.socket.tls"},
		{"url database against nodeClientOptions", base(`"url":"redis://127.0.0.1:6379/3",`), "the database must be nodeClientOptions.database"},
		{"bad announced sentinel", base(`"rconn":{"mode":"sentinel","sentinels":["nope"]},`), "rconn.sentinels[0]"},
		{"sentinel fields in cluster mode", `{"rootNodes":[{"url":"redis://x:1"}],"name":"m"}`, "apply to sentinel mode only"},
		{"bad sentinel secret file", base(`"rconn":{"mode":"sentinel","secretFiles":{"sentinelPassword":"../x"}},`), "rconn.secretFiles.sentinelPassword"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.LoadConfig([]byte(tc.json))
			if !errors.Is(err, client.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an ErrInvalidConfig containing %q", err, tc.want)
			}
		})
	}
}

func TestSentinelBindingKeys(t *testing.T) {
	c, err := client.LoadConfig([]byte(sentinelConfigJSON))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"host": "127.0.0.1", "port": "7001", "sentinel.master": "mymaster", "sentinel.nodes": "127.0.0.1:7101,127.0.0.1:7102"}
	if got := client.SentinelBindingKeys(c); !reflect.DeepEqual(got, want) {
		t.Fatalf("SentinelBindingKeys = %v, want %v", got, want)
	}
	if client.SentinelBindingKeys(&client.Config{}) != nil {
		t.Fatal("cluster mode: want no sentinel keys")
	}
}

func TestBindSecretListsSentinelKeys(t *testing.T) {
	c, err := client.LoadConfig([]byte(sentinelConfigJSON))
	if err != nil {
		t.Fatal(err)
	}
	secret := map[string][]byte{"password": []byte("p"), client.SecretKeySentinelPassword: []byte("sp"), client.SecretKeySentinelUsername: []byte("su")}
	if _, err := client.BindSecret(c, secret, "tok"); err != nil {
		t.Fatal(err)
	}
	if want := []string{"password", "sentinel-username", "sentinel-password"}; !reflect.DeepEqual(c.Rconn.SecretKeys, want) {
		t.Fatalf("secretKeys = %v, want %v", c.Rconn.SecretKeys, want)
	}
}
