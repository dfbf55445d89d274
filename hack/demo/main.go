// Command rconn-demo is `make demo`: rconn end to end on this machine, with no Kubernetes
// cluster at hand. It starts the local control plane (the same kube-apiserver + etcd the tests
// use), a 3-master/3-replica Redis Cluster whose nodes announce names nobody can resolve, the
// Services/EndpointSlices/LoadBalancer ingress a real cluster would publish for them, installs
// the CRD, runs the real manager binary, applies config/samples/rconn_v1_redisconnection_demo.yaml,
// mounts the rendered ConfigMap/Secret like kubelet does, runs the example app on them, then
// moves a node and shows everything following it. Everything runs on loopback; nothing resolves
// a name.
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

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/demo"
	"github.com/rconn-dev/redis-connection-operator/internal/testing/kubetest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

const sample = "config/samples/rconn_v1_redisconnection_demo.yaml"

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
		fmt.Println("==> stopping every process the demo started")
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
	step := newStepper(8)
	within := func(d time.Duration) context.Context {
		c, cancel := context.WithTimeout(ctx, d)
		t.Cleanup(cancel)
		return c
	}

	step.next("building bin/manager and the example app (go build -trimpath, CGO_ENABLED=0, as the Dockerfile)")
	manager, app, err := demo.Build(root, filepath.Join(root, "bin"))
	must(err)

	step.next("starting the local world")
	w := demo.Start(t, demo.Options{Dir: dir, Progress: t.Logf})
	for i, n := range w.Redis.Nodes {
		role := "master"
		if n.MasterIndex >= 0 {
			role = fmt.Sprintf("replica of node-%d", n.MasterIndex)
		}
		t.Logf("  node-%d  listens 127.0.0.1:%d  announces %-38s %s", i, n.Port, n.Announced, role)
	}
	must(w.Publish(within(30 * time.Second)))
	must(w.InstallCRD(within(90 * time.Second)))

	step.next("running the manager binary (as user %s, bound to config/rbac/role.yaml only)", demo.ManagerUser)
	mgr := w.StartManager(t, manager)
	t.Logf("pid %d, log %s, metrics http://%s/metrics", mgr.Pid(), mgr.LogPath, mgr.MetricsAddr)

	step.next("applying the sample RedisConnection")
	show(t, w, ctx, "apply", "-n", demo.Namespace, "-f", sample)
	show(t, w, ctx, "wait", "-n", demo.Namespace, "--for=condition=Ready", "--timeout=90s", "rconn/demo")
	show(t, w, ctx, "get", "rconn", "-n", demo.Namespace, "-o", "wide")
	fmt.Println("\n  status conditions:")
	show(t, w, ctx, "get", "rconn", "demo", "-n", demo.Namespace, "-o",
		`jsonpath={range .status.conditions[*]}{.type}{"\t"}{.status}{"\t"}{.reason}{"\t"}{.message}{"\n"}{end}`)
	fmt.Println("\n  node address map (status.nodeAddressMap):")
	show(t, w, ctx, "get", "rconn", "demo", "-n", demo.Namespace, "-o",
		`jsonpath={range .status.nodeAddressMap[*]}{.announced}{"\t-> "}{.reachable}{"\t("}{.source}{" "}{.service}{")\n"}{end}`)

	step.next("the rendered outputs")
	out, err := w.Kubectl(ctx, "get", "configmap", "demo", "-n", demo.Namespace, "-o", `jsonpath={.data.config\.json}`)
	must(err)
	var pretty bytes.Buffer
	if json.Indent(&pretty, []byte(out), "    ", "  ") != nil {
		pretty.WriteString(out)
	}
	fmt.Printf("  ConfigMap %s/demo, config.json:\n    %s\n", demo.Namespace, pretty.String())
	show(t, w, ctx, "get", "secret", "demo", "-n", demo.Namespace, "-o",
		`go-template=  Secret {{.metadata.namespace}}/{{.metadata.name}} (type {{.type}}), keys (values not shown):{{range $k, $v := .data}} {{$k}}{{end}}{{"\n"}}`)

	step.next("mounting them like kubelet does, and running the example app (pkg/client Open)")
	m := w.Mount(t, within(30*time.Second), "demo")
	t.Logf("config: %s", m.ConfigDir)
	t.Logf("secret: %s", m.SecretDir)
	var echo atomic.Bool
	echo.Store(true)
	appProc := w.StartApp(t, app, m.ConfigDir, m.SecretDir, func(line string) {
		if echo.Load() {
			fmt.Println("    app | " + trimLogTime(line))
		}
	})
	from, err := appProc.WaitLine(within(60*time.Second), 0, "a round on all 3 shards", func(l string) bool {
		return strings.Contains(l, `msg=round`) && strings.Contains(l, `ok="3/3 shards"`)
	})
	must(err)
	_, err = appProc.WaitLine(within(30*time.Second), from+1, "a second good round", func(l string) bool {
		return strings.Contains(l, `msg=round`) && strings.Contains(l, `ok="3/3 shards"`)
	})
	must(err)
	echo.Store(false)

	step.next("moving node-1 (a master) the way a pod restart does: it comes back under a new address")
	mark := len(appProc.Lines())
	oldAddr, newAddr, err := w.MoveNode(within(60*time.Second), 1)
	must(err)
	t.Logf("node-1 now announces %s (was %s); its EndpointSlice lists the new name", newAddr, oldAddr)
	must(waitMapped(within(60*time.Second), w, newAddr))
	show(t, w, ctx, "get", "rconn", "demo", "-n", demo.Namespace, "-o",
		`jsonpath={range .status.nodeAddressMap[*]}{.announced}{"\t-> "}{.reachable}{"\n"}{end}`)
	fmt.Println()
	select {
	case what := <-m.Updates():
		t.Logf("the %s was re-rendered and the mount swapped (..data)", what)
	case <-within(60 * time.Second).Done():
		t.Fatalf("the ConfigMap was not re-rendered after the move")
	}
	echo.Store(true)
	_, err = appProc.WaitLine(within(60*time.Second), mark, "the app to reload its config", func(l string) bool {
		return strings.Contains(l, "config reloaded") && strings.Contains(l, newAddr)
	})
	must(err)
	_, err = appProc.WaitLine(within(60*time.Second), mark, "a round served by node-1 under its new address", func(l string) bool {
		return strings.Contains(l, `msg=round`) && strings.Contains(l, `ok="3/3 shards"`) && strings.Contains(l, newAddr+"->")
	})
	must(err)
	echo.Store(false)
	failed := 0
	for _, l := range appProc.Lines()[mark:] {
		if strings.Contains(l, "msg=round") && strings.Contains(l, "level=WARN") {
			failed++
		}
	}
	t.Logf("the app (pid %d, never restarted) followed the move; rounds with an error meanwhile: %d", appProc.Pid(), failed)

	step.next("done in %s", time.Since(start).Round(100*time.Millisecond))
	if !keep {
		return 0
	}
	must(os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())), 0o644))
	fmt.Printf(`
The demo keeps running (pid %d).
  export KUBECONFIG=%s
  %s get rconn -A -o wide
  tail -f %s    # the manager
  tail -f %s        # the example app
Stop it with: make demo-stop
==> ready
`, os.Getpid(), w.Kubeconfig, filepath.Join(w.Env.BinaryAssetsDirectory, "kubectl"), mgr.LogPath, appProc.LogFile)
	<-ctx.Done()
	return 0
}

