package client

import (
	"context"
	"errors"
	"fmt"
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
// hands out each new version.
type Watcher struct {
	r       *reloader
	onError func(error)
	updates chan *Resolved

	mu   sync.Mutex
	cur  *Resolved
	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once
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
	r := &reloader{src: src, interval: o.ReloadInterval, wait: o.SecretWait, quit: make(chan struct{})}
	r.ctx, r.end = context.WithCancel(context.Background())
	snap, version, pending, err := r.initial(ctx)
	if err != nil {
		r.stop()
		return nil, err
	}
	r.last, r.version = snap, version
	w := &Watcher{r: r, onError: o.OnError, updates: make(chan *Resolved, 1), quit: r.quit}
	w.cur = resolvedOf(snap, version)
	if pending != nil {
		w.report(pending)
	}
	w.wg.Add(1)
	go w.run()
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
func (w *Watcher) Close() {
	w.once.Do(func() {
		w.r.stop()
	})
	w.wg.Wait()
}

func (w *Watcher) report(err error) {
	if w.onError != nil {
		w.onError(err)
	}
}

func (w *Watcher) run() {
	defer w.wg.Done()
	r := w.r
	var tick <-chan time.Time
	changed := r.src.Changed()
	if changed == nil {
		t := time.NewTicker(r.interval)
		defer t.Stop()
		tick = t.C
	}
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-w.quit:
			return
		case <-tick:
		case <-changed:
		case <-retry.C:
		}
		if d := w.poll(); d > 0 {
			retry.Reset(d)
		}
	}
}

// poll is reloader.poll without a client: a valid new version is published instead of applied.
func (w *Watcher) poll() time.Duration {
	r := w.r
	s, err := r.src.Snapshot(r.ctx)
	if err != nil {
		r.failures++
		w.reportOnce("read\x00"+err.Error(), fmt.Errorf("rconn: config reload failed, keeping the last good configuration (retrying): %w", err))
		return backoff(r.failures - 1)
	}
	r.failures = 0
	if s.Version == r.version || s.Version == r.rejected {
		return 0
	}
	waited := !r.pendingSince.IsZero() && time.Since(r.pendingSince) >= r.wait
	next, err := decode(s, r.last, waited)
	if errors.Is(err, ErrSecretPending) {
		if r.pendingSince.IsZero() {
			r.pendingSince = time.Now()
		}
		w.reportOnce(s.Version+"\x00"+err.Error(), fmt.Errorf("rconn: config reload waits, keeping the last good configuration: %w", err))
		return max(min(r.interval, r.wait-time.Since(r.pendingSince)), time.Millisecond)
	}
	if err != nil {
		r.rejected = s.Version
		w.reportOnce(s.Version+"\x00"+err.Error(), fmt.Errorf("rconn: config reload failed, keeping the last good configuration: %w", err))
		return 0
	}
	r.last, r.version, r.rejected, r.pendingSince, r.reported = next, s.Version, "", time.Time{}, ""
	res := resolvedOf(next, s.Version)
	w.mu.Lock()
	w.cur = res
	w.mu.Unlock()
	select {
	case <-w.updates:
	default:
	}
	w.updates <- res
	return 0
}

func (w *Watcher) reportOnce(key string, err error) {
	if key == w.r.reported {
		return
	}
	w.r.reported = key
	w.report(err)
}

// RestartFields lists the fields that differ between two configurations and cannot be
// applied to a running client (rootNodes, mode, TLS on/off, ...).
func RestartFields(a, b *Config) []string { return restartFields(a, b) }
