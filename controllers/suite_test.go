package controllers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/controllers"
	"github.com/rconn-dev/redis-connection-operator/internal/tb"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubeletmount"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

var (
	env    *envtest.Environment
	k8s    client.Client
	ctx    context.Context
	dialer *nettest.Recorder
	writes writeCounter
	reads  writeCounter // the manager's GETs of single objects (not lists or watches)
	// nodeGets counts the manager's GETs of single Nodes (not lists or watches).
	nodeGets atomic.Int64
	// reconciles counts the reconciles of every RedisConnection (see reconcileCounter).
	reconciles reconcileCounter
	nsCounter  atomic.Int64
	// apiServerAddrs are the API server's ip:port addresses the controller must never dial.
	apiServerAddrs []netip.AddrPort
	// replyBudget is the manager-wide reply budget, at the manager's default size.
	replyBudget = cluster.NewReplyBudget(0)
)

func TestControllers(t *testing.T) {
	tb.Integration(t, "kube-apiserver (envtest) and redis-server")
	RegisterFailHandler(Fail)
	RunSpecs(t, "RedisConnection controller (envtest + real redis-server)")
}

// writeCounter counts the manager's mutating API requests, by RedisConnection namespace.
type writeCounter struct {
	mu   sync.Mutex
	byNS map[string][]string
}

func (w *writeCounter) record(req *http.Request) {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byNS == nil {
		w.byNS = map[string][]string{}
	}
	w.byNS[nsOf(req.URL.Path)] = append(w.byNS[nsOf(req.URL.Path)], req.Method+" "+req.URL.Path)
}

func (w *writeCounter) recordRead(req *http.Request) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byNS == nil {
		w.byNS = map[string][]string{}
	}
	w.byNS[nsOf(req.URL.Path)] = append(w.byNS[nsOf(req.URL.Path)], req.Method+" "+req.URL.Path)
}

func (w *writeCounter) in(ns string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.byNS[ns]...)
}

func nsOf(path string) string {
	_, rest, ok := strings.Cut(path, "/namespaces/")
	if !ok {
		return ""
	}
	ns, _, _ := strings.Cut(rest, "/")
	return ns
}

type countingTransport struct {
	next http.RoundTripper
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	writes.record(req)
	if req.Method == http.MethodGet && strings.HasPrefix(req.URL.Path, "/api/v1/nodes/") {
		nodeGets.Add(1)
	}
	if req.Method == http.MethodGet && req.URL.Query().Get("watch") == "" {
		if p := req.URL.Path; strings.Contains(p, "/secrets/") || strings.Contains(p, "/configmaps/") {
			reads.recordRead(req)
		}
	}
	return t.next.RoundTrip(req)
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	var err error
	env, err = kubetest.NewEnvironment()
	Expect(err).NotTo(HaveOccurred())
	cfg, err := env.Start()
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(env.Stop)
	// Registered after env.Stop, so it runs before it: the manager stops first.
	var cancel context.CancelFunc
	ctx, cancel = context.WithCancel(context.Background())
	DeferCleanup(cancel)
	k8s, err = client.New(cfg, client.Options{Scheme: kubetest.Scheme()})
	Expect(err).NotTo(HaveOccurred())

	mgrCfg := rest.CopyConfig(cfg)
	mgrCfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return countingTransport{rt} }
	mgr, err := ctrl.NewManager(mgrCfg, ctrl.Options{
		Scheme:                 kubetest.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultTransform: controllers.CacheTransform()},
	})
	Expect(err).NotTo(HaveOccurred())
	dialer = nettest.NewRecorder(nil)
	apiServerAddrs = controllers.APIServerAddresses(ctx, cfg)
	Expect(apiServerAddrs).NotTo(BeEmpty())
	Expect((&controllers.RedisConnectionReconciler{
		// The test Redis servers listen on loopback, denied by default (see "denies loopback").
		AddressPolicy: cluster.NewAddressPolicy(cluster.AddressPolicyOptions{DenyAddrPorts: apiServerAddrs, AllowLoopback: true}),
		Client:        reconcileCountingClient{Client: mgr.GetClient(), counter: &reconciles},
		Scheme:        mgr.GetScheme(),
		Recorder:      mgr.GetEventRecorder("rconn-controller"),
		ClusterDomain: "cluster.local",
		Dial:          dialer.Dial,
		ReplyBudget:   replyBudget,
	}).SetupWithManager(mgr)).To(Succeed())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
})

