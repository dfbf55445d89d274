package controllers_test

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
)

func ptr[T any](v T) *T { return &v }

// headlessService creates the Services + EndpointSlices a StatefulSet's headless Service would
// have for a cluster announcing hostnames: one EndpointSlice per node (ports differ per node
// here), FQDN endpoints listing the announced names, and pod hostnames redis-<i>. It registers
// the PodDNS names in the test dialer's table.
func headlessService(ns string, rc *redistest.Cluster) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "redis", Namespace: ns, Labels: map[string]string{"app": "redis"}},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: []corev1.ServicePort{{Name: "redis", Port: 6379}},
			Selector: map[string]string{"app": "redis"}},
	}
	ExpectWithOffset(1, k8s.Create(ctx, svc)).To(Succeed())
	for _, n := range rc.Nodes {
		createSlice(ns, "redis", n, fmt.Sprintf("redis-%d", n.Index))
		dialer.SetName(fmt.Sprintf("redis-%d.redis.%s.svc.cluster.local", n.Index, ns), "127.0.0.1")
	}
}

// createSlice lists node n as the one ready endpoint of Service svc.
func createSlice(ns, svc string, n *redistest.Node, hostname string) {
	host, port, _ := net.SplitHostPort(n.Announced)
	p, _ := strconv.Atoi(port)
	addrType := discoveryv1.AddressTypeFQDN
	if net.ParseIP(host) != nil {
		addrType = discoveryv1.AddressTypeIPv4
	}
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: fmt.Sprintf("%s-node-%d", svc, n.Index), Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: addrType,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{host},
			Hostname:   hostnamePtr(hostname),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)},
			NodeName:   ptr(fmt.Sprintf("node-%d", n.Index)),
		}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr("redis"), Port: ptr(int32(p))}},
	}
	ExpectWithOffset(2, k8s.Create(ctx, es)).To(Succeed())
}

func hostnamePtr(h string) *string {
	if h == "" {
		return nil
	}
	return &h
}

func aclSecret(ns, name, user, pass string) {
	ExpectWithOffset(1, k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Data:       map[string][]byte{"username": []byte(user), "password": []byte(pass)},
	})).To(Succeed())
}

func podDNSConnection(ns, name string, rc *redistest.Cluster) *rconnv1.RedisConnection {
	return &rconnv1.RedisConnection{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: rconnv1.RedisConnectionSpec{
			RootNodes: []rconnv1.RootNode{{URL: rconnv1.RedisURL("redis://" + rc.Nodes[0].Addr())}},
			Defaults: &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{
				SecretRef: rconnv1.LocalSecretReference{Name: "redis-acl"}, UsernameKey: "username"}},
			NodeAddressMap: &rconnv1.NodeAddressMap{FromServices: []rconnv1.ServiceAddressSource{{
				Selector:    metav1.LabelSelector{MatchLabels: map[string]string{"app": "redis"}},
				AddressType: rconnv1.AddressTypePodDNS,
			}}},
			HealthCheck: &rconnv1.HealthCheck{Interval: &metav1.Duration{Duration: 2 * time.Second}, Timeout: &metav1.Duration{Duration: 1500 * time.Millisecond}},
		},
	}
}

func outputs(ns, name string) (*corev1.ConfigMap, *corev1.Secret) {
	cm, sec := &corev1.ConfigMap{}, &corev1.Secret{}
	ExpectWithOffset(1, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cm)).To(Succeed())
	ExpectWithOffset(1, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, sec)).To(Succeed())
	return cm, sec
}

func renderedMap(cm *corev1.ConfigMap) map[string]string {
	var cfg pkgclient.Config
	ExpectWithOffset(1, json.Unmarshal([]byte(cm.Data[pkgclient.ConfigFileName]), &cfg)).To(Succeed())
	out := map[string]string{}
	for k, v := range cfg.NodeAddressMap {
		out[k] = v.String()
	}
	return out
}

func renderedNodeIDs(cm *corev1.ConfigMap) map[string]string {
	var cfg pkgclient.Config
	ExpectWithOffset(1, json.Unmarshal([]byte(cm.Data[pkgclient.ConfigFileName]), &cfg)).To(Succeed())
	out := map[string]string{}
	for k, v := range cfg.Rconn.NodeIDs {
		out[k] = v.String()
	}
	return out
}

