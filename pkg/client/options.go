package client

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// Socket is node-redis "socket": where and how to connect.
type Socket struct {
	// Host and Port of the server (default localhost:6379).
	Host string
	Port int
	// Path is a Unix socket path: it wins over Host/Port and the URL's host and port (as in
	// node-redis); not with TLS.
	Path string
	// TLS enables TLS (also implied by a rediss:// URL).
	TLS bool
	// ServerName is the name checked in the server certificate (node-redis servername;
	// default: the host dialed, after node address mapping).
	ServerName string
	// ConnectTimeout bounds TCP connect plus TLS handshake (default 5s).
	ConnectTimeout time.Duration
}

// Options are node-redis createClient options for one standalone server.
type Options struct {
	// URL is redis[s]://[[username][:password]@][host][:port][/db-number]; it wins over
	// Socket.Host/Port, and its credentials and database apply when the fields below are empty.
	URL    string
	Socket Socket
	// Username and Password authenticate (ACL); Database selects the database; Name is the
	// client name (CLIENT SETNAME).
	Username string
	Password string
	Database int
	Name     string
	// TLS is the CA bundle and client certificate (nil: system roots, no client certificate).
	// Files can be read with pkg/tls LoadFiles.
	TLS                   *rtls.Material
	TLSInsecureSkipVerify bool
	// NodeAddressMap maps the address of the server to the address to dial.
	NodeAddressMap cluster.NodeAddressMap
	// ReconnectStrategy (nil: DefaultReconnect()).
	ReconnectStrategy ReconnectStrategy
	// OnEvent receives connection events from the first connect on.
	OnEvent func(Event)
	// Dial is the base dial function (default net.Dialer).
	Dial cluster.DialFunc
	// MonitorInterval is how often the connection is checked (default 1s).
	MonitorInterval time.Duration
	// AutoPipeline batches the commands of concurrent callers into pipelines (node-redis and
	// rueidis do this by default) with the same call shape: see the package documentation.
	AutoPipeline bool
	// Scripts are Lua scripts called by name with Client.Run (node-redis "scripts").
	Scripts map[string]Script
	// Functions are function libraries by library name, their code starting with
	// "#!lua name=<library>": loaded with FUNCTION LOAD REPLACE at connect and after every
	// reconnect, then called with FCall/FCallRO (node-redis "functions" call them; loading is
	// left to the app there).
	Functions map[string]string
}

// ClusterOptions are node-redis createCluster options.
type ClusterOptions struct {
	// RootNodes are URLs of seed nodes; credentials in a URL apply when Defaults has none.
	RootNodes []string
	// Defaults apply to every node: Username, Password, Name, TLS, TLSInsecureSkipVerify,
	// Socket.TLS, Socket.ServerName, Socket.ConnectTimeout. URL, Host, Port, Path and
	// Database do not apply.
	Defaults               Options
	UseReplicas            bool
	MinimizeConnections    bool
	MaxCommandRedirections int
	// NodeAddressMap is static (cluster.StaticMap) or any function.
	NodeAddressMap cluster.NodeAddressMap
	// NodeIDMap is the fallback for announced addresses NodeAddressMap has no entry for: the
	// node is looked up by its cluster node ID (see cluster.NodeIDMap).
	NodeIDMap         cluster.NodeIDMap
	ReconnectStrategy ReconnectStrategy
	OnEvent           func(Event)
	// OnNodeEvent receives the per-node events (Event.Node set) from the first connect on: see
	// Client.OnNodeEvent.
	OnNodeEvent     func(Event)
	Dial            cluster.DialFunc
	MonitorInterval time.Duration
	// AutoPipeline batches the commands of concurrent callers into per-node pipelines: see the
	// package documentation.
	AutoPipeline bool
	// Scripts and Functions: as in Options; functions are loaded on every master.
	Scripts   map[string]Script
	Functions map[string]string
}

