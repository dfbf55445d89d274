// Command rconn-demo is `make demo`: rconn end to end on this machine, with no Kubernetes
// cluster at hand, on the rig (internal/world/rig): a real control plane (kube-apiserver +
// etcd, kube-controller-manager, kube-scheduler) with kwok nodes, a Redis Cluster StatefulSet of
// six pods served by real redis-servers on 198.18.N.x pod IPs inside a network namespace, the
// real endpointslice controller, and CoreDNS for cluster.local. It installs the CRD, runs the
// real manager binary, applies config/samples/rconn_v1_redisconnection_demo.yaml (PodDNS), mounts
// the rendered ConfigMap/Secret like kubelet does, runs the example app on them, then deletes a
// pod and rolls the StatefulSet and shows everything following, and finally switches to the
// LoadBalancer variant. Names resolve only through CoreDNS; the only non-loopback addresses are
// the pod IPs inside the rig's namespace. Needs root (network namespaces) and `make rig-assets`.
//
//	rconn-demo            run, print what happens, stop everything, exit 0
//	KEEP=1 rconn-demo     leave it running in the background and print how to use and stop it
//	rconn-demo stop       stop a demo left running with KEEP=1
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"

	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/demo"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/managertest"
)

const (
	sample   = "config/samples/rconn_v1_redisconnection_demo.yaml"
	sampleLB = "config/samples/rconn_v1_redisconnection_demo_loadbalancer.yaml"
)

func main() {
	root, err := kubetest.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "rconn-demo:", err)
		os.Exit(1)
	}
	dir := filepath.Join(root, "bin", "demo")
	pidFile := filepath.Join(dir, "demo.pid")
	switch {
	case len(os.Args) > 1 && os.Args[1] == "stop":
		os.Exit(stop(pidFile))
	case len(os.Args) > 1:
		fmt.Fprintln(os.Stderr, "usage: rconn-demo [stop]   (KEEP=1 leaves the demo running)")
		os.Exit(2)
	}
	keep := os.Getenv("KEEP") == "1"
	if keep && os.Getenv("RCONN_DEMO_CHILD") == "" {
		os.Exit(detach(dir, pidFile))
	}
	if pid, err := readPid(pidFile); err == nil && processIsDemo(pid) {
		fmt.Fprintf(os.Stderr, "rconn-demo: a demo is already running (pid %d): stop it with `make demo-stop`\n", pid)
		os.Exit(1)
	}
	os.Exit(run(root, dir, keep, pidFile))
}

// runner is the demo's TB: cleanups run in reverse order at the end; Fatalf stops the demo.
type runner struct {
	dir      string
	mu       sync.Mutex
	cleanups []func()
}

type fatal string

func (r *runner) Helper()                         {}
func (r *runner) Logf(format string, args ...any) { fmt.Printf("    "+format+"\n", args...) }
func (r *runner) Fatalf(format string, args ...any) {
	panic(fatal(fmt.Sprintf(format, args...)))
}

