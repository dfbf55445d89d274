// Package scale benchmarks the controller at scale: the real manager binary (internal/testing/
// managertest) as a separate process against envtest's kube-apiserver + etcd and one real
// 6-node Redis Cluster (3 masters + 3 replicas) on loopback, observed from outside: time to
// Ready, peak RSS, reconcile latency, API writes and Redis traffic at steady state, goroutines,
// and how fast EndpointSlice changes and Secret rotations reach the rendered outputs.
//
//	go test ./test/scale -run '^$' -bench . -benchtime 1x
//
// Each benchmark runs its baseline side by side in the same run: sharing=off starts the manager
// with RCONN_DISABLE_TOPOLOGY_SHARING=true (one inspector and one discovery per
// RedisConnection per reconcile, as before topology sharing), sharing=on is the default; with
// RCONN_SCALE_BASELINE_REV=<git revision> the manager built from that revision runs first. Benchmarks are skipped without bin/k8s (make envtest) or redis-server. Nothing here
// dials anything but 127.0.0.0/8 by IP literal.
//
// Knobs (environment): RCONN_SCALE_CONNECTIONS (default 1000), RCONN_SCALE_NAMESPACES (20),
// RCONN_SCALE_INTERVAL (health interval, 5s), RCONN_SCALE_CHANGES (reaction samples, 100),
// RCONN_SCALE_MANAGER_ARGS (extra manager flags, space separated). BenchmarkIsolation,
// BenchmarkManagerMemory and BenchmarkBigCluster (their own files) document their own knobs.
package scale_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/demo"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/managertest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
)

func TestMain(m *testing.M) {
	logf.SetLogger(logr.Discard())
	code := m.Run()
	fx.stop()
	managertest.RemoveBuild()
	os.Exit(code)
}

// TestKnobs is the package's only test: quick, no processes.
func TestKnobs(t *testing.T) {
	t.Setenv("RCONN_SCALE_CONNECTIONS", "")
	if got := envInt("RCONN_SCALE_CONNECTIONS", 1000); got != 1000 {
		t.Errorf("default = %d", got)
	}
	t.Setenv("RCONN_SCALE_CONNECTIONS", "50")
	if got := envInt("RCONN_SCALE_CONNECTIONS", 1000); got != 50 {
		t.Errorf("override = %d", got)
	}
	if got := percentile([]time.Duration{4, 1, 3, 2}, 0.5); got != 2 {
		t.Errorf("p50 = %d", got)
	}
	if got := percentile([]time.Duration{4, 1, 3, 2}, 0.99); got != 4 {
		t.Errorf("p99 = %d", got)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// fixture is the control plane and Redis cluster shared by every benchmark of the process
// (each benchmark starts its own manager); stopped by TestMain.
var fx fixture

type fixture struct {
	once     sync.Once
	skip     string
	err      error
	env      *envtest.Environment
	cfg      *rest.Config
	k8s      client.Client
	cs       *kubernetes.Clientset
	cluster  *redistest.Cluster
	admins   []*redis.Client
	kubecfg  string
	mu       sync.Mutex
	cleanups []func()
	tmp      []string
}

// fixtureTB gives redistest and managertest a TB whose cleanups outlive one benchmark.
type fixtureTB struct{ b *testing.B }

func (t fixtureTB) Helper()                         {}
func (t fixtureTB) Logf(format string, args ...any) { t.b.Logf(format, args...) }
func (t fixtureTB) Fatalf(format string, args ...any) {
	fx.err = fmt.Errorf(format, args...)
	t.b.Fatalf(format, args...)
}
func (t fixtureTB) Cleanup(f func()) {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	fx.cleanups = append(fx.cleanups, f)
}
func (t fixtureTB) TempDir() string {
	d, err := os.MkdirTemp("", "rconn-scale-")
	if err != nil {
		t.Fatalf("%v", err)
	}
	fx.mu.Lock()
	fx.tmp = append(fx.tmp, d)
	fx.mu.Unlock()
	return d
}

func (f *fixture) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.admins {
		_ = c.Close()
	}
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	f.cleanups = nil
	if f.env != nil {
		_ = f.env.Stop()
	}
	for _, d := range f.tmp {
		_ = os.RemoveAll(d)
	}
}

func setup(b *testing.B) *fixture {
	b.Helper()
	fx.once.Do(func() {
		if _, err := exec.LookPath("redis-server"); err != nil {
			fx.skip = "redis-server is not installed (make deps)"
			return
		}
		env, err := kubetest.NewEnvironment()
		if err != nil {
			fx.skip = err.Error()
			return
		}
		// The benchmark writes 1,000 objects and reads metrics: no client-side throttling.
		cfg, err := env.Start()
		if err != nil {
			fx.err = err
			return
		}
		fx.env = env
		cfg = rest.CopyConfig(cfg)
		cfg.QPS, cfg.Burst = -1, 0
		fx.cfg = cfg
		if fx.k8s, err = client.New(cfg, client.Options{Scheme: kubetest.Scheme()}); err != nil {
			fx.err = err
			return
		}
		if fx.cs, err = kubernetes.NewForConfig(cfg); err != nil {
			fx.err = err
			return
		}
		tb := fixtureTB{b}
		fx.cluster = redistest.StartCluster(tb, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1,
			Server: redistest.ServerOptions{Users: []redistest.User{{Name: "app", Password: "s3cret"}, {Name: "react", Password: "pw-0"}}}})
		for _, n := range fx.cluster.Nodes {
			fx.admins = append(fx.admins, n.Client())
		}
		fx.kubecfg = managertest.Kubeconfig(tb, env)
		// As deployed: config/default's admission policy, without which the manager (by default)
		// reads no Secret a RedisConnection references.
		root, err := kubetest.RepoRoot()
		if err == nil {
			err = demo.InstallAdmission(context.Background(), demo.Kubectl(env.BinaryAssetsDirectory, fx.kubecfg, root), root, tb.TempDir())
		}
		if err != nil {
			fx.err = err
			return
		}
		managertest.Build(tb)
	})
	if fx.skip != "" {
		b.Skip("skipping the controller scale benchmarks: " + fx.skip)
	}
	if fx.err != nil {
		b.Fatalf("fixture: %v", fx.err)
	}
	return &fx
}

