package main_test

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/tb"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubeletmount"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// TestMain fails the package if any test attempted a DNS query.
func TestMain(m *testing.M) { nettest.RunWithoutDNS(m) }

// build compiles this command into a temporary directory.
func build(t *testing.T) string {
	tb.Integration(t, "a go build of rconn-proxy")
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rconn-proxy")
	// make build's flags: the packages it shares with the manager's builds compile once.
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestBinary runs the built rconn-proxy: --help documents its flags, and on a kubelet-style
// mount of config.json for a cluster announcing unreachable names, redis-cli -c through its
// seed listener serves every shard.
func TestBinary(t *testing.T) {
	t.Parallel() // its own cluster and proxy: overlaps TestFailoverDrill
	bin := build(t)

	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("rconn-proxy --help: %v\n%s", err, out)
	}
	for _, want := range []string{"Usage: rconn-proxy", "-listen", "-advertise", "-seed-port", "-node-ports", "-kube", "-kubeconfig", "-refresh", "-drain", "-max-topology-reply", "-max-topology-buffer", "-max-conns", "-max-conns-per-node", "-idle-timeout", "-deny-cidrs", "-allow-cidrs", "-allow-loopback", "-master-port", "Sentinel mode", "-version"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("--help does not mention %q:\n%s", want, out)
		}
	}

	rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname})
	cfg := &client.Config{RootNodes: []client.RootNodeConfig{{URL: "redis://" + rc.Nodes[0].Announced}}, NodeAddressMap: map[string]client.MappedAddress{}}
	for announced, addr := range rc.AddressMap() {
		h, p, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(p)
		cfg.NodeAddressMap[announced] = client.MappedAddress{Host: h, Port: port}
	}
	files := map[string][]byte{} // the Secret's keys: none but the binding
	raw, err := client.BindSecret(cfg, files, "t1")
	if err != nil {
		t.Fatal(err)
	}
	files[client.ConfigFileName] = raw
	mount := t.TempDir()
	if err := kubeletmount.Write(mount, files, 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "--seed-port", "0", "--refresh", "1s", "--allow-loopback", mount)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var mu sync.Mutex
	var logs []string
	seedAt := make(chan string, 1)
	seedRe := regexp.MustCompile(`msg="rconn proxy listening" seed=(127\.0\.0\.1:\d+)`)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			logs = append(logs, sc.Text())
			mu.Unlock()
			if m := seedRe.FindStringSubmatch(sc.Text()); m != nil {
				seedAt <- m[1]
			}
		}
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // by PID: the process this test started
		<-done
	})
	log := func() string { mu.Lock(); defer mu.Unlock(); return strings.Join(logs, "\n") }
	var seed string
	select {
	case seed = <-seedAt:
	case <-done:
		t.Fatalf("rconn-proxy exited:\n%s", log())
	case <-time.After(30 * time.Second):
		t.Fatalf("rconn-proxy did not listen within 30s:\n%s", log())
	}

	h, p, _ := net.SplitHostPort(seed)
	cli := func(args ...string) string {
		t.Helper()
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(c, "redis-cli", append([]string{"-c", "-h", h, "-p", p}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if out := cli("CLUSTER", "SLOTS"); strings.Contains(out, ".invalid") || !strings.Contains(out, h) {
		t.Fatalf("CLUSTER SLOTS through rconn-proxy does not name its listeners:\n%s", out)
	}
	for _, slot := range []int{100, 6000, 12000} { // one key per master
		k := cluster.KeyForSlot(slot)
		if out := cli("SET", k, "bin-"+k); out != "OK" {
			t.Fatalf("SET %s: %s\nproxy log:\n%s", k, out, log())
		}
		if out := cli("GET", k); out != "bin-"+k {
			t.Fatalf("GET %s: %s\nproxy log:\n%s", k, out, log())
		}
	}
}
