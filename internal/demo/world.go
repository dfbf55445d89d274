// Package demo builds the local world `make demo` and the e2e tests run rconn in: the envtest
// control plane (kube-apiserver + etcd, Service CIDR in loopback), a real 3-master/3-replica
// Redis Cluster whose nodes announce names nobody can resolve, the Services, EndpointSlices and
// LoadBalancer ingress a real cluster's controllers would publish for them, loopback "load
// balancers" in front of the nodes, a kubelet stand-in that mounts the rendered ConfigMap and
// Secret, and the real manager and example app binaries as child processes. Everything is on
// loopback; nothing resolves a name.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/rconn-dev/redis-connection-operator/internal/tb"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/managertest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
)

// TB is internal/tb's: the one interface every local-world helper takes.
type TB = tb.TB

const (
	// Namespace holds the demo's objects.
	Namespace = "rconn-demo"
	// Domain is the suffix of the names the Redis nodes announce (as a pod IP is to an app
	// outside the pod network: handed out, never reachable).
	Domain = "pods.demo.invalid"
	// ExposeLabel selects the per-node LoadBalancer Services (the sample's fromServices).
	ExposeLabel = "rconn.dev/expose"
	// ExposeValue is ExposeLabel's value on the demo Services.
	ExposeValue = "demo-redis"
	// ACLSecret holds the app user's credentials (the sample's spec.defaults.acl).
	ACLSecret = "demo-redis-acl"
	// AppUser is the Redis ACL user the controller and the app use.
	AppUser = "app"
	// ManagerUser is the Kubernetes user the manager runs as, bound to config/rbac/role.yaml.
	ManagerUser = "rconn-manager"
)

// LoadBalancerIP is the ingress address of node i's LoadBalancer Service (127.2.0.1, ...).
func LoadBalancerIP(i int) string { return fmt.Sprintf("127.2.0.%d", i+1) }

// World is the running local environment.
type World struct {
	// Dir holds the kubeconfigs, logs and kubelet-style mounts.
	Dir string
	// Root is the repository root.
	Root string
	// Kubeconfig is an admin kubeconfig for kubectl.
	Kubeconfig string
	// ManagerKubeconfig authenticates as ManagerUser, who has only the manager's ClusterRole.
	ManagerKubeconfig string
	// Kube is an admin client.
	Kube  client.Client
	Env   *envtest.Environment
	Redis *redistest.Cluster
	// Password is AppUser's Redis password.
	Password string

	lbs      []*nettest.Proxy
	renames  int
	progress func(format string, args ...any)
}

// Options configure Start.
type Options struct {
	// Dir is the state directory (created when missing).
	Dir string
	// Progress prints a step (default: t.Logf).
	Progress func(format string, args ...any)
	// LoadBalancerNet is the first three octets of the LoadBalancer ingress addresses of the
	// rig world (default "127.2.0", LoadBalancerIP's): tests that run beside the demo's
	// addresses pick another loopback /24.
	LoadBalancerNet string
	// PreStopFailover gives the rig's Redis pods a preStop hook that hands a master's slots to
	// a replica before SIGTERM (rig.RunnerOptions.PreStopFailover).
	PreStopFailover bool
}

