// Package kubeletmount writes files the way kubelet lays out a ConfigMap, Secret or projected
// volume, so tests and the demo exercise the exact layout apps see:
//
//	..2026_11_22_01_02_03.000000001/<file>   the real files of one version
//	..data -> ..2026_11_22_01_02_03.000000001  swapped in one rename
//	<file> -> ..data/<file>
package kubeletmount

import (
	"os"
	"path/filepath"
	"time"
)

// Write makes files the current version of dir, atomically as kubelet's AtomicWriter does: a
// new timestamped directory, "..data" renamed over to point at it, a symlink per file into
// "..data"; links of files that are gone and the previous version are removed.
func Write(dir string, files map[string][]byte, mode os.FileMode) error {
	return WriteFunc(dir, files, mode, nil)
}

// WriteFunc is Write, with before (when set) called on the new version's directory after its
// files are written and before it is swapped in: the seam for tests that need a version which
// is already broken (a file replaced by a directory, say) the moment it becomes visible.
func WriteFunc(dir string, files map[string][]byte, mode os.FileMode, before func(versionDir string) error) error {
	ts := filepath.Join(dir, ".."+time.Now().UTC().Format("2006_01_02_15_04_05.000000000"))
	if err := os.Mkdir(ts, 0o755); err != nil {
		return err
	}
	for k, v := range files {
		if err := os.WriteFile(filepath.Join(ts, k), v, mode); err != nil {
			return err
		}
	}
	if before != nil {
		if err := before(ts); err != nil {
			return err
		}
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		return err
	}
	for k := range files {
		link := filepath.Join(dir, k)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", k), link); err != nil {
				return err
			}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if name := e.Name(); name[0] != '.' {
			if _, ok := files[name]; !ok {
				_ = os.Remove(filepath.Join(dir, name))
			}
		}
	}
	if old != "" && old != filepath.Base(ts) {
		_ = os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}
