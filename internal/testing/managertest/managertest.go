// Package managertest builds the repository's manager binary and runs it as a separate process
// against a test API server (envtest), the way a user runs it: its RSS, goroutines, metrics and
// log are observed from outside. Every process it starts is stopped by the test that started it
// (t.Cleanup: SIGTERM, then SIGKILL after 10s, by PID).
//
//	bin := managertest.Build(t)            // once per test process
//	kc := managertest.Kubeconfig(t, env)   // a system:masters user of the envtest API server
//	m := managertest.Start(t, kc, "--max-concurrent-reconciles=8")
//	mfs, err := m.Metrics()
//
// The manager dials what RedisConnections name; tests name loopback IP literals only.
package managertest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/rconn-dev/redis-connection-operator/internal/testing/kubetest"
)

// TB is the part of testing.TB the helpers use (testing.T, testing.B and ginkgo.GinkgoT()).
type TB interface {
	Helper()
	Cleanup(func())
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
	TempDir() string
}

// StopGrace is how long Stop waits after SIGTERM before SIGKILL.
const StopGrace = 10 * time.Second

// ReadyTimeout bounds how long Start waits for /readyz.
var ReadyTimeout = 60 * time.Second

var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Build compiles the repository's main package (CGO_ENABLED=0) into a temporary directory, once
// per test process, and returns the binary's path. The directory is removed by RemoveBuild (call
// it from TestMain after m.Run if you want it gone; it lives under os.TempDir otherwise).
func Build(t TB) string {
	t.Helper()
	build.once.Do(func() {
		root, err := kubetest.RepoRoot()
		if err != nil {
			build.err = err
			return
		}
		dir, err := os.MkdirTemp("", "rconn-managertest-")
		if err != nil {
			build.err = err
			return
		}
		build.dir = dir
		out := filepath.Join(dir, "manager")
		cmd := exec.Command(goTool(), "build", "-o", out, ".")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build of the manager failed: %w\n%s", err, b)
			return
		}
		build.path = out
	})
	if build.err != nil {
		t.Fatalf("managertest: %v", build.err)
	}
	return build.path
}

var revisions struct {
	mu    sync.Mutex
	paths map[string]string
	dirs  []string
}

// BuildRevision compiles the manager as it was at a git revision of this repository (git
// archive into a temporary directory, then go build with the module cache), once per revision
// per test process: a baseline to run side by side with Build's. RemoveBuild deletes it too.
func BuildRevision(t TB, rev string) string {
	t.Helper()
	revisions.mu.Lock()
	defer revisions.mu.Unlock()
	if p, ok := revisions.paths[rev]; ok {
		return p
	}
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatalf("managertest: %v", err)
	}
	dir, err := os.MkdirTemp("", "rconn-managertest-rev-")
	if err != nil {
		t.Fatalf("managertest: %v", err)
	}
	revisions.dirs = append(revisions.dirs, dir)
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatalf("managertest: %v", err)
	}
	archive := exec.Command("git", "-C", root, "archive", "--format=tar", rev)
	untar := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		t.Fatalf("managertest: %v", err)
	}
	untar.Stdin = pipe
	var archErr bytes.Buffer
	archive.Stderr = &archErr
	if err := untar.Start(); err != nil {
		t.Fatalf("managertest: tar: %v", err)
	}
	if err := archive.Run(); err != nil {
		_ = untar.Wait()
		t.Fatalf("managertest: git archive %s: %v: %s", rev, err, archErr.String())
	}
	if err := untar.Wait(); err != nil {
		t.Fatalf("managertest: tar: %v", err)
	}
	out := filepath.Join(dir, "manager")
	cmd := exec.Command(goTool(), "build", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("managertest: go build of the manager at %s failed: %v\n%s", rev, err, b)
	}
	if revisions.paths == nil {
		revisions.paths = map[string]string{}
	}
	revisions.paths[rev] = out
	return out
}

// RemoveBuild deletes the directories Build and BuildRevision compiled into.
func RemoveBuild() {
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
	revisions.mu.Lock()
	defer revisions.mu.Unlock()
	for _, d := range revisions.dirs {
		_ = os.RemoveAll(d)
	}
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if p := filepath.Join(os.Getenv("GOROOT"), "bin", "go"); os.Getenv("GOROOT") != "" {
		return p
	}
	return "/usr/local/go/bin/go"
}