// Start brings the world up; t's Cleanup tears it down.
func Start(t TB, o Options) *World {
	t.Helper()
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		t.Fatalf("demo: %v", err)
	}
	w := &World{Dir: o.Dir, Root: root, progress: o.Progress}
	if w.progress == nil {
		w.progress = t.Logf
	}

	w.progress("starting the local control plane (kube-apiserver + etcd, Service CIDR %s)", kubetest.ServiceCIDR)
	env, err := kubetest.NewEnvironment()
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	env.CRDDirectoryPaths, env.ErrorIfCRDPathMissing = nil, false // kubectl applies the CRD, as a user would
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("demo: starting the control plane: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	w.Env = env
	if w.Kube, err = client.New(cfg, client.Options{Scheme: kubetest.Scheme()}); err != nil {
		t.Fatalf("demo: %v", err)
	}
	if w.Kubeconfig, err = w.writeKubeconfig("kubeconfig", envtest.User{Name: "demo-admin", Groups: []string{"system:masters"}}); err != nil {
		t.Fatalf("demo: %v", err)
	}
	if w.ManagerKubeconfig, err = w.writeKubeconfig("manager.kubeconfig", envtest.User{Name: ManagerUser}); err != nil {
		t.Fatalf("demo: %v", err)
	}

	w.progress("starting a Redis Cluster: 3 masters + 3 replicas on loopback, announcing node-N.%s (unresolvable)", Domain)
	w.Password = randomString()
	w.Redis = redistest.StartCluster(t, redistest.ClusterOptions{
		Masters: 3, ReplicasPerMaster: 1, Announce: redistest.AnnounceHostname, Domain: Domain,
		Server: redistest.ServerOptions{Password: randomString(), Users: []redistest.User{{Name: AppUser, Password: w.Password}}},
	})
	for i := range w.Redis.Nodes {
		addr := net.JoinHostPort(LoadBalancerIP(i), "6379")
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("demo: the load balancer address %s is taken (a demo left running with KEEP=1? `make demo-stop`): %v", addr, err)
		}
		_ = l.Close()
	}
	for i, n := range w.Redis.Nodes {
		w.lbs = append(w.lbs, nettest.StartProxyAt(t, net.JoinHostPort(LoadBalancerIP(i), "6379"), n.Addr()))
	}
	return w
}

func (w *World) writeKubeconfig(name string, u envtest.User) (string, error) {
	au, err := w.Env.AddUser(u, nil)
	if err != nil {
		return "", fmt.Errorf("adding user %s: %w", u.Name, err)
	}
	b, err := au.KubeConfig()
	if err != nil {
		return "", err
	}
	p := filepath.Join(w.Dir, name)
	return p, os.WriteFile(p, b, 0o600)
}

// Publish creates what a real cluster's controllers would: the namespace, the ACL Secret, one
// LoadBalancer Service per node (with its ingress IP, as a cloud controller sets it) and an
// EndpointSlice per Service listing the node's announced name (as the endpoint controller lists
// a pod's IP).
func (w *World) Publish(ctx context.Context) error {
	w.progress("publishing per-node LoadBalancer Services (ingress %s..%s), EndpointSlices and the ACL Secret",
		LoadBalancerIP(0), LoadBalancerIP(len(w.Redis.Nodes)-1))
	if err := w.Kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}); err != nil {
		return err
	}
	if err := w.Kube.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: ACLSecret, Namespace: Namespace},
		StringData: map[string]string{"username": AppUser, "password": w.Password},
	}); err != nil {
		return err
	}
	for i, n := range w.Redis.Nodes {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: serviceName(i), Namespace: Namespace,
				Labels: map[string]string{ExposeLabel: ExposeValue}},
			Spec: corev1.ServiceSpec{
				Type:  corev1.ServiceTypeLoadBalancer,
				Ports: []corev1.ServicePort{{Name: "redis", Port: 6379, TargetPort: intstr.FromInt(n.Port)}},
			},
		}
		if err := w.Kube.Create(ctx, svc); err != nil {
			return err
		}
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: LoadBalancerIP(i)}}
		if err := w.Kube.Status().Update(ctx, svc); err != nil {
			return err
		}
		host, _, _ := net.SplitHostPort(n.Announced)
		if err := w.Kube.Create(ctx, endpointSlice(i, host, n.Port)); err != nil {
			return err
		}
	}
	return nil
}

func serviceName(i int) string { return fmt.Sprintf("redis-%d", i) }

