package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"
)

// DefaultMaxCommandRedirections is node-redis's default (go-redis's own is 3).
const DefaultMaxCommandRedirections = 16

// RootNode is a seed address: URL (redis[s]://[[username][:password]@][host][:port][/db]) or
// Address. Credentials in a URL apply to connections to that root node only (node-redis); use
// Defaults for the whole cluster.
type RootNode struct {
	URL     string
	Address Address
}

// NodeOptions apply to every node connection (node-redis createCluster defaults).
type NodeOptions struct {
	Username string
	Password string
	// CredentialsProvider, when set, is asked for username and password on every new
	// connection instead of Username/Password (rotation without restart).
	CredentialsProvider func() (username, password string)
	// TLS enables TLS (nil: plaintext unless a root node URL is rediss://, which means TLS with
	// the system roots). The server name is set per node; a config whose certificates change at
	// runtime (pkg/tls Reloadable) rotates them for new connections.
	TLS *tls.Config
	// TLSConfigFor, when set, enables TLS and supplies the configuration per server name
	// (pkg/tls Reloadable.ConfigFor, for certificate rotation without restart). Wins over TLS.
	TLSConfigFor func(serverName string) *tls.Config
	// TLSServerName overrides the name checked in server certificates (default: the host each
	// node is dialed at, after mapping).
	TLSServerName string
	// ConnectTimeout bounds TCP connect + TLS handshake (default 5s).
	ConnectTimeout time.Duration
	// DB is the database (Standalone only; a cluster has only 0).
	DB int
	// ClientName is sent with CLIENT SETNAME.
	ClientName string
}

// Options configure a cluster Client or Inspector, with node-redis meaning.
type Options struct {
	RootNodes []RootNode
	Defaults  NodeOptions
	// UseReplicas spreads read-only commands over masters and replicas.
	UseReplicas bool
	// MinimizeConnections makes Connect discover the topology only, without connecting to every
	// node; nodes are connected to when a command needs them.
	MinimizeConnections bool
	// MaxCommandRedirections bounds MOVED/ASK redirections per command: 0 means the default
	// (16), a negative value means none.
	MaxCommandRedirections int
	// NodeAddressMap maps announced addresses to reachable ones (StaticMap, or a function).
	NodeAddressMap NodeAddressMap
	// NodeIDMap is the Client's fallback for announced addresses NodeAddressMap has no entry
	// for: the node announcing it is looked up by ID (see NodeIDMap). The Inspector does not
	// use it.
	NodeIDMap NodeIDMap
	// Dial is the base dial function beneath the address map (default net.Dialer).
	Dial DialFunc
	// Standalone makes an Inspector treat the single root node as a standalone server.
	Standalone bool

	// PoolSize, ReadTimeout and WriteTimeout pass to go-redis for the Client (zero: go-redis
	// defaults). The Inspector uses ReadTimeout and WriteTimeout for every command it sends
	// (zero or negative: DefaultInspectorTimeout; it never reads or writes without a deadline).
	PoolSize     int
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// MaxTimeout, when positive, caps every timeout: ConnectTimeout, ReadTimeout, WriteTimeout
	// (also a Client's go-redis defaults and "no timeout") and the per-node timeout of
	// CheckHealth are clipped to it. A manager-wide bound no tenant's options can raise.
	MaxTimeout time.Duration
	// Limits bound what the Inspector reads and allocates per reply, and the size of a
	// topology (nil: DefaultLimits). Every Inspector connection (discovery and health) is
	// wrapped with LimitConn. The Client's own go-redis connections, which carry application
	// values of any size, are not.
	Limits *Limits
	// ReplyBudget, when set, bounds what replies being read hold at once across every
	// Inspector sharing it (one per process: the manager's); this Inspector may hold at most
	// a 1/ReplyBudgetShares share. Nil: no budget beyond the per-reply Limits.
	ReplyBudget *ReplyBudget
	// AddressPolicy, when set, wraps Dial (AddressPolicy.Dial): every connection, the
	// Client's included, is refused for denied targets.
	AddressPolicy *AddressPolicy
	// HealthConcurrency bounds parallel node checks (default 64).
	HealthConcurrency int
	// Sentinel, when set, describes a master + replicas watched by Redis Sentinel: use
	// NewSentinelInspector. RootNodes and Standalone are then unused (the data nodes are
	// found through the sentinels); Defaults, NodeAddressMap, Dial, AddressPolicy, Limits,
	// ReplyBudget and the timeouts apply to data nodes and sentinels alike, except that the
	// sentinels have their own credentials and TLS (SentinelOptions.Defaults).
	Sentinel *SentinelOptions
}

