package client

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// Every Config field says what it is to a connection (configFields): a new field that does not
// fails here, before it can silently be left out of ConnectionKey (two configurations sharing
// connections they should not) or out of RestartFields (a change silently not applied).
func TestConfigFieldsClassified(t *testing.T) {
	_, unclassified := classifiedFields(&Config{})
	if len(unclassified) > 0 {
		t.Fatalf("Config fields not in configFields (classify them: key? restart?): %v", unclassified)
	}
	// And no entry names a field that is gone.
	fields, _ := classifiedFields(&Config{})
	seen := map[string]bool{}
	for _, f := range fields {
		seen[f.path] = true
	}
	for path := range configFields {
		if !seen[path] {
			t.Errorf("configFields names %q, which Config does not have", path)
		}
	}
}

// Every cluster.Options field is either set by ConnOptions from the configuration (and so
// covered by ConnectionKey through configFields) or listed in optionsFromCaller with why.
func TestConnOptionsCoverClusterOptions(t *testing.T) {
	cfg := &Config{
		RootNodes:              []RootNodeConfig{{URL: "rediss://127.0.0.1:7000/2"}},
		Defaults:               DefaultsConfig{Socket: SocketConfig{TLS: true, ServerName: "redis.example", ConnectTimeout: 1500}, Name: "app"},
		MaxCommandRedirections: 3,
		NodeAddressMap:         map[string]MappedAddress{"redis-0.redis.ns.svc:6379": {Host: "127.0.0.1", Port: 7000}},
		Rconn:                  RconnConfig{Mode: ModeStandalone},
	}
	o, tlsr, err := cfg.ConnOptions(Secret{Username: "u", Password: "p", TLS: &rtls.Material{}})
	if err != nil {
		t.Fatal(err)
	}
	if tlsr == nil {
		t.Fatal("no Reloadable for a TLS config")
	}
	set := map[string]bool{}
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		for i := range v.NumField() {
			name := prefix + v.Type().Field(i).Name
			if v.Field(i).Kind() == reflect.Struct && name == "Defaults" {
				walk(v.Field(i), name+".")
				continue
			}
			set[name] = !v.Field(i).IsZero()
		}
	}
	walk(reflect.ValueOf(o), "")
	// Fields this config leaves zero on purpose (cluster mode only, or no node IDs).
	// Sentinel: sentinel mode only (TestConnOptionsSentinel).
	zeroHere := []string{"UseReplicas", "MinimizeConnections", "NodeIDMap", "Sentinel"}
	for name, nonZero := range set {
		_, caller := optionsFromCaller[name]
		switch {
		case caller && nonZero:
			t.Errorf("%s is listed as the caller's but ConnOptions sets it", name)
		case !caller && !nonZero && !slices.Contains(zeroHere, name):
			t.Errorf("cluster.Options.%s is neither set by ConnOptions nor listed in optionsFromCaller", name)
		}
	}
	for name := range optionsFromCaller {
		if _, ok := set[name]; !ok {
			t.Errorf("optionsFromCaller names %q, which cluster.Options does not have", name)
		}
	}
	// Parsed addresses, never the URL (the proxy's copy passed URLs).
	if o.RootNodes[0].URL != "" || o.RootNodes[0].Address != (cluster.Address{Host: "127.0.0.1", Port: 7000}) {
		t.Errorf("root node %+v, want the parsed address only", o.RootNodes[0])
	}
	if o.Defaults.DB != 2 || !o.Standalone || o.Defaults.ClientName != "app" || o.Defaults.ConnectTimeout.Milliseconds() != 1500 {
		t.Errorf("options %+v", o)
	}
}

// keyMutations change one key field of configFields each, and the secret material: each must
// give another ConnectionKey. TestConnectionKeyCoversEveryKeyField checks that they cover every
// key field.
var keyMutations = map[string]func(c *Config, s *Secret){
	"rootNodes":              func(c *Config, _ *Secret) { c.RootNodes[0].URL = "redis://127.0.0.1:7001" },
	"defaults":               func(c *Config, _ *Secret) { c.Defaults.Socket.ConnectTimeout = 99 },
	"useReplicas":            func(c *Config, _ *Secret) { c.UseReplicas = true },
	"minimizeConnections":    func(c *Config, _ *Secret) { c.MinimizeConnections = true },
	"maxCommandRedirections": func(c *Config, _ *Secret) { c.MaxCommandRedirections = 4 },
	"nodeAddressMap": func(c *Config, _ *Secret) {
		c.NodeAddressMap = map[string]MappedAddress{"a:1": {Host: "127.0.0.1", Port: 2}}
	},
	"rconn.mode":                  func(c *Config, _ *Secret) { c.Rconn.Mode = ModeStandalone },
	"rconn.tlsInsecureSkipVerify": func(c *Config, _ *Secret) { c.Rconn.TLSInsecureSkipVerify = true },
	"secret.username":             func(_ *Config, s *Secret) { s.Username = "other" },
	"secret.password":             func(_ *Config, s *Secret) { s.Password = "other" },
	"secret.tls":                  func(_ *Config, s *Secret) { s.TLS = &rtls.Material{CA: []byte("ca")} },
	"name":                        func(c *Config, _ *Secret) { c.Name = "other" },
	"sentinelRootNodes": func(c *Config, _ *Secret) {
		c.SentinelRootNodes = []MappedAddress{{Host: "127.0.0.1", Port: 26379}}
	},
	"nodeClientOptions":                   func(c *Config, _ *Secret) { c.NodeClientOptions.Database = 2 },
	"sentinelClientOptions":               func(c *Config, _ *Secret) { c.SentinelClientOptions.Socket.ServerName = "s" },
	"replicaPoolSize":                     func(c *Config, _ *Secret) { c.ReplicaPoolSize = 1 },
	"rconn.sentinelTlsInsecureSkipVerify": func(c *Config, _ *Secret) { c.Rconn.SentinelTLSInsecureSkipVerify = true },
	"rconn.sentinels":                     func(c *Config, _ *Secret) { c.Rconn.Sentinels = []string{"s-0:26379"} },
	"secret.sentinelUsername":             func(_ *Config, s *Secret) { s.SentinelUsername = "other" },
	"secret.sentinelPassword":             func(_ *Config, s *Secret) { s.SentinelPassword = "other" },
	"secret.sentinelTls":                  func(_ *Config, s *Secret) { s.SentinelTLS = &rtls.Material{CA: []byte("ca")} },
}