var runs int

// BenchmarkControllerAtScale: RCONN_SCALE_CONNECTIONS RedisConnections over
// RCONN_SCALE_NAMESPACES namespaces, all naming the same 3 root nodes with equal ACL credentials
// (one Secret per namespace), health interval RCONN_SCALE_INTERVAL. Reports:
//
//	s-to-ready        first create -> every RedisConnection Ready=True
//	ms-p50/p99-reconcile   controller_runtime_reconcile_time_seconds over the steady window
//	                  (estimated from histogram buckets, as histogram_quantile does)
//	ms-p99-reconcile-create  the same over the creation phase
//	api-writes        the manager's non-GET requests (rest_client_requests_total) over 3 intervals
//	apiserver-writes  kube-apiserver's own apiserver_request_total for write verbs over the
//	                  same window, leases excluded (the API server renews its identity lease)
//	redis-conns       client connections the manager holds on the 6 nodes (CLIENT LIST;
//	                  replication links and the benchmark's own connection excluded)
//	redis-cmds/interval  commands processed by the 6 nodes per health interval at steady state
//	                  (INFO total_commands_processed, the benchmark's own commands subtracted)
//	goroutine-growth  go_goroutines at the end of the steady window minus at its start
//	MiB-peak-rss      VmHWM of the manager process over the whole run
//	ms-p50/p99-react-endpointslice  EndpointSlice update -> ConfigMap showing the new map entry
//	ms-p50/p99-react-secret   ACL Secret update -> output Secret with the new password
//	redis-conns-after-delete  connections the manager still holds once every RedisConnection
//	                  is deleted (waits up to 2 minutes for 0)
//	goroutines-after-delete   go_goroutines then, minus before the first RedisConnection
//
// RCONN_SCALE_BASELINE_REV=<git revision> adds a first variant, manager=<rev>: the manager built
// from that revision of this repository (managertest.BuildRevision), e.g. the controller before
// topology sharing.
func BenchmarkControllerAtScale(b *testing.B) {
	type variant struct {
		name string
		bin  func(b *testing.B) string
		env  []string
	}
	var variants []variant
	if rev := os.Getenv("RCONN_SCALE_BASELINE_REV"); rev != "" {
		variants = append(variants, variant{name: "manager=" + rev, bin: func(b *testing.B) string { return managertest.BuildRevision(fixtureTB{b}, rev) }})
	}
	variants = append(variants,
		variant{name: "sharing=off", env: []string{"RCONN_DISABLE_TOPOLOGY_SHARING=true"}},
		variant{name: "sharing=on"})
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			f := setup(b)
			bin := managertest.Build(fixtureTB{b})
			if v.bin != nil {
				bin = v.bin(b)
			}
			for i := 0; i < b.N; i++ {
				runs++
				f.scaleRun(b, fmt.Sprintf("r%d", runs), bin, v.env)
			}
		})
	}
}