// TempDir is the demo's state directory (bin/demo), so the manager's log (managertest writes it
// there) is kept for after the run, next to the app's.
func (r *runner) TempDir() string { return r.dir }
func (r *runner) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}
func (r *runner) cleanup() {
	r.mu.Lock()
	fs := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

func run(root, dir string, keep bool, pidFile string) (code int) {
	start := time.Now()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "rconn-demo:", err)
		return 1
	}
	t := &runner{dir: dir}
	ctrllog.SetLogger(logr.Discard()) // the demo prints its own story; the manager logs to a file
	var timings []demo.Timing
	timed := func(what string, since time.Time) {
		timings = append(timings, demo.Timing{What: what, Took: time.Since(since)})
		t.Logf("(%s: %.1fs)", what, time.Since(since).Seconds())
	}
	defer func() {
		if r := recover(); r != nil {
			msg, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			fmt.Printf("\nrconn-demo FAILED: %s\n", msg)
			if ctx.Err() != nil {
				fmt.Println("(interrupted)")
			}
			fmt.Printf("logs: %s\n", dir)
			code = 1
		}
		fmt.Println("==> stopping every process the demo started (manager, app, CoreDNS, redis-servers, kwok, control plane) and removing the pod network namespace")
		stopping := time.Now()
		t.cleanup()
		fmt.Printf("    stopped in %.1fs\n", time.Since(stopping).Seconds())
		_ = os.Remove(pidFile)
	}()
	must := func(err error) {
		if err != nil {
			t.Fatalf("%v", err)
		}
	}
	step := newStepper(stepCount())
	within := func(d time.Duration) context.Context {
		c, cancel := context.WithTimeout(ctx, d)
		t.Cleanup(cancel)
		return c
	}
	ns := []string{"-n", demo.Namespace}

	step.next("building bin/manager and the example app (go build -trimpath, CGO_ENABLED=0, as the Dockerfile)")
	building := time.Now()
	manager, app, err := demo.Build(root, filepath.Join(root, "bin"))
	must(err)
	timed("go build", building)

	step.next("starting the rig: a real control plane with kwok nodes, a Redis Cluster StatefulSet, CoreDNS")
	worldStart := time.Now()
	w := demo.StartRig(t, within(5*time.Minute), demo.Options{Dir: dir, Progress: t.Logf})
	timings = append(timings, w.Timings...)
	show(ctx, t, w, append(ns, "get", "nodes,pods,sts,endpointslices", "-o", "wide")...)
	fmt.Println()
	logNetwork(t, w)
	must(w.InstallCRD(within(90 * time.Second)))

	step.next("running the manager binary (as user %s, bound to config/rbac/role.yaml only; --dns-server %s; --allow-loopback: the demo's LoadBalancer IPs are on loopback, which the manager denies by default)", demo.ManagerUser, w.DNS.Addr())
	mgrStart := time.Now()
	mgr := w.StartManager(t, manager)
	t.Logf("pid %d, log %s, metrics http://%s/metrics", mgr.Pid(), mgr.LogPath, mgr.MetricsAddr)
	timed("manager ready", mgrStart)

	showDenial(within(60*time.Second), t, w, step, mgr, dir, ns)
	if sentinelMode() == "only" {
		sentinelAct(&session{t: t, ctx: ctx, w: w, within: within, must: must, timed: timed}, step, app, ns)
		return finish(ctx, t, w, step, start, worldStart, timings, keep, pidFile, mgr.LogPath, "")
	}

	step.next("applying the sample RedisConnection (PodDNS through the headless Service)")
	applied := time.Now()
	show(ctx, t, w, append(ns, "apply", "-f", sample)...)
	show(ctx, t, w, append(ns, "wait", "--for=condition=Ready", "--timeout=90s", "rconn/demo")...)
	timed("RedisConnection Ready", applied)
	show(ctx, t, w, append(ns, "get", "rconn", "-o", "wide")...)
	fmt.Println("\n  status conditions:")
	show(ctx, t, w, append(ns, "get", "rconn", "demo", "-o",
		`jsonpath={range .status.conditions[*]}{.type}{"\t"}{.status}{"\t"}{.reason}{"\t"}{.message}{"\n"}{end}`)...)
	fmt.Println("\n  node address map (status.nodeAddressMap):")
	showMap(ctx, t, w, true)

	step.next("the rendered outputs")
	showOutputs(ctx, t, w, ns)

	step.next("mounting them like kubelet does, and running the example app (pkg/client Open, -dns-server %s)", w.DNS.Addr())
	appStart := time.Now()
	m := w.Mount(t, within(30*time.Second), "demo", demo.MountOptions{SyncPeriod: mountPeriod})
	logMount(t, m)
	t.Logf("volume updates: a real kubelet rewrites them on its pod sync, every %s-%s (--sync-frequency %s + 50%% jitter), so a change lands 0-%s later;",
		demo.KubeletSyncPeriod, time.Duration(float64(demo.KubeletSyncPeriod)*(1+demo.KubeletSyncJitter)), demo.KubeletSyncPeriod, time.Duration(float64(demo.KubeletSyncPeriod)*(1+demo.KubeletSyncJitter)))
	t.Logf("this demo's kubelet stand-in syncs every %s-%s to keep the demo short", mountPeriod, time.Duration(float64(mountPeriod)*(1+demo.KubeletSyncJitter)))
	var echo atomic.Bool
	echo.Store(true)
	appProc := w.StartApp(t, app, m.ConfigDir, m.SecretDir, func(line string) {
		if echo.Load() {
			fmt.Println("    app | " + trimLogTime(line))
		}
	})
	good := func(l string) bool { return strings.Contains(l, `msg=round`) && strings.Contains(l, `ok="3/3 shards"`) }
	from, err := appProc.WaitLine(within(60*time.Second), 0, "a round on all 3 shards", good)
	must(err)
	_, err = appProc.WaitLine(within(30*time.Second), from+1, "a second good round", good)
	must(err)
	echo.Store(false)
	timed("app's first good rounds", appStart)

	s := &session{t: t, ctx: ctx, w: w, appProc: appProc, echo: &echo, good: good, within: within, must: must, timed: timed}

	step.next("kubectl delete pod %s-1: the StatefulSet recreates it under a new pod IP", demo.RedisName)
	mark := len(appProc.Lines())
	pod := demo.RedisName + "-1"
	oldIP := w.PodIP(ctx, pod)
	moved := time.Now()
	show(ctx, t, w, append(ns, "delete", "pod", pod, "--wait=false")...)
	newIP, err := waitNewIP(within(2*time.Minute), w, pod, oldIP)
	must(err)
	_, err = w.Redis.Runner.WaitReady(ctx, w.Redis.Pods, 2*time.Minute)
	must(err)
	t.Logf("%s is back as %s (was %s), Ready after %.1fs", pod, newIP, oldIP, time.Since(moved).Seconds())
	s.follow("pod delete -> app on the new map", mark)

	step.next("kubectl rollout restart statefulset/%s: every pod, one at a time, comes back under a new IP", demo.RedisName)
	mark = len(appProc.Lines())
	rolling := time.Now()
	show(ctx, t, w, append(ns, "rollout", "restart", "statefulset/"+demo.RedisName)...)
	show(ctx, t, w, append(ns, "rollout", "status", "statefulset/"+demo.RedisName, "--timeout=5m")...)
	must(w.Redis.WaitRolledOut(ctx, 5*time.Minute))
	timed("rollout restart of 6 pods", rolling)
	show(ctx, t, w, append(ns, "get", "pods", "-o", "wide")...)
	fmt.Println()
	s.follow("rollout -> app on the new map", mark)

	step.next("the LoadBalancer variant: the same RedisConnection now maps each pod IP to its pod's LoadBalancer Service")
	s.loadBalancerVariant(ns)
	if sentinelMode() == "1" {
		sentinelAct(s, step, app, ns)
	}
	return finish(ctx, t, w, step, start, worldStart, timings, keep, pidFile, mgr.LogPath, appProc.LogFile)
}

