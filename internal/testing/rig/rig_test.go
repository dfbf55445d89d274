package rig

import (
	"context"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func startRig(t *testing.T) *Rig {
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

func TestRedisStatefulSetSurvivesRollingRestartWithItsNodeIDs(t *testing.T) {
	r := startRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	rs, err := r.RedisCluster(ctx, RedisClusterOptions{Namespace: "redis", Name: "redis"})
	if err != nil {
		t.Fatal(err)
	}
	before := rs.NodeIDs(ctx, t)
	ipsBefore := map[string]string{}
	for _, p := range rs.Runner.ReadyPods() {
		ipsBefore[p.Name] = p.Status.PodIP
	}
	if err := rs.RolloutRestart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rs.WaitRolledOut(ctx, 4*time.Minute); err != nil {
		t.Fatal(err)
	}
	after := rs.NodeIDs(ctx, t)
	for _, p := range rs.Runner.ReadyPods() {
		if p.Status.PodIP == ipsBefore[p.Name] {
			t.Errorf("pod %s kept IP %s across the restart: kwok gave no new IP", p.Name, p.Status.PodIP)
		}
		if before[p.Name] == "" || after[p.Name] != before[p.Name] {
			t.Errorf("pod %s: node ID %q before the restart, %q after (nodes.conf must survive)", p.Name, before[p.Name], after[p.Name])
		}
	}
	if errs := rs.Runner.Errors(); len(errs) > 0 {
		t.Errorf("pod runner: %v", errs)
	}
}
