// Package rollout measures what `kubectl rollout restart statefulset` of a Redis Cluster costs
// an app that reaches the cluster only through rconn's map: the real control plane rig (kwok
// pods, the endpointslice controller, CoreDNS), 3 masters + 3 replicas restarted one by one
// with failovers, per-pod LoadBalancer Services, the manager binary, and an app outside the
// pod network (it cannot dial pod IPs) that reads its config through a kubelet-style volume
// synced every 60-90 s. BenchmarkRolloutRestart reports the figures per client variant;
// TestRolloutRestartDrill asserts the goal for the default client.
package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/demo"
	"github.com/rconn-dev/redis-connection-operator/internal/world/managertest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/rig"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/client/kubesource"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// lbNet is this package's LoadBalancer /24 (the demo and test/e2e use 127.2.0).
const lbNet = "127.4.0"

// connName is the RedisConnection the apps consume.
const connName = "rollout"

// world is the rig with the Redis StatefulSet, its LoadBalancer Services and the manager.
type world struct {
	*demo.RigWorld
	mgr *managertest.Manager
}

// startWorld brings everything up (bounded by ctx) and waits for the RedisConnection to be
// Ready; t's Cleanup removes it all.
func startWorld(t testing.TB, ctx context.Context, o demo.Options) *world {
	t.Helper()
	if err := rig.Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the rig is required in CI: %v", err)
		}
		t.Skipf("no rig here: %v", err)
	}
	o.Dir, o.LoadBalancerNet, o.Progress = t.TempDir(), lbNet, t.Logf
	w := &world{RigWorld: demo.StartRig(t, ctx, o)}
	if err := w.InstallCRD(ctx); err != nil {
		t.Fatal(err)
	}
	w.mgr = w.StartManager(t, managertest.Build(t))
	rc := &rconnv1.RedisConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: demo.Namespace, Name: connName},
		Spec: rconnv1.RedisConnectionSpec{
			RootNodes: []rconnv1.RootNode{{URL: rconnv1.RedisURL("redis://" + net.JoinHostPort(w.LoadBalancerIP(0), "6379"))}},
			Defaults: &rconnv1.NodeDefaults{
				ACL: &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: demo.ACLSecret}, UsernameKey: "username", PasswordKey: "password"},
			},
			NodeAddressMap: &rconnv1.NodeAddressMap{FromServices: []rconnv1.ServiceAddressSource{{
				Selector:    metav1.LabelSelector{MatchLabels: map[string]string{demo.ExposeLabel: demo.ExposeValue}},
				AddressType: rconnv1.AddressTypeLoadBalancer,
			}}},
			Output: &rconnv1.Output{ReaderRoleName: readerRole},
		},
	}
	if err := w.Rig.Client.Create(ctx, rc); err != nil {
		t.Fatal(err)
	}
	if err := w.waitReady(ctx, 2*time.Minute); err != nil {
		t.Fatalf("%v\nmanager log:\n%s", err, w.mgr.Log())
	}
	return w
}

// waitReady waits until the RedisConnection is Ready with all 6 nodes healthy and every pod's
// current IP in its map (the manager itself can dial pod IPs, so Ready alone does not say the
// map caught up with the last restart).
func (w *world) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		var rc rconnv1.RedisConnection
		if err := w.Rig.Client.Get(ctx, client.ObjectKey{Namespace: demo.Namespace, Name: connName}, &rc); err == nil {
			ready := false
			for _, c := range rc.Status.Conditions {
				if c.Type == rconnv1.ConditionReady {
					ready = c.Status == metav1.ConditionTrue
					last = c.Reason + ": " + c.Message
				}
			}
			if ready && rc.Status.HealthyNodeCount == 6 && w.mapCoversPods(ctx, rc.Status.NodeAddressMap) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("RedisConnection %s never became Ready with 6 healthy nodes (last: %s)", connName, last)
}

// outsideDial is the app's network: it is outside the pod network, so a pod IP (198.18.0.0/15)
// is a black hole (the SYN goes unanswered until the connect timeout), as for an app on a VM
// or another cluster; everything else is dialed (loopback LoadBalancer addresses).
func outsideDial(ctx context.Context, network, addr string) (net.Conn, error) {
	if ap, err := netip.ParseAddrPort(addr); err == nil && netip.MustParsePrefix("198.18.0.0/15").Contains(ap.Addr()) {
		<-ctx.Done()
		return nil, fmt.Errorf("dial %s %s: %w (pod network unreachable from the app)", network, addr, ctx.Err())
	}
	return cluster.IPOnlyDial(ctx, network, addr)
}

