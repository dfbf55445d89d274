package rig

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rconn-dev/redis-connection-operator/internal/tb"
)

func startRig(t *testing.T) *Rig {
	tb.Integration(t, "the rig (root, network namespaces)")
	t.Helper()
	if err := Available(); err != nil {
		t.Fatalf("rig unavailable: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := Start(ctx, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

func TestControlPlaneSchedulesPodsWithPodNetworkIPs(t *testing.T) {
	r := startRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := "plain"
	if err := r.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metaName(ns)}); err != nil {
		t.Fatal(err)
	}
	if err := r.WaitNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	sts := StatefulSet(ns, "web", "web", 3)
	if err := r.Client.Create(ctx, sts); err != nil {
		t.Fatal(err)
	}
	err := poll(ctx, time.Minute, "3 Running pods", func() (bool, error) {
		var pods corev1.PodList
		if err := r.Client.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			return false, err
		}
		n := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
				ip := netip.MustParseAddr(p.Status.PodIP)
				if !r.Net.PodCIDR.Contains(ip) {
					t.Fatalf("pod %s got IP %s outside the rig's %s", p.Name, ip, r.Net.PodCIDR)
				}
				n++
			}
		}
		return n == 3, nil
	}, func() string {
		return r.Kubectl("get", "pods,sts,nodes,endpointslices", "-A", "-o", "wide") + r.LogTail()
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestStopRemovesEveryProcessAndTheNamespace(t *testing.T) {
	tb.Integration(t, "the rig (root, network namespaces)")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := Start(ctx, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	ns := "lifecycle"
	if err := r.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metaName(ns)}); err != nil {
		t.Fatal(err)
	}
	if err := r.WaitNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := r.Client.Create(ctx, HeadlessService(ns, "kv-headless", "kv", false)); err != nil {
		t.Fatal(err)
	}
	ru, err := r.RunPods(RunnerOptions{Namespace: ns, App: "kv", Service: "kv-headless"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Client.Create(ctx, StatefulSet(ns, "kv", "kv-headless", 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := ru.WaitReady(ctx, 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	var pids []int
	r.mu.Lock()
	for _, p := range r.procs {
		pids = append(pids, p.Pid())
	}
	r.mu.Unlock()
	ru.mu.Lock()
	for _, ps := range ru.pods {
		pids = append(pids, ps.proc.Pid())
	}
	ru.mu.Unlock()
	if len(pids) < 4 {
		t.Fatalf("expected the controller-manager, scheduler, kwok and a redis-server, got pids %v", pids)
	}
	name := r.Net.Name
	r.Stop()
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("pid %d still runs after Stop", pid)
		}
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(out), name+" ") || strings.Contains(string(out), name+"\n") {
		t.Errorf("network namespace %s still exists after Stop: %s", name, out)
	}
	if _, err := os.Stat(filepath.Join(stateDir, name+".pid")); !os.IsNotExist(err) {
		t.Errorf("state file of %s still exists: %v", name, err)
	}
}

func TestLeftoversOfADeadRunAreRemoved(t *testing.T) {
	tb.Integration(t, "root (network namespaces)")
	if err := CheckPrivileges(); err != nil {
		t.Fatal(err)
	}
	// A run that was SIGKILLed: its namespace, veth and state file stay behind, owned by a PID
	// that no longer exists.
	n, err := SetupPodNetwork()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Teardown)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stateDir, n.Name+".pid"), []byte(strconv.Itoa(dead.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	CleanupLeftovers()
	out, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(out), n.Name+" ") || strings.Contains(string(out), n.Name+"\n") {
		t.Fatalf("the dead run's namespace %s survived CleanupLeftovers: %s", n.Name, out)
	}
	if out, _ := exec.Command("ip", "link", "show", n.hostIf).CombinedOutput(); !strings.Contains(string(out), "does not exist") {
		t.Fatalf("the dead run's veth %s survived: %s", n.hostIf, out)
	}
}