func (f *fixture) scaleRun(b *testing.B, run, bin string, env []string) {
	ctx := context.Background()
	n := envInt("RCONN_SCALE_CONNECTIONS", 1000)
	nsCount := envInt("RCONN_SCALE_NAMESPACES", 20)
	interval := envDuration("RCONN_SCALE_INTERVAL", 5*time.Second)
	changes := envInt("RCONN_SCALE_CHANGES", 100)
	if nsCount > n {
		nsCount = n
	}
	namespaces := make([]string, nsCount)
	for i := range namespaces {
		namespaces[i] = fmt.Sprintf("%s-ns%02d", run, i)
		must(b, f.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespaces[i]}}))
		must(b, f.k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "redis-acl", Namespace: namespaces[i]},
			Data: map[string][]byte{"username": []byte("app"), "password": []byte("s3cret")}}))
	}
	react := namespaces[0]
	f.reactFixtures(b, react)
	// Cleanup runs after the manager's (registered later, run first): delete what this run made,
	// so the next manager does not inherit it (envtest has no namespace or garbage collector).
	b.Cleanup(func() {
		for _, ns := range namespaces {
			_ = f.k8s.DeleteAllOf(ctx, &rconnv1.RedisConnection{}, client.InNamespace(ns))
			_ = f.k8s.DeleteAllOf(ctx, &corev1.ConfigMap{}, client.InNamespace(ns), client.MatchingLabels{"app.kubernetes.io/managed-by": "rconn"})
			_ = f.k8s.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(ns), client.MatchingLabels{"app.kubernetes.io/managed-by": "rconn"})
		}
	})

	args := strings.Fields(os.Getenv("RCONN_SCALE_MANAGER_ARGS"))
	m := managertest.StartBinary(b, bin, f.kubecfg, env, args...)
	b.Logf("manager pid %d, log %s", m.Pid(), m.LogPath)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	startMetrics, err := m.WaitForMetric(wctx, "controller_runtime_active_workers")
	cancel()
	must(b, err)
	idleGoroutines := managertest.Sum(startMetrics, "go_goroutines", nil)

	// 1. Create n RedisConnections (the react one included), 16 at a time, and wait for Ready.
	roots := []rconnv1.RootNode{}
	for _, mn := range f.cluster.Masters() {
		roots = append(roots, rconnv1.RootNode{URL: rconnv1.RedisURL("redis://" + mn.Addr())})
	}
	start := time.Now()
	work := make(chan int)
	var wg sync.WaitGroup
	var createErr error
	var errMu sync.Mutex
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				var rc *rconnv1.RedisConnection
				if i == 0 {
					rc = reactConnection(react, roots, interval)
				} else {
					rc = scaleConnection(namespaces[i%nsCount], fmt.Sprintf("rc-%04d", i), roots, interval)
				}
				rc.Labels = map[string]string{"rconn-bench": run}
				if err := f.k8s.Create(ctx, rc); err != nil {
					errMu.Lock()
					createErr = err
					errMu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	must(b, createErr)
	created := time.Since(start)
	ready, err := f.waitAllReady(ctx, run, n, start, start.Add(10*time.Minute))
	if err != nil {
		b.Fatalf("%v (manager log tail: %s)", err, tail(m.Log(), 3000))
	}
	b.Logf("%d RedisConnections created in %s, all Ready after %s", n, created.Round(time.Millisecond), ready.Round(time.Millisecond))
	b.ReportMetric(ready.Seconds(), "s-to-ready")
	createMetrics, err := m.Metrics()
	must(b, err)
	createHist, err := managertest.MergedHistogram(createMetrics, "controller_runtime_reconcile_time_seconds", nil)
	must(b, err)
	if p, err := createHist.Quantile(0.99); err == nil {
		b.ReportMetric(p*1000, "ms-p99-reconcile-create")
	}

	// 2. Steady state: settle for one interval (+ jitter), then watch three.
	time.Sleep(interval + interval/10 + time.Second)
	s0 := f.snapshot(b, m)
	time.Sleep(3 * (interval + interval/10))
	s1 := f.snapshot(b, m)
	steady := s1.hist.Sub(s0.hist)
	p50, _ := steady.Quantile(0.5)
	p99, _ := steady.Quantile(0.99)
	b.ReportMetric(p50*1000, "ms-p50-reconcile")
	b.ReportMetric(p99*1000, "ms-p99-reconcile")
	b.ReportMetric(float64(steady.Count)/3, "reconciles/interval")
	b.ReportMetric(s1.managerWrites-s0.managerWrites, "api-writes")
	b.ReportMetric(s1.apiserverWrites-s0.apiserverWrites, "apiserver-writes")
	b.ReportMetric(float64(s1.redisConns), "redis-conns")
	b.ReportMetric(float64(s1.commands-s0.commands-ownCommandsPerSnapshot*int64(len(f.cluster.Nodes)))/3, "redis-cmds/interval")
	b.ReportMetric(s1.goroutines-s0.goroutines, "goroutine-growth")
	b.ReportMetric(s1.inspectors, "inspectors-open")
	if s1.managerWrites != s0.managerWrites {
		b.Logf("writes at steady state by verb: before %v after %v", s0.writesByVerb, s1.writesByVerb)
	}

	// 3. Reaction: EndpointSlice changes and Secret rotations under that load.
	eps := f.reactEndpointSlices(b, react, changes)
	b.ReportMetric(ms(percentile(eps, 0.5)), "ms-p50-react-endpointslice")
	b.ReportMetric(ms(percentile(eps, 0.99)), "ms-p99-react-endpointslice")
	sec := f.reactSecrets(b, react, changes)
	b.ReportMetric(ms(percentile(sec, 0.5)), "ms-p50-react-secret")
	b.ReportMetric(ms(percentile(sec, 0.99)), "ms-p99-react-secret")

	rss, err := m.PeakRSS()
	must(b, err)
	b.ReportMetric(float64(rss)/(1<<20), "MiB-peak-rss")

	// 4. Delete every RedisConnection: the controller must close every Redis connection and end
	// the goroutines it started for them.
	for _, ns := range namespaces {
		must(b, f.k8s.DeleteAllOf(ctx, &rconnv1.RedisConnection{}, client.InNamespace(ns)))
	}
	deadline := time.Now().Add(2 * time.Minute)
	var after snapshot
	for {
		after = f.snapshot(b, m)
		if (after.inspectors == 0 && after.redisConns == 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	b.ReportMetric(float64(after.redisConns), "redis-conns-after-delete")
	b.ReportMetric(after.goroutines-idleGoroutines, "goroutines-after-delete")
	if m.Exited() {
		b.Fatalf("the manager exited during the run; log tail:\n%s", tail(m.Log(), 3000))
	}
}

func scaleConnection(ns, name string, roots []rconnv1.RootNode, interval time.Duration) *rconnv1.RedisConnection {
	return &rconnv1.RedisConnection{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: rconnv1.RedisConnectionSpec{
			RootNodes: roots,
			Defaults: &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{
				SecretRef: rconnv1.LocalSecretReference{Name: "redis-acl"}, UsernameKey: "username"}},
			HealthCheck: &rconnv1.HealthCheck{Interval: &metav1.Duration{Duration: interval}, Timeout: &metav1.Duration{Duration: 2 * time.Second}},
		},
	}
}

// reactConnection also maps addresses from the Service "extra" (ClusterIP): its endpoints are
// FQDN endpoints pod-<k>.extra.rconn-scale.invalid:7000 no node announces, so the map changes
// with the EndpointSlice while nothing ever dials (or resolves) them or the Service's loopback
// ClusterIP. Its ACL user "react" rotates.
func reactConnection(ns string, roots []rconnv1.RootNode, interval time.Duration) *rconnv1.RedisConnection {
	rc := scaleConnection(ns, "react", roots, interval)
	rc.Spec.Defaults.ACL.SecretRef.Name = "react-acl"
	rc.Spec.NodeAddressMap = &rconnv1.NodeAddressMap{FromServices: []rconnv1.ServiceAddressSource{{
		Selector:    metav1.LabelSelector{MatchLabels: map[string]string{"app": "extra"}},
		AddressType: rconnv1.AddressTypeClusterIP,
	}}}
	return rc
}

func (f *fixture) reactFixtures(b *testing.B, ns string) {
	ctx := context.Background()
	// The cluster's "react" user starts with pw-0 on every node; earlier runs may have rotated
	// it: reset it.
	for _, c := range f.admins {
		must(b, c.Do(ctx, "ACL", "SETUSER", "react", "on", "resetpass", ">pw-0", "~*", "&*", "+@all").Err())
	}
	must(b, f.k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "react-acl", Namespace: ns},
		Data: map[string][]byte{"username": []byte("react"), "password": []byte("pw-0")}}))
	must(b, f.k8s.Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "extra", Namespace: ns, Labels: map[string]string{"app": "extra"}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "redis", Port: 7000}}},
	}))
	ready := true
	must(b, f.k8s.Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "extra-1", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: "extra"}},
		AddressType: discoveryv1.AddressTypeFQDN,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"pod-0.extra.rconn-scale.invalid"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("redis"), Port: ptr(int32(7000))}},
	}))
}

