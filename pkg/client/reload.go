package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// Retry pacing of versions that could not be read (and of Open's first read).
const (
	retryBase = 100 * time.Millisecond
	retryCap  = 5 * time.Second
)

func backoff(failures int) time.Duration {
	if failures > 6 {
		return retryCap
	}
	return min(retryBase<<failures, retryCap)
}

// reloader applies the versions a Source supplies, by the rules documented on OpenSource.
// What "apply" and "report" mean is up to its user: a Client (Open) applies each version to
// itself and emits failures as events; a Watcher publishes them.
type reloader struct {
	c        *Client
	src      Source
	interval time.Duration
	wait     time.Duration
	onReload func(error)
	// use applies a decoded version (nil: to c, see applyToClient); an error other than
	// ErrRestartRequired rejects the version.
	use func(next *snapshot, version string) error
	// onError reports a failure, outside the lock (nil: an EventError of c).
	onError func(error)

	mu           sync.Mutex
	last         *snapshot // what runs
	version      string    // the version applied last
	rejected     string    // a version whose content failed to validate: not retried
	pendingSince time.Time // when config.json started waiting for its Secret
	forced       string    // the mismatch applied after waiting: the same one waits no more
	reported     string    // the failure reported last: a retry failing alike is not reported again
	failures     int       // consecutive read failures
	// retired are nodeAddressMap entries a newer map dropped, kept as a fallback (see
	// retiredMapTTL): announced -> reachable, and when they were dropped.
	retired map[string]retiredEntry

	quit chan struct{}
	ctx  context.Context // ends with quit: bounds the source's reads
	end  context.CancelFunc
	once sync.Once
	wg   sync.WaitGroup
}

func (r *reloader) stop() {
	r.once.Do(func() {
		close(r.quit)
		r.end()
	})
	r.wg.Wait()
	if c, ok := r.src.(io.Closer); ok {
		_ = c.Close()
	}
}

// initial reads the first version for Open: read failures are retried with backoff and an
// incomplete pair waits, both bounded by ctx (the pair wait also by SecretWait and half of what
// ctx has left); invalid content fails at once. pending reports a pair applied incomplete.
func (r *reloader) initial(ctx context.Context) (snap *snapshot, version string, pending, err error) {
	start := time.Now()
	wait := r.wait
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl)/2)
	}
	var last error
	for attempt := 0; ; attempt++ {
		s, err := r.src.Snapshot(ctx)
		delay := backoff(attempt)
		if err == nil {
			force := time.Since(start) >= wait
			next, derr := decode(s, nil, force)
			switch {
			case derr == nil && force && last != nil && errors.Is(last, ErrSecretPending):
				return next, s.Version, fmt.Errorf("rconn: opened with config.json and a Secret that do not match, after waiting %s: %w", wait.Round(time.Millisecond), last), nil
			case derr == nil:
				return next, s.Version, nil, nil
			case force && errors.Is(derr, ErrConfigNotBound) && errors.Is(last, ErrSecretPending):
				return nil, "", nil, fmt.Errorf("rconn: waited %s for the Secret that config.json was rendered with: %w", wait.Round(time.Millisecond), derr)
			case !errors.Is(derr, ErrSecretPending):
				return nil, "", nil, derr
			}
			err = derr
			delay = max(min(delay, wait-time.Since(start)), time.Millisecond)
		}
		last = err
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, "", nil, fmt.Errorf("rconn: reading the configuration: %w (last error: %w)", ctx.Err(), last)
		case <-t.C:
		}
	}
}

func (r *reloader) run() {
	defer r.wg.Done()
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
	var retryAt time.Time
	for {
		select {
		case <-r.quit:
			return
		case <-tick:
			if !retryAt.IsZero() && time.Now().Before(retryAt) {
				continue // backing off
			}
		case <-changed:
		case <-retry.C:
		}
		d := r.poll()
		retry.Stop()
		retryAt = time.Time{}
		if d > 0 {
			retryAt = time.Now().Add(d)
			retry.Reset(d)
		}
	}
}

