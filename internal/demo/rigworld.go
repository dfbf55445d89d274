package demo

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/managertest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/rig"
)

// RigWorld is `make demo`'s world on the rig (internal/world/rig): a real control plane
// (kube-apiserver, kube-controller-manager, kube-scheduler, kwok nodes), a Redis Cluster
// StatefulSet (RedisName, 3 masters + 3 replicas) whose pods are real redis-servers on
// 198.18.N.x pod IPs inside the rig's network namespace, its headless Service (RedisName +
// "-headless") with EndpointSlices written by the real endpointslice controller, CoreDNS
// serving cluster.local from the API, and per-pod LoadBalancer Services (ExposeLabel) whose
// ingress addresses 127.2.0.N are loopback forwarders to the pods' current IPs.
type RigWorld struct {
	// Dir holds the kubeconfigs, logs, kubelet-style mounts and the rig (Dir/rig).
	Dir  string
	Root string
	Rig  *rig.Rig
	DNS  *rig.DNS
	// Redis is the StatefulSet and its pod runner.
	Redis *rig.RedisCluster
	// Sentinel is the Sentinel act's StatefulSet (StartSentinel), nil before.
	Sentinel *rig.RedisSentinel
	// Kubeconfig is an admin kubeconfig; ManagerKubeconfig is ManagerUser's (only the
	// manager's ClusterRole, bound by InstallCRD).
	Kubeconfig, ManagerKubeconfig string
	// Password is AppUser's Redis password.
	Password string
	// Timings are how long each part of the start took.
	Timings []Timing

	progress func(format string, args ...any)
	lbNet    string
	admin    string // the redis-servers' default user's password
}

// LoadBalancerIP is the ingress address of pod i's LoadBalancer Service in this world.
func (w *RigWorld) LoadBalancerIP(i int) string {
	if w.lbNet == "" {
		return LoadBalancerIP(i)
	}
	return fmt.Sprintf("%s.%d", w.lbNet, i+1)
}

// Timing is one measured part of the demo.
type Timing struct {
	What string
	Took time.Duration
}

// RedisName is the demo's StatefulSet (pods redis-0..5).
const RedisName = "redis"

// LoadBalancerService is pod i's LoadBalancer Service.
func LoadBalancerService(i int) string { return fmt.Sprintf("%s-%d-lb", RedisName, i) }

// StartRig brings the rig world up; t's Cleanup tears every process and the network namespace
// down. It fails at once, naming what is missing, where the rig cannot run (rig.Available).
func StartRig(t TB, ctx context.Context, o Options) *RigWorld {
	t.Helper()
	if err := rig.Available(); err != nil {
		t.Fatalf("the demo runs on the rig, which cannot start here: %v", err)
	}
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	w := &RigWorld{Dir: o.Dir, Root: root, progress: o.Progress, lbNet: o.LoadBalancerNet}
	if w.progress == nil {
		w.progress = t.Logf
	}
	rigDir := filepath.Join(o.Dir, "rig")
	if err := os.RemoveAll(rigDir); err != nil { // pod data of an earlier run
		t.Fatalf("demo: %v", err)
	}
	if err := os.MkdirAll(rigDir, 0o755); err != nil {
		t.Fatalf("demo: %v", err)
	}
	timed := func(what string, f func()) {
		start := time.Now()
		f()
		w.Timings = append(w.Timings, Timing{what, time.Since(start)})
		w.progress("  (%s: %.1fs)", what, time.Since(start).Seconds())
	}

	timed("control plane + kwok nodes + pod network", func() {
		w.progress("starting the rig: kube-apiserver + etcd, kube-controller-manager, kube-scheduler, kwok, pod network netns")
		w.Rig, err = rig.Start(ctx, rig.Options{Logf: w.progress, Dir: rigDir})
		if err != nil {
			t.Fatalf("demo: %v", err)
		}
		t.Cleanup(w.Rig.Stop)
	})
	w.Kubeconfig = w.Rig.Kubeconfig
	u, err := w.Rig.Env.AddUser(envtest.User{Name: ManagerUser}, nil)
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	b, err := u.KubeConfig()
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	w.ManagerKubeconfig = filepath.Join(o.Dir, "manager.kubeconfig")
	if err := os.WriteFile(w.ManagerKubeconfig, b, 0o600); err != nil {
		t.Fatalf("demo: %v", err)
	}

	timed("CoreDNS", func() {
		w.DNS, err = rig.StartDNS(rig.DNSOptions{Kubeconfig: w.Rig.Kubeconfig})
		if err != nil {
			t.Fatalf("demo: %v", err)
		}
		t.Cleanup(w.DNS.Stop)
		w.progress("CoreDNS (kubernetes plugin, cluster.local only, nothing forwarded) at %s", w.DNS.Addr())
	})

	admin := randomString()
	w.admin = admin
	w.Password = randomString()
	timed("Redis StatefulSet: 6 pods Ready + redis-cli --cluster create", func() {
		w.progress("creating statefulset/%s (6 pods) + service/%s-headless in %s; the pod runner serves each Running pod with a redis-server on its pod IP; then the charts' redis-cli --cluster create", RedisName, RedisName, Namespace)
		w.Redis, err = w.Rig.RedisCluster(ctx, rig.RedisClusterOptions{
			Namespace: Namespace, Name: RedisName,
			Runner: rig.RunnerOptions{
				ExtraConfig: []string{
					"requirepass " + admin,
					"masterauth " + admin,
					fmt.Sprintf("user %s on >%s ~* &* +@all", AppUser, w.Password),
				},
				ClientOptions:   func(addr string) *redis.Options { return &redis.Options{Addr: addr, Password: admin} },
				CLIArgs:         []string{"-a", admin, "--no-auth-warning"},
				PreStopFailover: o.PreStopFailover,
			},
		})
		if err != nil {
			t.Fatalf("demo: %v", err)
		}
	})
	if err := w.Rig.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: ACLSecret, Namespace: Namespace},
		StringData: map[string]string{"username": AppUser, "password": w.Password},
	}); err != nil {
		t.Fatalf("demo: %v", err)
	}
	if err := w.publishLoadBalancers(t, ctx); err != nil {
		t.Fatalf("demo: %v", err)
	}
	return w
}