// stripNodeIDs is the mount filter of the "no node IDs" variant: config.json as a client that
// does not know rconn.nodeIds reads it (today's main).
func stripNodeIDs(key string, data []byte) []byte {
	if key != pkgclient.ConfigFileName {
		return data
	}
	var raw map[string]json.RawMessage
	if json.Unmarshal(data, &raw) != nil {
		return data
	}
	var rconn map[string]json.RawMessage
	if json.Unmarshal(raw["rconn"], &rconn) != nil {
		return data
	}
	delete(rconn, "nodeIds")
	b, _ := json.Marshal(rconn)
	raw["rconn"] = b
	out, _ := json.Marshal(raw)
	return out
}

// variant is one way an app consumes rconn's output.
type variant struct {
	name string
	// open returns the app's client; cleanup is registered on t.
	open func(t testing.TB, ctx context.Context, w *world) *pkgclient.Client
}

// mountVariant reads a kubelet-style mount synced every 60-90 s (kubelet's default period).
func mountVariant(name string, filter func(string, []byte) []byte) variant {
	return variant{name: name, open: func(t testing.TB, ctx context.Context, w *world) *pkgclient.Client {
		m := w.Mount(t, ctx, connName, demo.MountOptions{SyncPeriod: demo.KubeletSyncPeriod, ConfigFilter: filter})
		c, err := pkgclient.OpenOptions{Dial: outsideDial}.Open(ctx, m.ConfigDir, m.SecretDir)
		if err != nil {
			t.Fatalf("%s: Open: %v", name, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}}
}

// readerRole is the RedisConnection's spec.output.readerRoleName.
const readerRole = "rollout-reader"

// apiVariant reads config through the API (pkg/client/kubesource) as a user bound to the
// controller's reader Role only: no volume lag.
var apiVariant = variant{name: "api-source", open: func(t testing.TB, ctx context.Context, w *world) *pkgclient.Client {
	const user = "rollout-app"
	if err := w.Rig.Client.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: demo.Namespace, Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: readerRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	u, err := w.Rig.Env.AddUser(envtest.User{Name: user}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var c *pkgclient.Client
	for try := 0; try < 50; try++ { // the Role and the binding may still be on their way
		if c, err = kubesource.Open(ctx, kubesource.Options{Config: u.Config(), Namespace: demo.Namespace, Name: connName}, pkgclient.OpenOptions{Dial: outsideDial}); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("api-source: Open: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}}

var (
	variantNoNodeIDs = mountVariant("mount-60s-no-node-ids", stripNodeIDs)
	variantNodeIDs   = mountVariant("mount-60s-node-ids", nil)
)

// result is what the app saw during one rollout.
type result struct {
	ops, failed, killed int64
	// lost counts GETs that did not return the value just SET.
	lost          int64
	longestStall  time.Duration
	p50, p99, max time.Duration
	// errors: up to 8 distinct failure messages with counts.
	errors map[string]int
	took   time.Duration
	// slow lists the first commands that took more than a second (time since the rollout
	// started, duration, error), for the log.
	slow []string
}

func (r *result) String() string {
	var errs []string
	for e, n := range r.errors {
		errs = append(errs, fmt.Sprintf("%dx %s", n, e))
	}
	slices.Sort(errs)
	return fmt.Sprintf("rollout %.0fs: %d commands, %d failed (%d killed in flight, %d lost writes), longest stall %v, p50 %v, p99 %v, max %v; errors: %s; slow commands: %s",
		r.took.Seconds(), r.ops, r.failed, r.killed, r.lost, r.longestStall.Round(time.Millisecond), r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.max.Round(time.Millisecond), strings.Join(errs, "; "), strings.Join(r.slow, "; "))
}

// killedInFlight: the command's connection was closed under it (its server exited).
func killedInFlight(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// parallelism is how many app goroutines run SET/GET.
const parallelism = 16

// rolloutUnderLoad runs SET+GET over keys of every slot at parallelism 16 per client (all
// clients at once, each on its own keys) while the StatefulSet rolls out, and for 5 s after the
// cluster is whole again. Results follow the order of clients.
func rolloutUnderLoad(t testing.TB, ctx context.Context, w *world, clients ...*pkgclient.Client) []*result {
	t.Helper()
	loadCtx, stop := context.WithCancel(ctx)
	defer stop()
	began := time.Now()
	finish := make([]func() *result, len(clients))
	for i, c := range clients {
		finish[i] = startLoad(loadCtx, fmt.Sprintf("app%d", i), c, began)
	}
	start := time.Now()
	go w.logPods(t, loadCtx, began)
	if err := w.Redis.RolloutRestart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Redis.WaitRolledOut(ctx, 8*time.Minute); err != nil {
		t.Fatalf("rollout: %v", err)
	}
	took := time.Since(start)
	time.Sleep(5 * time.Second)
	stop()
	out := make([]*result, len(clients))
	for i, f := range finish {
		out[i] = f()
		out[i].took = took
	}
	return out
}

// startLoad starts parallelism goroutines of SET+GET on c (keys prefixed with prefix) until ctx
// ends; the returned func waits for them and returns what they saw.
func startLoad(loadCtx context.Context, prefix string, c *pkgclient.Client, began time.Time) func() *result {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		lat     []time.Duration
		res     = &result{errors: map[string]int{}}
		ops     atomic.Int64
		failed  atomic.Int64
		killed  atomic.Int64
		stallNs atomic.Int64
	)
	for g := 0; g < parallelism; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1<<16)
			lastOK := time.Now()
			for i := 0; loadCtx.Err() == nil; i++ {
				// Each goroutine its own keys ({tag} keeps the slot), so a GET sees only its writes.
				key := fmt.Sprintf("{%s}:%s:%d", cluster.KeyForSlot((g*1031+i*131)%cluster.SlotCount), prefix, g)
				val := fmt.Sprintf("%d-%d", g, i)
				start := time.Now()
				err := c.Set(loadCtx, key, val, 0).Err()
				if err == nil {
					var got string
					got, err = c.Get(loadCtx, key).Result()
					if err == nil && got != val {
						err = fmt.Errorf("GET %s = %q, want %q (a write was lost)", key, got, val)
					}
				}
				now := time.Now()
				ops.Add(1)
				if d := now.Sub(start); d > time.Second {
					mu.Lock()
					if len(res.slow) < 40 {
						res.slow = append(res.slow, fmt.Sprintf("t+%.1fs %v %v", start.Sub(began).Seconds(), d.Round(10*time.Millisecond), err))
					}
					mu.Unlock()
				}
				if loadCtx.Err() != nil {
					break
				}
				if err != nil {
					failed.Add(1)
					// In flight when the restart closed its connection: the error comes at once. An
					// EOF after seconds of retries is a failover that outlasted the retry budget.
					if killedInFlight(err) && now.Sub(start) < time.Second {
						killed.Add(1)
					}
					mu.Lock()
					msg := err.Error()
					if strings.Contains(msg, "a write was lost") {
						res.lost++
					}
					if len(res.errors) < 8 || res.errors[msg] > 0 {
						res.errors[msg]++
					}
					mu.Unlock()
					continue
				}
				local = append(local, now.Sub(start))
				if s := now.Sub(lastOK); s > time.Duration(stallNs.Load()) {
					stallNs.Store(int64(s)) // racy max is fine: workers rarely tie
				}
				lastOK = now
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	return func() *result {
		wg.Wait()
		res.ops, res.failed, res.killed, res.longestStall = ops.Load(), failed.Load(), killed.Load(), time.Duration(stallNs.Load())
		slices.Sort(lat)
		if n := len(lat); n > 0 {
			res.p50, res.p99, res.max = lat[n/2], lat[n*99/100], lat[n-1]
		}
		return res
	}
}

// logPods logs each pod's IP and readiness when they change (t+ seconds since began).
func (w *world) logPods(t testing.TB, ctx context.Context, began time.Time) {
	seen := map[string]string{}
	for ctx.Err() == nil {
		var pods corev1.PodList
		if err := w.Rig.Client.List(ctx, &pods, client.InNamespace(demo.Namespace), client.MatchingLabels{rig.AppLabel: demo.RedisName}); err == nil {
			for _, p := range pods.Items {
				ready := false
				for _, c := range p.Status.Conditions {
					if c.Type == corev1.PodReady {
						ready = c.Status == corev1.ConditionTrue
					}
				}
				st := fmt.Sprintf("ip=%s ready=%t deleting=%t", p.Status.PodIP, ready, p.DeletionTimestamp != nil)
				if seen[p.Name] != st {
					seen[p.Name] = st
					t.Logf("t+%.1fs pod %s %s", time.Since(began).Seconds(), p.Name, st)
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// podIPs lists pod=IP of the Redis pods (for logs).
func (w *world) podIPs(ctx context.Context) string {
	var pods corev1.PodList
	if err := w.Rig.Client.List(ctx, &pods, client.InNamespace(demo.Namespace), client.MatchingLabels{rig.AppLabel: demo.RedisName}); err != nil {
		return err.Error()
	}
	var out []string
	for _, p := range pods.Items {
		out = append(out, p.Name+"="+p.Status.PodIP)
	}
	return strings.Join(out, " ")
}

// mapCoversPods reports whether every Redis pod's current IP is an announced address of m.
func (w *world) mapCoversPods(ctx context.Context, m []rconnv1.AppliedAddressMapping) bool {
	var pods corev1.PodList
	if err := w.Rig.Client.List(ctx, &pods, client.InNamespace(demo.Namespace), client.MatchingLabels{rig.AppLabel: demo.RedisName}); err != nil || len(pods.Items) != 6 {
		return false
	}
	have := map[string]bool{}
	for _, e := range m {
		have[e.Announced] = true
	}
	for _, p := range pods.Items {
		if p.Status.PodIP == "" || !have[net.JoinHostPort(p.Status.PodIP, "6379")] {
			return false
		}
	}
	return true
}
