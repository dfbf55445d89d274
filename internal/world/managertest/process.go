package managertest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/tb"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Running the manager as a process: its kubeconfig, start, stop, log and memory.

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
// HTTP and health probes on free loopback ports, leader election off, --allow-loopback (see
// loopbackArgs), and extraArgs appended
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
	tb.Integration(t, "the manager process")
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
	args := append(append([]string{
		"--metrics-bind-address=" + m.MetricsAddr,
		"--metrics-secure=false",
		"--health-probe-bind-address=" + m.ProbeAddr,
		"--leader-elect=false",
	}, loopbackArgs(bin)...), extraArgs...)
	m.cmd = exec.Command(bin, args...)
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	// An interrupted test binary (^C, a -timeout panic) runs no Cleanup: the kernel ends the
	// manager with it instead of leaving it running against a dead API server.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
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

var loopbackFlag sync.Map // binary path -> []string

// loopbackArgs is ["--allow-loopback"] when bin has that flag. Every manager these tests start
// dials Redis servers on loopback, which the manager denies by default (it reaches the
// manager's own pod); a caller's "--allow-loopback=false" (later flags win) turns it off again.
// A baseline built from a revision before the flag existed (BuildRevision) gets nothing: it
// does not know the flag, and dials loopback anyway.
func loopbackArgs(bin string) []string {
	if v, ok := loopbackFlag.Load(bin); ok {
		return v.([]string)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// -help prints the flags and exits (0 or 2, depending on the flag package's mode): only
	// the text matters.
	out, _ := exec.CommandContext(ctx, bin, "-help").CombinedOutput()
	var args []string
	if strings.Contains(string(out), "-allow-loopback") {
		args = []string{"--allow-loopback"}
	}
	loopbackFlag.Store(bin, args)
	return args
}
