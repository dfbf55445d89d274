package client

import (
	"context"
	"errors"
	"sync"
	"time"

	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// Resolved is one validated version of the rendered outputs, for programs that consume the
// configuration without a go-redis client of this package (rconn proxy): config.json and the
// secret material it names, read from the Secret only.
type Resolved struct {
	// Version is the Source's version of this content.
	Version string
	Config  *Config
	// Username and Password are nil when the Secret has no such key.
	Username, Password *string
	// TLS is the TLS material when defaults.socket.tls (nil otherwise).
	TLS *rtls.Material

	snap *snapshot
}

// Credentials returns username and password ("" for missing keys).
func (r *Resolved) Credentials() (string, string) { return r.snap.creds() }

// NewMountSource returns the Source behind Open for the same directories, by the same rule:
// one directory holding both, or several of which exactly one holds config.json.
func NewMountSource(dirs ...string) (Source, error) {
	if len(dirs) == 0 {
		return nil, errors.New("rconn: a mount source needs the mount directory of the config (and of the Secret)")
	}
	return mountsOf(dirs)
}

// WatchOptions tune Watch. The zero value is what Open uses.
type WatchOptions struct {
	// ReloadInterval is how often a Source without change notifications is polled (default
	// DefaultReloadInterval).
	ReloadInterval time.Duration
	// SecretWait is OpenOptions.SecretWait.
	SecretWait time.Duration
	// OnError receives reload failures (reported once until they change); nil drops them.
	OnError func(error)
}

// Watcher follows a Source by the rules of OpenSource (validate before use, keep the last good
// version, apply config.json and the Secret as a pair, retry what could not be read) and
// hands out each new version. It runs the reloader of Open, publishing versions instead of
// applying them to a client.
type Watcher struct {
	r       *reloader
	onError func(error)
	updates chan *Resolved

	mu  sync.Mutex
	cur *Resolved
}

// Watch reads the first valid version (bounded by ctx), then follows src in the background
// until Close. Watch owns src: when it implements io.Closer it is closed with the Watcher.
func Watch(ctx context.Context, src Source, o WatchOptions) (*Watcher, error) {
	if o.SecretWait <= 0 {
		o.SecretWait = DefaultSecretWait
	}
	if o.ReloadInterval <= 0 {
		o.ReloadInterval = DefaultReloadInterval
	}
	w := &Watcher{onError: o.OnError, updates: make(chan *Resolved, 1)}
	r := newReloader(src, o.ReloadInterval, o.SecretWait)
	r.use, r.onError = w.publish, w.report
	snap, version, pending, err := r.initial(ctx)
	if err != nil {
		r.stop()
		return nil, err
	}
	r.last, r.version = snap, version
	w.r, w.cur = r, resolvedOf(snap, version)
	if pending != nil {
		w.report(pending)
	}
	r.wg.Add(1)
	go r.run()
	return w, nil
}

func resolvedOf(s *snapshot, version string) *Resolved {
	return &Resolved{Version: version, Config: s.cfg.clone(), Username: s.username, Password: s.password, TLS: s.material, snap: s}
}

// Current returns the version in use.
func (w *Watcher) Current() *Resolved {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur
}

// Updates receives each new version (coalesced: a slow reader gets the latest).
func (w *Watcher) Updates() <-chan *Resolved { return w.updates }

// Close stops following and closes the Source.
func (w *Watcher) Close() { w.r.stop() }

func (w *Watcher) report(err error) {
	if w.onError != nil {
		w.onError(err)
	}
}

// publish is the reloader's use: the version becomes Current and is offered on Updates.
func (w *Watcher) publish(next *snapshot, version string) error {
	w.r.last = next
	res := resolvedOf(next, version)
	w.mu.Lock()
	w.cur = res
	w.mu.Unlock()
	select {
	case <-w.updates:
	default:
	}
	w.updates <- res
	return nil
}

// RestartFields lists the fields that differ between two configurations and cannot be
// applied to a running client (rootNodes, mode, TLS on/off, ...).
func RestartFields(a, b *Config) []string { return restartFields(a, b) }