// finish prints the summary and, with KEEP=1, how to use the demo left running, until a signal.
func finish(ctx context.Context, t *runner, w *demo.RigWorld, step *stepper, start, worldStart time.Time, timings []demo.Timing, keep bool, pidFile, mgrLog, appLog string) int {
	inDemo := time.Since(worldStart)
	step.next("done in %s (in-demo, from the rig's start: %s)", time.Since(start).Round(100*time.Millisecond), inDemo.Round(100*time.Millisecond))
	printTimings(timings)
	if errs := w.Redis.Runner.Errors(); len(errs) > 0 {
		t.Logf("pod runner reported: %s", strings.Join(errs, "; "))
	}
	if w.Sentinel != nil {
		if errs := w.Sentinel.Runner.Errors(); len(errs) > 0 {
			t.Logf("Sentinel pod runner reported: %s", strings.Join(errs, "; "))
		}
	}
	if !keep {
		return 0
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatalf("%v", err)
	}
	fmt.Printf(`
The demo keeps running (pid %d), the rig with it.
  export KUBECONFIG=%s
  %s get nodes,pods,sts,endpointslices,rconn -n %s -o wide
  %s delete pod -n %s %s-2          # and watch the app follow
  tail -f %s    # the manager
  tail -f %s        # the example app
Stop it with: make demo-stop
==> ready
`, os.Getpid(), w.Kubeconfig, w.KubectlPath(), demo.Namespace, w.KubectlPath(), demo.Namespace, demo.RedisName, mgrLog, appLog)
	<-ctx.Done()
	return 0
}

// mountPeriod is the demo's kubelet sync period (a real kubelet's is demo.KubeletSyncPeriod).
const mountPeriod = 2 * time.Second

type kubectler interface {
	Kubectl(ctx context.Context, args ...string) (string, error)
}

// session is what the steps after the app's start share.
type session struct {
	t       *runner
	ctx     context.Context
	w       *demo.RigWorld
	appProc *demo.Process
	echo    *atomic.Bool
	good    func(string) bool
	within  func(time.Duration) context.Context
	must    func(error)
	timed   func(string, time.Time)
}