func ptr[T any](v T) *T { return &v }

// waitAllReady polls the RedisConnections of the run until n are Ready=True.
func (f *fixture) waitAllReady(ctx context.Context, run string, n int, start, deadline time.Time) (time.Duration, error) {
	last := 0
	for {
		var list rconnv1.RedisConnectionList
		if err := f.k8s.List(ctx, &list, client.MatchingLabels{"rconn-bench": run}); err != nil {
			return 0, err
		}
		ready := 0
		for _, rc := range list.Items {
			for _, c := range rc.Status.Conditions {
				if c.Type == rconnv1.ConditionReady && c.Status == metav1.ConditionTrue {
					ready++
				}
			}
		}
		last = ready
		if ready >= n {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%d of %d RedisConnections Ready by the deadline", last, n)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// ownCommandsPerSnapshot is what snapshot sends each node: INFO, then CLIENT LIST.
const ownCommandsPerSnapshot = 2

type snapshot struct {
	hist                           managertest.Histogram
	managerWrites, apiserverWrites float64
	writesByVerb                   map[string]float64
	goroutines, inspectors         float64
	redisConns                     int
	commands                       int64
}

func (f *fixture) snapshot(b *testing.B, m *managertest.Manager) snapshot {
	ctx := context.Background()
	var s snapshot
	mfs, err := m.Metrics()
	must(b, err)
	s.hist, err = managertest.MergedHistogram(mfs, "controller_runtime_reconcile_time_seconds", nil)
	must(b, err)
	s.goroutines = managertest.Sum(mfs, "go_goroutines", nil)
	s.inspectors = managertest.Sum(mfs, "rconn_inspectors_open", nil)
	s.writesByVerb = map[string]float64{}
	if mf := mfs["rest_client_requests_total"]; mf != nil {
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == "method" && lp.GetValue() != "GET" {
					s.managerWrites += mt.GetCounter().GetValue()
					s.writesByVerb[lp.GetValue()] += mt.GetCounter().GetValue()
				}
			}
		}
	}
	hc, err := rest.HTTPClientFor(f.cfg)
	must(b, err)
	api, err := managertest.Scrape(ctx, hc, strings.TrimSuffix(f.cfg.Host, "/")+"/metrics")
	must(b, err)
	if mf := api["apiserver_request_total"]; mf != nil {
		for _, mt := range mf.GetMetric() {
			verb, resource := "", ""
			for _, lp := range mt.GetLabel() {
				switch lp.GetName() {
				case "verb":
					verb = lp.GetValue()
				case "resource":
					resource = lp.GetValue()
				}
			}
			switch verb {
			case "POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY", "CREATE", "UPDATE":
				if resource != "leases" {
					s.apiserverWrites += mt.GetCounter().GetValue()
				}
			}
		}
	}
	for _, c := range f.admins {
		info, err := redistest.Info(ctx, c, "stats")
		must(b, err)
		v, _ := strconv.ParseInt(info["total_commands_processed"], 10, 64)
		s.commands += v
		list, err := c.ClientList(ctx).Result()
		must(b, err)
		for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
			flags, cmd := "", ""
			for _, fld := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(fld, "flags="); ok {
					flags = v
				}
				if v, ok := strings.CutPrefix(fld, "cmd="); ok {
					cmd = v
				}
			}
			// S: a replica's link to this master, M: this replica's link to its master.
			if cmd == "client|list" || strings.ContainsAny(flags, "SM") {
				continue
			}
			s.redisConns++
		}
	}
	return s
}

