package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// NodeRedisVersion is the node-redis release the Node.js check runs (npm package "redis").
const NodeRedisVersion = "6.3.1"

// nodeRedis returns a directory with node-redis installed (npm, cached in ~/.cache/rconn).
func nodeRedis(ctx context.Context) (string, error) {
	if _, err := exec.LookPath("node"); err != nil {
		return "", fmt.Errorf("node is not installed (make deps installs Debian's nodejs): %w", err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "rconn", "node-redis-"+NodeRedisVersion)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "redis", "package.json")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", dir, "redis@"+NodeRedisVersion)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm install redis@%s: %w\n%s", NodeRedisVersion, err, out)
	}
	return dir, nil
}

// docsNodeSnippet returns the first ```js block of docs/consuming.md's Node.js section: the
// code users copy is the code this test runs.
func docsNodeSnippet(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "docs", "consuming.md"))
	if err != nil {
		return "", err
	}
	doc := string(b)
	i := strings.Index(doc, "## Node.js")
	if i < 0 {
		return "", fmt.Errorf("docs/consuming.md has no \"## Node.js\" section")
	}
	m := regexp.MustCompile("(?s)```js\n(.*?)```").FindStringSubmatch(doc[i:])
	if m == nil {
		return "", fmt.Errorf("the Node.js section of docs/consuming.md has no js code block")
	}
	return m[1], nil
}

// nodeHarness runs after the docs snippet (which leaves a connected `redis`): SET/GET each key
// given on the command line, print one line, close.
const nodeHarness = `
const keys = process.argv.slice(2);
for (const k of keys) {
  await redis.set(k, 'from-node-redis');
  const v = await redis.get(k);
  if (v !== 'from-node-redis') throw new Error('GET ' + k + ' = ' + v);
}
console.log('node-redis ok ' + keys.length);
if (typeof redis.close === 'function') await redis.close(); else await redis.quit();
`
