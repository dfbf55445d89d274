package controllers_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/testing/npmtest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubeletmount"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// The client drill of Sentinel mode (issue #24, item 9): the config.json and Secret the real
// controller rendered for a 1+2+3 group announcing unresolvable names are mounted the way
// kubelet mounts them (and kept in step with the API objects, as kubelet does), and three real
// apps write in a loop from those files: node-redis createSentinel and ioredis (the
// docs/consuming.md snippets, as is) and a go pkg/client.Open app. Then SENTINEL FAILOVER and a
// killed master: every app must keep writing, to the new master, after each; the note prints
// each app's failed commands and longest stall per fault.

// drillWriteTimeout is how long one write may take before it counts as failed (the app's
// command timeout).
const drillWriteTimeout = 2 * time.Second

// drillStallBound is the loose bound on an app's longest stall around a fault: the loaded test
// machine allows no tight timing, but an app that never finds the new master fails.
const drillStallBound = 45 * time.Second

// writeEvent is one write of a drill app: when it finished, whether it succeeded.
type writeEvent struct {
	at  time.Time
	ok  bool
	msg string
}

// writeLog collects the writes of one app.
type writeLog struct {
	mu     sync.Mutex
	events []writeEvent
}

func (l *writeLog) add(e writeEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

// okAfter tells whether a write that finished after t succeeded.
func (l *writeLog) okAfter(t time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.events) - 1; i >= 0 && l.events[i].at.After(t); i-- {
		if l.events[i].ok {
			return true
		}
	}
	return false
}

// tail describes the last n writes, for failure messages.
func (l *writeLog) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, e := range l.events[max(0, len(l.events)-n):] {
		fmt.Fprintf(&b, "%s ok=%v %s\n", e.at.Format("15:04:05.000"), e.ok, e.msg)
	}
	return b.String()
}

// faultStats are an app's failed writes in [from, to] and its longest gap between successful
// writes spanning that window (from the last success before from), and the first error seen.
func (l *writeLog) faultStats(from, to time.Time) (failed, ok int, stall time.Duration, firstErr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	prev := from
	for _, e := range l.events {
		switch {
		case e.at.Before(from):
			if e.ok {
				prev = e.at
			}
		case e.at.After(to):
		case e.ok:
			ok++
			stall = max(stall, e.at.Sub(prev))
			prev = e.at
		default:
			failed++
			if firstErr == "" {
				firstErr = e.msg
			}
		}
	}
	return failed, ok, stall, firstErr
}

// drillApp is one app writing key in a loop.
type drillApp struct {
	name string
	key  string
	log  writeLog
	// stderr of a node app (its DNS guard's refusals, client errors).
	stderr syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// mountOutputs writes the RedisConnection's ConfigMap and Secret into two directories laid out
// as kubelet mounts them, and keeps them in step with the API objects (every 200 ms, as fast
// as a kubelet sync would ever be) until ctx ends.
func mountOutputs(ctx context.Context, ns, name string) (cfgDir, secDir string) {
	cfgDir, secDir = GinkgoT().TempDir(), GinkgoT().TempDir()
	var lastCM, lastSec string
	copyNow := func() {
		cm, sec := &corev1.ConfigMap{}, &corev1.Secret{}
		if k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cm) != nil ||
			k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, sec) != nil {
			return
		}
		if cm.ResourceVersion != lastCM {
			files := map[string][]byte{}
			for k, v := range cm.Data {
				files[k] = []byte(v)
			}
			if kubeletmount.Write(cfgDir, files, 0o644) == nil {
				lastCM = cm.ResourceVersion
			}
		}
		if sec.ResourceVersion != lastSec && kubeletmount.Write(secDir, maps.Clone(sec.Data), 0o600) == nil {
			lastSec = sec.ResourceVersion
		}
	}
	copyNow()
	Expect(filepath.Join(cfgDir, pkgclient.ConfigFileName)).To(BeAnExistingFile())
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				copyNow()
			}
		}
	}()
	return cfgDir, secDir
}

// drillLoop is appended to a docs/consuming.md snippet (which defines redis): write DRILL_KEY
// in a loop and print one line per write ("ok|err <epoch ms> <message>"); stdin closing ends it.
const drillLoop = `
const key = process.env.DRILL_KEY;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const timeout = (ms) => new Promise((_, reject) => setTimeout(() => reject(new Error('timed out')), ms).unref());
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
for (let i = 1; ; i++) {
  try {
    await Promise.race([redis.set(key, String(i)), timeout(Number(process.env.DRILL_TIMEOUT_MS))]);
    console.log('ok ' + Date.now());
  } catch (e) {
    console.log('err ' + Date.now() + ' ' + String(e?.message ?? e).replace(/\s+/g, ' '));
  }
  await sleep(10);
}
`

