// Package npmtest installs pinned npm packages for tests that run Node.js Redis clients, once
// per machine, and prepares scripts to run with them.
//
// Installs are cached in $XDG_CACHE_HOME/rconn/<name> (~/.cache/rconn/<name>) and reused while
// every pinned package there has its pinned version. The npm registry is reached only through
// npm itself, for exactly the packages named.
package npmtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// The client versions the tests run (npm "name@version").
const (
	// NodeRedis is node-redis (npm package "redis").
	NodeRedis = "redis@6.3.1"
	// IORedis is ioredis, the current 5.x release.
	IORedis = "ioredis@5.11.1"
)

// Install returns a directory whose node_modules holds pkgs ("name@version", exact versions),
// installing them with npm into the cache directory name on first use. Concurrent installs
// (several test binaries) each install into a directory of their own and rename it into place.
func Install(ctx context.Context, name string, pkgs ...string) (string, error) {
	if _, err := exec.LookPath("node"); err != nil {
		return "", fmt.Errorf("node is not installed (make deps installs Debian's nodejs): %w", err)
	}
	if name == "" || strings.ContainsAny(name, `/\`) || len(pkgs) == 0 {
		return "", fmt.Errorf("npmtest.Install(%q, %q): want a plain directory name and packages", name, pkgs)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	root := filepath.Join(cache, "rconn")
	dir := filepath.Join(root, name)
	if Installed(dir, pkgs...) == nil {
		return dir, nil
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return "", fmt.Errorf("npm is not installed (make deps installs Debian's npm): %w", err)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(root, name+".tmp-")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	args := append([]string{"install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", tmp}, pkgs...)
	if out, err := exec.CommandContext(ctx, "npm", args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm install %s: %w\n%s", strings.Join(pkgs, " "), err, out)
	}
	if err := Installed(tmp, pkgs...); err != nil {
		return "", fmt.Errorf("after npm install: %w", err)
	}
	if Installed(dir, pkgs...) != nil {
		_ = os.RemoveAll(dir) // a stale install (other versions)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another process may have put its install there meanwhile.
		if Installed(dir, pkgs...) == nil {
			return dir, nil
		}
		return "", err
	}
	return dir, nil
}

// Installed tells why dir's node_modules does not hold exactly the versions of pkgs, or nil.
func Installed(dir string, pkgs ...string) error {
	for _, p := range pkgs {
		i := strings.LastIndex(p, "@")
		if i <= 0 {
			return fmt.Errorf("%q: want name@version", p)
		}
		name, want := p[:i], p[i+1:]
		b, err := os.ReadFile(filepath.Join(dir, "node_modules", filepath.FromSlash(name), "package.json"))
		if err != nil {
			return err
		}
		var meta struct{ Version string }
		if err := json.Unmarshal(b, &meta); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if meta.Version != want {
			return fmt.Errorf("%s is %s, want %s", name, meta.Version, want)
		}
	}
	return nil
}

// WriteScript writes src as workDir/name next to a node_modules link to installDir's, so that
// node resolves the installed packages from it (ES modules ignore NODE_PATH), and returns its
// path. workDir is usually a t.TempDir(): the shared cache is never written to.
func WriteScript(installDir, workDir, name, src string) (string, error) {
	link := filepath.Join(workDir, "node_modules")
	if err := os.Symlink(filepath.Join(installDir, "node_modules"), link); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	p := filepath.Join(workDir, name)
	return p, os.WriteFile(p, []byte(src), 0o644)
}

// DNSRefused starts the line the DNS guard prints (to stderr) for every name it refuses.
const DNSRefused = "DNS-REFUSED "

// noDNS is preloaded (node --require) before a script: every dns.lookup of a name (not an IP
// literal) fails at once and is reported on stderr, so a client that tries to reach an
// announced .invalid name sends no DNS query and the test can see that it tried.
const noDNS = `'use strict';
const dns = require('node:dns');
const net = require('node:net');
const refuse = (host) => {
  process.stderr.write(` + "`" + DNSRefused + "${host}\\n`" + `);
  const err = new Error('DNS lookup refused in tests: ' + host);
  err.code = 'ENOTFOUND';
  err.hostname = host;
  return err;
};
const lookup = dns.lookup;
dns.lookup = function (host, options, callback) {
  if (typeof options === 'function') { callback = options; options = {}; }
  if (net.isIP(host)) return lookup.call(this, host, options, callback);
  const err = refuse(host);
  process.nextTick(callback, err);
};
const plookup = dns.promises.lookup;
dns.promises.lookup = async (host, options) => {
  if (net.isIP(host)) return plookup(host, options);
  throw refuse(host);
};
for (const f of ['resolve', 'resolve4', 'resolve6', 'resolveSrv', 'resolveAny']) {
  dns[f] = (host, ...rest) => process.nextTick(rest.pop(), refuse(host));
  dns.promises[f] = async (host) => { throw refuse(host); };
}
require('node:module').syncBuiltinESMExports();
`

// NoDNSArgs writes the DNS guard into workDir and returns the node arguments that preload it:
// node NoDNSArgs... script args...
func NoDNSArgs(workDir string) ([]string, error) {
	p := filepath.Join(workDir, "nodns.cjs")
	if err := os.WriteFile(p, []byte(noDNS), 0o644); err != nil {
		return nil, err
	}
	return []string{"--require", p}, nil
}

// DocsSnippet returns the first ```js block after the line heading (e.g. "## Node.js:
// node-redis") of docs/consuming.md under the repository root: the code users copy is the code
// the tests run.
func DocsSnippet(root, heading string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "docs", "consuming.md"))
	if err != nil {
		return "", err
	}
	doc := string(b)
	i := strings.Index(doc, "\n"+heading+"\n")
	if i < 0 {
		return "", fmt.Errorf("docs/consuming.md has no %q heading", heading)
	}
	m := regexp.MustCompile("(?s)\n```js\n(.*?)```").FindStringSubmatch(doc[i:])
	if m == nil {
		return "", fmt.Errorf("docs/consuming.md has no js code block after %q", heading)
	}
	return m[1], nil
}

// InstallClients installs NodeRedis and IORedis together (the cache directory "node-clients"),
// the one install every Node.js client test here shares.
func InstallClients(ctx context.Context) (string, error) {
	return Install(ctx, "node-clients", NodeRedis, IORedis)
}