// Kubeconfig adds a system:masters user named rconn-manager to the envtest control plane and
// writes its kubeconfig to a temporary file, returning the file's path.
func Kubeconfig(t TB, env *envtest.Environment) string {
	t.Helper()
	u, err := env.AddUser(envtest.User{Name: "rconn-manager", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("managertest: adding the manager user: %v", err)
	}
	kc, err := u.KubeConfig()
	if err != nil {
		t.Fatalf("managertest: kubeconfig: %v", err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatalf("managertest: %v", err)
	}
	return path
}

// Manager is a running manager process.
type Manager struct {
	// MetricsAddr and ProbeAddr are the loopback host:port of /metrics and /healthz,/readyz.
	MetricsAddr, ProbeAddr string
	// LogPath holds the process's stdout and stderr.
	LogPath string

	cmd    *exec.Cmd
	exited chan struct{}
	stop   sync.Once
}

// Start runs the manager binary (Build) with the kubeconfig at kubeconfigPath, metrics over plain
// HTTP and health probes on free loopback ports, leader election off, and extraArgs appended
// (later flags win). It waits for /readyz and registers Stop with t.Cleanup.
func Start(t TB, kubeconfigPath string, extraArgs ...string) *Manager {
	t.Helper()
	return StartWithEnv(t, kubeconfigPath, nil, extraArgs...)
}

// StartWithEnv is Start with extra "NAME=value" environment variables for the process (on top of
// this process's environment, without KUBECONFIG and in-cluster variables).
func StartWithEnv(t TB, kubeconfigPath string, env []string, extraArgs ...string) *Manager {
	t.Helper()
	return StartBinary(t, Build(t), kubeconfigPath, env, extraArgs...)
}

// StartBinary is StartWithEnv with a given manager binary (BuildRevision's, for a baseline).
func StartBinary(t TB, bin, kubeconfigPath string, env []string, extraArgs ...string) *Manager {
	t.Helper()
	mp, err := freePort()
	if err != nil {
		t.Fatalf("managertest: %v", err)
	}
	pp, err := freePort()
	if err != nil {
		t.Fatalf("managertest: %v", err)
	}
	m := &Manager{
		MetricsAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(mp)),
		ProbeAddr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(pp)),
		LogPath:     filepath.Join(t.TempDir(), "manager.log"),
		exited:      make(chan struct{}),
	}
	logf, err := os.Create(m.LogPath)
	if err != nil {
		t.Fatalf("managertest: %v", err)
	}
	args := append([]string{
		"--metrics-bind-address=" + m.MetricsAddr,
		"--metrics-secure=false",
		"--health-probe-bind-address=" + m.ProbeAddr,
		"--leader-elect=false",
	}, extraArgs...)
	m.cmd = exec.Command(bin, args...)
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	m.cmd.Env = append(withoutEnv(os.Environ(), "KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"), "KUBECONFIG="+kubeconfigPath)
	m.cmd.Env = append(m.cmd.Env, env...)
	if err := m.cmd.Start(); err != nil {
		_ = logf.Close()
		t.Fatalf("managertest: starting %s: %v", bin, err)
	}
	go func() {
		_ = m.cmd.Wait()
		_ = logf.Close()
		close(m.exited)
	}()
	t.Cleanup(m.Stop)

	deadline := time.Now().Add(ReadyTimeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-m.exited:
			t.Fatalf("managertest: the manager exited before it was ready (%s); log:\n%s", m.cmd.ProcessState, tail(m.Log(), 4000))
		default:
		}
		resp, err := hc.Get("http://" + m.ProbeAddr + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("managertest: the manager was not ready within %s; log:\n%s", ReadyTimeout, tail(m.Log(), 4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Pid is the process id.
func (m *Manager) Pid() int { return m.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (m *Manager) Exited() bool {
	select {
	case <-m.exited:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, waits up to StopGrace, then SIGKILL, by PID. Safe to call more than once.
func (m *Manager) Stop() {
	m.stop.Do(func() {
		if m.Exited() {
			return
		}
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.exited:
			return
		case <-time.After(StopGrace):
		}
		_ = m.cmd.Process.Signal(syscall.SIGKILL)
		<-m.exited
	})
}

// Log returns what the process wrote to stdout and stderr so far.
func (m *Manager) Log() string {
	b, _ := os.ReadFile(m.LogPath)
	return string(b)
}

// PeakRSS is the process's peak resident set size in bytes (VmHWM of /proc/PID/status).
func (m *Manager) PeakRSS() (uint64, error) { return m.procStatus("VmHWM") }

// RSS is the current resident set size in bytes (VmRSS).
func (m *Manager) RSS() (uint64, error) { return m.procStatus("VmRSS") }

func (m *Manager) procStatus(field string) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", m.Pid()))
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		fields := strings.Fields(val) // "123456 kB"
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("unexpected %s line %q", field, sc.Text())
		}
		kb, err := strconv.ParseUint(fields[0], 10, 64)
		return kb * 1024, err
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, m.Pid())
}

// Metrics scrapes /metrics and parses the Prometheus text format.
func (m *Manager) Metrics() (map[string]*dto.MetricFamily, error) {
	return Scrape(context.Background(), http.DefaultClient, "http://"+m.MetricsAddr+"/metrics")
}

// WaitForMetric scrapes /metrics until the family name appears (controller-runtime registers
// its controller series only once the caches synced and workers started, after /readyz), or
// ctx ends, or the process exits.
func (m *Manager) WaitForMetric(ctx context.Context, name string) (map[string]*dto.MetricFamily, error) {
	for {
		mfs, err := m.Metrics()
		if err == nil && mfs[name] != nil {
			return mfs, nil
		}
		if m.Exited() {
			return nil, fmt.Errorf("the manager exited (%s) before exposing %s", m.cmd.ProcessState, name)
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("no metric %s", name)
			}
			return nil, fmt.Errorf("%w (%w)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Scrape fetches a Prometheus text endpoint with hc and parses it.
func Scrape(ctx context.Context, hc interface {
	Do(*http.Request) (*http.Response, error)
}, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, tail(string(body), 500))
	}
	return Parse(bytes.NewReader(body))
}

// Parse reads the Prometheus text exposition format.
func Parse(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

// Sum adds the values (gauge, counter or untyped; a histogram's sample count) of every series of
// a family whose labels include all of match. A missing family sums to 0.
func Sum(mfs map[string]*dto.MetricFamily, name string, match map[string]string) float64 {
	mf := mfs[name]
	if mf == nil {
		return 0
	}
	total := 0.0
	for _, m := range mf.GetMetric() {
		if !hasLabels(m, match) {
			continue
		}
		switch {
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Untyped != nil:
			total += m.GetUntyped().GetValue()
		case m.Histogram != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total
}

func hasLabels(m *dto.Metric, match map[string]string) bool {
	for k, v := range match {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k && lp.GetValue() == v {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Histogram is the merged cumulative buckets of the series of one histogram family.
type Histogram struct {
	// Bounds are the upper bounds, ascending (the last is +Inf); Counts are cumulative.
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

// MergedHistogram adds up every series of a histogram family whose labels include match
// (series must share bucket bounds, as one histogram vector's do).
func MergedHistogram(mfs map[string]*dto.MetricFamily, name string, match map[string]string) (Histogram, error) {
	var h Histogram
	mf := mfs[name]
	if mf == nil {
		return h, fmt.Errorf("no metric family %s", name)
	}
	byBound := map[float64]uint64{}
	for _, m := range mf.GetMetric() {
		if m.Histogram == nil || !hasLabels(m, match) {
			continue
		}
		hm := m.GetHistogram()
		h.Count += hm.GetSampleCount()
		h.Sum += hm.GetSampleSum()
		for _, b := range hm.GetBucket() {
			byBound[b.GetUpperBound()] += b.GetCumulativeCount()
		}
	}
	for b := range byBound {
		h.Bounds = append(h.Bounds, b)
	}
	sort.Float64s(h.Bounds)
	if len(h.Bounds) == 0 || !math.IsInf(h.Bounds[len(h.Bounds)-1], 1) {
		h.Bounds = append(h.Bounds, math.Inf(1))
		byBound[math.Inf(1)] = h.Count
	}
	for _, b := range h.Bounds {
		h.Counts = append(h.Counts, byBound[b])
	}
	return h, nil
}

// Sub returns h minus an earlier scrape of the same histogram (observations in between).
func (h Histogram) Sub(earlier Histogram) Histogram {
	out := Histogram{Bounds: h.Bounds, Count: h.Count - earlier.Count, Sum: h.Sum - earlier.Sum}
	prev := map[float64]uint64{}
	for i, b := range earlier.Bounds {
		prev[b] = earlier.Counts[i]
	}
	for i, b := range h.Bounds {
		out.Counts = append(out.Counts, h.Counts[i]-prev[b])
	}
	return out
}

// Quantile estimates the q-quantile the way Prometheus's histogram_quantile does: linear
// interpolation inside the bucket holding the rank (so it is an estimate, only as fine as the
// bucket bounds; a rank in the +Inf bucket returns the highest finite bound).
func (h Histogram) Quantile(q float64) (float64, error) {
	if h.Count == 0 {
		return 0, errors.New("empty histogram")
	}
	rank := q * float64(h.Count)
	lower, prevCount := 0.0, uint64(0)
	for i, b := range h.Bounds {
		c := h.Counts[i]
		if float64(c) >= rank {
			if math.IsInf(b, 1) {
				return lower, nil
			}
			if c == prevCount {
				return b, nil
			}
			return lower + (b-lower)*(rank-float64(prevCount))/float64(c-prevCount), nil
		}
		lower, prevCount = b, c
	}
	return lower, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func withoutEnv(env []string, names ...string) []string {
	out := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			if k == n {
				drop = true
			}
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
