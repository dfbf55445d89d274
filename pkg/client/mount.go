package client

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// Mounts names the directories where the rendered outputs are mounted (OpenMounts).
type Mounts struct {
	// Config is the ConfigMap's mount: config.json is read from here, and nothing else is.
	Config string
	// Secret is the Secret's mount: credentials and TLS material are read from here only,
	// whatever else Config holds. Empty: Config is one projected volume holding both (see
	// docs/consuming.md: project only config.json from the ConfigMap).
	Secret string
}

// mountSource reads the kubelet's volumes. Each directory's files come from one version: the
// resolved "..data" (swapped atomically by the kubelet), and a read during which a "..data"
// changed is retried rather than mixed.
type mountSource struct {
	configDir  string
	secretDirs []string
	dirs       []string // all of them, for the signature

	mu     sync.Mutex
	cached *Snapshot
}

func newMountSource(configDir string, secretDirs ...string) *mountSource {
	if len(secretDirs) == 0 {
		secretDirs = []string{configDir}
	}
	dirs := []string{configDir}
	for _, d := range secretDirs {
		if d != configDir {
			dirs = append(dirs, d)
		}
	}
	return &mountSource{configDir: configDir, secretDirs: secretDirs, dirs: dirs}
}

// mountsOf implements Open's rule for a list of directories: one directory holds both, or
// exactly one of several holds config.json (the ConfigMap's) and the others are the Secret's.
func mountsOf(dirs []string) (*mountSource, error) {
	if len(dirs) == 1 {
		return newMountSource(dirs[0]), nil
	}
	var cfg, sec []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, ConfigFileName)); err == nil {
			cfg = append(cfg, d)
		} else {
			sec = append(sec, d)
		}
	}
	switch len(cfg) {
	case 0:
		return nil, fmt.Errorf("rconn: %s not found in %s", ConfigFileName, strings.Join(dirs, ", "))
	case 1:
		return newMountSource(cfg[0], sec...), nil
	default:
		return nil, fmt.Errorf("rconn: %s found in %s: pass the ConfigMap's mount and the Secret's (OpenMounts), or one projected volume", ConfigFileName, strings.Join(cfg, " and "))
	}
}

func (m *mountSource) Changed() <-chan struct{} { return nil }

func (m *mountSource) Snapshot(context.Context) (*Snapshot, error) {
	sig, err := signature(m.dirs)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cached != nil && m.cached.Version == sig {
		return m.cached, nil
	}
	cfgRoot := root(m.configDir)
	config, ok, err := readCapped(filepath.Join(cfgRoot, ConfigFileName), MaxConfigBytes)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("rconn: %s not found in %s", ConfigFileName, m.configDir)
	}
	secRoots := make([]string, len(m.secretDirs))
	for i, d := range m.secretDirs {
		secRoots[i] = root(d)
	}
	secret := map[string][]byte{}
	for _, name := range secretNames(config) {
		for _, r := range secRoots {
			b, ok, err := readCapped(filepath.Join(r, name), MaxSecretBytes)
			if err != nil {
				return nil, err
			}
			if ok {
				secret[name] = b
				break
			}
		}
	}
	if now, _ := signature(m.dirs); now != sig {
		return nil, errors.New("rconn: a mount changed while it was read")
	}
	m.cached = &Snapshot{Version: sig, Config: config, Secret: secret}
	return m.cached, nil
}

// readCapped reads at most limit+1 bytes of a file (decode rejects more than limit); a missing
// file is ok=false, any other failure an error.
func readCapped(path string, limit int64) ([]byte, bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("rconn: reading %s: %w", filepath.Base(path), err)
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, false, fmt.Errorf("rconn: reading %s: %w", filepath.Base(path), err)
	}
	return b, true, nil
}

// root returns where to read a dir's files: the resolved "..data" (kubelet volumes, so that all
// files come from one atomic version) or the dir itself.
func root(d string) string {
	if t, err := os.Readlink(filepath.Join(d, "..data")); err == nil {
		if !filepath.IsAbs(t) {
			t = filepath.Join(d, t)
		}
		return t
	}
	return d
}

// signature identifies the state of the mounts: the target of each "..data", or a hash of the
// files when a dir has none.
func signature(dirs []string) (string, error) {
	h := sha256.New() // hash.Hash: Write never returns an error
	var errs []error
	for _, d := range dirs {
		if t, err := os.Readlink(filepath.Join(d, "..data")); err == nil {
			_, _ = fmt.Fprintf(h, "L%s\x00%s\x00", d, t)
			continue
		}
		entries, err := os.ReadDir(d)
		if err != nil {
			errs = append(errs, fmt.Errorf("rconn: reading the mount %s: %w", d, err))
			_, _ = fmt.Fprintf(h, "E%s\x00", d)
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
			_, _ = fmt.Fprintf(h, "F%s\x00%d\x00", n, len(b))
			h.Write(b)
		}
	}
	return fmt.Sprintf("%x", h.Sum(nil)), errors.Join(errs...)
}