// startNodeApp runs the docs snippet under heading plus drillLoop with node, reading the
// mounted outputs, until ctx ends or the test does.
func startNodeApp(ctx context.Context, installDir, name, heading, cfgDir, secDir string) *drillApp {
	app := &drillApp{name: name, key: "drill:" + name}
	snippet, err := npmtest.DocsSnippet("..", heading)
	Expect(err).NotTo(HaveOccurred())
	work := GinkgoT().TempDir()
	script, err := npmtest.WriteScript(installDir, work, name+".mjs", snippet+drillLoop)
	Expect(err).NotTo(HaveOccurred())
	args, err := npmtest.NoDNSArgs(work)
	Expect(err).NotTo(HaveOccurred())
	cmd := exec.CommandContext(ctx, "node", append(args, script)...)
	cmd.Env = append(os.Environ(), "RCONN_CONFIG_DIR="+cfgDir, "RCONN_SECRET_DIR="+secDir,
		"DRILL_KEY="+app.key, "DRILL_TIMEOUT_MS="+strconv.Itoa(int(drillWriteTimeout.Milliseconds())))
	cmd.Stderr = &app.stderr
	stdin, err := cmd.StdinPipe()
	Expect(err).NotTo(HaveOccurred())
	stdout, err := cmd.StdoutPipe()
	Expect(err).NotTo(HaveOccurred())
	Expect(cmd.Start()).To(Succeed())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			verdict, rest, _ := strings.Cut(sc.Text(), " ")
			ms, msg, _ := strings.Cut(rest, " ")
			n, err := strconv.ParseInt(ms, 10, 64)
			if err != nil || (verdict != "ok" && verdict != "err") {
				_, _ = app.stderr.Write([]byte("stdout: " + sc.Text() + "\n"))
				continue
			}
			app.log.add(writeEvent{at: time.UnixMilli(n), ok: verdict == "ok", msg: msg})
		}
		_, _ = app.stderr.Write([]byte("(stdout closed: the script ended)\n"))
	}()
	DeferCleanup(func() {
		_ = stdin.Close() // the script exits; the kill below is for one that hangs (our own PID)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = cmd.Wait()
	})
	return app
}

