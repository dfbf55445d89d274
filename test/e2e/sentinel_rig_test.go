package e2e

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/demo"
	"github.com/rconn-dev/redis-connection-operator/internal/testing/writeloop"
	"github.com/rconn-dev/redis-connection-operator/internal/world/rig"
	rclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// TestSentinelOnTheRig is the demo's Sentinel act as a test: a Bitnami-style Sentinel
// StatefulSet (3 pods, each a redis-server and a sentinel, announcing pod IPs) on the rig, the
// manager binary with only its ClusterRole, a `mode: Sentinel` RedisConnection whose PodDNS map
// covers ports 6379 and 26379, and an app (pkg/client Open on the kubelet-style mount of the
// rendered ConfigMap and Secret) writing every 50 ms. Drills: `kubectl delete pod` of the
// master (config.json's url must name the new master within a bound, the app keeps writing),
// then `kubectl rollout restart`. The note gives failed writes and the longest stall.
func TestSentinelOnTheRig(t *testing.T) { //nolint:funlen // one ordered story on one rig
	t.Parallel() // its own control plane and addresses
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	world := startRigWorld(ctx, t)
	r, dns := world.rig, world.dns
	const ns, name = "sentinel", "redis"
	rs, err := r.RedisSentinel(ctx, rig.RedisSentinelOptions{Namespace: ns, Name: name, Sentinel: rig.SentinelPods{AnnounceIPs: true}})
	if err != nil {
		t.Fatal(err)
	}
	mgr := world.startManager(t)
	logNotes := noteLogger(rs)

	host := func(pod string) string { return fmt.Sprintf("%s.%s.%s.svc.cluster.local", pod, rs.Service, ns) }
	rc := &rconnv1.RedisConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec: rconnv1.RedisConnectionSpec{
			Mode: rconnv1.ModeSentinel,
			Sentinel: &rconnv1.SentinelSpec{MasterName: rs.MasterName, RootNodes: []rconnv1.SentinelNode{
				{Host: host(name + "-0"), Port: rig.SentinelPort}, {Host: host(name + "-1"), Port: rig.SentinelPort}, {Host: host(name + "-2"), Port: rig.SentinelPort},
			}},
			NodeAddressMap: &rconnv1.NodeAddressMap{FromServices: []rconnv1.ServiceAddressSource{{
				Selector:    metav1.LabelSelector{MatchLabels: map[string]string{rig.AppLabel: name}},
				AddressType: rconnv1.AddressTypePodDNS,
				Ports:       []intstr.IntOrString{intstr.FromInt32(rig.RedisPort), intstr.FromInt32(rig.SentinelPort)},
			}}},
		},
	}
	if err := r.Client.Create(ctx, rc); err != nil {
		t.Fatal(err)
	}
	diag := func() string {
		return r.Kubectl("get", "pods,endpointslices,rconn", "-n", ns, "-o", "wide") + "\nmanager log:\n" + tailLines(mgr.Log(), 30)
	}
	// renderedURL is config.json's url (the confirmed master, reachable). Not gated on Ready:
	// while the deleted master's pod is away a data node is down, and the outputs must name
	// the new master all the same.
	renderedURL := func() string {
		var cm corev1.ConfigMap
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: rc.Name}, &cm); err != nil {
			return ""
		}
		cfg, err := rclient.LoadConfig([]byte(cm.Data["config.json"]))
		if err != nil {
			return ""
		}
		return cfg.URL
	}
	wantURL := func(pod string) string { return "redis://" + net.JoinHostPort(host(pod), "6379") }
	waitURL := func(t *testing.T, what, pod string, timeout time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		if err := pollE2E(ctx, timeout, func() bool { return renderedURL() == wantURL(pod) }); err != nil {
			t.Fatalf("%s: config.json url never became %s (last %q)\n%s", what, wantURL(pod), renderedURL(), diag())
		}
		return time.Since(start)
	}
	master, _, err := rs.CurrentMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := pollE2E(ctx, 2*time.Minute, func() bool {
		var cur rconnv1.RedisConnection
		return r.Client.Get(ctx, client.ObjectKeyFromObject(rc), &cur) == nil && meta.IsStatusConditionTrue(cur.Status.Conditions, rconnv1.ConditionReady)
	}); err != nil {
		t.Fatalf("never Ready\n%s", diag())
	}
	took := waitURL(t, "first reconcile", master, 2*time.Minute)
	t.Logf("Ready with url %s after %s", renderedURL(), took.Round(100*time.Millisecond))

	// The app: pkg/client on the kubelet-style mount, names resolved only through CoreDNS.
	m := demo.StartMount(t, ctx, r.Client, ns, rc.Name, filepath.Join(t.TempDir(), "mount"), demo.MountOptions{SyncPeriod: time.Second})
	resolver := dns.Resolver()
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Resolver: resolver, Timeout: 2 * time.Second}
		return d.DialContext(ctx, network, addr)
	}
	openCtx, openCancel := context.WithTimeout(ctx, time.Minute)
	app, err := rclient.OpenOptions{Dial: dial}.Open(openCtx, m.ConfigDir, m.SecretDir)
	openCancel()
	if err != nil {
		t.Fatalf("pkg/client Open on the mount: %v\n%s", err, diag())
	}
	t.Cleanup(func() { _ = app.Close() })
	w := writeloop.Start(ctx, func(ctx context.Context, i int) error { return app.Set(ctx, "rconn-e2e", i, 0).Err() })
	t.Cleanup(w.Stop)
	w.WaitWrites(t, 10, 30*time.Second)

	t.Run("kubectl delete pod of the master: outputs and the app follow the new master", func(t *testing.T) {
		old, _, err := rs.CurrentMaster(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w.Reset()
		if out := r.Kubectl("delete", "pod", "-n", ns, old, "--wait=false"); !strings.Contains(out, "deleted") {
			t.Fatal(out)
		}
		start := time.Now()
		var next string
		if err := pollE2E(ctx, 2*time.Minute, func() bool {
			next, _, err = rs.CurrentMaster(ctx)
			return err == nil && next != "" && next != old
		}); err != nil {
			t.Fatalf("the sentinels never elected a master other than %s\n%s", old, diag())
		}
		elected := time.Since(start)
		// The bound: the controller sees +switch-master at once (or its next probe).
		waitURL(t, "after the master's deletion", next, 30*time.Second)
		t.Logf("delete pod %s: sentinels elected %s after %s; config.json url %s -> %s after %s",
			old, next, elected.Round(100*time.Millisecond), wantURL(old), wantURL(next), time.Since(start).Round(100*time.Millisecond))
		w.WaitWrites(t, 10, time.Minute)
		if err := rs.WaitHealthy(ctx, 3*time.Minute); err != nil {
			t.Fatal(err)
		}
		failed, stall := w.Stats()
		t.Logf("app across the failover: %d failed writes, longest stall %s", failed, stall.Round(10*time.Millisecond))
		logNotes(t)
		if stall > maxSentinelStall {
			t.Errorf("the app stalled %s across the master's deletion (bound %s)\n%s", stall.Round(10*time.Millisecond), maxSentinelStall, diag())
		}
	})

	t.Run("kubectl rollout restart: the app keeps writing, the outputs name the master", func(t *testing.T) {
		w.Reset()
		start := time.Now()
		if out := r.Kubectl("rollout", "restart", "-n", ns, "statefulset/"+name); !strings.Contains(out, "restarted") {
			t.Fatal(out)
		}
		if err := rs.WaitRolledOut(ctx, 6*time.Minute); err != nil {
			t.Fatal(err)
		}
		t.Logf("rollout of %d pods took %s", rs.Pods, time.Since(start).Round(time.Second))
		now, _, err := rs.CurrentMaster(ctx)
		if err != nil {
			t.Fatal(err)
		}
		waitURL(t, "after rollout restart", now, time.Minute)
		w.WaitWrites(t, 10, time.Minute)
		failed, stall := w.Stats()
		t.Logf("app across the rollout: %d failed writes, longest stall %s; master now %s", failed, stall.Round(10*time.Millisecond), now)
		logNotes(t)
		if stall > maxSentinelStall {
			t.Errorf("the app stalled %s across the rollout (bound %s)\n%s", stall.Round(10*time.Millisecond), maxSentinelStall, diag())
		}
	})
	if mgr.Exited() {
		t.Fatalf("manager exited:\n%s", tailLines(mgr.Log(), 40))
	}
}

// maxSentinelStall bounds the app's longest time without a write across a drill. A planned
// failover (the chart's preStop) takes a second or two and the client follows at once; the
// bound leaves room for a loaded machine but not for what the drills used to cost: 24 s for a
// deleted master pod (the sentinels' split vote, waiting twice the failover timeout) and 32-58 s
// for a rollout (no preStop, the client asking sentinels at pod IPs that no longer exist).
const maxSentinelStall = 20 * time.Second

// noteLogger prints what the pod runner's hooks did (the preStop failovers) since its last call.
func noteLogger(rs *rig.RedisSentinel) func(t *testing.T) {
	seen := 0
	return func(t *testing.T) {
		t.Helper()
		notes := rs.Runner.Notes()
		for _, n := range notes[seen:] {
			t.Logf("rig: %s", n)
		}
		seen = len(notes)
	}
}