// follow waits until the map is exactly the pods' current IPs, then for the mount to swap
// and the app to reload a config that has all of them, and for a good round after it.
func (s *session) follow(what string, mark int) {
	began := time.Now()
	want, err := waitPodMap(s.within(3*time.Minute), s.w)
	s.must(err)
	s.t.Logf("status.nodeAddressMap follows: every pod's current IP maps to its DNS name (%.1fs)", time.Since(began).Seconds())
	showMap(s.ctx, s.t, s.w, false)
	fmt.Println()
	s.echo.Store(true)
	i, err := s.appProc.WaitLine(s.within(90*time.Second), mark, "the app to reload a config with every new pod IP", func(l string) bool {
		if !strings.Contains(l, "config reloaded") {
			return false
		}
		for a := range want {
			if !strings.Contains(l, a+"->") {
				return false
			}
		}
		return true
	})
	s.must(err)
	_, err = s.appProc.WaitLine(s.within(60*time.Second), i+1, "a good round after the reload", s.good)
	s.must(err)
	s.echo.Store(false)
	failed := 0
	for _, l := range s.appProc.Lines()[mark:] {
		if strings.Contains(l, "msg=round") && strings.Contains(l, "level=WARN") {
			failed++
		}
	}
	s.t.Logf("the app (pid %d, never restarted) followed; rounds with an error meanwhile: %d", s.appProc.Pid(), failed)
	s.timed(what, began)
}

// loadBalancerVariant applies the LoadBalancer sample and waits for the app to follow it.
func (s *session) loadBalancerVariant(ns []string) {
	mark := len(s.appProc.Lines())
	lb := time.Now()
	show(s.ctx, s.t, s.w, append(ns, "apply", "-f", sampleLB)...)
	s.must(waitMap(s.within(90*time.Second), s.w, func(m map[string]string) bool {
		n := 0
		for _, r := range m {
			if strings.HasPrefix(r, "127.2.0.") {
				n++
			}
		}
		return n == s.w.Redis.Pods && len(m) == s.w.Redis.Pods
	}))
	showMap(s.ctx, s.t, s.w, true)
	fmt.Println()
	s.echo.Store(true)
	// The variant changes rootNodes too (127.2.0.1, the first load balancer): pkg/client applies
	// the new map at once and says that new root nodes take a restart.
	i, err := s.appProc.WaitLine(s.within(90*time.Second), mark, "the app to take the LoadBalancer map", func(l string) bool {
		return (strings.Contains(l, "config reloaded") && strings.Count(l, "->127.2.0.") == s.w.Redis.Pods) ||
			(strings.Contains(l, "config reload failed") && strings.Contains(l, "node address map"))
	})
	s.must(err)
	_, err = s.appProc.WaitLine(s.within(60*time.Second), i+1, "a good round through the load balancers", func(l string) bool {
		return s.good(l) && strings.Contains(l, "->127.2.0.")
	})
	s.must(err)
	s.echo.Store(false)
	s.timed("LoadBalancer variant -> app on the new map", lb)
}

// showDenial shows config/default's admission policy (installed by InstallCRD) and the manager's
// view of it, then makes the confused-deputy request as the tenant and prints the API server's 403.
func showDenial(ctx context.Context, t *runner, w *demo.RigWorld, step *stepper, mgr *managertest.Manager, dir string, ns []string) {
	step.next("admission: user %s may write RedisConnections and get only Secret %s; naming Secret %s is denied", demo.TenantUser, demo.TenantSecret, demo.ProdSecret)
	show(ctx, t, w, "get", "validatingadmissionpolicy,validatingadmissionpolicybinding")
	denied, err := demo.ShowDenial(ctx, w.Kubectl, demo.Namespace, dir)
	if err != nil {
		t.Fatalf("%v", err)
	}
	show(ctx, t, w, append(ns, "get", "role", demo.TenantUser, "-o", `jsonpath={range .rules[*]}{.verbs}{" "}{.resources}{" "}{.resourceNames}{"\n"}{end}`)...)
	t.Logf("$ kubectl --as %s create -f tenant-attack.yaml   # acl.secretRef %s, output.secretName %s", demo.TenantUser, demo.ProdSecret, demo.TenantSecret)
	for _, l := range strings.Split(denied, "\n") {
		t.Logf("  %s", l)
	}
	if mfs, err := mgr.Metrics(); err == nil {
		t.Logf("the manager checks the policy at start and every minute: rconn_admission_policy_present %v", managertest.Sum(mfs, "rconn_admission_policy_present", nil))
	}
}

