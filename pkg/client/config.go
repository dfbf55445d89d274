package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// ConfigFileName is the ConfigMap key (and mounted file name) of the rendered Config.
const ConfigFileName = "config.json"

// Secret keys (and mounted file names) of the credentials and TLS material.
const (
	SecretKeyUsername = "username"
	SecretKeyPassword = "password"
	SecretKeyCA       = "ca.crt"
	SecretKeyCert     = "tls.crt"
	SecretKeyKey      = "tls.key"
	// SecretKeyToken holds the Secret's generation token: config.json names the token of the
	// Secret it was rendered with in rconn.secretToken (see RconnConfig.SecretToken).
	SecretKeyToken = "rconn-token"
	// SecretKeyConfigDigest holds ConfigDigest of the config.json rendered with the Secret: the
	// client applies no other config.json (see BindSecret, ErrConfigNotBound).
	SecretKeyConfigDigest = "config.sha256"

	// Sentinel mode: the sentinels' own credentials and TLS material (spec.sentinel.acl/tls),
	// apart from the data nodes' above.
	SecretKeySentinelUsername = "sentinel-username"
	SecretKeySentinelPassword = "sentinel-password"
	SecretKeySentinelCA       = "sentinel-ca.crt"
	SecretKeySentinelCert     = "sentinel-tls.crt"
	SecretKeySentinelKey      = "sentinel-tls.key"
)

// Modes of Config.Rconn.Mode.
const (
	ModeCluster    = "cluster"
	ModeStandalone = "standalone"
	// ModeSentinel is a master with replicas behind Redis Sentinel: see sentinelconfig.go.
	ModeSentinel = "sentinel"
)

// Reconnect strategy types of ReconnectConfig.Type.
const (
	ReconnectTypeNone               = "none"
	ReconnectTypeFixedDelay         = "fixedDelay"
	ReconnectTypeExponentialBackoff = "exponentialBackoff"
)

// Config is the rendered configuration (ConfigMap key config.json): the node-redis
// createCluster options that JSON can carry, with node-redis field names, plus rconn-only
// fields under "rconn" (node-redis ignores unknown keys). It never holds credentials or keys:
// those come from the Secret files named in Rconn.SecretFiles. A Node.js app can do
//
//	createCluster({...JSON.parse(config), defaults: {...config.defaults, username, password}})
//
// In standalone mode rootNodes holds exactly one node, and Render also emits that node as the
// top-level node-redis createClient "url" (redis[s]://host:port[/db], no credentials), so a
// Node.js app can do
//
//	createClient({...JSON.parse(config), username, password})
//
// (spread config.defaults too for socket.servername, socket.connectTimeout and name).
type Config struct {
	// URL is set in standalone mode only, and always agrees with rootNodes[0] and the database
	// (Render fills it in; Validate rejects a URL that disagrees). Files without it still load.
	URL                    string                   `json:"url,omitempty"`
	RootNodes              []RootNodeConfig         `json:"rootNodes"`
	Defaults               DefaultsConfig           `json:"defaults,omitzero"`
	UseReplicas            bool                     `json:"useReplicas,omitempty"`
	MinimizeConnections    bool                     `json:"minimizeConnections,omitempty"`
	MaxCommandRedirections int                      `json:"maxCommandRedirections,omitempty"`
	NodeAddressMap         map[string]MappedAddress `json:"nodeAddressMap,omitempty"`
	// Scripts and Functions are node-redis "scripts" and "functions" without their JavaScript
	// parts (see scriptconfig.go); the library code is in rconn.functionLibraries.
	Scripts   map[string]ScriptConfig              `json:"scripts,omitempty"`
	Functions map[string]map[string]FunctionConfig `json:"functions,omitempty"`

	// Sentinel mode only (rconn.mode "sentinel"): node-redis createSentinel options; see
	// sentinelconfig.go. Name is the master name, SentinelRootNodes the sentinels' reachable
	// addresses; NodeClientOptions are the data nodes' options (no credentials) and
	// SentinelClientOptions the sentinels'. URL is then the current master (reachable).
	Name                  string          `json:"name,omitempty"`
	SentinelRootNodes     []MappedAddress `json:"sentinelRootNodes,omitempty"`
	NodeClientOptions     DefaultsConfig  `json:"nodeClientOptions,omitzero"`
	SentinelClientOptions DefaultsConfig  `json:"sentinelClientOptions,omitzero"`
	// ReplicaPoolSize is node-redis createSentinel replicaPoolSize: 1 when useReplicas.
	ReplicaPoolSize int `json:"replicaPoolSize,omitempty"`

	Rconn RconnConfig `json:"rconn,omitzero"`
}

