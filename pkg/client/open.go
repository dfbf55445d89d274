package client

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
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
	// ReconnectStrategy overrides rconn.reconnectStrategy of the config.
	ReconnectStrategy ReconnectStrategy
	// MonitorInterval is how often the connection is checked (default 1s).
	MonitorInterval time.Duration
	// OnReload, when set, is called after every reload attempt on the reload goroutine, with
	// nil when the change was applied (failures are also emitted as EventError).
	OnReload func(err error)
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
// the Secret (one directory holding both, or several: a file is taken from the first directory
// that has it), builds a cluster or standalone client, and returns once it is ready (bounded
// by ctx). It then watches the mounts (kubelet swaps "..data" atomically) and applies a new
// node address map, password or TLS material live. An update that does not load completely
// (invalid JSON, invalid config, bad PEM, a secret file that disappeared) is reported as an
// EventError and the last good configuration keeps running.
func (o OpenOptions) Open(ctx context.Context, dirs ...string) (*Client, error) {
	if len(dirs) == 0 {
		return nil, errors.New("rconn: Open needs the mount directory of the config (and of the Secret)")
	}
	dirs = append([]string(nil), dirs...)
	sig, _ := signature(dirs)
	snap, err := load(dirs, nil)
	if err != nil {
		return nil, err
	}
	s, err := snap.spec()
	if err != nil {
		return nil, err
	}
	s.dial, s.onEvent, s.monitor = o.Dial, o.OnEvent, o.MonitorInterval
	if o.ReconnectStrategy != nil {
		s.strategy = o.ReconnectStrategy
	}
	c, err := build(ctx, s)
	if err != nil {
		return nil, err
	}
	r := &reloader{c: c, dirs: dirs, last: snap, sig: sig, quit: make(chan struct{}), onReload: o.OnReload}
	c.reload = r
	if o.ReloadInterval >= 0 {
		if o.ReloadInterval == 0 {
			o.ReloadInterval = DefaultReloadInterval
		}
		r.wg.Add(1)
		go r.run(o.ReloadInterval)
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
	if c.NodeAddressMap != nil {
		out.NodeAddressMap = maps.Clone(c.NodeAddressMap)
	}
	if c.Rconn.NodeIDs != nil {
		out.Rconn.NodeIDs = maps.Clone(c.Rconn.NodeIDs)
	}
	if c.Rconn.ReconnectStrategy != nil {
		rs := *c.Rconn.ReconnectStrategy
		out.Rconn.ReconnectStrategy = &rs
	}
	return &out
}

// snapshot is everything loaded from the mounts at one point.
type snapshot struct {
	cfg      *Config
	username *string
	password *string
	material *rtls.Material // TLS material when defaults.socket.tls
	files    map[string]bool
	tls      *rtls.Reloadable
}

// roots returns where to read each dir's files: the resolved "..data" (kubelet projected
// volumes, so that all files come from one atomic version) or the dir itself.
func roots(dirs []string) []string {
	out := make([]string, len(dirs))
	for i, d := range dirs {
		out[i] = d
		if t, err := os.Readlink(filepath.Join(d, "..data")); err == nil {
			if !filepath.IsAbs(t) {
				t = filepath.Join(d, t)
			}
			out[i] = t
		}
	}
	return out
}

// signature identifies the state of the mounts: the target of each "..data", or a hash of the
// files when a dir has none.
func signature(dirs []string) (string, error) {
	h := sha256.New()
	var errs []error
	for _, d := range dirs {
		if t, err := os.Readlink(filepath.Join(d, "..data")); err == nil {
			fmt.Fprintf(h, "L%s\x00%s\x00", d, t)
			continue
		}
		entries, err := os.ReadDir(d)
		if err != nil {
			errs = append(errs, err)
			fmt.Fprintf(h, "E%s\x00", d)
			continue
		}
		names := make([]string, 0, len(entries))
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), "..") {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, n := range names {
			b, err := os.ReadFile(filepath.Join(d, n))
			if err != nil {
				continue // directories and the like
			}
			fmt.Fprintf(h, "F%s\x00%d\x00", n, len(b))
			h.Write(b)
		}
	}
	return string(h.Sum(nil)), errors.Join(errs...)
}

// load reads and validates everything. prev, when set, is the last good snapshot: a secret
// file it had that is now missing is an error (a half-written Secret must not drop auth).
func load(dirs []string, prev *snapshot) (*snapshot, error) {
	rs := roots(dirs)
	read := func(name string) ([]byte, bool, error) {
		for _, r := range rs {
			b, err := os.ReadFile(filepath.Join(r, name))
			if err == nil {
				return b, true, nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return nil, false, fmt.Errorf("rconn: reading %s: %w", name, err)
			}
		}
		return nil, false, nil
	}
	data, ok, err := read(ConfigFileName)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("rconn: %s not found in %s", ConfigFileName, strings.Join(dirs, ", "))
	}
	cfg, err := LoadConfig(data)
	if err != nil {
		return nil, err
	}
	s := &snapshot{cfg: cfg, files: map[string]bool{}}
	f := cfg.Rconn.SecretFiles.withDefaults()
	get := func(name string) ([]byte, error) {
		b, ok, err := read(name)
		if err != nil {
			return nil, err
		}
		if !ok && prev != nil && prev.files[name] {
			return nil, fmt.Errorf("rconn: secret file %s disappeared from %s", name, strings.Join(dirs, ", "))
		}
		if ok {
			s.files[name] = true
		}
		return b, nil
	}
	str := func(b []byte) *string {
		if b == nil {
			return nil
		}
		v := strings.TrimRight(string(b), "\r\n")
		return &v
	}
	b, err := get(f.Username)
	if err != nil {
		return nil, err
	}
	s.username = str(b)
	if b, err = get(f.Password); err != nil {
		return nil, err
	}
	s.password = str(b)
	if cfg.Defaults.Socket.TLS {
		m := &rtls.Material{}
		if m.CA, err = get(f.CA); err != nil {
			return nil, err
		}
		if m.Cert, err = get(f.Cert); err != nil {
			return nil, err
		}
		if m.Key, err = get(f.Key); err != nil {
			return nil, err
		}
		if (m.Cert == nil) != (m.Key == nil) {
			return nil, fmt.Errorf("rconn: TLS client certificate and key go together: found only one of %s and %s", f.Cert, f.Key)
		}
		if _, err := rtls.Validate(m, time.Now()); err != nil && !errors.Is(err, rtls.ErrCertificateNotYetValid) {
			return nil, fmt.Errorf("rconn: TLS material: %w", err)
		}
		s.material = m
	}
	return s, nil
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
	if cfg.Defaults.Socket.TLS {
		r, err := rtls.NewReloadable(rtls.Options{Material: s.material, ServerName: sp.serverName, InsecureSkipVerify: cfg.Rconn.TLSInsecureSkipVerify})
		if err != nil {
			return nil, fmt.Errorf("rconn: TLS material: %w", err)
		}
		sp.tls = r
	}
	return sp, nil
}