// showOutputs prints the rendered ConfigMap's config.json and the Secret's keys.
func showOutputs(ctx context.Context, t *runner, w *demo.RigWorld, ns []string) {
	out, err := w.Kubectl(ctx, append(ns, "get", "configmap", "demo", "-o", `jsonpath={.data.config\.json}`)...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, []byte(out), "    ", "  ") != nil {
		pretty.WriteString(out)
	}
	fmt.Printf("  ConfigMap %s/demo, config.json:\n    %s\n", demo.Namespace, pretty.String())
	show(ctx, t, w, append(ns, "get", "secret", "demo", "-o",
		`go-template=  Secret {{.metadata.namespace}}/{{.metadata.name}} (type {{.type}}), keys (values not shown):{{range $k, $v := .data}} {{$k}}{{end}}{{"\n"}}`)...)
}

// logNetwork logs where the pods' IPs live and how the host reaches them.
func logNetwork(t *runner, w *demo.RigWorld) {
	t.Logf("the pods' IPs (%s) exist only inside network namespace %s; the host reaches them through a veth", w.Rig.Net.PodCIDR, w.Rig.Net.Name)
	for i := 0; i < w.Redis.Pods; i++ {
		t.Logf("LoadBalancer Service %s: ingress %s:6379, a loopback forwarder to %s-%d's current IP", demo.LoadBalancerService(i), demo.LoadBalancerIP(i), demo.RedisName, i)
	}
}

// logMount logs where the mount's directories are.
func logMount(t *runner, m *demo.Mount) {
	t.Logf("config: %s", m.ConfigDir)
	t.Logf("secret: %s", m.SecretDir)
}

// printTimings prints where the time went.
func printTimings(timings []demo.Timing) {
	fmt.Println("  where the time went:")
	for _, tm := range timings {
		fmt.Printf("    %-62s %6.1fs\n", tm.What, tm.Took.Seconds())
	}
}

// show prints a kubectl command and its output.
func show(ctx context.Context, t *runner, w kubectler, args ...string) {
	fmt.Printf("\n  $ kubectl %s\n", quoteArgs(args))
	out, err := w.Kubectl(ctx, args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		fmt.Println("  " + l)
	}
}

func showMap(ctx context.Context, t *runner, w kubectler, withSource bool) {
	f := `jsonpath={range .status.nodeAddressMap[*]}{.announced}{"\t-> "}{.reachable}{"\n"}{end}`
	if withSource {
		f = `jsonpath={range .status.nodeAddressMap[*]}{.announced}{"\t-> "}{.reachable}{"\t("}{.source}{" "}{.service}{")\n"}{end}`
	}
	show(ctx, t, w, "get", "rconn", "demo", "-n", demo.Namespace, "-o", f)
}

func quoteArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " {}$\"'\\\t\n") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// waitMap waits until the RedisConnection demo is Ready and ok accepts its map (announced ->
// reachable).
func waitMap(ctx context.Context, w *demo.RigWorld, ok func(map[string]string) bool) error {
	var got map[string]string
	for {
		rc := &rconnv1.RedisConnection{}
		if err := w.Rig.Client.Get(ctx, client.ObjectKey{Namespace: demo.Namespace, Name: "demo"}, rc); err == nil {
			got = map[string]string{}
			for _, e := range rc.Status.NodeAddressMap {
				got[e.Announced] = e.Reachable
			}
			if ready(rc) && ok(got) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("status.nodeAddressMap never became what was expected (last: %v)", got)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func ready(rc *rconnv1.RedisConnection) bool {
	for _, c := range rc.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

// waitPodMap waits until the map is exactly every pod's IP:6379 -> its PodDNS name, and
// returns it.
func waitPodMap(ctx context.Context, w *demo.RigWorld) (map[string]string, error) {
	var want map[string]string
	err := waitMap(ctx, w, func(got map[string]string) bool {
		want = map[string]string{}
		for i := 0; i < w.Redis.Pods; i++ {
			pod := fmt.Sprintf("%s-%d", demo.RedisName, i)
			ip := w.PodIP(ctx, pod)
			if ip == "" {
				return false
			}
			want[net.JoinHostPort(ip, "6379")] = fmt.Sprintf("%s.%s.%s.svc.cluster.local:6379", pod, w.Redis.Service, demo.Namespace)
		}
		if len(got) != len(want) {
			return false
		}
		for k, v := range want {
			if got[k] != v {
				return false
			}
		}
		return true
	})
	return want, err
}

// waitNewIP waits until pod exists again with an IP other than old.
func waitNewIP(ctx context.Context, w *demo.RigWorld, pod, old string) (string, error) {
	for {
		if ip := w.PodIP(ctx, pod); ip != "" && ip != old {
			return ip, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("pod %s never came back under a new IP", pod)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type stepper struct {
	n, total int
	start    time.Time
}

func newStepper(total int) *stepper { return &stepper{total: total, start: time.Now()} }

func (s *stepper) next(format string, args ...any) {
	s.n++
	fmt.Printf("\n==> [%d/%d] %s   (+%.1fs)\n", s.n, s.total, fmt.Sprintf(format, args...), time.Since(s.start).Seconds())
}

// trimLogTime drops slog's time= field from an app line.
func trimLogTime(l string) string {
	if strings.HasPrefix(l, "time=") {
		if i := strings.IndexByte(l, ' '); i > 0 {
			return l[i+1:]
		}
	}
	return l
}

// detach runs the demo in the background (KEEP=1): a child in its own session writes to
// bin/demo/demo.log; this process prints that log until the child says it is ready.
func detach(dir, pidFile string) int {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "rconn-demo:", err)
		return 1
	}
	if pid, err := readPid(pidFile); err == nil && processIsDemo(pid) {
		fmt.Fprintf(os.Stderr, "rconn-demo: a demo is already running (pid %d): stop it with `make demo-stop`\n", pid)
		return 1
	}
	logPath := filepath.Join(dir, "demo.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rconn-demo:", err)
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "rconn-demo:", err)
		return 1
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), "RCONN_DEMO_CHILD=1")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "rconn-demo:", err)
		return 1
	}
	_ = logFile.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Follow the log until "==> ready" or the child's exit; bounded at 15 minutes.
	f, err := os.Open(logPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rconn-demo:", err)
		return 1
	}
	defer func() { _ = f.Close() }()
	var seen bytes.Buffer
	deadline := time.After(15 * time.Minute)
	for {
		chunk, _ := io.ReadAll(f)
		_, _ = os.Stdout.Write(chunk) // a lost echo of the log is not worth failing the demo over
		seen.Write(chunk)
		if strings.Contains(seen.String(), "==> ready") {
			return 0
		}
		select {
		case err := <-exited:
			chunk, _ := io.ReadAll(f)
			_, _ = os.Stdout.Write(chunk)
			fmt.Fprintf(os.Stderr, "rconn-demo: the demo exited (%v) before it was ready; log: %s\n", err, logPath)
			return 1
		case <-deadline:
			fmt.Fprintf(os.Stderr, "rconn-demo: not ready after 15 minutes; it keeps running (pid %d), log: %s\n", cmd.Process.Pid, logPath)
			return 1
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop ends a demo left running with KEEP=1 (only a process whose command is this demo).
func stop(pidFile string) int {
	pid, err := readPid(pidFile)
	if err != nil {
		fmt.Println("no demo is running (no " + pidFile + ")")
		return 0
	}
	if !processIsDemo(pid) {
		fmt.Printf("pid %d is not a running demo; removing the stale %s\n", pid, pidFile)
		_ = os.Remove(pidFile)
		return 0
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		fmt.Fprintln(os.Stderr, "rconn-demo:", err)
		return 1
	}
	for i := 0; i < 600; i++ { // bounded: 60s
		if !processIsDemo(pid) {
			fmt.Printf("stopped the demo (pid %d) and everything it started\n", pid)
			return 0
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "rconn-demo: pid %d is still running after 60s\n", pid)
	return 1
}

func readPid(pidFile string) (int, error) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// processIsDemo reports whether pid is alive and runs this demo binary (not a reused pid).
func processIsDemo(pid int) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false
	}
	self, err := os.Executable()
	if err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err == nil {
		// A zombie (state Z) is already dead.
		if f := strings.Fields(string(stat)); len(f) > 2 && f[2] == "Z" {
			return false
		}
	}
	return strings.TrimSuffix(exe, " (deleted)") == self
}