// RootNodeConfig is a node-redis root node: {"url": "redis://host:port"} (no credentials).
type RootNodeConfig struct {
	URL string `json:"url"`
}

// DefaultsConfig is node-redis createCluster "defaults" without credentials.
type DefaultsConfig struct {
	Socket   SocketConfig `json:"socket,omitzero"`
	Database int          `json:"database,omitempty"`
	// Name is the client name (CLIENT SETNAME).
	Name string `json:"name,omitempty"`
}

// SocketConfig is node-redis "socket" (reconnectStrategy lives under rconn: JSON cannot carry
// a function).
type SocketConfig struct {
	TLS        bool   `json:"tls,omitempty"`
	ServerName string `json:"servername,omitempty"`
	// ConnectTimeout is in milliseconds (node-redis connectTimeout).
	ConnectTimeout int64 `json:"connectTimeout,omitempty"`
	// Path is a Unix socket to dial instead of rootNodes[0] (node-redis socket.path;
	// standalone mode only, no TLS): see validateSocketPath.
	Path string `json:"path,omitempty"`
}

// MappedAddress is a node-redis nodeAddressMap value.
type MappedAddress struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

func (a MappedAddress) String() string { return cluster.Address{Host: a.Host, Port: a.Port}.String() }

// RconnConfig holds the rconn-only fields.
type RconnConfig struct {
	// Mode is "cluster" (default) or "standalone".
	Mode              string           `json:"mode,omitempty"`
	ReconnectStrategy *ReconnectConfig `json:"reconnectStrategy,omitempty"`
	AutoPipeline      bool             `json:"autoPipeline,omitempty"`
	// TLSInsecureSkipVerify disables server certificate verification (logged as a warning).
	TLSInsecureSkipVerify bool        `json:"tlsInsecureSkipVerify,omitempty"`
	SecretFiles           SecretFiles `json:"secretFiles,omitzero"`
	// NodeIDs maps each cluster node's ID to its reachable address: the fallback for an
	// announced address nodeAddressMap has no entry for yet (a restarted pod's new IP before
	// this file caught up). node-redis and ioredis ignore it (see docs/consuming.md).
	NodeIDs map[string]MappedAddress `json:"nodeIds,omitempty"`
	// SecretKeys lists the keys of the secret material (the SecretFiles names) that the Secret
	// rendered with this config.json holds. A key not listed is not configured (usernameKey or
	// mutual TLS removed is a legal update); a listed key the Secret lacks means the Secret is
	// not there yet. Nil (config.json from an older controller or written by hand): the client
	// reads whatever the Secret has.
	SecretKeys []string `json:"secretKeys,omitzero"`
	// SecretToken is the generation token of the Secret this config.json was rendered with
	// (the Secret's SecretKeyToken key): config.json and the Secret are applied as a pair, so a
	// client that sees a config.json whose token the Secret does not carry waits (bounded) for
	// the matching Secret. The token is random, drawn anew whenever the Secret's content
	// changes: it tells a ConfigMap reader nothing about the Secret (a hash of the content
	// would be a guessing oracle for a weak password). Empty: no pairing.
	SecretToken string `json:"secretToken,omitempty"`
	// FunctionLibraries holds the code of each library of Functions ("#!lua name=<library>"),
	// which pkg/client loads with FUNCTION LOAD REPLACE (node-redis leaves loading to the app).
	FunctionLibraries map[string]string `json:"functionLibraries,omitempty"`
	// SentinelTLSInsecureSkipVerify disables sentinel certificate verification (sentinel mode).
	SentinelTLSInsecureSkipVerify bool `json:"sentinelTlsInsecureSkipVerify,omitempty"`
	// Sentinels are the announced addresses (host:port, as nodeAddressMap keys) of the
	// sentinels the controller found, in sentinel mode: pkg/client dials these (and
	// sentinelRootNodes) with the sentinels' TLS and credentials, everything else with the data
	// nodes'. node-redis and ioredis ignore it (they know which connection is which).
	Sentinels []string `json:"sentinels,omitempty"`
}

