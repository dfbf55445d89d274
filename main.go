// Command manager runs the rconn controller: it keeps every RedisConnection's node address map,
// topology, health and rendered ConfigMap/Secret true.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/go-logr/logr"
	"github.com/redis/go-redis/v9"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	_ "k8s.io/client-go/plugin/pkg/client/auth"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/controllers"
	"github.com/rconn-dev/redis-connection-operator/internal/dnsflag"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

var (
	scheme   = runtime.NewScheme()
	setupLog = ctrl.Log.WithName("setup")
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(rconnv1.AddToScheme(scheme))
}

func main() {
	var (
		metricsAddr, probeAddr, watchNamespaces, clusterDomain  string
		dnsServer                                               string
		secureMetrics, enableLeaderElection, enableHTTP2, noDNS bool
		showVersion                                             bool
		maxConcurrentReconciles                                 int
		maxRedisTimeout                                         time.Duration
		denyCIDRs, allowCIDRs                                   string
		limits                                                  = cluster.DefaultLimits()
		maxInflightReplyBytes                                   int64
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "Address of the metrics endpoint (:8443 for HTTPS, :8080 for HTTP, 0 to disable).")
	flag.BoolVar(&secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS, authenticated and authorized through the API server.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	flag.BoolVar(&enableLeaderElection, "leader-elect", false, "Elect a leader so only one replica reconciles.")
	flag.BoolVar(&enableHTTP2, "enable-http2", false, "Serve metrics over HTTP/2 (off by default: CVE-2023-44487, CVE-2023-39325).")
	flag.StringVar(&watchNamespaces, "watch-namespaces", "", "Comma-separated namespaces to watch (default: all).")
	flag.StringVar(&clusterDomain, "cluster-domain", "cluster.local", "Cluster DNS domain used for PodDNS addresses.")
	flag.BoolVar(&noDNS, "no-dns", false, "Never resolve host names when dialing Redis: root nodes and node address map targets must be IP literals (air-gapped hosts, the local demo). Unmapped announced names fail with a clear error instead of a DNS query.")
	flag.StringVar(&dnsServer, "dns-server", "", dnsflag.Usage)
	flag.IntVar(&maxConcurrentReconciles, "max-concurrent-reconciles", 4, "RedisConnections reconciled in parallel.")
	flag.DurationVar(&maxRedisTimeout, "max-redis-timeout", controllers.DefaultMaxRedisTimeout, "Cap on every Redis connect, read and health timeout a RedisConnection asks for: no RedisConnection holds a probe and its sockets longer.")
	flag.StringVar(&denyCIDRs, "deny-cidrs", "", "Comma-separated CIDRs (or IPs) the controller never dials, in addition to link-local ranges (169.254.0.0/16, fe80::/10: cloud metadata) and the API server's own addresses, which are always denied.")
	flag.StringVar(&allowCIDRs, "allow-cidrs", "", "Comma-separated CIDRs the controller may dial; when set, everything else is denied. An address in it is allowed even if a deny rule matches (except the API server's own ip:port).")
	allowLoopback := flag.Bool("allow-loopback", false, "Let the controller dial loopback (127.0.0.0/8, ::1, also as ::ffff:127.0.0.1 and names resolving there), denied by default because it reaches the manager's own pod. For tests and local demos whose Redis servers listen on loopback.")
	flag.Int64Var(&limits.MaxReplyBytes, "max-reply-bytes", limits.MaxReplyBytes, "Cap on the bytes of one Redis reply the controller reads (discovery and health).")
	flag.Int64Var(&limits.MaxReplyElements, "max-reply-elements", limits.MaxReplyElements, "Cap on the elements all aggregate headers of one Redis reply may declare together (what go-redis allocates up front).")
	flag.Int64Var(&limits.MaxArrayLen, "max-array-len", limits.MaxArrayLen, "Cap on the elements one Redis array, set, push or map header may declare.")
	flag.Int64Var(&limits.MaxBulkLen, "max-bulk-len", limits.MaxBulkLen, "Cap on the length of one Redis bulk string.")
	flag.IntVar(&limits.MaxTopologyNodes, "max-topology-nodes", limits.MaxTopologyNodes, "Cap on the nodes of one discovered topology (Redis Cluster's documented maximum is 1000).")
	flag.IntVar(&limits.MaxTopologyShards, "max-topology-shards", limits.MaxTopologyShards, "Cap on the shards of one discovered topology.")
	flag.Int64Var(&maxInflightReplyBytes, "max-inflight-reply-bytes", cluster.DefaultReplyBudget, "Budget for what the Redis replies being read for all RedisConnections together may make the manager hold (declared bytes, plus what go-redis allocates per declared element); one RedisConnection's connections get at most a quarter. A read beyond it fails at once: ManagerBusy. The default fits the chart's 256Mi limit.")
	flag.BoolVar(&showVersion, "version", false, "Print the version and exit.")
	admission := controllers.NewAdmissionCheck()
	admission.BindFlags(flag.CommandLine)
	opts := zap.Options{Development: false}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	if showVersion {
		fmt.Println(versionString())
		return
	}
	registerBuildInfo()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	// Before any client exists: every name (API server, Redis) resolves through --dns-server.
	if server, err := dnsflag.Install(dnsServer); err != nil {
		setupLog.Error(err, "invalid flag")
		os.Exit(1)
	} else if server != "" {
		setupLog.Info("resolving names only through the --dns-server", "server", server)
	}
	setMemoryLimit()
	// go-redis logs pool problems (e.g. a node that refuses connections) with fmt-style lines on
	// stderr; route them through the structured logger instead.
	redis.SetLogger(goRedisLogger{ctrl.Log.WithName("go-redis")})

	var tlsOpts []func(*tls.Config)
	if !enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{BindAddress: metricsAddr, SecureServing: secureMetrics, TLSOpts: tlsOpts}
	if secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	// Strip managedFields and kubectl's last-applied-configuration (Secret data, for Secrets
	// made with kubectl apply) from everything the informers cache.
	cacheOpts := cache.Options{DefaultTransform: controllers.CacheTransform()}
	if watchNamespaces != "" {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range strings.Split(watchNamespaces, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				cacheOpts.DefaultNamespaces[ns] = cache.Config{}
			}
		}
	}

	restCfg := ctrl.GetConfigOrDie()
	policy, err := addressPolicy(restCfg, denyCIDRs, allowCIDRs, *allowLoopback)
	if err != nil {
		setupLog.Error(err, "invalid address policy flags")
		os.Exit(1)
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsOpts,
		HealthProbeBindAddress: probeAddr,
		LeaderElection:         enableLeaderElection,
		LeaderElectionID:       "rconn.dev-manager",
		Cache:                  cacheOpts,
	})
	if err != nil {
		setupLog.Error(err, "unable to create manager")
		os.Exit(1)
	}

	r := &controllers.RedisConnectionReconciler{
		APIReader:               mgr.GetAPIReader(),
		Client:                  mgr.GetClient(),
		Scheme:                  mgr.GetScheme(),
		Recorder:                mgr.GetEventRecorder("rconn-controller"),
		ClusterDomain:           clusterDomain,
		MaxConcurrentReconciles: maxConcurrentReconciles,
		MaxRedisTimeout:         maxRedisTimeout,
		Limits:                  &limits,
		ReplyBudget:             cluster.NewReplyBudget(maxInflightReplyBytes),
		AddressPolicy:           policy,
	}
	if noDNS {
		r.Dial = cluster.IPOnlyDial
	}
	admission.Reader, admission.Log = mgr.GetAPIReader(), ctrl.Log.WithName("admission")
	r.Admission = admission
	if err := r.SetupWithManager(mgr); err != nil {
		setupLog.Error(err, "unable to create controller", "controller", "RedisConnection")
		os.Exit(1)
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		setupLog.Error(err, "unable to set up health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		setupLog.Error(err, "unable to set up ready check")
		os.Exit(1)
	}

	setupLog.Info("starting manager", "version", version, "revision", revision())
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		setupLog.Error(err, "problem running manager")
		os.Exit(1)
	}
}

