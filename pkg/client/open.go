package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"time"

	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// DefaultReloadInterval is how often Open checks the mounted files for changes.
const DefaultReloadInterval = time.Second

// OpenOptions tune Open. The zero value is what Open uses.
type OpenOptions struct {
	// ReloadInterval is how often the mounts are checked for changes (default 1s; negative
	// disables hot reload).
	ReloadInterval time.Duration
	// Dial is the base dial function beneath the node address map (default net.Dialer): the
	// seam for SOCKS proxies, port-forwards, and tests that must never resolve a name.
	Dial cluster.DialFunc
	// OnEvent receives connection events from the first connect on, and reload errors as
	// EventError.
	OnEvent func(Event)
	// OnNodeEvent receives the per-node events of cluster mode (Event.Node set) from the first
	// connect on: see Client.OnNodeEvent.
	OnNodeEvent func(Event)
	// ReconnectStrategy overrides rconn.reconnectStrategy of the config.
	ReconnectStrategy ReconnectStrategy
	// MonitorInterval is how often the connection is checked (default 1s).
	MonitorInterval time.Duration
	// OnReload, when set, is called on the reload goroutine after every reload that applied a
	// new version (with nil, or an error wrapping ErrRestartRequired) or failed in a way not
	// reported just before (a retried failure that stays the same is reported once). Failures
	// are also emitted as EventError.
	OnReload func(err error)
	// SecretWait bounds how long a config.json waits for the Secret it was rendered with
	// (ErrSecretPending) before what is there is applied (default DefaultSecretWait). Open waits
	// at most half of the time its ctx has left.
	SecretWait time.Duration
}

// ErrRestartRequired is wrapped by the reload error reporting a change that cannot be applied
// to a running client (rootNodes, mode, TLS on/off, ...). The live parts of that change (node
// address map, credentials, certificates) are applied.
var ErrRestartRequired = errors.New("restart required")

// Open is OpenOptions{}.Open.
func Open(ctx context.Context, dirs ...string) (*Client, error) {
	return OpenOptions{}.Open(ctx, dirs...)
}

// Open reads config.json and the Secret files from the mount directories of the ConfigMap and
// the Secret, builds a cluster or standalone client, and returns once it is ready (bounded by
// ctx). It then watches the mounts (the kubelet swaps "..data" atomically) and applies a new
// node address map, password or TLS material live, by the rules of OpenSource.
//
// dirs is one directory holding both (a projected volume), or several of which exactly one
// holds config.json: that one is the ConfigMap's and nothing else is read from it; secret
// material is read only from the others (the first that has a file). OpenMounts says the same
// without the search.
func (o OpenOptions) Open(ctx context.Context, dirs ...string) (*Client, error) {
	if len(dirs) == 0 {
		return nil, errors.New("rconn: Open needs the mount directory of the config (and of the Secret)")
	}
	src, err := mountsOf(dirs)
	if err != nil {
		return nil, err
	}
	return o.OpenSource(ctx, src)
}

// OpenMounts is Open with the ConfigMap's and the Secret's mounts named: config.json comes
// from m.Config only, credentials and TLS material from m.Secret only (m.Config when empty).
func (o OpenOptions) OpenMounts(ctx context.Context, m Mounts) (*Client, error) {
	if m.Config == "" {
		return nil, errors.New("rconn: OpenMounts needs the ConfigMap's mount directory")
	}
	if m.Secret == "" {
		return o.OpenSource(ctx, newMountSource(m.Config))
	}
	return o.OpenSource(ctx, newMountSource(m.Config, m.Secret))
}

// OpenSource builds a client from the configuration a Source supplies and returns once it is
// ready (bounded by ctx), then applies every new version of it:
//
//   - everything is read and validated before anything is applied; an update that does not
//     validate (invalid JSON or config, bad PEM, a certificate without its key, too large) is
//     reported as an EventError and the last good configuration keeps running; that version is
//     not retried (it cannot heal until it changes);
//   - a version that could not be read (a file vanishing mid-swap, EMFILE, an API error, a
//     deleted object) is reported and retried with backoff (100ms doubling to 5s);
//   - config.json must be the one its Secret was rendered with (the Secret's
//     SecretKeyConfigDigest is its SHA-256): one that is not is refused (ErrConfigNotBound) and
//     never applied; Open fails with it at once;
//   - config.json and the Secret are applied as a pair: while the Secret lacks the token or a
//     key config.json was rendered with, that version waits (ErrSecretPending, re-checked
//     every ReloadInterval) for up to SecretWait, then what is there is applied and reported
//     (unless the digest still does not match: then it is refused);
//   - fields that cannot change live are reported with ErrRestartRequired (the live parts of
//     that update are applied).
//
// OpenSource owns src: when it implements io.Closer it is closed with the client, or when
// OpenSource fails.
func (o OpenOptions) OpenSource(ctx context.Context, src Source) (_ *Client, err error) {
	defer func() {
		if c, ok := src.(io.Closer); ok && err != nil {
			_ = c.Close()
		}
	}()
	if o.SecretWait <= 0 {
		o.SecretWait = DefaultSecretWait
	}
	if o.ReloadInterval == 0 {
		o.ReloadInterval = DefaultReloadInterval
	}
	r := &reloader{src: src, interval: o.ReloadInterval, wait: o.SecretWait, onReload: o.OnReload, quit: make(chan struct{})}
	snap, version, pending, err := r.initial(ctx)
	if err != nil {
		return nil, err
	}
	s, err := snap.spec()
	if err != nil {
		return nil, err
	}
	s.dial, s.onEvent, s.onNodeEvent, s.monitor = o.Dial, o.OnEvent, o.OnNodeEvent, o.MonitorInterval
	if o.ReconnectStrategy != nil {
		s.strategy = o.ReconnectStrategy
	}
	c, err := build(ctx, s)
	if err != nil {
		return nil, err
	}
	r.c, r.last, r.version = c, snap, version
	r.ctx, r.end = context.WithCancel(context.Background())
	c.reload = r
	if pending != nil {
		c.events.emit(Event{Type: EventError, Err: pending})
	}
	if o.ReloadInterval > 0 {
		r.wg.Add(1)
		go r.run()
	}
	return c, nil
}