// reloader polls the mounts and applies changes.
type reloader struct {
	c    *Client
	dirs []string

	mu   sync.Mutex
	last *snapshot
	sig  string

	failedSig string
	onReload  func(error)
	applied   atomic.Int64
	quit      chan struct{}
	once      sync.Once
	wg        sync.WaitGroup
}

func (r *reloader) stop() {
	r.once.Do(func() { close(r.quit) })
	r.wg.Wait()
}

func (r *reloader) run(interval time.Duration) {
	defer r.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-r.quit:
			return
		case <-t.C:
		}
		r.poll()
	}
}

// poll applies the mounts if they changed since the last poll. OnReload and the error event
// run after the lock is released, so they may use the client (Config, Close, ...).
func (r *reloader) poll() {
	sig, _ := signature(r.dirs)
	r.mu.Lock()
	if sig == r.sig || sig == r.failedSig {
		r.mu.Unlock()
		return
	}
	err := r.apply()
	switch {
	case err == nil || errors.Is(err, ErrRestartRequired):
		r.sig, r.failedSig = sig, ""
	default:
		r.failedSig = sig
	}
	r.mu.Unlock()
	if r.onReload != nil {
		r.onReload(err)
	}
	if err != nil {
		r.c.events.emit(Event{Type: EventError, Err: err})
	}
}

// apply loads and validates everything, then applies it (TLS first: it is the only part that
// can still fail), or nothing.
func (r *reloader) apply() error {
	next, err := load(r.dirs, r.last)
	if err != nil {
		return fmt.Errorf("rconn: config reload failed, keeping the last good configuration: %w", err)
	}
	m, err := next.nodeMap()
	if err != nil {
		return fmt.Errorf("rconn: config reload failed, keeping the last good configuration: %w", err)
	}
	if r.c.tls != nil && next.material != nil {
		if err := r.c.tls.Update(next.material); err != nil {
			return fmt.Errorf("rconn: config reload failed, keeping the last good configuration: TLS material: %w", err)
		}
	}
	prev := r.last
	if !reflect.DeepEqual(prev.cfg.Rconn.NodeIDs, next.cfg.Rconn.NodeIDs) && r.c.cluster != nil {
		_ = r.c.cluster.SetNodeIDMap(next.nodeIDs()) // validated by LoadConfig
	}
	if !reflect.DeepEqual(prev.cfg.NodeAddressMap, next.cfg.NodeAddressMap) {
		r.c.SetNodeAddressMap(m)
	}
	r.c.SetCredentials(next.creds())
	r.last = next
	r.applied.Add(1)
	if changed := restartFields(prev.cfg, next.cfg); len(changed) > 0 {
		// Keep reporting against the running configuration.
		r.last = &snapshot{cfg: prev.cfg.clone(), username: next.username, password: next.password, material: next.material, files: next.files}
		r.last.cfg.NodeAddressMap = next.cfg.NodeAddressMap
		r.last.cfg.Rconn.NodeIDs = next.cfg.Rconn.NodeIDs
		return fmt.Errorf("rconn: %w to apply changed %s (node address map, credentials and certificates were applied)", ErrRestartRequired, strings.Join(changed, ", "))
	}
	return nil
}

// restartFields lists the fields that differ and cannot be applied live.
func restartFields(a, b *Config) []string {
	var out []string
	diff := func(name string, x, y any) {
		if !reflect.DeepEqual(x, y) {
			out = append(out, name)
		}
	}
	diff("rootNodes", a.RootNodes, b.RootNodes)
	diff("defaults", a.Defaults, b.Defaults)
	diff("useReplicas", a.UseReplicas, b.UseReplicas)
	diff("minimizeConnections", a.MinimizeConnections, b.MinimizeConnections)
	diff("maxCommandRedirections", a.MaxCommandRedirections, b.MaxCommandRedirections)
	diff("rconn.mode", a.ModeOrDefault(), b.ModeOrDefault())
	diff("rconn.reconnectStrategy", a.Rconn.ReconnectStrategy, b.Rconn.ReconnectStrategy)
	diff("rconn.autoPipeline", a.Rconn.AutoPipeline, b.Rconn.AutoPipeline)
	diff("rconn.tlsInsecureSkipVerify", a.Rconn.TLSInsecureSkipVerify, b.Rconn.TLSInsecureSkipVerify)
	diff("rconn.secretFiles", a.Rconn.SecretFiles.withDefaults(), b.Rconn.SecretFiles.withDefaults())
	return out
}