// startGoApp opens a pkg/client on the mounts (base dial: loopback only, names refused without
// a lookup) and writes in a loop until ctx ends.
func startGoApp(ctx context.Context, cfgDir, secDir string, dial *nettest.Recorder) *drillApp {
	app := &drillApp{name: "go-pkg-client", key: "drill:go-pkg-client"}
	octx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c, err := pkgclient.OpenOptions{Dial: dial.Dial, ReloadInterval: 200 * time.Millisecond}.Open(octx, cfgDir, secDir)
	Expect(err).NotTo(HaveOccurred())
	ctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; ctx.Err() == nil; i++ {
			wctx, cancel := context.WithTimeout(ctx, drillWriteTimeout)
			err := c.Set(wctx, app.key, strconv.Itoa(i), 0).Err()
			cancel()
			e := writeEvent{at: time.Now(), ok: err == nil}
			if err != nil {
				e.msg = err.Error()
			}
			app.log.add(e)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	DeferCleanup(func() { stop(); <-done; _ = c.Close() })
	return app
}

// counter reads an app's key on data node i (0 when unset or unreachable).
func counter(g *redistest.SentinelGroup, i int, key string) int {
	c := g.Data[i].Client()
	defer func() { _ = c.Close() }()
	v, err := c.Get(ctx, key).Int()
	if err != nil {
		return 0
	}
	return v
}

var _ = Describe("Sentinel mode: real clients fed from the rendered config.json through failovers", Ordered, func() {
	var (
		ns     string
		g      *redistest.SentinelGroup
		apps   []*drillApp
		dial   *nettest.Recorder
		appCtx context.Context
	)
	BeforeAll(func() {
		installCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		installDir, err := npmtest.InstallClients(installCtx)
		Expect(err).NotTo(HaveOccurred())

		// Data nodes and sentinels with passwords of their own: the apps get both from the
		// rendered Secret.
		g = redistest.StartSentinelGroup(GinkgoT(), redistest.SentinelGroupOptions{
			Data: redistest.ServerOptions{Password: "drill-data-pw"}, Sentinel: redistest.ServerOptions{Password: "drill-sentinel-pw"},
		})
		ns = newNamespace()
		for name, pw := range map[string]string{"data-creds": "drill-data-pw", "sentinel-creds": "drill-sentinel-pw"} {
			Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
				Data: map[string][]byte{"password": []byte(pw)}})).To(Succeed())
		}
		rc := sentinelConnection(ns, "drill", g, nil, nil)
		rc.Spec.Defaults = &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "data-creds"}}}
		rc.Spec.Sentinel.ACL = &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "sentinel-creds"}}
		Expect(k8s.Create(ctx, rc)).To(Succeed())
		eventuallyCondition(ns, "drill", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
		Expect(renderedConfig(ns, "drill").URL).To(Equal(masterURL(g, 0)))

		var stop context.CancelFunc
		appCtx, stop = context.WithCancel(ctx)
		DeferCleanup(stop) // runs after the apps' own cleanups: then the mount sync ends too
		cfgDir, secDir := mountOutputs(appCtx, ns, "drill")
		dial = nettest.NewRecorder(nil)
		apps = []*drillApp{
			startNodeApp(appCtx, installDir, "node-redis", "### Sentinel: node-redis", cfgDir, secDir),
			startNodeApp(appCtx, installDir, "ioredis", "### Sentinel: ioredis", cfgDir, secDir),
			startGoApp(appCtx, cfgDir, secDir, dial),
		}
		start := time.Now()
		for _, a := range apps {
			Eventually(func() bool { return a.log.okAfter(start.Add(-time.Minute)) }, time.Minute, 50*time.Millisecond).Should(BeTrue(),
				"%s never wrote; stderr:\n%s", a.name, a.stderr.String())
		}
	})

	// fault injects a failover, waits for the new master and for config.json to name it, then
	// for every app to write to the new master; it prints and bounds each app's cost.
	fault := func(what string, inject func() (int, error)) {
		from := time.Now()
		old, err := inject()
		Expect(err).NotTo(HaveOccurred())
		nm, err := g.WaitNewMaster(ctx, old)
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() string { return renderedConfig(ns, "drill").URL }, time.Minute, 50*time.Millisecond).Should(Equal(masterURL(g, nm)))
		promoted := time.Now()
		for _, a := range apps {
			// A write that finished after the promotion succeeded, and the app's counter on
			// the new master moves: its writes land there.
			Eventually(func() bool { return a.log.okAfter(promoted) }, drillStallBound, 50*time.Millisecond).Should(BeTrue(),
				"%s: no successful write after %s; last writes:\n%s\nstderr:\n%s", a.name, what, a.log.tail(5), a.stderr.String())
			before := counter(g, nm, a.key)
			Eventually(func() int { return counter(g, nm, a.key) }, drillStallBound, 50*time.Millisecond).Should(BeNumerically(">", before),
				"%s does not write to the new master %s; last writes:\n%s\nstderr:\n%s", a.name, g.Data[nm].Announced, a.log.tail(5), a.stderr.String())
		}
		to := time.Now()
		GinkgoWriter.Printf("drill %s (%s -> %s; sentinels agreed and config.json named it %s after the fault):\n", what,
			g.Data[old].Announced, g.Data[nm].Announced, promoted.Sub(from).Round(time.Millisecond))
		for _, a := range apps {
			failed, ok, stall, firstErr := a.log.faultStats(from, to)
			GinkgoWriter.Printf("  %-14s %3d failed commands, longest stall %s (%d writes ok in the window) %s\n",
				a.name, failed, stall.Round(time.Millisecond), ok, firstErr)
			Expect(stall).To(BeNumerically("<", drillStallBound), a.name)
		}
	}

	It("every app keeps writing through SENTINEL FAILOVER", func() {
		fault("SENTINEL FAILOVER", func() (int, error) { return g.Failover(ctx) })
		m, err := g.Master(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(g.WaitSettled(ctx, m)).To(Succeed())
	})

	It("every app keeps writing through a killed master", func() {
		fault("killed master", func() (int, error) { return g.KillMaster(ctx) })
	})

	It("no app dialed an announced (unresolvable) name", func() {
		for _, a := range dial.Dialed() {
			host, _, err := net.SplitHostPort(a)
			Expect(err).NotTo(HaveOccurred())
			Expect(net.ParseIP(host)).NotTo(BeNil(), "go pkg/client dialed %s outside the map", a)
		}
		for _, a := range apps {
			Expect(a.stderr.String()).NotTo(ContainSubstring(npmtest.DNSRefused), "%s looked a name up", a.name)
		}
	})
})