// ReconnectConfig is the reconnect policy: "none", "fixedDelay" (delayMs) or
// "exponentialBackoff" (min(2^retries*baseMs, capMs) + rand(0..jitterMs)).
type ReconnectConfig struct {
	Type     string `json:"type"`
	DelayMs  int64  `json:"delayMs,omitempty"`
	BaseMs   int64  `json:"baseMs,omitempty"`
	CapMs    int64  `json:"capMs,omitempty"`
	JitterMs int64  `json:"jitterMs,omitempty"`
}

// SecretFiles are the file names of the secret material in the mounted Secret; empty fields
// mean the SecretKey* defaults.
type SecretFiles struct {
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	CA       string `json:"ca,omitempty"`
	Cert     string `json:"cert,omitempty"`
	Key      string `json:"key,omitempty"`
	// Sentinel mode: the sentinels' credentials and TLS material (defaults sentinel-username,
	// sentinel-password, sentinel-ca.crt, sentinel-tls.crt, sentinel-tls.key).
	SentinelUsername string `json:"sentinelUsername,omitempty"`
	SentinelPassword string `json:"sentinelPassword,omitempty"`
	SentinelCA       string `json:"sentinelCa,omitempty"`
	SentinelCert     string `json:"sentinelCert,omitempty"`
	SentinelKey      string `json:"sentinelKey,omitempty"`
}

// withDefaults returns f with empty names set to the SecretKey* defaults.
func (f SecretFiles) withDefaults() SecretFiles {
	def := func(s, d string) string {
		if s == "" {
			return d
		}
		return s
	}
	return SecretFiles{
		Username: def(f.Username, SecretKeyUsername),
		Password: def(f.Password, SecretKeyPassword),
		CA:       def(f.CA, SecretKeyCA),
		Cert:     def(f.Cert, SecretKeyCert),
		Key:      def(f.Key, SecretKeyKey),

		SentinelUsername: def(f.SentinelUsername, SecretKeySentinelUsername),
		SentinelPassword: def(f.SentinelPassword, SecretKeySentinelPassword),
		SentinelCA:       def(f.SentinelCA, SecretKeySentinelCA),
		SentinelCert:     def(f.SentinelCert, SecretKeySentinelCert),
		SentinelKey:      def(f.SentinelKey, SecretKeySentinelKey),
	}
}

// names lists every file name, data nodes' then sentinels'.
func (f SecretFiles) names() []string {
	return []string{f.Username, f.Password, f.CA, f.Cert, f.Key, f.SentinelUsername, f.SentinelPassword, f.SentinelCA, f.SentinelCert, f.SentinelKey}
}

// ModeOrDefault returns Rconn.Mode, "cluster" when empty.
func (c *Config) ModeOrDefault() string {
	if c.Rconn.Mode == "" {
		return ModeCluster
	}
	return c.Rconn.Mode
}

// ErrInvalidConfig is wrapped by every Validate and LoadConfig error.
var ErrInvalidConfig = errors.New("invalid rconn config")

// Validate checks the configuration and returns every problem found, each wrapping
// ErrInvalidConfig. URLs in errors are redacted.
func (c *Config) Validate() error {
	var p problems
	mode := c.ModeOrDefault()
	if mode != ModeCluster && mode != ModeStandalone && mode != ModeSentinel {
		p.bad("rconn.mode %q: want %q, %q or %q", c.Rconn.Mode, ModeCluster, ModeStandalone, ModeSentinel)
	}
	c.validateSentinel(&p, mode) // sentinelconfig.go
	c.validateRootNodes(&p, mode)
	c.validateDefaults(&p, mode)
	c.validateSocketPath(&p, mode)
	c.validateScripts(&p)
	c.validateNodeAddressMap(&p)
	c.validateNodeIDs(&p, mode)
	c.validateReconnectStrategy(&p)
	c.validateSecretFiles(&p)
	return errors.Join(p...)
}

// problems collects what Validate finds, in order, each wrapping ErrInvalidConfig.
type problems []error