// reconcileCounter counts reconciles per RedisConnection: Reconcile starts with one cache Get
// of its RedisConnection, and nothing else in the controller gets a RedisConnection by key
// (controller-runtime's controller_runtime_reconcile_total counts per controller, not per
// object, and other tests' RedisConnections reconcile in the background).
type reconcileCounter struct {
	mu sync.Mutex
	n  map[client.ObjectKey]int
}

func (c *reconcileCounter) add(key client.ObjectKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[client.ObjectKey]int{}
	}
	c.n[key]++
}

// of returns how many times the RedisConnection ns/name was reconciled.
func (c *reconcileCounter) of(ns, name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[client.ObjectKey{Namespace: ns, Name: name}]
}

// reconcileCountingClient is the manager's client, counting the Gets of RedisConnections.
type reconcileCountingClient struct {
	client.Client
	counter *reconcileCounter
}

func (c reconcileCountingClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*rconnv1.RedisConnection); ok {
		c.counter.add(key)
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

// newNamespace creates a namespace for one test.
func newNamespace() string {
	ns := fmt.Sprintf("t%d", nsCounter.Add(1))
	Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	return ns
}

// updateSpec changes a RedisConnection's spec, retrying on conflicts with the controller's own
// status patches (which can land between our read and our write).
func updateSpec(ns, name string, mutate func(*rconnv1.RedisConnection)) {
	ExpectWithOffset(1, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		rc := &rconnv1.RedisConnection{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, rc); err != nil {
			return err
		}
		mutate(rc)
		return k8s.Update(ctx, rc)
	})).To(Succeed())
}

// get fetches the current RedisConnection.
func get(ns, name string) *rconnv1.RedisConnection {
	rc := &rconnv1.RedisConnection{}
	ExpectWithOffset(1, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, rc)).To(Succeed())
	return rc
}

// condition returns a condition of the RedisConnection ("" status when absent).
func condition(ns, name, typ string) metav1.Condition {
	rc := &rconnv1.RedisConnection{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, rc); err != nil {
		return metav1.Condition{}
	}
	for _, c := range rc.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{}
}

// eventuallyCondition waits (bounded) for a condition's status and reason.
func eventuallyCondition(ns, name, typ string, status metav1.ConditionStatus, reason string) {
	EventuallyWithOffset(1, func() string {
		c := condition(ns, name, typ)
		return string(c.Status) + "/" + c.Reason + ": " + c.Message
	}, 60*time.Second, 200*time.Millisecond).Should(HavePrefix(string(status) + "/" + reason + ":"))
}

// settled waits (bounded) until count stops changing for quiet: the work a previous step caused
// (reconciles, status patches) has finished. It stands for the condition a fixed sleep guessed.
func settled(count func() int, quiet time.Duration) {
	last, since := count(), time.Now()
	EventuallyWithOffset(1, func() time.Duration {
		if n := count(); n != last {
			last, since = n, time.Now()
		}
		return time.Since(since)
	}, 30*time.Second, 100*time.Millisecond).Should(BeNumerically(">=", quiet))
}

// kubeletMount writes ConfigMap and Secret data the way kubelet lays out a projected volume.
func kubeletMount(cm *corev1.ConfigMap, sec *corev1.Secret) string {
	dir := GinkgoT().TempDir()
	files := map[string][]byte{}
	for k, v := range cm.Data {
		files[k] = []byte(v)
	}
	for k, v := range sec.Data {
		files[k] = v
	}
	Expect(kubeletmount.Write(dir, files, 0o600)).To(Succeed())
	return dir
}