// NewClient connects to a standalone server (node-redis createClient + connect) and returns
// once it is ready, bounded by ctx; it retries per the reconnect strategy meanwhile.
func NewClient(ctx context.Context, o Options) (*Client, error) {
	s := &spec{
		network: "tcp", username: o.Username, password: o.Password, db: o.Database, name: o.Name,
		connectTimeout: o.Socket.ConnectTimeout, serverName: o.Socket.ServerName,
		nodeMap: o.NodeAddressMap, dial: o.Dial, strategy: o.ReconnectStrategy,
		onEvent: o.OnEvent, monitor: o.MonitorInterval, autoPipeline: o.AutoPipeline,
		scripts: o.Scripts, functions: o.Functions,
	}
	useTLS := o.Socket.TLS
	switch {
	case o.URL != "":
		u, err := cluster.ParseURL(o.URL)
		if err != nil {
			return nil, err
		}
		s.addr, useTLS = u.Address.String(), useTLS || u.TLS
		if s.username == "" && s.password == "" {
			s.username, s.password = u.Username, u.Password
		}
		if s.db == 0 {
			s.db = u.DB
		}
	case o.Socket.Path != "":
	default:
		host, port := o.Socket.Host, o.Socket.Port
		if host == "" {
			host = "localhost"
		}
		if port == 0 {
			port = cluster.DefaultPort
		}
		a, err := cluster.ParseAddress(host + ":" + strconv.Itoa(port))
		if err != nil {
			return nil, err
		}
		s.addr = a.String()
	}
	if o.Socket.Path != "" {
		// node-redis: socket.path wins over the URL's host and port; its credentials and
		// database still apply.
		if useTLS {
			return nil, fmt.Errorf("rconn: Socket.Path with TLS: Redis serves its Unix socket in plaintext")
		}
		s.network, s.addr = "unix", o.Socket.Path
	}
	if s.db < 0 {
		return nil, fmt.Errorf("rconn: negative database %d", s.db)
	}
	if err := s.setTLS(useTLS, o.TLS, o.TLSInsecureSkipVerify); err != nil {
		return nil, err
	}
	return build(ctx, s)
}

// NewCluster connects to a Redis Cluster (node-redis createCluster + connect) and returns once
// the topology is discovered and the nodes are connected (unless MinimizeConnections), bounded
// by ctx.
func NewCluster(ctx context.Context, o ClusterOptions) (*Client, error) {
	d := o.Defaults
	s := &spec{
		cluster: true, username: d.Username, password: d.Password, name: d.Name,
		connectTimeout: d.Socket.ConnectTimeout, serverName: d.Socket.ServerName,
		nodeMap: o.NodeAddressMap, nodeIDs: o.NodeIDMap, useReplicas: o.UseReplicas, minimize: o.MinimizeConnections,
		maxRedirects: o.MaxCommandRedirections, dial: o.Dial, strategy: o.ReconnectStrategy,
		onEvent: o.OnEvent, onNodeEvent: o.OnNodeEvent, monitor: o.MonitorInterval, autoPipeline: o.AutoPipeline,
		scripts: o.Scripts, functions: o.Functions,
	}
	useTLS := d.Socket.TLS
	for i, raw := range o.RootNodes {
		u, err := cluster.ParseURL(raw)
		if err != nil {
			return nil, fmt.Errorf("rconn: rootNodes[%d]: %w", i, err)
		}
		useTLS = useTLS || u.TLS
		if s.username == "" && s.password == "" && (u.Username != "" || u.Password != "") {
			s.username, s.password = u.Username, u.Password
		}
		// TLS (live material) reaches pkg/cluster as Defaults.TLSConfigFor, not through the scheme.
		s.roots = append(s.roots, cluster.RootNode{Address: u.Address})
	}
	if err := s.setTLS(useTLS, d.TLS, d.TLSInsecureSkipVerify); err != nil {
		return nil, err
	}
	return build(ctx, s)
}

func (s *spec) setTLS(on bool, m *rtls.Material, insecure bool) error {
	if !on {
		if m != nil {
			return fmt.Errorf("rconn: TLS material given but TLS is off (set Socket.TLS or use rediss://)")
		}
		return nil
	}
	r, err := rtls.NewReloadable(rtls.Options{Material: m, ServerName: s.serverName, InsecureSkipVerify: insecure})
	if err != nil {
		return fmt.Errorf("rconn: TLS material: %w", err)
	}
	s.tls = r
	return nil
}
