package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/managertest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/rig"
)

// TestOnTheRig runs rconn against the real control plane rig: a Redis Cluster StatefulSet
// (3 masters + 3 replicas) whose pods kwok runs and the pod runner serves with real
// redis-servers on 198.18.N.x pod IPs, EndpointSlices written by the real endpointslice
// controller, PodDNS names served by CoreDNS, and the manager binary with only its ClusterRole.
// The drills are what users do to such a cluster: delete a pod, let one terminate slowly, fail
// a readiness probe, flip publishNotReadyAddresses, and `kubectl rollout restart`.
func TestOnTheRig(t *testing.T) { //nolint:gocyclo,funlen // ordered drills on one rig, counted with their t.Run bodies; to split with #15 item 8
	t.Parallel() // its own control plane, processes and addresses: overlaps the other e2e tests' waits
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	w := startRigWorld(ctx, t)
	r := w.rig
	const ns, name = "redis", "redis"
	rs, err := r.RedisCluster(ctx, rig.RedisClusterOptions{Namespace: ns, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	mgr := w.startManager(t)

	host := func(pod string) string {
		return fmt.Sprintf("%s.%s.%s.svc.cluster.local:6379", pod, rs.Service, ns)
	}
	rc := &rconnv1.RedisConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec: rconnv1.RedisConnectionSpec{
			RootNodes: []rconnv1.RootNode{{URL: rconnv1.RedisURL("redis://" + host(name+"-0"))}, {URL: rconnv1.RedisURL("redis://" + host(name+"-1"))}},
			NodeAddressMap: &rconnv1.NodeAddressMap{FromServices: []rconnv1.ServiceAddressSource{{
				Selector:    metav1.LabelSelector{MatchLabels: map[string]string{rig.AppLabel: name}},
				AddressType: rconnv1.AddressTypePodDNS,
			}}},
		},
	}
	if err := r.Client.Create(ctx, rc); err != nil {
		t.Fatal(err)
	}
	diag := func() string {
		return r.Kubectl("get", "pods,endpointslices,rconn", "-n", ns, "-o", "wide") + "\nmanager log:\n" + tailLines(mgr.Log(), 30)
	}
	// waitMap waits until the RedisConnection is Ready and its map is exactly want (announced
	// pod IP:6379 -> PodDNS name), bounded.
	waitMap := func(t *testing.T, what string, want map[string]string, timeout time.Duration) {
		t.Helper()
		var got map[string]string
		err := pollE2E(ctx, timeout, func() bool {
			var cur rconnv1.RedisConnection
			if err := r.Client.Get(ctx, client.ObjectKeyFromObject(rc), &cur); err != nil {
				return false
			}
			got = map[string]string{}
			for _, e := range cur.Status.NodeAddressMap {
				got[e.Announced] = e.Reachable
			}
			return meta.IsStatusConditionTrue(cur.Status.Conditions, rconnv1.ConditionReady) && maps.Equal(got, want)
		})
		if err != nil {
			t.Fatalf("%s: map never became %v (last %v)\n%s", what, want, got, diag())
		}
	}
	podMap := func(t *testing.T) map[string]string {
		m := map[string]string{}
		var pods corev1.PodList
		if err := r.Client.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{rig.AppLabel: name}); err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			if p.Status.PodIP != "" {
				m[net.JoinHostPort(p.Status.PodIP, "6379")] = host(p.Name)
			}
		}
		return m
	}
	waitMap(t, "first reconcile", podMap(t), 2*time.Minute)

	t.Run("kubectl delete pod: the map follows the pod's new IP", func(t *testing.T) {
		pod := name + "-2"
		old := podIP(ctx, t, r, ns, pod)
		if out := r.Kubectl("delete", "pod", "-n", ns, pod, "--wait=false"); !strings.Contains(out, "deleted") {
			t.Fatal(out)
		}
		start := time.Now()
		waitNewIP(ctx, t, r, ns, pod, old)
		newIP := time.Since(start)
		if _, err := rs.Runner.WaitReady(ctx, rs.Pods, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		ready := time.Since(start)
		want := podMap(t)
		if _, ok := want[net.JoinHostPort(old, "6379")]; ok {
			t.Fatalf("old IP %s still on a pod", old)
		}
		waitMap(t, "after kubectl delete pod", want, 90*time.Second)
		t.Logf("pod delete: new IP after %s, all pods Ready after %s, map + Ready after %s",
			newIP.Round(100*time.Millisecond), ready.Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
	})

	t.Run("a not-ready pod that still serves stays mapped, with and without publishNotReadyAddresses", func(t *testing.T) {
		pod := name + "-3"
		ip := podIP(ctx, t, r, ns, pod)
		patchAnnotation(ctx, t, r, ns, pod, rig.NotReadyAnnotation, "true")
		waitEndpoint(ctx, t, r, rs, ip, func(c discoveryv1.EndpointConditions) bool { return c.Ready != nil && !*c.Ready })
		want := podMap(t)
		waitMap(t, "pod not ready", want, 30*time.Second)
		// The Bitnami chart's headless Service: the endpointslice controller lists the pod ready.
		patchJSON(ctx, t, r, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: rs.Service}}, `{"spec":{"publishNotReadyAddresses":true}}`)
		waitEndpoint(ctx, t, r, rs, ip, func(c discoveryv1.EndpointConditions) bool { return c.Ready != nil && *c.Ready })
		waitMap(t, "publishNotReadyAddresses", want, 30*time.Second)
		patchJSON(ctx, t, r, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: rs.Service}}, `{"spec":{"publishNotReadyAddresses":false}}`)
		patchAnnotation(ctx, t, r, ns, pod, rig.NotReadyAnnotation, "")
		waitEndpoint(ctx, t, r, rs, ip, func(c discoveryv1.EndpointConditions) bool { return c.Ready != nil && *c.Ready })
	})

	t.Run("a terminating pod that still serves stays mapped until it is gone", func(t *testing.T) {
		pod := name + "-1"
		old := podIP(ctx, t, r, ns, pod)
		patchAnnotation(ctx, t, r, ns, pod, rig.PreStopAnnotation, "6")
		if out := r.Kubectl("delete", "pod", "-n", ns, pod, "--wait=false"); !strings.Contains(out, "deleted") {
			t.Fatal(out)
		}
		waitEndpoint(ctx, t, r, rs, old, func(c discoveryv1.EndpointConditions) bool {
			return c.Terminating != nil && *c.Terminating && c.Serving != nil && *c.Serving
		})
		var cur rconnv1.RedisConnection
		// Give the controller a moment to see the terminating endpoint; it must keep it.
		time.Sleep(time.Second)
		if err := r.Client.Get(ctx, client.ObjectKeyFromObject(rc), &cur); err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(cur.Status.NodeAddressMap, func(e rconnv1.AppliedAddressMapping) bool {
			return e.Announced == net.JoinHostPort(old, "6379")
		}) {
			t.Fatalf("the terminating, still serving pod %s (%s) left the map: %+v\n%s", pod, old, cur.Status.NodeAddressMap, diag())
		}
		waitNewIP(ctx, t, r, ns, pod, old)
		if _, err := rs.Runner.WaitReady(ctx, rs.Pods, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		waitMap(t, "after the terminating pod went", podMap(t), 90*time.Second)
	})

	t.Run("kubectl rollout restart: every pod comes back under a new IP, the map follows", func(t *testing.T) {
		before := podMap(t)
		ids := rs.NodeIDs(ctx, t)
		start := time.Now()
		if out := r.Kubectl("rollout", "restart", "-n", ns, "statefulset/"+name); !strings.Contains(out, "restarted") {
			t.Fatal(out)
		}
		if err := rs.WaitRolledOut(ctx, 5*time.Minute); err != nil {
			t.Fatal(err)
		}
		t.Logf("rollout of %d pods took %s", rs.Pods, time.Since(start).Round(time.Second))
		after := podMap(t)
		for a := range after {
			if _, ok := before[a]; ok {
				t.Fatalf("pod address %s survived the rollout", a)
			}
		}
		// The charts keep nodes.conf on the pod's volume: every pod keeps its node ID.
		if got := rs.NodeIDs(ctx, t); !maps.Equal(got, ids) || len(got) != rs.Pods {
			t.Errorf("node IDs by pod changed across the rollout: before %v, after %v", ids, got)
		}
		waitMap(t, "after rollout restart", after, 90*time.Second)
	})
	t.Run("scale out: a new shard joins and takes slots; scale in: it leaves", func(t *testing.T) {
		shards := func() int32 {
			var cur rconnv1.RedisConnection
			if err := r.Client.Get(ctx, client.ObjectKeyFromObject(rc), &cur); err != nil {
				t.Fatal(err)
			}
			return cur.Status.ShardCount
		}
		if _, err := rs.AddShard(ctx, 200); err != nil {
			t.Fatal(err)
		}
		want := podMap(t)
		if len(want) != 8 {
			t.Fatalf("expected 8 pods after scaling out, got %v", want)
		}
		waitMap(t, "after scale out", want, 90*time.Second)
		if err := pollE2E(ctx, time.Minute, func() bool { return shards() == 4 }); err != nil {
			t.Fatalf("shardCount %d after adding a shard, want 4\n%s", shards(), diag())
		}
		if err := rs.RemoveShard(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := rs.Runner.WaitReady(ctx, rs.Pods, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		waitGone := func() bool {
			var pods corev1.PodList
			_ = r.Client.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{rig.AppLabel: name})
			return len(pods.Items) == rs.Pods
		}
		if err := pollE2E(ctx, time.Minute, waitGone); err != nil {
			t.Fatalf("the scaled-in pods never went\n%s", diag())
		}
		waitMap(t, "after scale in", podMap(t), 90*time.Second)
		if err := pollE2E(ctx, time.Minute, func() bool { return shards() == 3 }); err != nil {
			t.Fatalf("shardCount %d after removing a shard, want 3\n%s", shards(), diag())
		}
	})
	if errs := rs.Runner.Errors(); len(errs) > 0 {
		t.Errorf("pod runner: %v", errs)
	}
	if mgr.Exited() {
		t.Fatalf("manager exited:\n%s", tailLines(mgr.Log(), 40))
	}
}

// managerKubeconfig adds a user bound to the generated ClusterRole only.
// rigWorld is what the rig drills share: the rig (its control plane and pod network) and the
// CoreDNS that serves PodDNS names to the manager and the test's apps.
type rigWorld struct {
	rig *rig.Rig
	dns *rig.DNS
}

// startRigWorld starts the rig and its CoreDNS for t (stopped at its end). Without a rig (no
// root), the test is skipped, except in CI.
func startRigWorld(ctx context.Context, t *testing.T) *rigWorld {
	t.Helper()
	if err := rig.Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the rig is required in CI: %v", err)
		}
		t.Skipf("no rig here: %v", err)
	}
	r, err := rig.Start(ctx, rig.Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	dns, err := rig.StartDNS(rig.DNSOptions{Kubeconfig: r.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dns.Stop)
	return &rigWorld{rig: r, dns: dns}
}

// startManager runs the manager binary as a user that has only the generated ClusterRole,
// resolving names through the world's CoreDNS.
func (w *rigWorld) startManager(t *testing.T) *managertest.Manager {
	t.Helper()
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if out := w.rig.Kubectl("apply", "-f", filepath.Join(root, "config", "rbac", "role.yaml")); !strings.Contains(out, "configured") && !strings.Contains(out, "created") {
		t.Fatalf("applying the ClusterRole: %s", out)
	}
	return managertest.StartBinary(t, managertest.Build(t), managerKubeconfig(t, w.rig), nil, "--dns-server", w.dns.Addr())
}

func managerKubeconfig(t *testing.T, r *rig.Rig) string {
	t.Helper()
	out := r.Kubectl("create", "clusterrolebinding", "rconn-manager", "--clusterrole=manager-role", "--user=rconn-manager")
	if !strings.Contains(out, "created") {
		t.Fatalf("binding the ClusterRole: %s", out)
	}
	u, err := r.Env.AddUser(envtest.User{Name: "rconn-manager"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := u.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "manager.kubeconfig")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func podIP(ctx context.Context, t *testing.T, r *rig.Rig, ns, name string) string {
	t.Helper()
	var p corev1.Pod
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	return p.Status.PodIP
}

// waitNewIP waits until pod name exists again (a new UID) with an IP other than old.
func waitNewIP(ctx context.Context, t *testing.T, r *rig.Rig, ns, name, old string) {
	t.Helper()
	err := pollE2E(ctx, 2*time.Minute, func() bool {
		var p corev1.Pod
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
			return false
		}
		return p.DeletionTimestamp == nil && p.Status.PodIP != "" && p.Status.PodIP != old
	})
	if err != nil {
		t.Fatalf("pod %s never came back under a new IP: %v\n%s", name, err, r.Kubectl("get", "pods", "-n", ns, "-o", "wide"))
	}
}

// waitEndpoint waits until the endpoint ip of rs's Service has conditions that ok accepts.
func waitEndpoint(ctx context.Context, t *testing.T, r *rig.Rig, rs *rig.RedisCluster, ip string, ok func(discoveryv1.EndpointConditions) bool) {
	t.Helper()
	ns, svc := rs.Namespace, rs.Service
	var seen []string
	err := pollE2E(ctx, time.Minute, func() bool {
		var list discoveryv1.EndpointSliceList
		if err := r.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: svc}); err != nil {
			return false
		}
		seen = seen[:0]
		for _, s := range list.Items {
			for _, ep := range s.Endpoints {
				if slices.Contains(ep.Addresses, ip) {
					b, _ := json.Marshal(ep.Conditions)
					seen = append(seen, string(b))
					if ok(ep.Conditions) {
						return true
					}
				}
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("the endpoint %s of Service %s never got the expected conditions (seen %v)", ip, svc, seen)
	}
}

func patchAnnotation(ctx context.Context, t *testing.T, r *rig.Rig, ns, pod, key, value string) {
	t.Helper()
	v := "null"
	if value != "" {
		v = fmt.Sprintf("%q", value)
	}
	patchJSON(ctx, t, r, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: pod}}, fmt.Sprintf(`{"metadata":{"annotations":{%q:%s}}}`, key, v))
}

func patchJSON(ctx context.Context, t *testing.T, r *rig.Rig, obj client.Object, patch string) {
	t.Helper()
	if err := r.Client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatalf("patching %s: %v", obj.GetName(), err)
	}
}

func pollE2E(ctx context.Context, timeout time.Duration, f func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for !f() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

func tailLines(s string, n int) string { return tail(strings.Split(s, "\n"), n) }
