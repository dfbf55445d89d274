// Command app is the smallest rconn app: it opens the mounted RedisConnection config and
// Secret, logs connection events, and increments a counter every second.
//
//	RCONN_CONFIG_DIR=/etc/rconn/config RCONN_SECRET_DIR=/etc/rconn/secret app
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rconn-dev/redis-connection-operator/pkg/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dirs := []string{env("RCONN_CONFIG_DIR", "/etc/rconn/config"), env("RCONN_SECRET_DIR", "/etc/rconn/secret")}
	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	c, err := client.OpenOptions{
		OnEvent: func(e client.Event) { slog.Info("redis", "event", e.Type, "error", e.Err) },
	}.Open(openCtx, dirs...)
	cancel()
	if err != nil {
		slog.Error("opening redis", "error", err)
		os.Exit(1)
	}
	defer c.Close()
	// With "rconn": {"autoPipeline": true} in the config, concurrent commands are batched into
	// pipelines; the calls below keep their shape either way.
	slog.Info("redis opened", "autoPipeline", c.AutoPipeliner() != nil)

	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := c.Incr(ctx, "rconn-example:counter").Result()
			if err != nil {
				slog.Warn("INCR failed", "error", err, "ready", c.IsReady())
				continue
			}
			slog.Info("INCR", "value", n)
		}
	}
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
