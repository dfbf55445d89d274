package controllers_test

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/testing/hostile"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// A Service/EndpointSlice writer in a RedisConnection's namespace (issue 23, item 3): a user
// whose only rights there are on Services, their status and EndpointSlices (real RBAC on the
// envtest API server), against a cluster mapped through one LoadBalancer Service per node.

// serviceWriter adds a user that may write Services (with their status: a load balancer's
// ingress) and EndpointSlices in ns, and nothing else, and returns its client.
func serviceWriter(ns string) client.Client {
	name := "svc-writer-" + ns
	au, err := env.AddUser(envtest.User{Name: name}, nil)
	Expect(err).NotTo(HaveOccurred())
	Expect(k8s.Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "svc-writer", Namespace: ns},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"services", "services/status"}, Verbs: []string{"get", "list", "create", "update", "patch", "delete"}},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"get", "list", "create", "update", "patch", "delete"}},
		},
	})).To(Succeed())
	Expect(k8s.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "svc-writer", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "svc-writer"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}},
	})).To(Succeed())
	c, err := client.New(au.Config(), client.Options{Scheme: kubetest.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	// The writer's rights are what the test says they are: no Secrets, no RedisConnections.
	Eventually(func() error { return c.List(ctx, &corev1.ServiceList{}, client.InNamespace(ns)) }, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	err = c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "redis-acl"}, &corev1.Secret{})
	Expect(apierrors.IsForbidden(err)).To(BeTrue(), "reading a Secret: %v", err)
	return c
}

// lbService creates, as c, a LoadBalancer Service labelled for the map whose port is port and,
// when ingress is set, whose load balancer ingress is that IP.
func lbService(c client.Client, ns, name string, port int32, ingress string) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"rconn.dev/expose": "demo-redis"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{{Name: "redis", Port: port, TargetPort: intstr.FromInt32(port)}}},
	}
	ExpectWithOffset(1, c.Create(ctx, svc)).To(Succeed())
	if ingress != "" {
		setIngress(c, svc, ingress)
	}
	return svc
}

func setIngress(c client.Client, svc *corev1.Service, ip string) {
	ExpectWithOffset(1, c.Get(ctx, client.ObjectKeyFromObject(svc), svc)).To(Succeed())
	svc.Status.LoadBalancer.Ingress = nil
	if ip != "" {
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
	}
	ExpectWithOffset(1, c.Status().Update(ctx, svc)).To(Succeed())
}

// claimSlice creates, as c, an EndpointSlice of Service svc listing the announced address addr
// (host:port) as its endpoint.
func claimSlice(c client.Client, ns, svc, addr string) {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	ExpectWithOffset(1, c.Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: svc + "-claim", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeFQDN,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("redis"), Port: ptr(int32(p))}},
	})).To(Succeed())
}

// recorder is a hostile node that answers like a minimal Redis and records every command.
type recorder struct {
	*hostile.Server
	mu   sync.Mutex
	seen []string
}

// recorders numbers the loopback IPs recorders listen on.
var recorders atomic.Int64

// startRecorder listens on a loopback IP of its own (127.6.0.0/16): every connection it
// accepts was made for the address the test handed out, not by a health check still dialing
// a stopped server's port that this listener happened to get (a suite full of stopped
// servers, the likely cause of a CI failure of "cannot redirect an address in use").
func startRecorder() *recorder {
	r := &recorder{}
	n := recorders.Add(1)
	listen := fmt.Sprintf("127.6.%d.%d:0", n/250%250, n%250+1)
	r.Server = hostile.MustStart(GinkgoT(), hostile.Config{Listen: listen, Handler: func(req hostile.Request) []byte {
		r.mu.Lock()
		r.seen = append(r.seen, strings.Join(req.Args, " "))
		r.mu.Unlock()
		return hostile.MinimalRedis(req)
	}})
	return r
}

func (r *recorder) commands() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.seen, "\n")
}

func (r *recorder) host() string {
	h, _, _ := net.SplitHostPort(r.Addr())
	return h
}

func (r *recorder) port() int32 {
	_, p, _ := net.SplitHostPort(r.Addr())
	n, _ := strconv.Atoi(p)
	return int32(n)
}