// watchOne watches one object by name, delivering each version with the time it arrived.
type arrival struct {
	at  time.Time
	obj any
}

func watchNamed(b *testing.B, w watch.Interface) <-chan arrival {
	out := make(chan arrival, 64)
	go func() {
		defer close(out)
		for ev := range w.ResultChan() {
			switch ev.Type {
			case watch.Added, watch.Modified:
				out <- arrival{time.Now(), ev.Object}
			case watch.Error:
				b.Logf("watch error: %v", apierrors.FromObject(ev.Object))
			}
		}
	}()
	return out
}

// reactEndpointSlices moves the "extra" endpoint changes times and measures each update ->
// ConfigMap showing the new entry.
func (f *fixture) reactEndpointSlices(b *testing.B, ns string, changes int) []time.Duration {
	ctx := context.Background()
	w, err := f.cs.CoreV1().ConfigMaps(ns).Watch(ctx, reactWatch)
	must(b, err)
	defer w.Stop()
	ch := watchNamed(b, w)
	var out []time.Duration
	for k := 1; k <= changes; k++ {
		addr := fmt.Sprintf("pod-%d.extra.rconn-scale.invalid", k)
		key := `"` + addr + `:7000"`
		es := &discoveryv1.EndpointSlice{}
		must(b, f.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "extra-1"}, es))
		es.Endpoints[0].Addresses = []string{addr}
		t0 := time.Now()
		must(b, f.k8s.Update(ctx, es))
		d := waitFor(ch, t0, 30*time.Second, func(o any) bool {
			cm, ok := o.(*corev1.ConfigMap)
			return ok && strings.Contains(cm.Data[pkgclient.ConfigFileName], key)
		})
		if d >= 30*time.Second {
			f.explain(b, ns, "no ConfigMap with "+key)
		}
		out = append(out, d)
	}
	return out
}

