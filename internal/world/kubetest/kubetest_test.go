package kubetest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/tb"
)

const childEnv = "RCONN_KUBETEST_CHILD"

// TestControlPlaneDiesWithItsStarter kills (SIGKILL, as `go test -timeout` ends a binary that
// hangs) a process that started the control plane, and expects kube-apiserver and etcd to be
// gone within seconds instead of running on as orphans.
func TestControlPlaneDiesWithItsStarter(t *testing.T) {
	tb.Integration(t, "kube-apiserver (envtest)")
	if os.Getenv(childEnv) != "" {
		t.Skip("the child's own run")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestStartAndHang$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pids []int
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		for _, p := range pids { // whatever survived (the failure this test is about)
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if l, ok := strings.CutPrefix(sc.Text(), "control plane pids: "); ok {
				lines <- l
				return
			}
		}
		close(lines)
	}()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("the child ended before starting the control plane")
		}
		for _, f := range strings.Fields(l) {
			p, err := strconv.Atoi(f)
			if err != nil {
				t.Fatal(err)
			}
			pids = append(pids, p)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("the child did not start the control plane within 90s")
	}
	if len(pids) != 2 {
		t.Fatalf("want kube-apiserver and etcd, the child has children %v", pids)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var alive []string
		for _, p := range pids {
			if running(p) {
				alive = append(alive, fmt.Sprintf("%d (%s)", p, comm(p)))
			}
		}
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("15s after their starter was killed, still running: %s", strings.Join(alive, ", "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStartAndHang is the child of TestControlPlaneDiesWithItsStarter: it starts the control
// plane, prints the PIDs of its children and waits to be killed.
func TestStartAndHang(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("run by TestControlPlaneDiesWithItsStarter")
	}
	env, err := NewEnvironment()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Start(); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("control plane pids: %s\n", strings.Join(children(t), " "))
	time.Sleep(2 * time.Minute)
	_ = env.Stop()
}

// children lists this process's child PIDs.
func children(t *testing.T) []string {
	tasks, err := filepath.Glob("/proc/self/task/*/children")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		out = append(out, strings.Fields(string(b))...)
	}
	return out
}

// running reports whether pid is a live (not zombie) process.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}
