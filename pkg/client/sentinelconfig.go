package client

import (
	"strconv"
	"strings"

	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// Sentinel mode (rconn.mode "sentinel") carries node-redis createSentinel options:
//
//	createSentinel({...config, nodeClientOptions: {...config.nodeClientOptions, username, password},
//	                sentinelClientOptions: {...config.sentinelClientOptions, username: sentinelUsername, password: sentinelPassword}})
//
//   - name: the master name (spec.sentinel.masterName);
//   - sentinelRootNodes: [{host, port}], the sentinels' reachable addresses;
//   - nodeClientOptions: the data nodes' socket (tls, servername, connectTimeout), database and
//     name, never credentials (they are the Secret's username/password);
//   - sentinelClientOptions: the sentinels' socket (tls, servername, connectTimeout) and name,
//     never credentials (the Secret's sentinel-username/sentinel-password);
//   - nodeAddressMap: announced -> reachable for data nodes AND sentinels;
//   - url: the current master, reachable, redis[s]://host:port[/db], for clients without
//     Sentinel support (re-rendered on every failover);
//   - useReplicas (and node-redis replicaPoolSize): reads may go to replicas;
//   - rconn.sentinels: the announced addresses of the sentinels (pkg/client only).
//
// rootNodes, defaults, minimizeConnections, maxCommandRedirections and rconn.nodeIds belong
// to the other modes and are rejected here.

// maxMasterName bounds the master name (the API allows 128 characters).
const maxMasterName = 128

// validateSentinel checks the sentinel-mode fields, and that the other modes have none.
func (c *Config) validateSentinel(p *problems, mode string) {
	if mode != ModeSentinel {
		if c.Name != "" || len(c.SentinelRootNodes) > 0 || c.NodeClientOptions != (DefaultsConfig{}) || c.SentinelClientOptions != (DefaultsConfig{}) ||
			c.ReplicaPoolSize != 0 || c.Rconn.SentinelTLSInsecureSkipVerify || len(c.Rconn.Sentinels) > 0 {
			p.bad("name, sentinelRootNodes, nodeClientOptions, sentinelClientOptions, replicaPoolSize, rconn.sentinelTlsInsecureSkipVerify and rconn.sentinels apply to sentinel mode only")
		}
		return
	}
	if c.Name == "" || len(c.Name) > maxMasterName || strings.ContainsFunc(c.Name, func(r rune) bool { return !fileNameRune(r) }) {
		p.bad("name %q: sentinel mode needs the master name: 1-%d characters of [-._a-zA-Z0-9]", c.Name, maxMasterName)
	}
	if len(c.SentinelRootNodes) == 0 {
		p.bad("sentinelRootNodes: at least one sentinel is required")
	}
	for i, n := range c.SentinelRootNodes {
		if n.Port < 1 || n.Port > 65535 {
			p.bad("sentinelRootNodes[%d].port %d: out of range 1-65535", i, n.Port)
		} else if _, err := cluster.ParseAddress(n.String()); err != nil {
			p.bad("sentinelRootNodes[%d]: %v", i, err)
		}
	}
	for i, a := range c.Rconn.Sentinels {
		if _, err := cluster.ParseAddress(a); err != nil {
			p.bad("rconn.sentinels[%d]: %v", i, err)
		}
	}
	if len(c.RootNodes) > 0 || c.Defaults != (DefaultsConfig{}) || c.MinimizeConnections || c.MaxCommandRedirections != 0 || len(c.Rconn.NodeIDs) > 0 {
		p.bad("rootNodes, defaults, minimizeConnections, maxCommandRedirections and rconn.nodeIds do not apply to sentinel mode (the data nodes' options are nodeClientOptions)")
	}
	validateNodeOptions(p, "nodeClientOptions", c.NodeClientOptions)
	validateNodeOptions(p, "sentinelClientOptions", c.SentinelClientOptions)
	if c.SentinelClientOptions.Database != 0 {
		p.bad("sentinelClientOptions.database: sentinels have no databases")
	}
	if c.ReplicaPoolSize < 0 {
		p.bad("replicaPoolSize %d: must not be negative", c.ReplicaPoolSize)
	}
	if c.URL != "" {
		u, err := cluster.ParseURL(c.URL)
		switch {
		case err != nil:
			p.bad("url: %v", err)
		case u.Username != "" || u.Password != "":
			p.bad("url %s: credentials do not belong in the config (they go in the Secret)", cluster.RedactURL(c.URL))
		case u.TLS != c.NodeClientOptions.Socket.TLS:
			p.bad("url %s: the scheme must be rediss:// exactly when nodeClientOptions.socket.tls is true", cluster.RedactURL(c.URL))
		case u.DB != c.NodeClientOptions.Database:
			p.bad("url %s: the database must be nodeClientOptions.database (%d)", cluster.RedactURL(c.URL), c.NodeClientOptions.Database)
		}
	}
}

func validateNodeOptions(p *problems, field string, o DefaultsConfig) {
	if o.Socket.Path != "" {
		p.bad("%s.socket.path: sentinel mode reaches every node (and every new master) by address, never through a Unix socket", field)
	}
	if o.Socket.ConnectTimeout < 0 {
		p.bad("%s.socket.connectTimeout %d: must not be negative", field, o.Socket.ConnectTimeout)
	}
	if o.Database < 0 {
		p.bad("%s.database %d: must not be negative", field, o.Database)
	}
}

// dataOptions are the options of the data nodes: defaults, or nodeClientOptions in sentinel
// mode.
func (c *Config) dataOptions() DefaultsConfig {
	if c.ModeOrDefault() == ModeSentinel {
		return c.NodeClientOptions
	}
	return c.Defaults
}

// SentinelBindingKeys are the Service Binding keys of a sentinel-mode config beyond type and
// provider: host and port of the current master (from url; absent while it is unknown), and
// Spring's sentinel.master and sentinel.nodes (the sentinels' reachable host:port, comma
// separated). Nil for the other modes.
func SentinelBindingKeys(c *Config) map[string]string {
	if c.ModeOrDefault() != ModeSentinel {
		return nil
	}
	out := map[string]string{"sentinel.master": c.Name}
	nodes := make([]string, 0, len(c.SentinelRootNodes))
	for _, n := range c.SentinelRootNodes {
		nodes = append(nodes, n.String())
	}
	out["sentinel.nodes"] = strings.Join(nodes, ",")
	if u, err := cluster.ParseURL(c.URL); c.URL != "" && err == nil {
		out["host"], out["port"] = u.Address.Host, strconv.Itoa(u.Address.Port)
	}
	return out
}