// addressPolicy builds the controller's dial policy from the flags (loopback denied unless
// --allow-loopback), denying the API server's own
// addresses: the host of the manager's kubeconfig / in-cluster config when it is an IP, and the
// default/kubernetes Service's ClusterIP and endpoints (read once at start; when RBAC does not
// allow it, as in a namespaced install, only the configured host is denied).
func addressPolicy(cfg *rest.Config, deny, allow string, allowLoopback bool) (*cluster.AddressPolicy, error) {
	denyList, err := cluster.ParseCIDRList(deny)
	if err != nil {
		return nil, fmt.Errorf("--deny-cidrs: %w", err)
	}
	allowList, err := cluster.ParseCIDRList(allow)
	if err != nil {
		return nil, fmt.Errorf("--allow-cidrs: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	apiAddrs := controllers.APIServerAddresses(ctx, cfg)
	setupLog.Info("address policy", "deny", denyList, "allow", allowList, "apiServer", apiAddrs, "allowLoopback", allowLoopback)
	return cluster.NewAddressPolicy(cluster.AddressPolicyOptions{Deny: denyList, Allow: allowList, DenyAddrPorts: apiAddrs, AllowLoopback: allowLoopback}), nil
}

// setMemoryLimit sets GOMEMLIMIT to 90% of the container's memory limit (cgroup v1 or v2), so
// the garbage collector works harder before the kernel's OOM killer would. An explicit
// GOMEMLIMIT in the environment wins; outside a memory-limited cgroup nothing changes.
func setMemoryLimit() {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		setupLog.Info("GOMEMLIMIT set by the environment", "GOMEMLIMIT", os.Getenv("GOMEMLIMIT"))
		return
	}
	limit, err := memlimit.SetGoMemLimitWithOpts(memlimit.WithRatio(0.9), memlimit.WithProvider(memlimit.FromCgroup))
	switch {
	case err != nil:
		setupLog.Info("no container memory limit found; GOMEMLIMIT left unset", "reason", err.Error())
	case limit > 0:
		setupLog.Info("GOMEMLIMIT set from the container memory limit", "bytes", limit)
	}
}

type goRedisLogger struct{ log logr.Logger }

func (l goRedisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.V(1).Info(fmt.Sprintf(format, v...))
}