// DefaultSentinelPort is a sentinel root node's port when its Address or URL names none.
const DefaultSentinelPort = 26379

// SentinelOptions describe the sentinels (node-redis createSentinel: name, sentinelRootNodes,
// sentinelClientOptions).
type SentinelOptions struct {
	// MasterName is the name the sentinels monitor the master under.
	MasterName string
	// RootNodes are sentinels to start from (URL redis[s]://[user[:pass]@]host[:port] or
	// Address; default port 26379). Their peers (SENTINEL SENTINELS) are asked too.
	RootNodes []RootNode
	// Defaults apply to every sentinel connection: the sentinels' own credentials and TLS,
	// separate from the data nodes' (Options.Defaults). DB is unused. ConnectTimeout zero:
	// the data nodes' ConnectTimeout.
	Defaults NodeOptions
}

// root is a resolved root node.
type root struct {
	addr               string
	username, password string
	hasCreds           bool
}

// resolved is Options after validation.
type resolved struct {
	Options
	roots  []root
	tls    *tls.Config
	limits Limits
}

// DefaultConnectTimeout bounds TCP connect plus TLS handshake when NodeOptions sets none.
const DefaultConnectTimeout = 5 * time.Second

// DefaultInspectorTimeout is the Inspector's read and write timeout when Options sets none.
const DefaultInspectorTimeout = 10 * time.Second

// clip caps d at MaxTimeout (when set).
func (r *resolved) clip(d time.Duration) time.Duration {
	if r.MaxTimeout > 0 && (d <= 0 || d > r.MaxTimeout) {
		return r.MaxTimeout
	}
	return d
}

// inspectorTimeout is the Inspector's read (or write) timeout for an Options value.
func (r *resolved) inspectorTimeout(d time.Duration) time.Duration {
	if d <= 0 {
		d = DefaultInspectorTimeout
	}
	return r.clip(d)
}

// clientTimeout is a go-redis timeout for the Client: 0 keeps go-redis's default (def) and a
// negative value means none, both clipped to MaxTimeout when it is set.
func (r *resolved) clientTimeout(d, def time.Duration) time.Duration {
	if r.MaxTimeout <= 0 {
		return d
	}
	if d == 0 {
		d = def
	}
	return r.clip(d)
}

// ErrInvalidOptions is wrapped by every option validation error.
var ErrInvalidOptions = errors.New("invalid options")