func endpointSlice(i int, host string, port int) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: serviceName(i) + "-demo", Namespace: Namespace, Labels: map[string]string{
			discoveryv1.LabelServiceName: serviceName(i),
			discoveryv1.LabelManagedBy:   "rconn-demo",
		}},
		AddressType: discoveryv1.AddressTypeFQDN,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("redis"), Port: ptr.To(int32(port)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
}

// InstallCRD applies config/crd/bases, the manager's ClusterRole (config/rbac/role.yaml),
// bound to ManagerUser, and the admission policy and binding config/default installs
// (InstallAdmission), with kubectl.
func (w *World) InstallCRD(ctx context.Context) error {
	w.progress("installing the CRD, the manager's ClusterRole and the secret-references admission policy")
	if err := InstallAdmission(ctx, w.Kubectl, w.Root, w.Dir); err != nil {
		return err
	}
	if _, err := w.Kubectl(ctx, "apply", "-f", filepath.Join(w.Root, "config", "crd", "bases")); err != nil {
		return err
	}
	if _, err := w.Kubectl(ctx, "wait", "--for=condition=Established", "--timeout=60s", "crd/redisconnections.rconn.dev"); err != nil {
		return err
	}
	if _, err := w.Kubectl(ctx, "apply", "-f", filepath.Join(w.Root, "config", "rbac", "role.yaml")); err != nil {
		return err
	}
	return w.Kube.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "rconn-manager"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "manager-role"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: ManagerUser}},
	})
}

// Kubectl runs the kubectl next to kube-apiserver with the admin kubeconfig and returns its
// combined output.
func (w *World) Kubectl(ctx context.Context, args ...string) (string, error) {
	return kubectlAt(ctx, w.Env.BinaryAssetsDirectory, w.Kubeconfig, w.Root, args...)
}

func kubectlBin(assets string) string {
	kubectl := filepath.Join(assets, "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		return "kubectl"
	}
	return kubectl
}

func kubectlAt(ctx context.Context, assets, kubeconfig, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, kubectlBin(assets), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// StartManager runs the manager binary (managertest.StartBinary: metrics on loopback, leader
// election off, waits for /readyz) as ManagerUser, who has only the generated ClusterRole, with
// --no-dns and --allow-loopback (this world's Redis servers and LoadBalancer IPs are on
// loopback, which the manager denies by default).
func (w *World) StartManager(t TB, bin string, extraArgs ...string) *managertest.Manager {
	t.Helper()
	return managertest.StartBinary(t, bin, w.ManagerKubeconfig, nil, append([]string{"--no-dns", "--allow-loopback"}, extraArgs...)...)
}

// StartApp runs the example app on the mounted directories, with -no-dns.
func (w *World) StartApp(t TB, bin, configDir, secretDir string, echo func(string), extraArgs ...string) *Process {
	t.Helper()
	args := append([]string{"-config-dir", configDir, "-secret-dir", secretDir, "-no-dns"}, extraArgs...)
	return StartProcess(t, "app", filepath.Join(w.Dir, "app.log"), echo, bin, args...)
}

// MoveNode makes node i come back under a new announced name, the way a restarted pod comes
// back with a new IP: the node announces the new name (and gossip spreads it), then its
// EndpointSlice lists the new name. Its LoadBalancer Service stays. It returns the old and new
// announced addresses.
func (w *World) MoveNode(ctx context.Context, i int) (oldAddr, newAddr string, err error) {
	w.renames++
	host := fmt.Sprintf("node-%d-r%d.%s", i, w.renames, Domain)
	oldAddr = w.Redis.Nodes[i].Announced
	if newAddr, err = w.Redis.Reannounce(ctx, i, host); err != nil {
		return "", "", err
	}
	es := &discoveryv1.EndpointSlice{}
	if err := w.Kube.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: serviceName(i) + "-demo"}, es); err != nil {
		return "", "", err
	}
	es.Endpoints[0].Addresses = []string{host}
	if err := w.Kube.Update(ctx, es); err != nil {
		return "", "", err
	}
	return oldAddr, newAddr, nil
}

func randomString() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