// publishLoadBalancers creates one LoadBalancer Service per pod (selecting it by
// statefulset.kubernetes.io/pod-name, labelled ExposeLabel), sets its ingress to
// w.LoadBalancerIP(i) as a cloud controller would, and serves that address with a forwarder to
// the pod's current IP (what the cloud load balancer + kube-proxy do).
func (w *RigWorld) publishLoadBalancers(t TB, ctx context.Context) error {
	for i := 0; i < w.Redis.Pods; i++ {
		addr := net.JoinHostPort(w.LoadBalancerIP(i), "6379")
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("the load balancer address %s is taken (a demo left running with KEEP=1? `make demo-stop`): %w", addr, err)
		}
		_ = l.Close()
	}
	for i := 0; i < w.Redis.Pods; i++ {
		pod := fmt.Sprintf("%s-%d", RedisName, i)
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: LoadBalancerService(i), Namespace: Namespace,
				Labels: map[string]string{ExposeLabel: ExposeValue}},
			Spec: corev1.ServiceSpec{
				Type:     corev1.ServiceTypeLoadBalancer,
				Selector: map[string]string{"statefulset.kubernetes.io/pod-name": pod},
				Ports:    []corev1.ServicePort{{Name: "redis", Port: 6379, TargetPort: intstr.FromInt(rig.RedisPort)}},
			},
		}
		if err := w.Rig.Client.Create(ctx, svc); err != nil {
			return err
		}
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: w.LoadBalancerIP(i)}}
		if err := w.Rig.Client.Status().Update(ctx, svc); err != nil {
			return err
		}
		runner := w.Redis.Runner
		nettest.StartProxyFunc(t, net.JoinHostPort(w.LoadBalancerIP(i), "6379"), func() string { return runner.Addr(pod) })
	}
	return nil
}

// InstallCRD applies config/crd/bases (already installed by the rig's API server start, so
// "unchanged"), the manager's ClusterRole, bound to ManagerUser, and the admission policy and
// binding config/default installs (InstallAdmission).
func (w *RigWorld) InstallCRD(ctx context.Context) error {
	w.progress("installing the CRD, the manager's ClusterRole (config/rbac/role.yaml), bound to user %s, and config/default's admission policy + binding (rconn-secret-references)", ManagerUser)
	if err := InstallAdmission(ctx, w.Kubectl, w.Root, w.Dir); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"apply", "-f", filepath.Join(w.Root, "config", "crd", "bases")},
		{"wait", "--for=condition=Established", "--timeout=60s", "crd/redisconnections.rconn.dev"},
		{"apply", "-f", filepath.Join(w.Root, "config", "rbac", "role.yaml")},
		{"create", "clusterrolebinding", "rconn-manager", "--clusterrole=manager-role", "--user=" + ManagerUser},
	} {
		if _, err := w.Kubectl(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// Kubectl runs kubectl against the rig as admin; an error carries the output.
func (w *RigWorld) Kubectl(ctx context.Context, args ...string) (string, error) {
	return kubectlAt(ctx, w.Rig.Env.BinaryAssetsDirectory, w.Kubeconfig, w.Root, args...)
}

// KubectlPath is the kubectl binary used (bin/k8s/kubectl when present).
func (w *RigWorld) KubectlPath() string { return kubectlBin(w.Rig.Env.BinaryAssetsDirectory) }

// StartManager runs the manager binary as ManagerUser with --dns-server pointing at CoreDNS and
// --allow-loopback (the LoadBalancer IPs, LoadBalancerIP, are on loopback unless
// Options.LoadBalancerNet moves them; loopback is denied by default).
func (w *RigWorld) StartManager(t TB, bin string, extraArgs ...string) *managertest.Manager {
	t.Helper()
	return managertest.StartBinary(t, bin, w.ManagerKubeconfig, nil, append([]string{"--dns-server", w.DNS.Addr(), "--allow-loopback"}, extraArgs...)...)
}

// Mount starts a kubelet stand-in for ConfigMap and Secret name (see StartMount).
func (w *RigWorld) Mount(t TB, ctx context.Context, name string, o MountOptions) *Mount {
	t.Helper()
	return StartMount(t, ctx, w.Rig.Client, Namespace, name, filepath.Join(w.Dir, "mount", name), o)
}

// StartApp runs the example app on the mounted directories, resolving names only through
// CoreDNS (-dns-server).
func (w *RigWorld) StartApp(t TB, bin, configDir, secretDir string, echo func(string), extraArgs ...string) *Process {
	t.Helper()
	args := append([]string{"-config-dir", configDir, "-secret-dir", secretDir, "-dns-server", w.DNS.Addr()}, extraArgs...)
	return StartProcess(t, "app", filepath.Join(w.Dir, "app.log"), echo, bin, args...)
}

// PodIP is a pod's current IP ("" while it has none).
func (w *RigWorld) PodIP(ctx context.Context, pod string) string {
	var p corev1.Pod
	if err := w.Rig.Client.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: pod}, &p); err != nil || p.DeletionTimestamp != nil {
		return ""
	}
	return p.Status.PodIP
}