func resolve(o Options) (*resolved, error) {
	r := &resolved{Options: o, tls: o.Defaults.TLS}
	if len(o.RootNodes) == 0 {
		return nil, fmt.Errorf("%w: no root nodes", ErrInvalidOptions)
	}
	if o.Standalone && len(o.RootNodes) != 1 {
		return nil, fmt.Errorf("%w: Standalone takes exactly one root node, got %d", ErrInvalidOptions, len(o.RootNodes))
	}
	if o.Standalone && (o.UseReplicas || o.MinimizeConnections) {
		return nil, fmt.Errorf("%w: UseReplicas and MinimizeConnections apply to clusters only", ErrInvalidOptions)
	}
	if !o.Standalone && o.Defaults.DB != 0 {
		return nil, fmt.Errorf("%w: a Redis Cluster only has database 0, got %d", ErrInvalidOptions, o.Defaults.DB)
	}
	if o.Defaults.DB < 0 {
		return nil, fmt.Errorf("%w: negative database %d", ErrInvalidOptions, o.Defaults.DB)
	}
	if o.Defaults.ConnectTimeout < 0 {
		return nil, fmt.Errorf("%w: negative ConnectTimeout", ErrInvalidOptions)
	}
	if o.MaxTimeout < 0 {
		return nil, fmt.Errorf("%w: negative MaxTimeout", ErrInvalidOptions)
	}
	r.limits = o.Limits.withDefaults()
	sawTLS, sawPlain := false, false
	for i, rn := range o.RootNodes {
		switch {
		case rn.URL != "" && rn.Address != (Address{}):
			return nil, fmt.Errorf("%w: rootNodes[%d]: set URL or Address, not both", ErrInvalidOptions, i)
		case rn.URL != "":
			u, err := ParseURL(rn.URL)
			if err != nil {
				return nil, fmt.Errorf("%w: rootNodes[%d]: %w", ErrInvalidOptions, i, err)
			}
			if u.TLS {
				sawTLS = true
			} else {
				sawPlain = true
			}
			if !o.Standalone && u.DB != 0 {
				return nil, fmt.Errorf("%w: rootNodes[%d]: a Redis Cluster only has database 0, the URL selects %d", ErrInvalidOptions, i, u.DB)
			}
			if o.Standalone && u.DB != 0 {
				r.Defaults.DB = u.DB
			}
			r.roots = append(r.roots, root{addr: u.Address.String(), username: u.Username, password: u.Password, hasCreds: u.Username != "" || u.Password != ""})
		default:
			a := rn.Address
			if a.Port == 0 {
				a.Port = DefaultPort
			}
			if _, err := ParseAddress(a.String()); err != nil || a.Host == "" {
				return nil, fmt.Errorf("%w: rootNodes[%d]: %w", ErrInvalidOptions, i, err)
			}
			r.roots = append(r.roots, root{addr: a.String()})
		}
	}
	if sawTLS && sawPlain {
		return nil, fmt.Errorf("%w: rootNodes mix redis:// and rediss://: TLS applies to every node", ErrInvalidOptions)
	}
	if sawPlain && (o.Defaults.TLS != nil || o.Defaults.TLSConfigFor != nil) {
		return nil, fmt.Errorf("%w: Defaults.TLS is set but rootNodes use redis://: use rediss://", ErrInvalidOptions)
	}
	if sawTLS && r.tls == nil && o.Defaults.TLSConfigFor == nil {
		r.tls = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if r.Defaults.ConnectTimeout == 0 {
		r.Defaults.ConnectTimeout = DefaultConnectTimeout
	}
	r.Defaults.ConnectTimeout = r.clip(r.Defaults.ConnectTimeout)
	if r.MaxCommandRedirections == 0 {
		r.MaxCommandRedirections = DefaultMaxCommandRedirections
	}
	if r.HealthConcurrency <= 0 {
		r.HealthConcurrency = 64
	}
	return r, nil
}

func (r *resolved) newDialer() *Dialer {
	return NewDialer(DialerOptions{
		Map:            r.NodeAddressMap,
		Dial:           r.dial(),
		TLS:            r.tls,
		TLSConfigFor:   r.Defaults.TLSConfigFor,
		ServerName:     r.Defaults.TLSServerName,
		ConnectTimeout: r.Defaults.ConnectTimeout,
	})
}

// dial is the base dial function with the address policy applied.
func (r *resolved) dial() DialFunc {
	if r.AddressPolicy != nil {
		return r.AddressPolicy.Dial(r.Dial)
	}
	return r.Dial
}

func (r *resolved) rootAddrs() []string {
	out := make([]string, len(r.roots))
	for i, rt := range r.roots {
		out[i] = rt.addr
	}
	return out
}