// poll applies the source's current version if it is new, and returns when to try again (0:
// at the next change). OnReload and the error event run after the lock is released, so they
// may use the client (Config, Close, ...).
func (r *reloader) poll() time.Duration {
	snap, err := r.src.Snapshot(r.ctx)
	r.mu.Lock()
	var (
		report  error
		key     string
		applied bool
		retry   time.Duration
	)
	switch {
	case err != nil:
		report = fmt.Errorf("rconn: config reload failed, keeping the last good configuration (retrying): %w", err)
		key = "read\x00" + report.Error()
		retry = backoff(r.failures)
		r.failures++
	case snap.Version == r.version:
		r.failures, r.reported = 0, ""
	case snap.Version == r.rejected:
		r.failures = 0
	default:
		r.failures = 0
		applied, retry, report = r.update(snap)
		key = snap.Version + "\x00"
		if report != nil {
			key += report.Error()
		}
	}
	if report != nil && !applied {
		if key == r.reported {
			report = nil
		} else {
			r.reported = key
		}
	}
	r.mu.Unlock()
	if (applied || report != nil) && r.onReload != nil {
		r.onReload(report)
	}
	if report != nil {
		logNotBound(report)
		if r.onError != nil {
			r.onError(report)
		} else {
			r.c.events.emit(Event{Type: EventError, Err: report})
		}
	}
	return retry
}

// update decodes and applies a new version; applied means it now runs (report may still say
// ErrRestartRequired, or that the pair was applied incomplete after SecretWait).
func (r *reloader) update(snap *Snapshot) (applied bool, retry time.Duration, report error) {
	waited := !r.pendingSince.IsZero() && time.Since(r.pendingSince) >= r.wait
	next, err := decode(snap, r.last, waited)
	var mismatch error
	if errors.Is(err, ErrSecretPending) {
		if err.Error() != r.forced {
			if r.pendingSince.IsZero() {
				r.pendingSince = time.Now()
			}
			left := r.wait - time.Since(r.pendingSince)
			return false, max(min(r.interval, left), time.Millisecond), fmt.Errorf("rconn: config reload waits, keeping the last good configuration: %w", err)
		}
		// The mismatch already applied after waiting: the Secret is not coming.
		mismatch = err
		next, err = decode(snap, r.last, true)
	} else if waited && err == nil {
		mismatch = paired(next.cfg, snap.Secret, r.last)
	}
	if err != nil {
		// A rejected version ends the wait: the next one waits afresh for its own Secret.
		r.rejected, r.pendingSince = snap.Version, time.Time{}
		return false, 0, fmt.Errorf("rconn: config reload failed, keeping the last good configuration: %w", err)
	}
	use := r.use
	if use == nil {
		use = r.applyToClient
	}
	if err = use(next, snap.Version); err != nil && !errors.Is(err, ErrRestartRequired) {
		r.rejected = snap.Version
		return false, 0, err
	}
	r.version, r.rejected, r.pendingSince, r.reported = snap.Version, "", time.Time{}, ""
	if mismatch != nil {
		r.forced = mismatch.Error()
		err = errors.Join(err, fmt.Errorf("rconn: applied config.json without the Secret it was rendered with: %w", mismatch))
	} else {
		r.forced = ""
	}
	return true, 0, err
}