// reactSecrets rotates the react user's password changes times (added on every node first,
// the old one removed after) and measures each Secret update -> output Secret re-rendered.
func (f *fixture) reactSecrets(b *testing.B, ns string, changes int) []time.Duration {
	ctx := context.Background()
	w, err := f.cs.CoreV1().Secrets(ns).Watch(ctx, reactWatch)
	must(b, err)
	defer w.Stop()
	ch := watchNamed(b, w)
	var out []time.Duration
	for k := 1; k <= changes; k++ {
		pw := fmt.Sprintf("pw-%d", k)
		for _, c := range f.admins {
			must(b, c.Do(ctx, "ACL", "SETUSER", "react", ">"+pw).Err())
		}
		src := &corev1.Secret{}
		must(b, f.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "react-acl"}, src))
		src.Data["password"] = []byte(pw)
		t0 := time.Now()
		must(b, f.k8s.Update(ctx, src))
		d := waitFor(ch, t0, 30*time.Second, func(o any) bool {
			s, ok := o.(*corev1.Secret)
			return ok && string(s.Data["password"]) == pw
		})
		if d >= 30*time.Second {
			f.explain(b, ns, "no output Secret with "+pw)
		}
		out = append(out, d)
		for _, c := range f.admins {
			must(b, c.Do(ctx, "ACL", "SETUSER", "react", fmt.Sprintf("<pw-%d", k-1)).Err())
		}
	}
	return out
}

// explain logs the react RedisConnection's conditions and ConfigMap after a missed change.
func (f *fixture) explain(b *testing.B, ns, what string) {
	ctx := context.Background()
	rc := &rconnv1.RedisConnection{}
	_ = f.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "react"}, rc)
	cm := &corev1.ConfigMap{}
	_ = f.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "react"}, cm)
	var conds []string
	for _, c := range rc.Status.Conditions {
		conds = append(conds, fmt.Sprintf("%s=%s/%s: %s", c.Type, c.Status, c.Reason, c.Message))
	}
	b.Logf("%s within 30s; conditions: %s; map: %v; config.json: %s", what, strings.Join(conds, "; "), rc.Status.NodeAddressMap, tail(cm.Data[pkgclient.ConfigFileName], 600))
}

// reactWatch watches the object named react from the watch cache's current state (resource
// version "0"): a watch "from now" asks for etcd's latest revision, which the envtest API
// server's watch cache may not reach for seconds when only other kinds changed (etcd 3.4 sends
// no progress notifications), failing with "Too large resource version".
var reactWatch = metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", "react").String(), ResourceVersion: "0"}

// waitFor returns how long after t0 an arrival matched (the limit when none did).
func waitFor(ch <-chan arrival, t0 time.Time, limit time.Duration, match func(any) bool) time.Duration {
	timeout := time.After(limit)
	for {
		select {
		case a, ok := <-ch:
			if !ok {
				return limit
			}
			if match(a.obj) {
				return a.at.Sub(t0)
			}
		case <-timeout:
			return limit
		}
	}
}

// percentile is the nearest-rank percentile.
func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.999999) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(err)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
