package rig

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRedisSentinelFollowsADeletedMasterPod: the Bitnami-style group forms on pod IPs with
// replicas and sentinels announcing pod DNS names (resolved by the sentinels through the rig's
// CoreDNS), `kubectl delete pod` of the master makes the sentinels elect another master, which
// has the data, and the recreated pod (new IP, same name) rejoins as a replica that every
// sentinel sees up again.
func TestRedisSentinelFollowsADeletedMasterPod(t *testing.T) {
	r := startRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rs, err := r.RedisSentinel(ctx, RedisSentinelOptions{Namespace: "sentinel", Name: "redis"})
	if err != nil {
		t.Fatal(err)
	}
	master, addr, err := rs.CurrentMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if master != "redis-0" || addr != "redis-0.redis-headless.sentinel.svc.cluster.local:6379" {
		t.Fatalf("the sentinels name %s (%s); want pod 0 by its DNS name", master, addr)
	}
	for _, p := range rs.Runner.ReadyPods() {
		if !r.Net.PodCIDR.Contains(netip.MustParseAddr(p.Status.PodIP)) {
			t.Fatalf("pod %s has IP %s outside %s", p.Name, p.Status.PodIP, r.Net.PodCIDR)
		}
	}
	// The replicas' and sentinels' announced names are what SENTINEL replies carry.
	sc := redis.NewSentinelClient(&redis.Options{Addr: net.JoinHostPort(podIP(t, rs, "redis-1"), "26379")})
	t.Cleanup(func() { _ = sc.Close() })
	for _, list := range []func(context.Context, string) *redis.MapStringStringSliceCmd{sc.Replicas, sc.Sentinels} {
		entries, err := list(ctx, "mymaster").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !strings.HasSuffix(e["ip"], ".redis-headless.sentinel.svc.cluster.local") {
				t.Fatalf("a sentinel reply names %q, not a pod DNS name", e["ip"])
			}
		}
	}
	mc := redis.NewClient(&redis.Options{Addr: rs.Runner.Addr(master)})
	if err := mc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := mc.Wait(ctx, 2, 5*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	_ = mc.Close()
	oldIP := podIP(t, rs, master)

	uid, err := rs.DeletePod(ctx, master)
	if err != nil {
		t.Fatal(err)
	}
	var newMaster string
	if err := poll(ctx, time.Minute, "a new master", func() (bool, error) {
		m, _, err := rs.CurrentMaster(ctx)
		newMaster = m
		return err == nil && m != "" && m != master, nil
	}, rs.diag); err != nil {
		t.Fatal(err)
	}
	if role, err := rs.Role(ctx, newMaster); err != nil || role != "master" {
		t.Fatalf("the sentinels' new master %s says ROLE %q (%v)", newMaster, role, err)
	}
	p, err := rs.WaitRecreated(ctx, master, uid, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.PodIP == oldIP {
		t.Fatalf("the recreated %s kept IP %s", master, oldIP)
	}
	if err := rs.WaitHealthy(ctx, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if role, err := rs.Role(ctx, master); err != nil || role != "slave" {
		t.Fatalf("the recreated %s says ROLE %q (%v), want a replica", master, role, err)
	}
	nc := redis.NewClient(&redis.Options{Addr: rs.Runner.Addr(newMaster)})
	t.Cleanup(func() { _ = nc.Close() })
	if v, err := nc.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("the new master %s has k=%q (%v)", newMaster, v, err)
	}
	if errs := rs.Runner.Errors(); len(errs) > 0 {
		t.Logf("runner errors: %v", errs)
	}
}

func podIP(t *testing.T, rs *RedisSentinel, pod string) string {
	t.Helper()
	addr := rs.Runner.Addr(pod)
	if addr == "" {
		t.Fatalf("no server for %s", pod)
	}
	host, _, _ := net.SplitHostPort(addr)
	return host
}

// TestRedisSentinelRolloutRestartWithPodIPs: with pod IPs announced (the chart's
// useHostnames: false), `kubectl rollout restart` gives every pod a new IP; afterwards the
// group is whole again (the start script's SENTINEL RESET made the sentinels forget the old
// addresses: no replica or sentinel listed at an IP no pod has) and the data survived. An app
// in the cluster (go-redis FailoverClient on the pods' DNS names) keeps writing throughout: the
// master pod's preStop hands over with SENTINEL FAILOVER, so its longest stall is about one
// planned failover, not the sentinels' failure detection plus a split vote.
func TestRedisSentinelRolloutRestartWithPodIPs(t *testing.T) {
	r := startRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	rs, err := r.RedisSentinel(ctx, RedisSentinelOptions{Namespace: "ips", Name: "kv", Sentinel: SentinelPods{AnnounceIPs: true}})
	if err != nil {
		t.Fatal(err)
	}
	before := map[string]bool{}
	for _, p := range rs.Runner.ReadyPods() {
		before[p.Status.PodIP] = true
	}
	master, _, err := rs.CurrentMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mc := redis.NewClient(&redis.Options{Addr: rs.Runner.Addr(master)})
	if err := mc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := mc.Wait(ctx, 2, 5*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	_ = mc.Close()
	app := startPodApp(t, rs)
	app.WaitWrites(t, 10, 30*time.Second)
	start := time.Now()
	if err := rs.RolloutRestart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rs.WaitRolledOut(ctx, 6*time.Minute); err != nil {
		t.Fatal(err)
	}
	app.WaitWrites(t, 10, time.Minute)
	failed, stall := app.Stats()
	t.Logf("rollout of %d pods took %s; the app: %d failed writes, longest stall %s", rs.Pods, time.Since(start).Round(time.Second), failed, stall.Round(10*time.Millisecond))
	for _, n := range rs.Runner.Notes() {
		t.Logf("runner: %s", n)
	}
	if stall > 20*time.Second {
		t.Errorf("the app stalled %s across the rollout", stall.Round(10*time.Millisecond))
	}
	now := map[string]bool{}
	for _, p := range rs.Runner.ReadyPods() {
		if before[p.Status.PodIP] {
			t.Fatalf("pod %s kept IP %s across the rollout", p.Name, p.Status.PodIP)
		}
		now[p.Status.PodIP] = true
	}
	master, _, err = rs.CurrentMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rs.Runner.ReadyPods() {
		sc := redis.NewSentinelClient(&redis.Options{Addr: net.JoinHostPort(p.Status.PodIP, "26379")})
		for _, list := range []func(context.Context, string) *redis.MapStringStringSliceCmd{sc.Replicas, sc.Sentinels} {
			entries, err := list(ctx, "mymaster").Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if !now[e["ip"]] {
					t.Errorf("sentinel of %s still lists %s (flags %s), an IP no pod has", p.Name, e["ip"], e["flags"])
				}
			}
		}
		_ = sc.Close()
	}
	nc := redis.NewClient(&redis.Options{Addr: rs.Runner.Addr(master)})
	t.Cleanup(func() { _ = nc.Close() })
	if v, err := nc.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("after the rollout the master %s has k=%q (%v)", master, v, err)
	}
}