// applyToClient applies a validated snapshot to c (TLS first: it is the only part that can
// still fail), or nothing.
func (r *reloader) applyToClient(next *snapshot, _ string) error {
	m, err := r.withRetired(r.last, next)
	if err != nil {
		return fmt.Errorf("rconn: config reload failed, keeping the last good configuration: %w", err)
	}
	if r.c.tls != nil && next.material != nil {
		if err := r.c.tls.Update(next.material); err != nil {
			return fmt.Errorf("rconn: config reload failed, keeping the last good configuration: TLS material: %w", err)
		}
	}
	if err := r.c.updateSentinelTLS(next); err != nil {
		return err
	}
	prev := r.last
	if !reflect.DeepEqual(prev.cfg.Rconn.NodeIDs, next.cfg.Rconn.NodeIDs) && r.c.cluster != nil {
		_ = r.c.cluster.SetNodeIDMap(next.nodeIDs()) // validated by LoadConfig
	}
	if !reflect.DeepEqual(prev.cfg.NodeAddressMap, next.cfg.NodeAddressMap) {
		r.c.SetNodeAddressMap(m)
	}
	r.c.SetCredentials(next.creds())
	r.c.updateSentinel(next)
	r.last = next
	if changed := restartFields(prev.cfg, next.cfg); len(changed) > 0 {
		// Keep reporting against the running configuration.
		r.last = &snapshot{cfg: prev.cfg.clone(), username: next.username, password: next.password, material: next.material, files: next.files,
			sentinelUsername: next.sentinelUsername, sentinelPassword: next.sentinelPassword, sentinelMaterial: next.sentinelMaterial}
		r.last.cfg.Rconn.Sentinels = next.cfg.Rconn.Sentinels
		r.last.cfg.NodeAddressMap = next.cfg.NodeAddressMap
		r.last.cfg.Rconn.NodeIDs = next.cfg.Rconn.NodeIDs
		r.last.cfg.Rconn.SecretKeys, r.last.cfg.Rconn.SecretToken = next.cfg.Rconn.SecretKeys, next.cfg.Rconn.SecretToken
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
	diff("scripts", a.Scripts, b.Scripts)
	diff("functions", a.Functions, b.Functions)
	diff("rconn.functionLibraries", a.Rconn.FunctionLibraries, b.Rconn.FunctionLibraries)
	diff("name", a.Name, b.Name)
	diff("sentinelRootNodes", a.SentinelRootNodes, b.SentinelRootNodes)
	diff("nodeClientOptions", a.NodeClientOptions, b.NodeClientOptions)
	diff("sentinelClientOptions", a.SentinelClientOptions, b.SentinelClientOptions)
	diff("replicaPoolSize", a.ReplicaPoolSize, b.ReplicaPoolSize)
	diff("rconn.sentinelTlsInsecureSkipVerify", a.Rconn.SentinelTLSInsecureSkipVerify, b.Rconn.SentinelTLSInsecureSkipVerify)
	return out
}

// retiredMapTTL is how long a nodeAddressMap entry that a newer map dropped still answers for
// its announced address, and retiredMapMax bounds how many are kept (oldest go first). A pod's
// old IP stays in go-redis's slot map and node list for a while after the pod restarted (until
// its next reload, or longer on a node whose view lags): dialing it as announced would hang on an
// address nobody serves, while its old entry's reachable address (a per-pod LoadBalancer or
// PodDNS name) reaches the same node under its new IP, which answers or redirects.
const (
	retiredMapTTL = 10 * time.Minute
	retiredMapMax = 4096
)

type retiredEntry struct {
	reachable string
	at        time.Time
}

// withRetired is next's node address map plus the entries earlier maps had and next dropped
// (within retiredMapTTL); entries of next always win.
func (r *reloader) withRetired(prev, next *snapshot) (cluster.NodeAddressMap, error) {
	now := time.Now()
	if r.retired == nil {
		r.retired = map[string]retiredEntry{}
	}
	if prev != nil {
		for k, v := range prev.cfg.NodeAddressMap {
			if _, ok := next.cfg.NodeAddressMap[k]; !ok {
				r.retired[k] = retiredEntry{reachable: v.String(), at: now}
			}
		}
	}
	for k, e := range r.retired {
		if _, ok := next.cfg.NodeAddressMap[k]; ok || now.Sub(e.at) > retiredMapTTL {
			delete(r.retired, k)
		}
	}
	if over := len(r.retired) - retiredMapMax; over > 0 {
		keys := slices.SortedFunc(maps.Keys(r.retired), func(a, b string) int { return r.retired[a].at.Compare(r.retired[b].at) })
		for _, k := range keys[:over] {
			delete(r.retired, k)
		}
	}
	if len(next.cfg.NodeAddressMap) == 0 && len(r.retired) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(next.cfg.NodeAddressMap)+len(r.retired))
	for k, e := range r.retired {
		m[k] = e.reachable
	}
	for k, v := range next.cfg.NodeAddressMap {
		m[k] = v.String()
	}
	return cluster.StaticMap(m)
}