// Config returns a copy of the configuration in use (nil unless the client came from Open).
func (c *Client) Config() *Config {
	if c.reload == nil {
		return nil
	}
	c.reload.mu.Lock()
	defer c.reload.mu.Unlock()
	return c.reload.last.cfg.clone()
}

func (c *Config) clone() *Config {
	out := *c
	out.RootNodes = append([]RootNodeConfig(nil), c.RootNodes...)
	out.Rconn.SecretKeys = append([]string(nil), c.Rconn.SecretKeys...)
	if c.Rconn.SecretKeys == nil {
		out.Rconn.SecretKeys = nil
	}
	if c.NodeAddressMap != nil {
		out.NodeAddressMap = maps.Clone(c.NodeAddressMap)
	}
	if c.Rconn.NodeIDs != nil {
		out.Rconn.NodeIDs = maps.Clone(c.Rconn.NodeIDs)
	}
	out.SentinelRootNodes = append([]MappedAddress(nil), c.SentinelRootNodes...)
	out.Rconn.Sentinels = append([]string(nil), c.Rconn.Sentinels...)
	if c.Rconn.ReconnectStrategy != nil {
		rs := *c.Rconn.ReconnectStrategy
		out.Rconn.ReconnectStrategy = &rs
	}
	return &out
}

func (s *snapshot) creds() (string, string) {
	var u, p string
	if s.username != nil {
		u = *s.username
	}
	if s.password != nil {
		p = *s.password
	}
	return u, p
}

func (s *snapshot) nodeMap() (cluster.NodeAddressMap, error) {
	if len(s.cfg.NodeAddressMap) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(s.cfg.NodeAddressMap))
	for k, v := range s.cfg.NodeAddressMap {
		m[k] = v.String()
	}
	return cluster.StaticMap(m)
}

func (s *snapshot) nodeIDs() cluster.NodeIDMap {
	if len(s.cfg.Rconn.NodeIDs) == 0 {
		return nil
	}
	m := make(cluster.NodeIDMap, len(s.cfg.Rconn.NodeIDs))
	for k, v := range s.cfg.Rconn.NodeIDs {
		m[k] = cluster.Address{Host: v.Host, Port: v.Port}
	}
	return m
}

// spec turns a snapshot into client options.
func (s *snapshot) spec() (*spec, error) {
	cfg := s.cfg
	if cfg.ModeOrDefault() == ModeSentinel {
		return s.sentinelSpec() // sentinel.go
	}
	sp := &spec{
		cluster:        cfg.ModeOrDefault() == ModeCluster,
		db:             cfg.Defaults.Database,
		name:           cfg.Defaults.Name,
		connectTimeout: time.Duration(cfg.Defaults.Socket.ConnectTimeout) * time.Millisecond,
		serverName:     cfg.Defaults.Socket.ServerName,
		useReplicas:    cfg.UseReplicas,
		minimize:       cfg.MinimizeConnections,
		maxRedirects:   cfg.MaxCommandRedirections,
		strategy:       cfg.Rconn.ReconnectStrategy.strategy(),
		autoPipeline:   cfg.Rconn.AutoPipeline,
	}
	sp.username, sp.password = s.creds()
	var err error
	if sp.nodeMap, err = s.nodeMap(); err != nil {
		return nil, err
	}
	sp.nodeIDs = s.nodeIDs()
	for _, rn := range cfg.RootNodes {
		u, err := cluster.ParseURL(rn.URL)
		if err != nil {
			return nil, err
		}
		sp.roots = append(sp.roots, cluster.RootNode{Address: u.Address})
		if !sp.cluster {
			sp.addr = u.Address.String()
			if u.DB != 0 {
				sp.db = u.DB
			}
		}
	}
	sp.scripts, sp.functions = cfg.scriptOptions(), cfg.Rconn.FunctionLibraries
	if p := cfg.Defaults.Socket.Path; p != "" && !sp.cluster {
		sp.network, sp.addr = "unix", p // rootNodes[0] stays the controller's; the app dials the socket
	}
	if cfg.Defaults.Socket.TLS {
		r, err := rtls.NewReloadable(rtls.Options{Material: s.material, ServerName: sp.serverName, InsecureSkipVerify: cfg.Rconn.TLSInsecureSkipVerify})
		if err != nil {
			return nil, fmt.Errorf("rconn: TLS material: %w", err)
		}
		sp.tls = r
	}
	return sp, nil
}
