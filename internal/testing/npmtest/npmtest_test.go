package npmtest_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/rconn-dev/redis-connection-operator/internal/testing/npmtest"
)

// The docs snippets the Node.js tests run are found under their headings, each its own.
func TestDocsSnippet(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	for heading, want := range map[string]string{
		"## Node.js: node-redis": "createCluster(",
		"## Node.js: ioredis":    "new Cluster(",
	} {
		s, err := npmtest.DocsSnippet(root, heading)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(s, want) {
			t.Errorf("the snippet under %q lacks %q:\n%s", heading, want, s)
		}
	}
	if _, err := npmtest.DocsSnippet(root, "## No such heading"); err == nil {
		t.Error("a missing heading gave a snippet")
	}
}

func TestInstalledChecksVersions(t *testing.T) {
	dir := t.TempDir()
	if err := npmtest.Installed(dir, npmtest.IORedis); err == nil {
		t.Error("an empty directory passes as an install")
	}
	if err := npmtest.Installed(dir, "ioredis"); err == nil {
		t.Error("a package without a version is accepted")
	}
}