var _ = Describe("a cluster announcing unreachable hostnames, mapped through PodDNS", Ordered, func() {
	var (
		ns string
		rc *redistest.Cluster
	)
	BeforeAll(func() {
		ns = newNamespace()
		rc = redistest.StartCluster(GinkgoT(), redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1, Announce: redistest.AnnounceHostname,
			Server: redistest.ServerOptions{Users: []redistest.User{{Name: "app", Password: "s3cret"}}}})
		headlessService(ns, rc)
		aclSecret(ns, "redis-acl", "app", "s3cret")
		Expect(k8s.Create(ctx, podDNSConnection(ns, "cache", rc))).To(Succeed())
	})

	It("becomes Ready with the right map, status and outputs", func() {
		eventuallyCondition(ns, "cache", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
		got := get(ns, "cache")
		Expect(got.Status.ShardCount).To(Equal(int32(3)))
		Expect(got.Status.NodeCount).To(Equal(int32(6)))
		Expect(got.Status.HealthyNodeCount).To(Equal(int32(6)))
		Expect(got.Status.SlotsCovered).To(Equal(int32(16384)))
		Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		Expect(got.Status.Binding).To(Equal(&rconnv1.BindingStatus{Name: "cache"}))
		want := map[string]string{}
		for _, n := range rc.Nodes {
			want[n.Announced] = fmt.Sprintf("redis-%d.redis.%s.svc.cluster.local:%d", n.Index, ns, n.Port)
		}
		applied := map[string]string{}
		for _, e := range got.Status.NodeAddressMap {
			applied[e.Announced] = e.Reachable
			Expect(e.Source).To(Equal(rconnv1.MappingSourceService))
		}
		Expect(applied).To(Equal(want))
		for _, n := range got.Status.Nodes {
			Expect(n.Mapped).To(Equal(want[n.Announced]))
			Expect(n.Health).To(Equal(rconnv1.HealthHealthy))
		}

		cm, sec := outputs(ns, "cache")
		Expect(renderedMap(cm)).To(Equal(want))
		wantIDs := map[string]string{}
		for _, n := range rc.Nodes {
			wantIDs[n.ID] = want[n.Announced]
		}
		Expect(renderedNodeIDs(cm)).To(Equal(wantIDs), "rconn.nodeIds: every node's ID -> its mapped address")
		Expect(metav1.IsControlledBy(cm, got)).To(BeTrue())
		Expect(metav1.IsControlledBy(sec, got)).To(BeTrue())
		Expect(cm.Annotations).To(HaveKey("rconn.dev/content-hash"))
		Expect(cm.Data[pkgclient.ConfigFileName]).NotTo(ContainSubstring("s3cret"), "the ConfigMap must never hold the password")
		Expect(string(sec.Data["password"])).To(Equal("s3cret"))
		Expect(string(sec.Data["username"])).To(Equal("app"))
		Expect(string(sec.Data["type"])).To(Equal("redis"))
		Expect(string(sec.Data["host"]) + ":" + string(sec.Data["port"])).To(Equal(rc.Nodes[0].Addr()))
		// Spring Cloud Bindings' cluster keys: the root node first, then every reachable
		// (mapped) address once; never an announced one.
		seeds := strings.Split(string(sec.Data["cluster.nodes"]), ",")
		Expect(seeds[0]).To(Equal(rc.Nodes[0].Addr()))
		var targets []string
		for _, t := range want {
			targets = append(targets, t)
		}
		Expect(seeds[1:]).To(ConsistOf(targets))
		Expect(string(sec.Data["cluster.max-redirects"])).To(Equal("16"))
		Expect(sec.Data).NotTo(HaveKey("ssl"))
	})

	It("renders what pkg/client opens: SET/GET across all shards through the map", func() {
		cm, sec := outputs(ns, "cache")
		dir := kubeletMount(cm, sec)
		c, err := pkgclient.OpenOptions{Dial: dialer.Dial, ReloadInterval: -1}.Open(ctx, dir)
		Expect(err).NotTo(HaveOccurred())
		defer func() { Expect(c.Close()).To(Succeed()) }()
		for i := 0; i < 100; i++ {
			k := fmt.Sprintf("key-%d", i)
			Expect(c.Set(ctx, k, i, 0).Err()).To(Succeed())
			Expect(c.Get(ctx, k).Int()).To(Equal(i))
		}
		Expect(c.Do(ctx, "ACL", "WHOAMI").Text()).To(Equal("app"))
	})

	It("binds config.json to its Secret", func() {
		cm, sec := outputs(ns, "cache")
		raw := []byte(cm.Data[pkgclient.ConfigFileName])
		Expect(string(sec.Data[pkgclient.SecretKeyConfigDigest])).To(Equal(pkgclient.ConfigDigest(raw)), "the Secret's config.sha256 is the SHA-256 of config.json")
		cfg, err := pkgclient.LoadConfig(raw)
		Expect(err).NotTo(HaveOccurred())
		Expect(cfg.Rconn.SecretToken).To(Equal(string(sec.Data[pkgclient.SecretKeyToken])))
	})

	It("writes nothing to the API server at steady state", func() {
		eventuallyCondition(ns, "cache", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
		// Let any in-flight reconcile finish, then watch several health intervals (2s each).
		settled(func() int { return len(writes.in(ns)) }, time.Second)
		before := len(writes.in(ns))
		Consistently(func() []string { return writes.in(ns)[before:] }, 7*time.Second, 500*time.Millisecond).
			Should(BeEmpty(), "reconciles at steady state must not write")
	})

	It("follows an endpoint that moved: map and ConfigMap updated", func() {
		_, sec0 := outputs(ns, "cache")
		tokenBefore := string(sec0.Data[pkgclient.SecretKeyToken])
		es := &discoveryv1.EndpointSlice{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "redis-node-1"}, es)).To(Succeed())
		es.Endpoints[0].Hostname = ptr("redis-1-moved")
		dialer.SetName(fmt.Sprintf("redis-1-moved.redis.%s.svc.cluster.local", ns), "127.0.0.1")
		Expect(k8s.Update(ctx, es)).To(Succeed())
		want := fmt.Sprintf("redis-1-moved.redis.%s.svc.cluster.local:%d", ns, rc.Nodes[1].Port)
		Eventually(func() string {
			cm, _ := outputs(ns, "cache")
			return renderedMap(cm)[rc.Nodes[1].Announced]
		}, 30*time.Second, 100*time.Millisecond).Should(Equal(want))
		// The map change re-rendered the Secret too: a new token, and the new config.json's digest.
		Eventually(func() string {
			cm, sec := outputs(ns, "cache")
			if string(sec.Data[pkgclient.SecretKeyToken]) == tokenBefore {
				return "the token did not change"
			}
			if have, want := string(sec.Data[pkgclient.SecretKeyConfigDigest]), pkgclient.ConfigDigest([]byte(cm.Data[pkgclient.ConfigFileName])); have != want {
				return "config.sha256 " + have + ", config.json hashes to " + want
			}
			return "bound"
		}, 30*time.Second, 100*time.Millisecond).Should(Equal("bound"))
		eventuallyCondition(ns, "cache", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
	})

	It("re-renders the Secret when the ACL Secret rotates", func() {
		cm0, sec0 := outputs(ns, "cache")
		tokenBefore := string(sec0.Data[pkgclient.SecretKeyToken])
		Expect(tokenBefore).NotTo(BeEmpty())
		Expect(cm0.Data[pkgclient.ConfigFileName]).To(ContainSubstring(`"secretToken": "` + tokenBefore + `"`))
		admin := rc.Nodes[0].Client()
		defer func() { _ = admin.Close() }()
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
			_, sec := outputs(ns, "cache")
			return string(sec.Data["password"])
		}, 30*time.Second, 100*time.Millisecond).Should(Equal("rotated"))
		// config.json names the new Secret's generation token (a new one: the content changed)
		// and the keys of secret material it holds.
		_, sec := outputs(ns, "cache")
		token := string(sec.Data[pkgclient.SecretKeyToken])
		Expect(token).NotTo(BeEmpty())
		Expect(token).NotTo(Equal(tokenBefore))
		cm, _ := outputs(ns, "cache")
		cfg, err := pkgclient.LoadConfig([]byte(cm.Data[pkgclient.ConfigFileName]))
		Expect(err).NotTo(HaveOccurred())
		Expect(cfg.Rconn.SecretToken).To(Equal(token))
		Expect(cfg.Rconn.SecretKeys).To(Equal([]string{pkgclient.SecretKeyUsername, pkgclient.SecretKeyPassword}))
	})

	It("restores a deleted or hand-edited output", func() {
		cm, _ := outputs(ns, "cache")
		good := cm.Data[pkgclient.ConfigFileName]
		cm.Data[pkgclient.ConfigFileName] = `{"rootNodes":[]}`
		Expect(k8s.Update(ctx, cm)).To(Succeed())
		Eventually(func() string {
			cm, _ := outputs(ns, "cache")
			return cm.Data[pkgclient.ConfigFileName]
		}, 30*time.Second, 100*time.Millisecond).Should(Equal(good))

		Expect(k8s.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cache", Namespace: ns}})).To(Succeed())
		Eventually(func() error {
			return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cache"}, &corev1.Secret{})
		}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	})

	It("follows spec changes with observedGeneration", func() {
		updateSpec(ns, "cache", func(rc *rconnv1.RedisConnection) { rc.Spec.Defaults.ClientName = "renamed" })
		Eventually(func() bool {
			rc := get(ns, "cache")
			return rc.Status.ObservedGeneration == rc.Generation && rc.Generation > 1
		}, 30*time.Second, 100*time.Millisecond).Should(BeTrue())
		cm, _ := outputs(ns, "cache")
		Expect(cm.Data[pkgclient.ConfigFileName]).To(ContainSubstring(`"name": "renamed"`))
	})

	It("moves its outputs when spec.output renames them, deleting the old ones", func() {
		updateSpec(ns, "cache", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Output = &rconnv1.Output{ConfigMapName: "cache-v2", SecretName: "cache-v2-binding"}
		})
		Eventually(func() error {
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cache-v2"}, &corev1.ConfigMap{}); err != nil {
				return err
			}
			return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cache-v2-binding"}, &corev1.Secret{})
		}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
		Eventually(func() bool {
			errCM := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cache"}, &corev1.ConfigMap{})
			errSec := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cache"}, &corev1.Secret{})
			return apierrors.IsNotFound(errCM) && apierrors.IsNotFound(errSec)
		}, 30*time.Second, 100*time.Millisecond).Should(BeTrue(), "the old ConfigMap and Secret named cache are deleted")
		// The status patch follows the deletes in the same reconcile.
		Eventually(func() string { return get(ns, "cache").Status.Binding.Name }, 10*time.Second, 100*time.Millisecond).Should(Equal("cache-v2-binding"))

		// Back to the default names, so the specs after this one read outputs named "cache".
		updateSpec(ns, "cache", func(rc *rconnv1.RedisConnection) { rc.Spec.Output = nil })
		Eventually(func() bool {
			errNew := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cache-v2"}, &corev1.ConfigMap{})
			errOld := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cache"}, &corev1.ConfigMap{})
			return apierrors.IsNotFound(errNew) && errOld == nil
		}, 30*time.Second, 100*time.Millisecond).Should(BeTrue())
	})

	It("reports a failover and recovers Ready", func() {
		// Kill the master of the first shard; its replica takes over after cluster-node-timeout.
		master := rc.Masters()[0]
		master.Kill()
		Eventually(func() string {
			rc := get(ns, "cache")
			for _, s := range rc.Status.Shards {
				if len(s.Slots) > 0 && strings.HasPrefix(s.Slots[0], "0-") {
					return s.MasterID
				}
			}
			return ""
		}, 60*time.Second, 200*time.Millisecond).ShouldNot(Or(Equal(master.ID), BeEmpty()))
		Eventually(func() []string {
			var evs corev1.EventList
			_ = k8s.List(ctx, &evs, client.InNamespace(ns))
			var reasons []string
			for _, e := range evs.Items {
				reasons = append(reasons, e.Reason)
			}
			return reasons
		}, 30*time.Second, 200*time.Millisecond).Should(ContainElement("FailoverDetected"))
		// The dead node stays in the topology as failed: the cluster works again, the node does not.
		eventuallyCondition(ns, "cache", rconnv1.ConditionTopologyDiscovered, metav1.ConditionTrue, rconnv1.ReasonDiscovered)
		eventuallyCondition(ns, "cache", rconnv1.ConditionNodesHealthy, metav1.ConditionFalse, rconnv1.ReasonNodesUnreachable)
		// ... but its empty shard is not a shard: three own the slots.
		Eventually(func() int32 { return get(ns, "cache").Status.ShardCount }, 30*time.Second, 200*time.Millisecond).Should(Equal(int32(3)))
		Consistently(func() int32 { return get(ns, "cache").Status.ShardCount }, 3*time.Second, 200*time.Millisecond).Should(Equal(int32(3)))
		Expect(condition(ns, "cache", rconnv1.ConditionTopologyDiscovered).Message).To(HavePrefix("3 shards,"))
		master.Restart(GinkgoT())
		// The restarted node lost the in-memory ACL rotation of the test above: replay it.
		c := master.Client()
		Expect(c.Do(ctx, "ACL", "SETUSER", "app", ">rotated").Err()).To(Succeed())
		Expect(c.Close()).To(Succeed())
		eventuallyCondition(ns, "cache", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
	})
})

