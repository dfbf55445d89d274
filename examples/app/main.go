// Command app is the smallest rconn app: it opens the mounted RedisConnection ConfigMap and
// Secret with pkg/client, logs connection events and config reloads, and every interval writes
// and reads back one key on every shard, printing which node served it and the address it was
// reached at.
//
//	RCONN_CONFIG_DIR=/etc/rconn/config RCONN_SECRET_DIR=/etc/rconn/secret app
//
// Flags (each with an environment variable): -config-dir (RCONN_CONFIG_DIR), -secret-dir
// (RCONN_SECRET_DIR, may be the same directory), -interval (RCONN_INTERVAL, default 1s),
// -rounds (RCONN_ROUNDS, 0 = until SIGTERM), -no-dns (RCONN_NO_DNS=1: never resolve names),
// -dns-server (RCONN_DNS_SERVER, IP:port: resolve names only through that DNS server).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/dnsflag"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

func main() { os.Exit(run()) }

// run is the app; it returns the exit code, so that its defers run before os.Exit.
func run() int {
	configDir := flag.String("config-dir", env("RCONN_CONFIG_DIR", "/etc/rconn/config"), "directory with config.json (the ConfigMap mount)")
	secretDir := flag.String("secret-dir", env("RCONN_SECRET_DIR", "/etc/rconn/secret"), "directory with the Secret's files (may equal -config-dir)")
	interval := flag.Duration("interval", envDuration("RCONN_INTERVAL", time.Second), "time between rounds")
	rounds := flag.Int("rounds", envInt("RCONN_ROUNDS", 0), "stop after this many rounds (0: run until SIGTERM)")
	noDNS := flag.Bool("no-dns", os.Getenv("RCONN_NO_DNS") == "1", "never resolve host names: every node must be mapped to an IP")
	dnsServer := flag.String("dns-server", os.Getenv("RCONN_DNS_SERVER"), dnsflag.Usage)
	flag.Parse()
	if _, err := dnsflag.Install(*dnsServer); err != nil { // before any client exists
		fmt.Fprintln(os.Stderr, "app:", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stdout, nil))

	dirs := []string{*configDir}
	if *secretDir != *configDir {
		dirs = append(dirs, *secretDir)
	}
	opts := client.OpenOptions{
		OnEvent: func(e client.Event) {
			if e.Err != nil {
				log.Warn("redis event", "event", e.Type, "error", e.Err)
				return
			}
			log.Info("redis event", "event", e.Type)
		},
	}
	if *noDNS {
		opts.Dial = cluster.IPOnlyDial
	}
	var opened atomic.Pointer[client.Client] // OnReload runs on the reload goroutine
	opts.OnReload = func(err error) {
		if err != nil {
			log.Warn("config reload failed; the last good config keeps running", "error", err)
			return
		}
		if c := opened.Load(); c != nil {
			cfg := c.Config()
			log.Info("config reloaded", "nodeAddressMap", mapString(cfg.NodeAddressMap))
		}
	}
	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	c, err := opts.Open(openCtx, dirs...)
	cancel()
	if err != nil {
		log.Error("opening redis", "error", err)
		return 1
	}
	opened.Store(c)
	defer func() { _ = c.Close() }()
	mode := "standalone"
	switch {
	case c.Cluster() != nil:
		mode = "cluster"
	case c.Config().ModeOrDefault() == client.ModeSentinel:
		mode = "sentinel"
	}
	log.Info("redis opened", "mode", mode, "autoPipeline", c.AutoPipelining(), "nodeAddressMap", mapString(c.Config().NodeAddressMap))

	t := time.NewTicker(*interval)
	defer t.Stop()
	for n := 1; *rounds == 0 || n <= *rounds; n++ {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ok, total, served, err := round(rctx, c, n)
		cancel()
		if err != nil {
			log.Warn("round", "n", n, "ok", fmt.Sprintf("%d/%d shards", ok, total), "error", err, "ready", c.IsReady())
		} else {
			log.Info("round", "n", n, "ok", fmt.Sprintf("%d/%d shards", ok, total), "served", served)
		}
		select {
		case <-ctx.Done():
			return 0
		case <-t.C:
		}
	}
	return 0
}

// round SETs and GETs one key per shard (one key in standalone mode) and reports, per key, the
// announced address of the node that owns it and the address it is reached at.
func round(ctx context.Context, c *client.Client, n int) (ok, total int, served string, err error) {
	keys := []string{"rconn-example"}
	if cc := c.Cluster(); cc != nil {
		shards, err := cc.ClusterShards(ctx).Result()
		if err != nil {
			return 0, 0, "", fmt.Errorf("CLUSTER SHARDS: %w", err)
		}
		keys = keys[:0]
		for _, s := range shards {
			if len(s.Slots) > 0 {
				keys = append(keys, cluster.KeyForSlot(int(s.Slots[0].Start)))
			}
		}
		sort.Strings(keys)
	}
	var via []string
	var errs []error
	for _, k := range keys {
		v := strconv.Itoa(n)
		if err := c.Set(ctx, k, v, time.Minute).Err(); err != nil {
			errs = append(errs, fmt.Errorf("SET %s: %w", k, err))
			continue
		}
		got, err := c.Get(ctx, k).Result()
		if err != nil || got != v {
			errs = append(errs, fmt.Errorf("GET %s = %q, %w (want %q)", k, got, err, v))
			continue
		}
		ok++
		via = append(via, servedBy(ctx, c, k))
	}
	return ok, len(keys), strings.Join(via, " "), errors.Join(errs...)
}

// servedBy returns "announced->reachable" for the node that owns key.
func servedBy(ctx context.Context, c *client.Client, key string) string {
	cc := c.Cluster()
	if cc == nil && c.Config().ModeOrDefault() == client.ModeSentinel {
		return sentinelMaster(ctx, c)
	}
	if cc == nil {
		return "standalone"
	}
	m, err := cc.SlotMaster(ctx, cluster.Slot(key))
	if err != nil {
		return "?"
	}
	announced := m.Options().Addr
	if reachable, mapped := cc.Dialer().Resolve(announced); mapped {
		return announced + "->" + reachable
	}
	return announced
}

// sentinelMaster names the master that served the round: the address it announces
// (replica-announce-ip, which is what the sentinels name it by once it is a master) and where
// the node address map sends it. "master?" when the server will not say (ACL).
func sentinelMaster(ctx context.Context, c *client.Client) string {
	kv, err := c.ConfigGet(ctx, "replica-announce-ip").Result()
	if err != nil || kv["replica-announce-ip"] == "" {
		return "master?"
	}
	announced := net.JoinHostPort(kv["replica-announce-ip"], "6379")
	if m, ok := c.Config().NodeAddressMap[announced]; ok {
		return "master " + announced + "->" + m.String()
	}
	return "master " + announced
}

func mapString(m map[string]client.MappedAddress) string {
	if len(m) == 0 {
		return "{}"
	}
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"->"+v.String())
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, " ") + "}"
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return def
}

func envDuration(k string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(k)); err == nil {
		return v
	}
	return def
}
