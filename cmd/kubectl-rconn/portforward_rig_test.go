package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/tb"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/rig"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// podNetDial is the controller's base dial on the rig: loopback and the rig's pod network
// (198.18.0.0/15) only, IP literals only.
func podNetDial(ctx context.Context, network, addr string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || (!ap.Addr().IsLoopback() && !netip.MustParsePrefix("198.18.0.0/15").Contains(ap.Addr())) {
		return nil, fmt.Errorf("test dialer: refusing %s", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// TestPortForwardOnTheRig runs `kubectl rconn port-forward` against the real control plane
// rig: a Redis Cluster StatefulSet (3 masters + 3 replicas) whose pods kwok runs on
// 198.18.N.x, the controller in-process, and kwok's server as every node's kubelet, serving
// pods/portforward through the API server (rig.Options.PortForward). The proxy's only way to
// a node is its port-forward (its base dial refuses everything but the local forwards), and
// redis-cli -c and go-redis on the seed port must SET/GET on every shard.
func TestPortForwardOnTheRig(t *testing.T) {
	t.Parallel() // its own rig and controller: overlaps the other tests' waits
	tb.Integration(t, "the rig")
	if err := rig.Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the rig is required in CI: %v", err)
		}
		t.Skipf("no rig here: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, err := rig.Start(ctx, rig.Options{Logf: t.Logf, PortForward: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	const ns, name = "redis", "redis"
	rs, err := r.RedisCluster(ctx, rig.RedisClusterOptions{Namespace: ns, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	if err := startController(ctx, r.Config, podNetDial); err != nil {
		t.Fatal(err)
	}
	root, err := podIPOf(ctx, r, ns, name+"-0")
	if err != nil {
		t.Fatal(err)
	}
	rc := &rconnv1.RedisConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec:       rconnv1.RedisConnectionSpec{RootNodes: []rconnv1.RootNode{{Host: root, Port: 6379}}},
	}
	if err := r.Client.Create(ctx, rc); err != nil {
		t.Fatal(err)
	}
	kubetest.WaitReady(t, ctx, r.Client, ns, "app", func() string { return r.Kubectl("get", "pods,rconn", "-n", ns, "-o", "wide") })
	for i := 0; i < rs.Pods; i++ {
		if err := r.ForwardPod(ctx, ns, fmt.Sprintf("%s-%d", name, i), 6379); err != nil {
			t.Fatal(err)
		}
	}

	pfCtx, stop := context.WithCancel(ctx)
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runApp(pfCtx, &App{Out: &out, Err: &errb}, []string{"--kubeconfig", r.Kubeconfig, "port-forward", "-n", ns, "app", "--seed-port", "0"})
	}()
	defer func() {
		stop()
		if code := <-done; code != 0 {
			t.Errorf("port-forward exited %d", code)
		}
		t.Logf("kubectl rconn port-forward output:\n%s%s", out.String(), errb.String())
	}()
	seedRe := regexp.MustCompile(`seed (127\.0\.0\.1:\d+)`)
	var seed string
	nettest.WaitFor(t, 90*time.Second, "the seed line", func() error {
		select {
		case code := <-done:
			done <- code
			t.Fatalf("port-forward exited %d:\n%s%s", code, out.String(), errb.String())
		default:
		}
		if m := seedRe.FindStringSubmatch(out.String()); m != nil {
			seed = m[1]
			return nil
		}
		return fmt.Errorf("no seed yet")
	})
	// Every connection authenticates with the session password (kubectl-rconn.md, "The
	// session password"), read from the 0600 file the command names.
	pwRe := regexp.MustCompile(`session password: (\S+)`)
	m := pwRe.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no session password line in:\n%s", out.String())
	}
	pwFile, err := os.ReadFile(m[1])
	if err != nil {
		t.Fatal(err)
	}
	pw := strings.TrimSpace(string(pwFile))
	if n := strings.Count(out.String(), "forwarding 127.0.0.1:"); n != rs.Pods {
		t.Errorf("%d port-forwards, want one per pod (%d)", n, rs.Pods)
	}

	// go-redis on the seed: every node it is told about is a proxy listener on 127.0.0.1.
	loopback := nettest.NewRecorder(nil)
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{seed}, Password: pw, Dialer: loopback.Dial, MaxRedirects: 16,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
	defer func() { _ = c.Close() }()
	// Three shards own the slots. Right after the rig's cluster formed, a replica whose
	// CLUSTER REPLICATE has not reached every node yet is listed as a fourth shard without slots.
	var shards []redis.ClusterShard
	owning := func() int {
		n := 0
		for _, sh := range shards {
			if len(sh.Slots) > 0 {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		shards, err = c.ClusterShards(ctx).Result()
		if err == nil && owning() == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CLUSTER SHARDS through the seed: %d shards, %d owning slots, %v", len(shards), owning(), err)
		}
	}
	for _, sh := range shards {
		if len(sh.Slots) == 0 {
			continue
		}
		key := cluster.KeyForSlot(int(sh.Slots[0].Start))
		if err := c.Set(ctx, key, "v-"+key, 0).Err(); err != nil {
			t.Fatalf("go-redis SET %s (slot %d): %v", key, sh.Slots[0].Start, err)
		}
		if v, err := c.Get(ctx, key).Result(); err != nil || v != "v-"+key {
			t.Fatalf("go-redis GET %s = %q, %v", key, v, err)
		}
		// redis-cli -c follows the MOVED the proxy rewrote from the seed.
		host, port, _ := net.SplitHostPort(seed)
		cli := exec.CommandContext(ctx, "redis-cli", "-c", "-h", host, "-p", port, "GET", key)
		cli.Env = append(os.Environ(), "REDISCLI_AUTH="+pw)
		got, err := cli.CombinedOutput()
		if err != nil || strings.TrimSpace(string(got)) != "v-"+key {
			t.Fatalf("redis-cli -c GET %s = %q, %v", key, got, err)
		}
	}
	for _, a := range loopback.Dialed() {
		if !strings.HasPrefix(a, "127.0.0.1:") {
			t.Errorf("go-redis dialed %s, not a proxy listener", a)
		}
	}
}

func podIPOf(ctx context.Context, r *rig.Rig, ns, pod string) (string, error) {
	p, err := r.Clientset.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	return p.Status.PodIP, nil
}