var _ = Describe("bad input", func() {
	It("reports a missing Secret, a missing key and bad PEM, and writes no output", func() {
		ns := newNamespace()
		s := redistest.StartServer(GinkgoT(), redistest.ServerOptions{})
		rcObj := &rconnv1.RedisConnection{
			ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: ns},
			Spec: rconnv1.RedisConnectionSpec{
				Mode:      rconnv1.ModeStandalone,
				RootNodes: []rconnv1.RootNode{{URL: rconnv1.RedisURL("redis://" + s.Addr())}},
				Defaults:  &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "creds"}}},
			},
		}
		Expect(k8s.Create(ctx, rcObj)).To(Succeed())
		eventuallyCondition(ns, "bad", rconnv1.ConditionCredentialsResolved, metav1.ConditionFalse, rconnv1.ReasonSecretNotFound)
		eventuallyCondition(ns, "bad", rconnv1.ConditionReady, metav1.ConditionFalse, rconnv1.ReasonSecretNotFound)
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "bad"}, &corev1.ConfigMap{})).NotTo(Succeed(), "no output from a half-resolved state")

		Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: ns}, Data: map[string][]byte{"pass": []byte("x")}})).To(Succeed())
		eventuallyCondition(ns, "bad", rconnv1.ConditionCredentialsResolved, metav1.ConditionFalse, rconnv1.ReasonSecretKeyMissing)

		sec := &corev1.Secret{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "creds"}, sec)).To(Succeed())
		sec.Data["password"] = []byte("")
		Expect(k8s.Update(ctx, sec)).To(Succeed())
		// The server has no password: AUTH with an empty password for "default" fails to auth?
		// Redis accepts no AUTH at all; an empty password makes go-redis skip AUTH.
		eventuallyCondition(ns, "bad", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)

		updateSpec(ns, "bad", func(got *rconnv1.RedisConnection) {
			got.Spec.Defaults = &rconnv1.NodeDefaults{}
			got.Spec.RootNodes = []rconnv1.RootNode{{URL: rconnv1.RedisURL("rediss://" + s.Addr())}}
			got.Spec.Defaults.TLS = &rconnv1.TLSConfig{Enabled: true, SecretRef: &rconnv1.LocalSecretReference{Name: "tls"}}
		})
		Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tls", Namespace: ns},
			Data: map[string][]byte{"ca.crt": []byte("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")}})).To(Succeed())
		eventuallyCondition(ns, "bad", rconnv1.ConditionCredentialsResolved, metav1.ConditionFalse, rconnv1.ReasonInvalidCertificate)
		// The previous good output is kept.
		cm, _ := outputs(ns, "bad")
		Expect(cm.Data[pkgclient.ConfigFileName]).To(ContainSubstring("redis://" + s.Addr()))
	})

	It("reports a standalone server in Cluster mode, and all root nodes down", func() {
		ns := newNamespace()
		s := redistest.StartServer(GinkgoT(), redistest.ServerOptions{})
		Expect(k8s.Create(ctx, &rconnv1.RedisConnection{
			ObjectMeta: metav1.ObjectMeta{Name: "notcluster", Namespace: ns},
			Spec:       rconnv1.RedisConnectionSpec{RootNodes: []rconnv1.RootNode{{URL: rconnv1.RedisURL("redis://" + s.Addr())}}},
		})).To(Succeed())
		eventuallyCondition(ns, "notcluster", rconnv1.ConditionTopologyDiscovered, metav1.ConditionFalse, rconnv1.ReasonNotACluster)
		s.Kill()
		eventuallyCondition(ns, "notcluster", rconnv1.ConditionTopologyDiscovered, metav1.ConditionFalse, rconnv1.ReasonRootNodesUnreachable)
		eventuallyCondition(ns, "notcluster", rconnv1.ConditionReady, metav1.ConditionFalse, rconnv1.ReasonRootNodesUnreachable)
	})

	It("reports root node settings pkg/cluster refuses as InvalidOptions, not RootNodesUnreachable", func() {
		ns := newNamespace()
		Expect(k8s.Create(ctx, &rconnv1.RedisConnection{
			ObjectMeta: metav1.ObjectMeta{Name: "db3", Namespace: ns},
			Spec:       rconnv1.RedisConnectionSpec{RootNodes: []rconnv1.RootNode{{URL: "redis://[127.0.0.1]:6379"}}},
		})).To(Succeed())
		eventuallyCondition(ns, "db3", rconnv1.ConditionTopologyDiscovered, metav1.ConditionFalse, rconnv1.ReasonInvalidOptions)
		Expect(condition(ns, "db3", rconnv1.ConditionTopologyDiscovered).Message).To(ContainSubstring("not an IPv6 address"))
	})

	It("reports uncovered slots and keeps the previous output", func() {
		ns := newNamespace()
		rc := redistest.StartCluster(GinkgoT(), redistest.ClusterOptions{Masters: 3})
		Expect(k8s.Create(ctx, &rconnv1.RedisConnection{
			ObjectMeta: metav1.ObjectMeta{Name: "slots", Namespace: ns},
			Spec: rconnv1.RedisConnectionSpec{RootNodes: []rconnv1.RootNode{{URL: rconnv1.RedisURL("redis://" + rc.Nodes[0].Addr())}},
				HealthCheck: &rconnv1.HealthCheck{Interval: &metav1.Duration{Duration: time.Second}, Timeout: &metav1.Duration{Duration: 500 * time.Millisecond}}},
		})).To(Succeed())
		eventuallyCondition(ns, "slots", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
		for _, n := range rc.Nodes {
			c := n.Client()
			Expect(c.Do(ctx, "CLUSTER", "DELSLOTSRANGE", 0, 99).Err()).To(Or(Succeed(), MatchError(ContainSubstring("already unassigned"))))
			Expect(c.Close()).To(Succeed())
		}
		eventuallyCondition(ns, "slots", rconnv1.ConditionTopologyDiscovered, metav1.ConditionFalse, rconnv1.ReasonSlotsUncovered)
		eventuallyCondition(ns, "slots", rconnv1.ConditionConfigRendered, metav1.ConditionFalse, rconnv1.ReasonPrerequisitesNotMet)
		_, _ = outputs(ns, "slots")
	})
})

