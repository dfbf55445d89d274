// Command rconn-proxy lets any Redis client use a Redis Cluster whose nodes announce addresses
// the client cannot reach. It reads the configuration the rconn controller renders (the
// mounted ConfigMap and Secret, or the objects through the Kubernetes API) and follows it live,
// opens a seed listener plus one listener per cluster node on a loopback address, and forwards
// each connection to its node's mapped address with TLS origination. Only topology is
// rewritten: CLUSTER SLOTS / SHARDS / NODES replies and -MOVED / -ASK name the listeners.
// For a Sentinel-mode RedisConnection the seed listener is a sentinel naming the proxy's
// listeners (redis-py Sentinel, Jedis, go-redis FailoverClient), and --master-port a listener
// that always reaches the current master.
//
//	rconn-proxy --seed-port 7000 /etc/rconn           # mounted ConfigMap + Secret
//	rconn-proxy --seed-port 7000 --kube shop/cache    # through the API (kubesource)
//	redis-cli -c -p 7000
//
// See docs/consuming.md ("rconn proxy").
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/client/kubesource"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
	"github.com/rconn-dev/redis-connection-operator/pkg/proxy"
)

// version is stamped by the build (-ldflags "-X main.version=vX.Y.Z").
var version = "dev"

const usage = `Usage: rconn-proxy [flags] [MOUNT_DIR...]

Forwards local listeners to the nodes of the Redis Cluster (standalone server, Sentinel group) an rconn
RedisConnection describes, so that clients without an address map (redis-cli -c, redis-py,
Jedis, GUI tools, ...) can use it unchanged:

  rconn-proxy --seed-port 7000 /etc/rconn          config.json and the Secret in one mount
  rconn-proxy --seed-port 7000 /etc/rconn-config /etc/rconn-secret
  rconn-proxy --seed-port 7000 --kube shop/cache   the ConfigMap and Secret through the API
  redis-cli -c -p 7000

Node listeners take the ports after the seed port (one per node, kept per node ID). Clients
authenticate themselves (AUTH is forwarded); TLS to the nodes uses the Secret's material.

Sentinel mode (config.json rconn.mode "sentinel") is picked from the configuration:

  rconn-proxy --seed-port 26379 --master-port 6379 /etc/rconn
  Sentinel([("127.0.0.1", 26379)]).master_for("mymaster")   redis-py, Jedis, go-redis ...
  redis-cli -p 6379                                          clients without Sentinel support

The seed port is then a sentinel: SENTINEL GET-MASTER-ADDR-BY-NAME / MASTERS / MASTER /
REPLICAS / SENTINELS and +switch-master name the proxy's data-node listeners (the following
ports), from the master a majority of the real sentinels name and that says ROLE master;
nothing a sentinel sends reaches a client. --master-port always forwards to that master and
closes its connections when it changes.

Flags:
`

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("rconn-proxy", flag.ContinueOnError)
	fs.Usage = func() { _, _ = fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	var (
		listen    = fs.String("listen", proxy.DefaultListenHost, "address the listeners bind")
		advertise = fs.String("advertise", "", "host rewritten replies name (default: --listen)")
		seedPort  = fs.Int("seed-port", 7000, "seed listener port; node listeners take the following ports (0: ephemeral ports)")
		nodePorts = fs.Int("node-ports", proxy.DefaultNodePorts, "how many ports after --seed-port node listeners may take")
		kube      = fs.String("kube", "", "NAMESPACE/NAME of a RedisConnection: read its ConfigMap and Secret through the API instead of mounts")
		kubecfg   = fs.String("kubeconfig", "", "kubeconfig for --kube (default $KUBECONFIG, ~/.kube/config, or the pod's ServiceAccount)")
		refresh   = fs.Duration("refresh", proxy.DefaultRefreshInterval, "how often the topology is read")
		drain     = fs.Duration("drain", proxy.DefaultDrainTimeout, "how long connections to a departed node may live on")
		master    = fs.Int("master-port", 0, "Sentinel mode: a listener that always forwards to the current master and closes its connections at a failover (0: none)")
		maxTopo   = fs.Int("max-topology-reply", proxy.DefaultMaxTopologyReply, "largest CLUSTER SLOTS/SHARDS/NODES reply buffered for rewriting (bytes)")
		maxTopoB  = fs.Int("max-topology-buffer", proxy.DefaultMaxTopologyBuffer, "topology reply bytes all connections may buffer at once; a connection whose reply does not fit is closed")
		maxConns  = fs.Int("max-conns", proxy.DefaultMaxConns, "client connections of the whole proxy (0: no cap); over it a connection gets \"-ERR max number of clients reached\", as from Redis")
		maxPer    = fs.Int("max-conns-per-node", proxy.DefaultMaxConnsPerNode, "client connections through one listener, the seed's included (0: no cap)")
		idle      = fs.Duration("idle-timeout", proxy.DefaultIdleTimeout, "close a client connection after this long without a byte either way (0: never); keep it above your longest blocking command and quietest subscriber")
		denyCIDRs = fs.String("deny-cidrs", "", "comma-separated CIDRs (or IPs) the proxy never dials, in addition to link-local ranges, 0.0.0.0, :: and the Kubernetes API server ($KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)")
		allowCIDR = fs.String("allow-cidrs", "", "comma-separated CIDRs the proxy may dial; when set, everything else is denied (an address in it wins over a deny rule, except the API server's ip:port)")
		allowLoop = fs.Bool("allow-loopback", false, "let the proxy dial loopback (127.0.0.0/8, ::1), denied by default as it reaches the proxy's own pod; needed when the node address map points at port-forwards on this host")
		verbose   = fs.Bool("v", false, "log debug detail")
		showVer   = fs.Bool("version", false, "print the version and exit")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVer {
		fmt.Printf("rconn-proxy %s (revision %s, %s)\n", version, revision(), runtime.Version())
		return 0
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	src, err := source(*kube, *kubecfg, fs.Args())
	if err != nil {
		fmt.Fprintln(os.Stderr, "rconn-proxy:", err)
		fs.Usage()
		return 2
	}
	policy, err := addressPolicy(*denyCIDRs, *allowCIDR, *allowLoop)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rconn-proxy:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	w, err := client.Watch(startCtx, src, client.WatchOptions{OnError: func(err error) { log.Warn(err.Error()) }})
	if err != nil {
		log.Error("reading the configuration", "err", err)
		return 1
	}
	defer w.Close()
	p, err := proxy.Start(startCtx, w.Current(), proxy.Options{
		ListenHost: *listen, AdvertiseHost: *advertise, SeedPort: *seedPort, NodePorts: *nodePorts,
		RefreshInterval: *refresh, DrainTimeout: *drain, MaxTopologyReply: *maxTopo, Logger: log, MasterPort: *master,
		AddressPolicy: policy, MaxConns: off(*maxConns), MaxConnsPerNode: off(*maxPer), IdleTimeout: time.Duration(off(int(*idle))), MaxTopologyBuffer: *maxTopoB,
	})
	if err != nil {
		log.Error("starting", "err", err)
		return 1
	}
	defer func() { _ = p.Close() }()
	for _, n := range p.Nodes() {
		log.Info("node", "id", n.ID, "announced", n.Announced, "listen", n.Listen)
	}
	if *master != 0 && p.MasterAddr() == "" {
		log.Warn("--master-port applies to Sentinel mode only; no master listener")
	} else if p.MasterAddr() != "" {
		log.Info("master listener", "listen", p.MasterAddr())
	}
	for {
		select {
		case <-ctx.Done():
			log.Info("rconn proxy: shutting down")
			return 0
		case r := <-w.Updates():
			_ = p.Apply(r) // logged by Apply
		}
	}
}

// off maps the flags' 0 ("no cap") to proxy.Options' -1 (where 0 takes the default).
func off(v int) int {
	if v == 0 {
		return -1
	}
	return v
}

// addressPolicy is the manager's dial policy (pkg/cluster's AddressPolicy) with the same
// flags: link-local and unspecified addresses always denied, loopback unless --allow-loopback,
// and the Kubernetes API server of the pod's environment.
func addressPolicy(deny, allow string, allowLoopback bool) (*cluster.AddressPolicy, error) {
	denyList, err := cluster.ParseCIDRList(deny)
	if err != nil {
		return nil, fmt.Errorf("--deny-cidrs: %w", err)
	}
	allowList, err := cluster.ParseCIDRList(allow)
	if err != nil {
		return nil, fmt.Errorf("--allow-cidrs: %w", err)
	}
	var api []netip.AddrPort
	if h, pt := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"); h != "" && pt != "" {
		if ap, err := netip.ParseAddrPort(net.JoinHostPort(h, pt)); err == nil {
			api = append(api, ap)
		}
	}
	return cluster.NewAddressPolicy(cluster.AddressPolicyOptions{Deny: denyList, Allow: allowList, DenyAddrPorts: api, AllowLoopback: allowLoopback}), nil
}

func source(kube, kubeconfig string, dirs []string) (client.Source, error) {
	if kube != "" {
		if len(dirs) > 0 {
			return nil, errors.New("--kube and mount directories exclude each other")
		}
		ns, name, ok := strings.Cut(kube, "/")
		if !ok {
			ns, name = "", kube
		}
		return kubesource.NewSource(kubesource.Options{Namespace: ns, Name: name, Kubeconfig: kubeconfig})
	}
	if len(dirs) == 0 {
		return nil, errors.New("name the mount directory of config.json (and of the Secret), or --kube NAMESPACE/NAME")
	}
	return client.NewMountSource(dirs...)
}

func revision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			return s.Value
		}
	}
	return "unknown"
}
