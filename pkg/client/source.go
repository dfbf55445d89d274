package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// Snapshot is one version of the rendered outputs as a Source read them: config.json from the
// ConfigMap and the keys of the Secret, kept apart so that secret material can only ever come
// from the Secret.
type Snapshot struct {
	// Version identifies the content: two snapshots of one Source with the same Version hold
	// the same files (a mount's "..data" targets, the objects' resourceVersions, ...).
	Version string
	// Config is config.json, from the ConfigMap.
	Config []byte
	// Secret holds the Secret's keys. Credentials and TLS material are read from here only.
	Secret map[string][]byte
}

// Source supplies the rendered outputs to OpenSource: the mounted files (Open, OpenMounts) or
// the objects themselves through the Kubernetes API (package kubesource). The reload rules
// (validate everything before applying anything, keep the last good configuration, apply
// config.json and the Secret as a pair, retry what failed for a transient reason) live in
// OpenSource, not in the sources.
type Source interface {
	// Snapshot returns the current version. An error means "cannot be read right now" (a file
	// vanished mid-swap, EMFILE, the API server unreachable, the object deleted): it is
	// reported and retried with backoff while the last good configuration keeps running.
	// Sources cache: an unchanged version costs no reads.
	Snapshot(ctx context.Context) (*Snapshot, error)
	// Changed returns a channel that receives (coalesced) when Snapshot may have a new
	// version, for sources that are told about changes (an API watch). Nil: Snapshot is polled
	// every ReloadInterval.
	Changed() <-chan struct{}
}

// Bounds of what a snapshot may hold: a ConfigMap or Secret holds at most 1 MiB.
const (
	MaxConfigBytes = 1 << 20
	MaxSecretBytes = 1 << 20
)

// DefaultSecretWait is how long a config.json waits for the Secret it was rendered with
// (OpenOptions.SecretWait).
const DefaultSecretWait = 2 * time.Minute

// ErrSecretPending is wrapped by the reload error reporting that config.json waits for the
// Secret it was rendered with (its rconn.secretToken, or a key listed in rconn.secretKeys,
// is not in the Secret yet). Nothing of that version is applied until the Secret arrives or
// OpenOptions.SecretWait passes; then what is there is applied and the mismatch reported.
var ErrSecretPending = errors.New("waiting for the Secret that config.json was rendered with")

// snapshot is a decoded and validated Snapshot.
type snapshot struct {
	cfg      *Config
	username *string
	password *string
	material *rtls.Material // TLS material when the data nodes' socket.tls
	files    map[string]bool

	// Sentinel mode: the sentinels' credentials and TLS material (sentinelClientOptions.socket.tls).
	sentinelUsername, sentinelPassword *string
	sentinelMaterial                   *rtls.Material
}

// contentError marks an error in the content of a version: it cannot heal until the version
// changes, so that version is not retried.
type contentError struct{ err error }

func (e *contentError) Error() string { return e.err.Error() }
func (e *contentError) Unwrap() error { return e.err }

func invalid(err error) error { return &contentError{err} }