func (p *problems) bad(format string, args ...any) {
	*p = append(*p, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
}

// validateRootNodes checks rootNodes and the top-level url.
func (c *Config) validateRootNodes(p *problems, mode string) {
	if mode == ModeSentinel {
		return // validateSentinel: no rootNodes, url is the current master
	}
	if len(c.RootNodes) == 0 {
		p.bad("rootNodes: at least one root node is required")
	}
	if mode == ModeStandalone && len(c.RootNodes) > 1 {
		p.bad("rootNodes: standalone mode takes exactly one root node, got %d", len(c.RootNodes))
	}
	sawTLS, sawPlain := false, false
	for i, rn := range c.RootNodes {
		u, err := cluster.ParseURL(rn.URL)
		if err != nil {
			p.bad("rootNodes[%d].url: %v", i, err)
			continue
		}
		if u.Username != "" || u.Password != "" {
			p.bad("rootNodes[%d].url %s: credentials do not belong in the config (they go in the Secret)", i, cluster.RedactURL(rn.URL))
		}
		if u.DB != 0 && mode == ModeCluster {
			p.bad("rootNodes[%d].url: a Redis Cluster only has database 0, the URL selects %d", i, u.DB)
		}
		if u.TLS {
			sawTLS = true
		} else {
			sawPlain = true
		}
	}
	if c.URL != "" {
		switch want, ok := c.standaloneURL(); {
		case mode != ModeStandalone:
			p.bad("url %s: the top-level url is for standalone mode (cluster mode uses rootNodes)", cluster.RedactURL(c.URL))
		case ok && c.URL != want:
			p.bad("url %s disagrees with rootNodes[0] and the database: want %s", cluster.RedactURL(c.URL), want)
		}
	}
	if sawTLS && sawPlain {
		p.bad("rootNodes mix redis:// and rediss://")
	}
	if sawTLS && !c.Defaults.Socket.TLS {
		p.bad("rootNodes use rediss:// but defaults.socket.tls is false")
	}
}

// validateDefaults checks defaults and the cluster-only options.
func (c *Config) validateDefaults(p *problems, mode string) {
	if c.Defaults.Socket.ConnectTimeout < 0 {
		p.bad("defaults.socket.connectTimeout %d: must not be negative", c.Defaults.Socket.ConnectTimeout)
	}
	if c.Defaults.Database < 0 {
		p.bad("defaults.database %d: must not be negative", c.Defaults.Database)
	}
	if c.Defaults.Database != 0 && mode == ModeCluster {
		p.bad("defaults.database %d: a Redis Cluster only has database 0", c.Defaults.Database)
	}
	if c.MaxCommandRedirections < 0 {
		p.bad("maxCommandRedirections %d: must not be negative", c.MaxCommandRedirections)
	}
	if mode == ModeStandalone && (c.UseReplicas || c.MinimizeConnections) {
		p.bad("useReplicas and minimizeConnections apply to cluster mode only")
	}
}

// validateNodeAddressMap checks nodeAddressMap, in key order.
func (c *Config) validateNodeAddressMap(p *problems) {
	keys := make([]string, 0, len(c.NodeAddressMap))
	for k := range c.NodeAddressMap {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, err := cluster.ParseAddress(k); err != nil {
			p.bad("nodeAddressMap key: %v", err)
		}
		v := c.NodeAddressMap[k]
		if v.Port < 1 || v.Port > 65535 {
			p.bad("nodeAddressMap[%q].port %d: out of range 1-65535", k, v.Port)
		} else if _, err := cluster.ParseAddress(v.String()); err != nil {
			p.bad("nodeAddressMap[%q]: %v", k, err)
		}
	}
}

// validateNodeIDs checks rconn.nodeIds, in key order.
func (c *Config) validateNodeIDs(p *problems, mode string) {
	if len(c.Rconn.NodeIDs) > 0 && mode == ModeStandalone {
		p.bad("rconn.nodeIds apply to cluster mode only")
	}
	ids := make([]string, 0, len(c.Rconn.NodeIDs))
	for k := range c.Rconn.NodeIDs {
		ids = append(ids, k)
	}
	sort.Strings(ids)
	for _, k := range ids {
		v := c.Rconn.NodeIDs[k]
		if err := cluster.ValidateNodeIDMap(cluster.NodeIDMap{k: {Host: v.Host, Port: v.Port}}); err != nil {
			p.bad("rconn.%v", err)
		}
	}
}

// validateReconnectStrategy checks rconn.reconnectStrategy.
func (c *Config) validateReconnectStrategy(p *problems) {
	if rs := c.Rconn.ReconnectStrategy; rs != nil {
		switch rs.Type {
		case ReconnectTypeNone:
			if rs.DelayMs != 0 || rs.BaseMs != 0 || rs.CapMs != 0 || rs.JitterMs != 0 {
				p.bad("rconn.reconnectStrategy: type %q takes no delays", rs.Type)
			}
		case ReconnectTypeFixedDelay:
			if rs.DelayMs <= 0 {
				p.bad("rconn.reconnectStrategy: type %q needs delayMs > 0, got %d", rs.Type, rs.DelayMs)
			}
			if rs.BaseMs != 0 || rs.CapMs != 0 || rs.JitterMs != 0 {
				p.bad("rconn.reconnectStrategy: type %q takes only delayMs", rs.Type)
			}
		case ReconnectTypeExponentialBackoff:
			if rs.DelayMs != 0 {
				p.bad("rconn.reconnectStrategy: type %q takes baseMs, capMs and jitterMs, not delayMs", rs.Type)
			}
			if rs.BaseMs < 0 || rs.CapMs < 0 || rs.JitterMs < 0 {
				p.bad("rconn.reconnectStrategy: negative baseMs, capMs or jitterMs")
			}
			if rs.CapMs != 0 && rs.BaseMs > rs.CapMs {
				p.bad("rconn.reconnectStrategy: baseMs %d exceeds capMs %d", rs.BaseMs, rs.CapMs)
			}
		default:
			p.bad("rconn.reconnectStrategy.type %q: want %q, %q or %q", rs.Type, ReconnectTypeNone, ReconnectTypeFixedDelay, ReconnectTypeExponentialBackoff)
		}
	}
}

// validateSecretFiles checks rconn.secretFiles, secretKeys and secretToken.
func (c *Config) validateSecretFiles(p *problems) {
	f := c.Rconn.SecretFiles.withDefaults()
	for _, n := range []struct{ field, name string }{{"username", f.Username}, {"password", f.Password}, {"ca", f.CA}, {"cert", f.Cert}, {"key", f.Key},
		{"sentinelUsername", f.SentinelUsername}, {"sentinelPassword", f.SentinelPassword}, {"sentinelCa", f.SentinelCA}, {"sentinelCert", f.SentinelCert}, {"sentinelKey", f.SentinelKey}} {
		if !validFileName(n.name) {
			p.bad("rconn.secretFiles.%s %q: want a plain file name (a Secret key)", n.field, n.name)
		}
	}
	for i, k := range c.Rconn.SecretKeys {
		if !validFileName(k) {
			p.bad("rconn.secretKeys[%d] %q: want a Secret key", i, k)
		}
	}
	if t := c.Rconn.SecretToken; t != "" && (len(t) > 128 || !validFileName(t)) {
		p.bad("rconn.secretToken: want at most 128 characters of [-._a-zA-Z0-9]")
	}
}

// validFileName accepts Secret keys: [-._a-zA-Z0-9]+, not "." or "..", not starting with "..".
func validFileName(s string) bool {
	if s == "" || s == "." || len(s) >= 2 && s[:2] == ".." || len(s) > 253 {
		return false
	}
	for _, r := range s {
		if !fileNameRune(r) {
			return false
		}
	}
	return true
}

// fileNameRune reports whether r is one of [-._a-zA-Z0-9].
func fileNameRune(r rune) bool {
	return r == '-' || r == '.' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

// standaloneURL is node-redis createClient's url for a standalone config: rootNodes[0] without
// credentials, with the database of its URL or else defaults.database (the URL's wins, as in
// Open). ok is false when there is no single parseable root node.
func (c *Config) standaloneURL() (string, bool) {
	if len(c.RootNodes) != 1 {
		return "", false
	}
	u, err := cluster.ParseURL(c.RootNodes[0].URL)
	if err != nil {
		return "", false
	}
	out := cluster.URL{TLS: u.TLS, Address: u.Address, DB: u.DB}
	if out.DB == 0 {
		out.DB = c.Defaults.Database
	}
	return out.String(), true
}

// Render validates c and returns it as config.json: deterministic (map keys sorted), indented
// by two spaces, ending in a newline. In standalone mode the output has the top-level "url"
// (c itself is not modified).
func Render(c *Config) ([]byte, error) {
	if c == nil {
		return nil, fmt.Errorf("%w: nil config", ErrInvalidConfig)
	}
	if c.ModeOrDefault() == ModeStandalone && c.URL == "" {
		cp := *c
		cp.URL, _ = cp.standaloneURL()
		c = &cp
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// LoadConfig parses config.json and validates it. Unknown fields are ignored (the file is
// node-redis options, which may carry more than rconn reads).
func LoadConfig(data []byte) (*Config, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%w: %s is empty", ErrInvalidConfig, ConfigFileName)
	}
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%w: %s is not valid JSON at byte %s: %w", ErrInvalidConfig, ConfigFileName, strconv.FormatInt(se.Offset, 10), err)
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidConfig, ConfigFileName, err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}