// show prints a kubectl command and its output.
func show(t *runner, w *demo.World, ctx context.Context, args ...string) {
	fmt.Printf("\n  $ kubectl %s\n", quoteArgs(args))
	out, err := w.Kubectl(ctx, args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		fmt.Println("  " + l)
	}
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

// waitMapped waits until the RedisConnection's status maps announced.
func waitMapped(ctx context.Context, w *demo.World, announced string) error {
	for {
		rc := &rconnv1.RedisConnection{}
		if err := w.Kube.Get(ctx, client.ObjectKey{Namespace: demo.Namespace, Name: "demo"}, rc); err == nil {
			for _, e := range rc.Status.NodeAddressMap {
				if e.Announced == announced {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("status.nodeAddressMap never listed %s", announced)
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
	logFile.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Follow the log until "==> ready" or the child's exit; bounded at 15 minutes.
	f, err := os.Open(logPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rconn-demo:", err)
		return 1
	}
	defer f.Close()
	var seen bytes.Buffer
	deadline := time.After(15 * time.Minute)
	for {
		chunk, _ := io.ReadAll(f)
		os.Stdout.Write(chunk)
		seen.Write(chunk)
		if strings.Contains(seen.String(), "==> ready") {
			return 0
		}
		select {
		case err := <-exited:
			chunk, _ := io.ReadAll(f)
			os.Stdout.Write(chunk)
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
