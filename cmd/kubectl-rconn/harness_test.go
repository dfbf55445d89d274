package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/controllers"
	"github.com/rconn-dev/redis-connection-operator/internal/tb"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

func TestMain(m *testing.M) {
	os.Exit(nettest.WithoutDNS(func() int {
		code := m.Run()
		if cp.stop != nil {
			cp.stop()
		}
		return code
	}))
}

// cp is the envtest control plane with the controller running in-process, shared by the
// tests of this package and started by the first that needs it.
var cp struct {
	once       sync.Once
	err        error
	env        *envtest.Environment
	k8s        ctrlclient.Client
	kubeconfig string
	stop       func()
	ns         atomic.Int64
}

func controlPlane(t *testing.T) {
	tb.Integration(t, "kube-apiserver (envtest)")
	t.Helper()
	cp.once.Do(func() { cp.err = startControlPlane() })
	if cp.err != nil {
		t.Fatalf("envtest: %v", cp.err)
	}
}

func startControlPlane() error {
	logf.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	env, err := kubetest.NewEnvironment()
	if err != nil {
		return err
	}
	cfg, err := env.Start()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	cp.env, cp.stop = env, func() { cancel(); _ = env.Stop() }
	if cp.k8s, err = ctrlclient.New(cfg, ctrlclient.Options{Scheme: kubetest.Scheme()}); err != nil {
		return err
	}
	if err := startController(ctx, cfg, nettest.NewRecorder(nil).Dial); err != nil {
		return err
	}
	u, err := env.AddUser(envtest.User{Name: "kubectl-rconn-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kc, err := u.KubeConfig()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "kubectl-rconn-test-")
	if err != nil {
		return err
	}
	cp.kubeconfig = filepath.Join(dir, "kubeconfig")
	return os.WriteFile(cp.kubeconfig, kc, 0o600)
}

var skipNameValidation = true

// startController runs the rconn controller in-process until ctx ends; dial is its base dial.
func startController(ctx context.Context, cfg *rest.Config, dial cluster.DialFunc) error {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 kubetest.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultTransform: controllers.CacheTransform()},
		// The envtest and the rig test each run one in this process.
		Controller: ctrlconfig.Controller{SkipNameValidation: &skipNameValidation},
	})
	if err != nil {
		return err
	}
	apiAddrs := controllers.APIServerAddresses(ctx, cfg)
	if err := (&controllers.RedisConnectionReconciler{
		// The test Redis servers listen on loopback, denied by default.
		AddressPolicy: cluster.NewAddressPolicy(cluster.AddressPolicyOptions{DenyAddrPorts: apiAddrs, AllowLoopback: true}),
		Client:        mgr.GetClient(),
		Scheme:        mgr.GetScheme(),
		Recorder:      mgr.GetEventRecorder("rconn-controller"),
		ClusterDomain: "cluster.local",
		Dial:          dial,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	go func() { _ = mgr.Start(ctx) }()
	return nil
}

// namespace creates a fresh namespace.
func namespace(t *testing.T) string {
	t.Helper()
	ns := fmt.Sprintf("kubectl-rconn-%d", cp.ns.Add(1))
	if err := cp.k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	return ns
}

// result is one kubectl-rconn run.
type result struct {
	out, err string
	code     int
}

// syncBuffer is a bytes.Buffer safe for a command running in another goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// kubectlRconn runs the plugin's command line with the admin kubeconfig of the control plane
// (or kubeconfig, when not empty) and dial beneath the node address map.
func kubectlRconn(t *testing.T, kubeconfig string, dial cluster.DialFunc, args ...string) result {
	t.Helper()
	if kubeconfig == "" {
		kubeconfig = cp.kubeconfig
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb syncBuffer
	code := runApp(ctx, &App{Out: &out, Err: &errb, Dial: dial}, append([]string{"--kubeconfig", kubeconfig}, args...))
	r := result{out.String(), errb.String(), code}
	t.Logf("kubectl rconn %s -> exit %d\n%s%s", strings.Join(args, " "), code, r.out, r.err)
	return r
}

// redisConnection creates a RedisConnection for c (nodes announcing unreachable names, mapped
// statically to where they listen) with the ACL password in a Secret, and waits until Ready.
func redisConnection(t *testing.T, ns, name string, c *redistest.Cluster, password string) *rconnv1.RedisConnection {
	t.Helper()
	ctx := context.Background()
	if err := cp.k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-acl"}, StringData: map[string]string{"password": password}}); err != nil {
		t.Fatal(err)
	}
	root := netip.MustParseAddrPort(c.Nodes[0].Addr())
	rc := &rconnv1.RedisConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: rconnv1.RedisConnectionSpec{
			RootNodes: []rconnv1.RootNode{{Host: root.Addr().String(), Port: int32(root.Port())}},
			Defaults: &rconnv1.NodeDefaults{
				ACL: &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: name + "-acl"}},
			},
			NodeAddressMap: &rconnv1.NodeAddressMap{},
			HealthCheck:    &rconnv1.HealthCheck{Interval: &metav1.Duration{Duration: time.Second}, Timeout: &metav1.Duration{Duration: 500 * time.Millisecond}},
		},
	}
	for from, to := range c.AddressMap() {
		rc.Spec.NodeAddressMap.Static = append(rc.Spec.NodeAddressMap.Static, rconnv1.StaticAddressMapping{Announced: rconnv1.HostPort(from), Reachable: rconnv1.HostPort(to)})
	}
	if err := cp.k8s.Create(ctx, rc); err != nil {
		t.Fatal(err)
	}
	kubetest.WaitReady(t, ctx, cp.k8s, ns, name, func() string { return "" })
	if err := cp.k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, rc); err != nil {
		t.Fatal(err)
	}
	return rc
}

func waitCondition(t *testing.T, ns, name, cond string, want metav1.ConditionStatus) {
	t.Helper()
	nettest.WaitFor(t, 60*time.Second, cond+"="+string(want), func() error {
		rc := &rconnv1.RedisConnection{}
		if err := cp.k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, rc); err != nil {
			return err
		}
		for _, c := range rc.Status.Conditions {
			if c.Type == cond {
				if c.Status == want {
					return nil
				}
				return fmt.Errorf("%s is %s (%s: %s)", cond, c.Status, c.Reason, c.Message)
			}
		}
		return fmt.Errorf("no %s condition", cond)
	})
}
