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