func TestConnectionKeyCoversEveryKeyField(t *testing.T) {
	base := func() (*Config, Secret) {
		return &Config{RootNodes: []RootNodeConfig{{URL: "redis://127.0.0.1:7000"}}}, Secret{Username: "u", Password: "p"}
	}
	c0, s0 := base()
	k0 := ConnectionKey(c0, s0)
	if c1, s1 := base(); ConnectionKey(c1, s1) != k0 {
		t.Fatal("ConnectionKey is not deterministic")
	}
	// The default mode and secret file names are the same configuration as the explicit ones.
	if c1, s1 := base(); func() bool { c1.Rconn.Mode = ModeCluster; return ConnectionKey(c1, s1) != k0 }() {
		t.Error("mode \"\" and \"cluster\" give different keys")
	}
	for name, mutate := range keyMutations {
		c, s := base()
		mutate(c, &s)
		if ConnectionKey(c, s) == k0 {
			t.Errorf("%s changed, ConnectionKey did not", name)
		}
	}
	for path, role := range configFields {
		if _, ok := keyMutations[path]; role.key && !ok {
			t.Errorf("key field %q has no mutation in keyMutations", path)
		}
	}
	// What is not a key field shares: a different script or reconnect strategy is not another
	// connection.
	c, s := base()
	c.Rconn.AutoPipeline, c.Rconn.SecretToken = true, "t"
	c.Rconn.ReconnectStrategy = &ReconnectConfig{Type: ReconnectTypeNone}
	if ConnectionKey(c, s) != k0 {
		t.Error("a field that is not a key field changed ConnectionKey")
	}
}

// RestartFields comes from configFields: the restart fields, named by JSON path in struct order,
// and nothing for the live ones.
func TestRestartFieldsFromTable(t *testing.T) {
	a := &Config{RootNodes: []RootNodeConfig{{URL: "redis://127.0.0.1:7000"}}}
	b := a.clone()
	b.NodeAddressMap = map[string]MappedAddress{"a:1": {Host: "127.0.0.1", Port: 2}}
	b.Rconn.NodeIDs = map[string]MappedAddress{"x": {Host: "127.0.0.1", Port: 2}}
	b.Rconn.SecretToken = "t"
	b.Rconn.Mode = ModeCluster
	b.Rconn.SecretFiles.Password = SecretKeyPassword
	if got := restartFields(a, b); len(got) != 0 {
		t.Fatalf("live or equal-by-default changes reported as restart fields: %v", got)
	}
	b.RootNodes[0].URL = "redis://127.0.0.1:7001"
	b.Rconn.AutoPipeline = true
	b.Defaults.Name = "n"
	if got := strings.Join(restartFields(a, b), ","); got != "rootNodes,defaults,rconn.autoPipeline" {
		t.Fatalf("restartFields = %q", got)
	}
}

// In sentinel mode ConnOptions gives the data nodes' options from nodeClientOptions and
// Options.Sentinel from name, sentinelRootNodes, sentinelClientOptions and the sentinels' own
// secret material: the one conversion the client, the proxy and the controller share.
func TestConnOptionsSentinel(t *testing.T) {
	c := &Config{
		Name:                  "mymaster",
		SentinelRootNodes:     []MappedAddress{{Host: "127.0.0.1", Port: 26379}},
		NodeClientOptions:     DefaultsConfig{Database: 2, Name: "app", Socket: SocketConfig{ConnectTimeout: 1500}},
		SentinelClientOptions: DefaultsConfig{Socket: SocketConfig{ServerName: "sentinel.example"}},
		NodeAddressMap:        map[string]MappedAddress{"redis-0.x:6379": {Host: "127.0.0.1", Port: 7000}},
		UseReplicas:           true,
		Rconn:                 RconnConfig{Mode: ModeSentinel},
	}
	o, tlsr, err := c.ConnOptions(Secret{Username: "u", Password: "p", SentinelUsername: "su", SentinelPassword: "sp"})
	if err != nil || tlsr != nil {
		t.Fatalf("ConnOptions: %v, %v", tlsr, err)
	}
	if len(o.RootNodes) != 0 || o.Defaults.DB != 2 || o.Defaults.ClientName != "app" || o.Defaults.ConnectTimeout != 1500*time.Millisecond ||
		o.Defaults.Username != "u" || o.Defaults.Password != "p" || !o.UseReplicas || o.NodeAddressMap == nil {
		t.Errorf("data node options %+v", o)
	}
	s := o.Sentinel
	if s == nil || s.MasterName != "mymaster" || len(s.RootNodes) != 1 || s.RootNodes[0].Address.String() != "127.0.0.1:26379" ||
		s.Defaults.Username != "su" || s.Defaults.Password != "sp" || s.Defaults.TLSServerName != "sentinel.example" {
		t.Errorf("sentinel options %+v", s)
	}
}