var _ = Describe("a Service/EndpointSlice writer in the namespace", Ordered, func() {
	var (
		ns   string
		rc   *redistest.Cluster
		evil client.Client
		// lb are the legitimate per-node Services; want the map they make.
		lb   []*corev1.Service
		want map[string]string
	)
	const name = "demo"
	appMap := func() map[string]string {
		cm := &corev1.ConfigMap{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cm); err != nil {
			return nil
		}
		return renderedMap(cm)
	}
	statusMap := func() map[string]string {
		m := map[string]string{}
		for _, e := range get(ns, name).Status.NodeAddressMap {
			m[e.Announced] = e.Reachable
		}
		return m
	}
	BeforeAll(func() {
		ns = newNamespace()
		rc = redistest.StartCluster(GinkgoT(), redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname,
			Server: redistest.ServerOptions{Users: []redistest.User{{Name: "app", Password: "s3cret"}}}})
		aclSecret(ns, "redis-acl", "app", "s3cret")
		want = map[string]string{}
		for _, n := range rc.Nodes {
			host := fmt.Sprintf("127.4.%d.%d", nsCounter.Load()%250, n.Index+1)
			svc := lbService(k8s, ns, fmt.Sprintf("redis-%d", n.Index), 6379, host)
			lb = append(lb, svc)
			createSlice(ns, svc.Name, n, "")
			reach := net.JoinHostPort(host, "6379")
			nettest.StartProxyAt(GinkgoT(), reach, n.Addr())
			want[n.Announced] = reach
		}
		evil = serviceWriter(ns)
		Expect(k8s.Create(ctx, &rconnv1.RedisConnection{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: rconnv1.RedisConnectionSpec{
				RootNodes: []rconnv1.RootNode{{URL: rconnv1.RedisURL("redis://" + rc.Nodes[0].Addr())}},
				Defaults: &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{
					SecretRef: rconnv1.LocalSecretReference{Name: "redis-acl"}, UsernameKey: "username"}},
				NodeAddressMap: &rconnv1.NodeAddressMap{FromServices: []rconnv1.ServiceAddressSource{{
					Selector:    metav1.LabelSelector{MatchLabels: map[string]string{"rconn.dev/expose": "demo-redis"}},
					AddressType: rconnv1.AddressTypeLoadBalancer,
				}}},
				HealthCheck: &rconnv1.HealthCheck{Interval: &metav1.Duration{Duration: 2 * time.Second}, Timeout: &metav1.Duration{Duration: 1500 * time.Millisecond}},
			},
		})).To(Succeed())
		eventuallyCondition(ns, name, rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
		Expect(appMap()).To(Equal(want))
	})

	It("cannot freeze the outputs with a labelled Service that has no endpoints and no load balancer: a moved pod and a password rotation still reach them", func() {
		lbService(evil, ns, "extra", 6379, "")
		eventuallyCondition(ns, name, rconnv1.ConditionAddressMapResolved, metav1.ConditionFalse, rconnv1.ReasonLoadBalancerPending)
		Expect(condition(ns, name, rconnv1.ConditionAddressMapResolved).Message).To(ContainSubstring("Service extra has no load balancer ingress yet"))
		// Every node is mapped: the problem is advisory, nothing waits for it.
		eventuallyCondition(ns, name, rconnv1.ConditionConfigRendered, metav1.ConditionTrue, rconnv1.ReasonRendered)
		eventuallyCondition(ns, name, rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)

		By("a pod that comes back under a new address (its EndpointSlice updated)")
		es := &discoveryv1.EndpointSlice{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "redis-1-node-1"}, es)).To(Succeed())
		old := es.Endpoints[0].Addresses[0]
		es.Endpoints[0].Addresses = []string{"node-1-moved.rconn-test.invalid"}
		Expect(k8s.Update(ctx, es)).To(Succeed())
		moved := net.JoinHostPort("node-1-moved.rconn-test.invalid", strconv.Itoa(rc.Nodes[1].Port))
		Eventually(func() string { return appMap()[moved] }, 30*time.Second, 100*time.Millisecond).Should(Equal(want[rc.Nodes[1].Announced]))
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "redis-1-node-1"}, es)).To(Succeed())
		es.Endpoints[0].Addresses = []string{old}
		Expect(k8s.Update(ctx, es)).To(Succeed())
		Eventually(appMap, 30*time.Second, 100*time.Millisecond).Should(Equal(want))

		By("a password rotation")
		for _, n := range rc.Nodes {
			c := n.Client()
			Expect(c.Do(ctx, "ACL", "SETUSER", "app", ">rotated").Err()).To(Succeed())
			Expect(c.Close()).To(Succeed())
		}
		src := &corev1.Secret{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "redis-acl"}, src)).To(Succeed())
		src.Data["password"] = []byte("rotated")
		Expect(k8s.Update(ctx, src)).To(Succeed())
		Eventually(func() string {
			_, sec := outputs(ns, name)
			return string(sec.Data[pkgclient.SecretKeyPassword])
		}, 30*time.Second, 100*time.Millisecond).Should(Equal("rotated"))
		eventuallyCondition(ns, name, rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
	})

	It("cannot redirect an address in use with a conflicting Service, and its target never sees the controller's AUTH", func() {
		hostileNode := startRecorder()
		node := rc.Nodes[0]
		svc := lbService(evil, ns, "evil-0", hostileNode.port(), hostileNode.host())
		claimSlice(evil, ns, svc.Name, node.Announced)
		eventuallyCondition(ns, name, rconnv1.ConditionAddressMapResolved, metav1.ConditionFalse, rconnv1.ReasonLoadBalancerPending)
		Eventually(func() string { return condition(ns, name, rconnv1.ConditionAddressMapResolved).Message }, 30*time.Second, 100*time.Millisecond).
			Should(ContainSubstring(node.Announced + " is claimed as "))
		Expect(condition(ns, name, rconnv1.ConditionAddressMapResolved).Message).To(ContainSubstring("keeping " + want[node.Announced] + " from the last map"))
		// Three health intervals: the entry keeps its target, and nothing dials the writer's.
		Consistently(func() int { return hostileNode.Accepted() }, 6*time.Second, 200*time.Millisecond).Should(BeZero())
		Expect(dialer.Has(hostileNode.Addr())).To(BeFalse())
		Expect(statusMap()).To(Equal(want))
		Expect(appMap()).To(Equal(want))
		eventuallyCondition(ns, name, rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
		Expect(evil.Delete(ctx, svc)).To(Succeed())
	})

	It("cannot take the address of a node whose own load balancer is pending: the entry is left out, never guessed, and its target never sees the controller's AUTH", func() {
		hostileNode := startRecorder()
		node := rc.Nodes[2]
		svc := lbService(evil, ns, "evil-2", hostileNode.port(), hostileNode.host())
		claimSlice(evil, ns, svc.Name, node.Announced)
		// The node's own Service loses its load balancer (re-provisioned; or a scale-out whose
		// new per-pod load balancer is not there yet).
		setIngress(k8s, lb[2], "")
		// The map no longer has the node's own target; three health intervals later nothing has
		// connected to the writer's.
		Eventually(func() string { return statusMap()[node.Announced] }, 30*time.Second, 100*time.Millisecond).ShouldNot(Equal(want[node.Announced]))
		Consistently(func() int { return hostileNode.Accepted() }, 6*time.Second, 200*time.Millisecond).Should(BeZero(),
			"the controller connected to the conflicting Service's target: %s", hostileNode.commands())
		Expect(dialer.Has(hostileNode.Addr())).To(BeFalse())
		Expect(statusMap()).NotTo(HaveKey(node.Announced))
		Expect(condition(ns, name, rconnv1.ConditionAddressMapResolved).Message).To(ContainSubstring(node.Announced + " is claimed as "))
		Expect(condition(ns, name, rconnv1.ConditionAddressMapResolved).Message).To(ContainSubstring("left out"))
		// The other nodes' entries still render; Ready says a node is unmapped.
		Eventually(appMap, 30*time.Second, 100*time.Millisecond).Should(SatisfyAll(
			HaveKeyWithValue(rc.Nodes[0].Announced, want[rc.Nodes[0].Announced]),
			HaveKeyWithValue(rc.Nodes[1].Announced, want[rc.Nodes[1].Announced]),
			Not(HaveKey(node.Announced))))
		Expect(condition(ns, name, rconnv1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
		Expect(condition(ns, name, rconnv1.ConditionAddressMapResolved).Message).To(ContainSubstring("1 nodes have no entry (" + node.Announced + ")"))

		By("the load balancer comes back while the conflict stands: two targets, none previous, still left out")
		setIngress(k8s, lb[2], strings.TrimSuffix(want[node.Announced], ":6379"))
		Consistently(statusMap, 4*time.Second, 200*time.Millisecond).ShouldNot(HaveKey(node.Announced))
		Expect(hostileNode.Accepted()).To(BeZero(), "the controller connected to the conflicting Service's target: %s", hostileNode.commands())

		By("the conflicting Service goes")
		Expect(evil.Delete(ctx, svc)).To(Succeed())
		Eventually(appMap, 30*time.Second, 100*time.Millisecond).Should(Equal(want))
		eventuallyCondition(ns, name, rconnv1.ConditionNodesHealthy, metav1.ConditionTrue, rconnv1.ReasonAllNodesHealthy)
	})
})

// Issue 23, item 4: NodePort mappings look Nodes up in the manager's cache, never with a GET per
// endpoint, and at most maxNodeLookups distinct Nodes per map.
var _ = Describe("EndpointSlices naming thousands of nonexistent Nodes", func() {
	It("cost no Node GET per reconcile, are bounded per RedisConnection, and hold no worker from another RedisConnection", func() {
		by := startBystander()
		ns := newNamespace()
		evil := serviceWriter(ns)
		s := redistest.StartServer(GinkgoT(), redistest.ServerOptions{})
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "np", Namespace: ns, Labels: map[string]string{"expose": "np"}},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Name: "redis", Port: 6379, TargetPort: intstr.FromInt32(6379)}}},
		}
		Expect(evil.Create(ctx, svc)).To(Succeed())
		const slices, perSlice = 6, 1000 // 6,000 distinct Node names, none of which exists
		for i := range slices {
			es := &discoveryv1.EndpointSlice{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("np-%d", i), Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: "np"}},
				// FQDN: the API server refuses loopback IPs in EndpointSlices, and the tests dial
				// nothing else; these addresses are only map keys.
				AddressType: discoveryv1.AddressTypeFQDN,
				Ports:       []discoveryv1.EndpointPort{{Name: ptr("redis"), Port: ptr(int32(6379))}},
			}
			for j := range perSlice {
				n := i*perSlice + j
				es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
					Addresses:  []string{fmt.Sprintf("e%d.rconn-test.invalid", n)},
					Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)},
					NodeName:   ptr(fmt.Sprintf("ghost-%s-%d", ns, n)),
				})
			}
			Expect(evil.Create(ctx, es)).To(Succeed())
		}
		before := nodeGets.Load()
		// Four of them: as many as the manager has reconcile workers.
		names := []string{"np1", "np2", "np3", "np4"}
		for _, n := range names {
			Expect(k8s.Create(ctx, &rconnv1.RedisConnection{
				ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: ns},
				Spec: rconnv1.RedisConnectionSpec{
					Mode:      rconnv1.ModeStandalone,
					RootNodes: []rconnv1.RootNode{{URL: rconnv1.RedisURL("redis://" + s.Addr())}},
					NodeAddressMap: &rconnv1.NodeAddressMap{FromServices: []rconnv1.ServiceAddressSource{{
						Selector: metav1.LabelSelector{MatchLabels: map[string]string{"expose": "np"}}, AddressType: rconnv1.AddressTypeNodePort}}},
					HealthCheck: &rconnv1.HealthCheck{Interval: &metav1.Duration{Duration: time.Second}, Timeout: &metav1.Duration{Duration: 500 * time.Millisecond}},
				},
			})).To(Succeed())
		}
		// Several reconciles of each (1 s health interval), and not one Node GET among them.
		for _, n := range names {
			Eventually(func() int { return reconciles.of(ns, n) }, 60*time.Second, 200*time.Millisecond).Should(BeNumerically(">=", 3))
		}
		Expect(nodeGets.Load()-before).To(BeZero(), "the manager read Nodes with GETs")
		for _, n := range names {
			Eventually(func() string { return condition(ns, n, rconnv1.ConditionAddressMapResolved).Message }, 60*time.Second, 200*time.Millisecond).
				Should(ContainSubstring("5000 endpoints are left out: their Nodes are beyond the first 1000 distinct Nodes this map looks up"))
			c := condition(ns, n, rconnv1.ConditionAddressMapResolved)
			Expect(c.Reason).To(Equal(rconnv1.ReasonNodeAddressUnknown))
			Expect(c.Message).To(ContainSubstring("which does not exist or has no ExternalIP or InternalIP"))
			Expect(len(c.Message)).To(BeNumerically("<", 8000), "the condition lists a bounded number of problems")
			// The standalone server is reached directly; the map problems cost only their entries.
			eventuallyCondition(ns, n, rconnv1.ConditionConfigRendered, metav1.ConditionTrue, rconnv1.ReasonRendered)
		}
		start := map[string]int{}
		for _, n := range names {
			start[n] = reconciles.of(ns, n)
		}
		by.rotate("pw-np")
		Eventually(by.outputPassword, 10*time.Second, 50*time.Millisecond).Should(Equal("pw-np"))
		// And again, with the Node cache in use.
		for _, n := range names {
			Eventually(func() int { return reconciles.of(ns, n) - start[n] }, 30*time.Second, 200*time.Millisecond).Should(BeNumerically(">=", 3))
		}
		Expect(nodeGets.Load()-before).To(BeZero(), "the manager read Nodes with GETs")
		eventuallyCondition(by.ns, "bystander", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
	})
})