// decode validates a Snapshot. prev, when set, is the last good snapshot. A config.json whose
// digest the Secret does not carry is never accepted (bound): ErrSecretPending while it may be
// half of a re-rendered pair and force is not set, else ErrConfigNotBound. Unless force is set,
// a Secret that does not match config.json otherwise (listed keys, or, for a config.json
// without rconn.secretKeys, a key prev had) is ErrSecretPending; any other error is a
// contentError.
func decode(s *Snapshot, prev *snapshot, force bool) (*snapshot, error) {
	if len(s.Config) > MaxConfigBytes {
		return nil, invalid(fmt.Errorf("rconn: %s is larger than %d bytes", ConfigFileName, MaxConfigBytes))
	}
	total := 0
	for _, v := range s.Secret {
		total += len(v)
	}
	if total > MaxSecretBytes {
		return nil, invalid(fmt.Errorf("rconn: the Secret holds more than %d bytes", MaxSecretBytes))
	}
	cfg, err := LoadConfig(s.Config)
	if err != nil {
		return nil, invalid(err)
	}
	if err := bound(s.Config, cfg, s.Secret, force); err != nil {
		return nil, err
	}
	if !force {
		if err := paired(cfg, s.Secret, prev); err != nil {
			return nil, err
		}
	}
	out := &snapshot{cfg: cfg, files: map[string]bool{}}
	get := func(name string) []byte {
		b, ok := s.Secret[name]
		if !ok || cfg.Rconn.SecretKeys != nil && !slices.Contains(cfg.Rconn.SecretKeys, name) {
			return nil
		}
		out.files[name] = true
		if b == nil {
			b = []byte{}
		}
		return b
	}
	str := func(b []byte) *string {
		if b == nil {
			return nil
		}
		v := strings.TrimRight(string(b), "\r\n")
		return &v
	}
	f := cfg.Rconn.SecretFiles.withDefaults()
	out.username, out.password = str(get(f.Username)), str(get(f.Password))
	if cfg.dataOptions().Socket.TLS {
		if out.material, err = material(get(f.CA), get(f.Cert), get(f.Key), f.Cert, f.Key); err != nil {
			return nil, err
		}
	}
	if cfg.ModeOrDefault() == ModeSentinel {
		out.sentinelUsername, out.sentinelPassword = str(get(f.SentinelUsername)), str(get(f.SentinelPassword))
		if cfg.SentinelClientOptions.Socket.TLS {
			if out.sentinelMaterial, err = material(get(f.SentinelCA), get(f.SentinelCert), get(f.SentinelKey), f.SentinelCert, f.SentinelKey); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// material checks TLS material read from the Secret (a contentError when it is unusable).
func material(ca, cert, key []byte, certName, keyName string) (*rtls.Material, error) {
	m := &rtls.Material{CA: ca, Cert: cert, Key: key}
	if (m.Cert == nil) != (m.Key == nil) {
		return nil, invalid(fmt.Errorf("rconn: TLS client certificate and key go together: found only one of %s and %s", certName, keyName))
	}
	if _, err := rtls.Validate(m, time.Now()); err != nil && !errors.Is(err, rtls.ErrCertificateNotYetValid) {
		return nil, invalid(fmt.Errorf("rconn: TLS material: %w", err))
	}
	return m, nil
}

// paired checks that the Secret is the one config.json was rendered with.
func paired(cfg *Config, secret map[string][]byte, prev *snapshot) error {
	if want := cfg.Rconn.SecretToken; want != "" {
		if have := string(bytes.TrimSpace(secret[SecretKeyToken])); have != want {
			if have == "" {
				have = "none"
			}
			return fmt.Errorf("rconn: %w: config.json names Secret token %s, the Secret has %s", ErrSecretPending, want, have)
		}
	}
	if cfg.Rconn.SecretKeys != nil {
		for _, k := range cfg.Rconn.SecretKeys {
			if _, ok := secret[k]; !ok {
				return fmt.Errorf("rconn: %w: config.json lists Secret key %s, the Secret lacks it", ErrSecretPending, k)
			}
		}
		return nil
	}
	if prev != nil {
		// Without rconn.secretKeys a missing file cannot be told from a half-written Secret.
		for _, k := range slices.Sorted(maps.Keys(prev.files)) {
			if _, ok := secret[k]; !ok {
				return fmt.Errorf("rconn: %w: secret file %s disappeared (config.json has no rconn.secretKeys saying it was removed)", ErrSecretPending, k)
			}
		}
	}
	return nil
}

// secretNames are the Secret keys a config.json makes the client read (read leniently: a
// config.json that does not parse is rejected by decode later, the defaults do until then).
func secretNames(config []byte) []string {
	var doc struct {
		Rconn RconnConfig `json:"rconn"`
	}
	_ = json.Unmarshal(config, &doc)
	f := doc.Rconn.SecretFiles.withDefaults()
	names := append(f.names(), SecretKeyToken, SecretKeyConfigDigest)
	for _, k := range doc.Rconn.SecretKeys {
		if validFileName(k) && !slices.Contains(names, k) {
			names = append(names, k)
		}
	}
	out := names[:0]
	for _, n := range names {
		if validFileName(n) {
			out = append(out, n)
		}
	}
	return out
}