var _ = Describe("address types", func() {
	It("maps static entries over dynamic ones and reports conflicts", func() {
		ns := newNamespace()
		rc := redistest.StartCluster(GinkgoT(), redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname})
		headlessService(ns, rc)
		// A second headless Service listing node 2 under another pod name: a conflict for node 2.
		Expect(k8s.Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "redis-alt", Namespace: ns, Labels: map[string]string{"app": "redis"}},
			Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: []corev1.ServicePort{{Name: "redis", Port: 6379}}},
		})).To(Succeed())
		createSlice(ns, "redis-alt", rc.Nodes[2], "other")
		obj := podDNSConnection(ns, "mixed", rc)
		obj.Spec.Defaults = nil
		obj.Spec.NodeAddressMap.Static = []rconnv1.StaticAddressMapping{{Announced: rconnv1.HostPort(rc.Nodes[0].Announced), Reachable: rconnv1.HostPort(rc.Nodes[0].Addr())}}
		Expect(k8s.Create(ctx, obj)).To(Succeed())
		eventuallyCondition(ns, "mixed", rconnv1.ConditionAddressMapResolved, metav1.ConditionFalse, rconnv1.ReasonMappingConflict)
		c := condition(ns, "mixed", rconnv1.ConditionAddressMapResolved)
		Expect(c.Message).To(ContainSubstring(rc.Nodes[2].Announced))
		got := get(ns, "mixed")
		applied := map[string]rconnv1.AppliedAddressMapping{}
		for _, e := range got.Status.NodeAddressMap {
			applied[e.Announced] = e
		}
		Expect(applied[rc.Nodes[0].Announced].Source).To(Equal(rconnv1.MappingSourceStatic))
		Expect(applied[rc.Nodes[0].Announced].Reachable).To(Equal(rc.Nodes[0].Addr()))
		Expect(applied).NotTo(HaveKey(rc.Nodes[2].Announced), "a conflicting key is never guessed")
		// The conflict costs only its own entry: the outputs render the rest.
		Eventually(func() map[string]string {
			cm := &corev1.ConfigMap{}
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "mixed"}, cm); err != nil {
				return nil
			}
			return renderedMap(cm)
		}, 30*time.Second, 100*time.Millisecond).Should(SatisfyAll(
			HaveKeyWithValue(rc.Nodes[0].Announced, rc.Nodes[0].Addr()),
			HaveKey(rc.Nodes[1].Announced),
			Not(HaveKey(rc.Nodes[2].Announced))))
	})

	It("maps through ClusterIP, LoadBalancer and NodePort Services", func() {
		ns := newNamespace()
		rc := redistest.StartCluster(GinkgoT(), redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname})
		for _, typ := range []rconnv1.AddressType{rconnv1.AddressTypeClusterIP, rconnv1.AddressTypeLoadBalancer, rconnv1.AddressTypeNodePort} {
			By(string(typ))
			label := strings.ToLower(string(typ))
			want := map[string]string{}
			for _, n := range rc.Nodes {
				name := fmt.Sprintf("%s-%d", label, n.Index)
				svc := &corev1.Service{
					ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"expose": label}},
					Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Ports: []corev1.ServicePort{{Name: "redis", Port: 6379, TargetPort: intstr.FromInt32(int32(n.Port))}}},
				}
				if typ == rconnv1.AddressTypeLoadBalancer {
					svc.Spec.Type = corev1.ServiceTypeLoadBalancer
				}
				if typ == rconnv1.AddressTypeNodePort {
					svc.Spec.Type = corev1.ServiceTypeNodePort
				}
				Expect(k8s.Create(ctx, svc)).To(Succeed())
				createSlice(ns, name, n, "")
				var host string
				port := 6379
				switch typ {
				case rconnv1.AddressTypeClusterIP:
					host = svc.Spec.ClusterIP
				case rconnv1.AddressTypeLoadBalancer:
					host = fmt.Sprintf("127.2.%d.%d", nsCounter.Load()%250, n.Index+1)
					svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: host}}
					Expect(k8s.Status().Update(ctx, svc)).To(Succeed())
				case rconnv1.AddressTypeNodePort:
					host = fmt.Sprintf("127.3.%d.%d", nsCounter.Load()%250, n.Index+1)
					port = int(svc.Spec.Ports[0].NodePort)
					node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%d", n.Index)}}
					if err := k8s.Create(ctx, node); err == nil {
						node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: host}}
						Expect(k8s.Status().Update(ctx, node)).To(Succeed())
					} else {
						Expect(k8s.Get(ctx, client.ObjectKey{Name: node.Name}, node)).To(Succeed())
						node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: host}}
						Expect(k8s.Status().Update(ctx, node)).To(Succeed())
					}
				}
				Expect(net.ParseIP(host).IsLoopback()).To(BeTrue(), "%s address %s must be loopback", typ, host)
				reach := net.JoinHostPort(host, strconv.Itoa(port))
				// What kube-proxy, the load balancer or the node port would do: forward to the pod.
				nettest.StartProxyAt(GinkgoT(), reach, n.Addr())
				want[n.Announced] = reach
			}
			obj := &rconnv1.RedisConnection{
				ObjectMeta: metav1.ObjectMeta{Name: label, Namespace: ns},
				Spec: rconnv1.RedisConnectionSpec{
					RootNodes: []rconnv1.RootNode{{URL: rconnv1.RedisURL("redis://" + rc.Nodes[0].Addr())}},
					NodeAddressMap: &rconnv1.NodeAddressMap{FromServices: []rconnv1.ServiceAddressSource{{
						Selector: metav1.LabelSelector{MatchLabels: map[string]string{"expose": label}}, AddressType: typ}}},
				},
			}
			Expect(k8s.Create(ctx, obj)).To(Succeed())
			Eventually(func() map[string]string {
				got := get(ns, label)
				m := map[string]string{}
				for _, e := range got.Status.NodeAddressMap {
					m[e.Announced] = e.Reachable
				}
				return m
			}, 30*time.Second, 100*time.Millisecond).Should(Equal(want))
			// Discovery and health went through those addresses.
			eventuallyCondition(ns, label, rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
			for _, a := range want {
				Expect(dialer.Has(a)).To(BeTrue(), "%s was never dialed", a)
			}
		}
	})
})
