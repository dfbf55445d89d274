package controllers_test

import (
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/testing/hostile"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// sentinelConnection is a Sentinel-mode RedisConnection for group g: the sentinel root nodes
// by their announced (unresolvable) names, and a static map of every announced address, data
// and sentinel ports, plus extra entries.
func sentinelConnection(ns, name string, g *redistest.SentinelGroup, extraRoots []string, extraMap map[string]string) *rconnv1.RedisConnection {
	m := g.AddressMap()
	for k, v := range extraMap {
		m[k] = v
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var static []rconnv1.StaticAddressMapping
	for _, k := range keys {
		static = append(static, rconnv1.StaticAddressMapping{Announced: rconnv1.HostPort(k), Reachable: rconnv1.HostPort(m[k])})
	}
	var roots []rconnv1.SentinelNode
	for _, a := range append(g.SentinelAddrs(), extraRoots...) {
		ad, err := cluster.ParseAddress(a)
		Expect(err).NotTo(HaveOccurred())
		roots = append(roots, rconnv1.SentinelNode{Host: ad.Host, Port: int32(ad.Port)})
	}
	return &rconnv1.RedisConnection{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: rconnv1.RedisConnectionSpec{
			Mode:           rconnv1.ModeSentinel,
			Sentinel:       &rconnv1.SentinelSpec{MasterName: g.MasterName(), RootNodes: roots},
			NodeAddressMap: &rconnv1.NodeAddressMap{Static: static},
			HealthCheck:    &rconnv1.HealthCheck{Interval: &metav1.Duration{Duration: 4 * time.Second}, Timeout: &metav1.Duration{Duration: time.Second}},
		},
	}
}

// renderedConfig is the RedisConnection's config.json ("" fields when absent).
func renderedConfig(ns, name string) pkgclient.Config {
	var cfg pkgclient.Config
	cm := &corev1.ConfigMap{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cm); err != nil {
		return cfg
	}
	_ = json.Unmarshal([]byte(cm.Data[pkgclient.ConfigFileName]), &cfg)
	return cfg
}

// eventMessages lists the messages of the Events with a reason in ns.
func eventMessages(ns, reason string) []string {
	var evs corev1.EventList
	_ = k8s.List(ctx, &evs, client.InNamespace(ns))
	var out []string
	for _, e := range evs.Items {
		if e.Reason == reason {
			out = append(out, e.Message)
		}
	}
	return out
}

// masterURL is the url config.json must name for data node i of g.
func masterURL(g *redistest.SentinelGroup, i int) string {
	return "redis://" + g.Data[i].Addr()
}

var _ = Describe("Sentinel mode: a 1+2+3 group announcing unresolvable names", Ordered, func() {
	var (
		ns string
		g  *redistest.SentinelGroup
	)
	BeforeAll(func() {
		g = redistest.StartSentinelGroup(GinkgoT(), redistest.SentinelGroupOptions{})
		ns = newNamespace()
		rc := sentinelConnection(ns, "sent", g, nil, nil)
		// No periodic probe during the test: a failover can only be seen through the
		// subscription (and the probes its events start).
		rc.Spec.HealthCheck.Interval = &metav1.Duration{Duration: time.Hour}
		Expect(k8s.Create(ctx, rc)).To(Succeed())
	})

	It("becomes Ready with config.json naming the master through the map", func() {
		eventuallyCondition(ns, "sent", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
		cfg := renderedConfig(ns, "sent")
		Expect(cfg.Validate()).To(Succeed())
		Expect(cfg.ModeOrDefault()).To(Equal(pkgclient.ModeSentinel))
		Expect(cfg.Name).To(Equal(g.MasterName()))
		Expect(cfg.URL).To(Equal(masterURL(g, 0)))
		// The sentinel root nodes as apps reach them (mapped), every announced address mapped.
		var roots []string
		for _, r := range cfg.SentinelRootNodes {
			roots = append(roots, r.String())
		}
		Expect(roots).To(Equal([]string{g.Sentinels[0].Addr(), g.Sentinels[1].Addr(), g.Sentinels[2].Addr()}))
		Expect(cfg.NodeAddressMap).To(HaveLen(6))
		Expect(cfg.Rconn.Sentinels).To(ConsistOf(g.SentinelAddrs()))

		rc := get(ns, "sent")
		st := rc.Status.Sentinel
		Expect(st).NotTo(BeNil())
		Expect(st.Master.Announced).To(Equal(g.Data[0].Announced))
		Expect(st.Master.Mapped).To(Equal(g.Data[0].Addr()))
		Expect(st.Replicas).To(HaveLen(2))
		for _, r := range st.Replicas {
			Expect(r.MasterLinkStatus).To(Equal("ok"))
			Expect(r.LagKiB).NotTo(BeNil())
		}
		Expect(st.Sentinels).To(HaveLen(3))
		Expect(st.Answered).To(Equal(int32(3)))
		Expect(st.Agreeing).To(Equal(int32(3)))
		Expect(rc.Status.NodeCount).To(Equal(int32(3)))
		eventuallyCondition(ns, "sent", rconnv1.ConditionNodesHealthy, metav1.ConditionTrue, rconnv1.ReasonAllNodesHealthy)
		Expect(condition(ns, "sent", rconnv1.ConditionNodesHealthy).Message).To(ContainSubstring("all 6 nodes"))

		_, sec := outputs(ns, "sent")
		Expect(string(sec.Data["sentinel.master"])).To(Equal(g.MasterName()))
		Expect(string(sec.Data["host"]) + ":" + string(sec.Data["port"])).To(Equal(g.Data[0].Addr()))
		Expect(strings.Split(string(sec.Data["sentinel.nodes"]), ",")).To(HaveLen(3))
		Expect(sec.Data).NotTo(HaveKey("cluster.nodes"))
	})

	It("follows SENTINEL FAILOVER: outputs name the new master, FailoverDetected names old and new", func() {
		w := watchURL(ns, "sent")
		old, err := g.Failover(ctx)
		Expect(err).NotTo(HaveOccurred())
		nm, err := g.WaitNewMaster(ctx, old)
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() string { return renderedConfig(ns, "sent").URL }, 30*time.Second, 50*time.Millisecond).Should(Equal(masterURL(g, nm)))
		GinkgoWriter.Printf("SENTINEL FAILOVER: config.json moved %s after the failover was requested\n", w.since(masterURL(g, nm)))
		Eventually(func() []string { return eventMessages(ns, rconnv1.EventReasonFailoverDetected) }, 30*time.Second, 200*time.Millisecond).Should(
			ContainElement(And(ContainSubstring(g.Data[old].Announced), ContainSubstring(g.Data[nm].Announced))))
		_, sec := outputs(ns, "sent")
		Expect(string(sec.Data["host"]) + ":" + string(sec.Data["port"])).To(Equal(g.Data[nm].Addr()))
		Expect(get(ns, "sent").Status.Sentinel.Master.Announced).To(Equal(g.Data[nm].Announced))
		Expect(g.WaitSettled(ctx, nm)).To(Succeed())
		eventuallyCondition(ns, "sent", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
	})

	It("follows a killed master", func() {
		w := watchURL(ns, "sent")
		old, err := g.KillMaster(ctx)
		Expect(err).NotTo(HaveOccurred())
		nm, err := g.WaitNewMaster(ctx, old)
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() string { return renderedConfig(ns, "sent").URL }, 30*time.Second, 50*time.Millisecond).Should(Equal(masterURL(g, nm)))
		GinkgoWriter.Printf("killed master: config.json moved %s after the kill\n", w.since(masterURL(g, nm)))
		Eventually(func() []string { return eventMessages(ns, rconnv1.EventReasonFailoverDetected) }, 30*time.Second, 200*time.Millisecond).Should(
			ContainElement(And(ContainSubstring(g.Data[old].Announced), ContainSubstring(g.Data[nm].Announced))))
		// The dead master is a replica of the sentinels' now, unreachable.
		eventuallyCondition(ns, "sent", rconnv1.ConditionNodesHealthy, metav1.ConditionFalse, rconnv1.ReasonNodesUnreachable)
		g.Data[old].Restart(GinkgoT())
		eventuallyCondition(ns, "sent", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
	})
})

// urlWatch records when config.json's url became what a test waits for.
type urlWatch struct {
	start time.Time
	mu    sync.Mutex
	seen  map[string]time.Time
}

// watchURL polls config.json's url (every 10 ms, for a minute) from now on.
func watchURL(ns, name string) *urlWatch {
	w := &urlWatch{start: time.Now(), seen: map[string]time.Time{}}
	go func() {
		defer GinkgoRecover()
		for time.Since(w.start) < time.Minute {
			u := renderedConfig(ns, name).URL
			w.mu.Lock()
			if _, ok := w.seen[u]; !ok {
				w.seen[u] = time.Now()
			}
			w.mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return w
}

// since is when the watch first saw url, from its start (waiting for the poll to see it).
func (w *urlWatch) since(url string) time.Duration {
	var at time.Time
	Eventually(func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		at = w.seen[url]
		return !at.IsZero()
	}, 5*time.Second, 10*time.Millisecond).Should(BeTrue())
	return at.Sub(w.start).Round(time.Millisecond)
}

var _ = Describe("Sentinel mode: lying sentinels", Ordered, func() {
	var (
		ns string
		g  *redistest.SentinelGroup
	)
	BeforeAll(func() {
		g = redistest.StartSentinelGroup(GinkgoT(), redistest.SentinelGroupOptions{})
		ns = newNamespace()
	})

	It("a minority sentinel naming another (real) master does not move the outputs", func() {
		// The liar names a real Redis server that says ROLE master: only the vote keeps it out.
		fake := redistest.StartServer(GinkgoT(), redistest.ServerOptions{})
		liar := hostile.MustStart(GinkgoT(), hostile.Config{Handler: hostile.Sentinel("fake-0.rconn-test.svc.cluster.local:6379", nil, nil)})
		extra := map[string]string{"liar-0.rconn-test.svc.cluster.local:26379": liar.Addr(), "fake-0.rconn-test.svc.cluster.local:6379": fake.Addr()}
		Expect(k8s.Create(ctx, sentinelConnection(ns, "minority", g, []string{"liar-0.rconn-test.svc.cluster.local:26379"}, extra))).To(Succeed())
		eventuallyCondition(ns, "minority", rconnv1.ConditionTopologyDiscovered, metav1.ConditionTrue, rconnv1.ReasonDiscovered)
		Expect(renderedConfig(ns, "minority").URL).To(Equal(masterURL(g, 0)))
		Consistently(func() string { return renderedConfig(ns, "minority").URL }, 3*time.Second, 100*time.Millisecond).Should(Equal(masterURL(g, 0)))
		st := get(ns, "minority").Status.Sentinel
		Expect(st.Answered).To(Equal(int32(4)))
		Expect(st.Agreeing).To(Equal(int32(3)))
		Expect(st.Master.Announced).To(Equal(g.Data[0].Announced))
	})

	It("as many liars as honest sentinels: NoQuorum, the outputs keep the last confirmed master", func() {
		Expect(k8s.Create(ctx, sentinelConnection(ns, "split", g, nil, nil))).To(Succeed())
		eventuallyCondition(ns, "split", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
		fake := redistest.StartServer(GinkgoT(), redistest.ServerOptions{})
		extra := map[string]string{"fake-0.rconn-test.svc.cluster.local:6379": fake.Addr()}
		var liars []string
		for i := 0; i < 3; i++ {
			l := hostile.MustStart(GinkgoT(), hostile.Config{Handler: hostile.Sentinel("fake-0.rconn-test.svc.cluster.local:6379", nil, nil)})
			name := "liar-" + string(rune('0'+i)) + ".rconn-test.svc.cluster.local:26379"
			extra[name] = l.Addr()
			liars = append(liars, name)
		}
		want := sentinelConnection(ns, "split", g, liars, extra)
		updateSpec(ns, "split", func(rc *rconnv1.RedisConnection) { rc.Spec = want.Spec })
		eventuallyCondition(ns, "split", rconnv1.ConditionTopologyDiscovered, metav1.ConditionFalse, rconnv1.ReasonNoQuorum)
		eventuallyCondition(ns, "split", rconnv1.ConditionReady, metav1.ConditionFalse, rconnv1.ReasonNoQuorum)
		Consistently(func() string { return renderedConfig(ns, "split").URL }, 3*time.Second, 100*time.Millisecond).Should(Equal(masterURL(g, 0)))
		Expect(get(ns, "split").Status.Sentinel.Master.Announced).To(Equal(g.Data[0].Announced))
		Expect(eventMessages(ns, rconnv1.EventReasonFailoverDetected)).To(BeEmpty())
	})
})

var _ = Describe("Sentinel mode: a Bitnami-style map from Services with two ports", func() {
	It("maps the data and sentinel ports of every pod from fromServices[].ports and becomes Ready", func() {
		g := redistest.StartSentinelGroup(GinkgoT(), redistest.SentinelGroupOptions{})
		ns := newNamespace()
		// One LoadBalancer Service per pod (ingress 127.0.0.1) with a data and a sentinel port,
		// and an EndpointSlice listing the pod's announced name on both.
		for i := range g.Data {
			host, dport := splitHostPort(g.Data[i].Announced)
			_, sport := splitHostPort(g.Sentinels[i].Announced)
			name := fmt.Sprintf("redis-%d", i)
			svc := &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "bitnami"}},
				Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{
					{Name: "tcp-redis", Port: dport, TargetPort: intstr.FromInt32(dport)},
					{Name: "tcp-sentinel", Port: sport, TargetPort: intstr.FromInt32(sport)}}},
			}
			Expect(k8s.Create(ctx, svc)).To(Succeed())
			setIngress(k8s, svc, "127.0.0.1")
			Expect(k8s.Create(ctx, &discoveryv1.EndpointSlice{
				ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
				AddressType: discoveryv1.AddressTypeFQDN,
				Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}}},
				Ports:       []discoveryv1.EndpointPort{{Name: ptr("tcp-redis"), Port: ptr(dport)}, {Name: ptr("tcp-sentinel"), Port: ptr(sport)}},
			})).To(Succeed())
		}
		rc := sentinelConnection(ns, "bitnami", g, nil, nil)
		rc.Spec.NodeAddressMap = &rconnv1.NodeAddressMap{FromServices: []rconnv1.ServiceAddressSource{{
			Selector:    metav1.LabelSelector{MatchLabels: map[string]string{"app": "bitnami"}},
			AddressType: rconnv1.AddressTypeLoadBalancer,
			Ports:       []intstr.IntOrString{intstr.FromString("tcp-redis"), intstr.FromString("tcp-sentinel")},
		}}}
		Expect(k8s.Create(ctx, rc)).To(Succeed())
		eventuallyCondition(ns, "bitnami", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
		cfg := renderedConfig(ns, "bitnami")
		want := map[string]pkgclient.MappedAddress{}
		for k, v := range g.AddressMap() {
			a, err := cluster.ParseAddress(v)
			Expect(err).NotTo(HaveOccurred())
			want[k] = pkgclient.MappedAddress{Host: a.Host, Port: a.Port}
		}
		Expect(cfg.NodeAddressMap).To(Equal(want))
		Expect(cfg.URL).To(Equal(masterURL(g, 0)))
	})
})

func splitHostPort(a string) (string, int32) {
	host, port, err := net.SplitHostPort(a)
	Expect(err).NotTo(HaveOccurred())
	p, err := strconv.Atoi(port)
	Expect(err).NotTo(HaveOccurred())
	return host, int32(p)
}
