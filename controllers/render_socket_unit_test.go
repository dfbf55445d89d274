package controllers

import (
	"strings"
	"testing"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// spec.output.socketPath reaches config.json as node-redis's defaults.socket.path, next to the
// root node the controller itself dials, and the rendered file loads in pkg/client.
func TestRenderSocketPath(t *testing.T) {
	rc := &rconnv1.RedisConnection{Spec: rconnv1.RedisConnectionSpec{
		Mode:      rconnv1.ModeStandalone,
		RootNodes: []rconnv1.RootNode{{URL: "redis://queue-redis.default.svc:6379/2"}},
		Output:    &rconnv1.Output{SocketPath: "/var/run/redis/redis.sock"},
	}}
	b, err := pkgclient.Render(renderConfig(rc, &addressMap{}, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"path": "/var/run/redis/redis.sock"`, `"url": "redis://queue-redis.default.svc:6379/2"`} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("config.json lacks %s:\n%s", want, b)
		}
	}
	cfg, err := pkgclient.LoadConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Defaults.Socket.Path != "/var/run/redis/redis.sock" {
		t.Fatalf("loaded path %q", cfg.Defaults.Socket.Path)
	}
}
