package controllers_test

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/controllers"
	"github.com/rconn-dev/redis-connection-operator/internal/testing/hostile"
	"github.com/rconn-dev/redis-connection-operator/internal/world/certs"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// The attacks of the trust issue, each against the real manager wiring (envtest + the
// reconciler as the manager runs it) with a hostile server written in Go: the manager stays up,
// and an unrelated RedisConnection stays Ready and reactive throughout.

// hostileConnection is a Cluster-mode RedisConnection whose only root node is addr.
func hostileConnection(ns, name, addr string, hc *rconnv1.HealthCheck, connectTimeout time.Duration) *rconnv1.RedisConnection {
	rc := &rconnv1.RedisConnection{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: rconnv1.RedisConnectionSpec{
			RootNodes:   []rconnv1.RootNode{{URL: rconnv1.RedisURL("redis://" + addr)}},
			HealthCheck: hc,
		},
	}
	if connectTimeout > 0 {
		rc.Spec.Defaults = &rconnv1.NodeDefaults{ConnectTimeout: &metav1.Duration{Duration: connectTimeout}}
	}
	return rc
}

// bystander is an unrelated tenant: a standalone Redis with an ACL user, whose Secret the test
// rotates to prove the controller still reacts to it.
type bystander struct {
	ns     string
	server *redistest.Server
}

func startBystander() *bystander {
	b := &bystander{ns: newNamespace()}
	b.server = redistest.StartServer(GinkgoT(), redistest.ServerOptions{Users: []redistest.User{{Name: "app", Password: "pw-0"}}})
	aclSecret(b.ns, "acl", "app", "pw-0")
	Expect(k8s.Create(ctx, &rconnv1.RedisConnection{
		ObjectMeta: metav1.ObjectMeta{Name: "bystander", Namespace: b.ns},
		Spec: rconnv1.RedisConnectionSpec{
			Mode:      rconnv1.ModeStandalone,
			RootNodes: []rconnv1.RootNode{{URL: rconnv1.RedisURL("redis://" + b.server.Addr())}},
			Defaults: &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{
				SecretRef: rconnv1.LocalSecretReference{Name: "acl"}, UsernameKey: "username"}},
		},
	})).To(Succeed())
	eventuallyCondition(b.ns, "bystander", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
	return b
}

// rotate changes the ACL password in Redis and in the Secret, and returns the new password.
func (b *bystander) rotate(pw string) {
	c := b.server.Client()
	defer func() { _ = c.Close() }()
	Expect(c.Do(ctx, "ACL", "SETUSER", "app", "on", ">"+pw, "~*", "+@all").Err()).To(Succeed())
	sec := &corev1.Secret{}
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: b.ns, Name: "acl"}, sec)).To(Succeed())
	sec.Data["password"] = []byte(pw)
	Expect(k8s.Update(ctx, sec)).To(Succeed())
}

// outputPassword is the password in the bystander's rendered Secret.
func (b *bystander) outputPassword() string {
	sec := &corev1.Secret{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: b.ns, Name: "bystander"}, sec); err != nil {
		return ""
	}
	return string(sec.Data[pkgclient.SecretKeyPassword])
}

// statusText is every condition message and reason of a RedisConnection, and the messages of
// its Events: what a tenant (or anyone who can read status and Events) gets to see.
func statusText(ns, name string) string {
	var b strings.Builder
	for _, c := range get(ns, name).Status.Conditions {
		b.WriteString(c.Type + "/" + c.Reason + ": " + c.Message + "\n")
	}
	var evs eventsv1.EventList
	Expect(k8s.List(ctx, &evs, client.InNamespace(ns))).To(Succeed())
	for _, e := range evs.Items {
		if e.Regarding.Name == name {
			b.WriteString("event " + e.Reason + ": " + e.Note + "\n")
		}
	}
	return b.String()
}

var _ = Describe("a hostile root node", func() {
	It("cannot crash the manager with replies that declare huge sizes, and is reported as ProtocolError", func() {
		by := startBystander()
		ns := newNamespace()
		attacks := map[string]string{
			"array":  hostile.HugeArray,
			"bulk":   hostile.HugeBulk,
			"map":    hostile.HugeMap,
			"nested": hostile.Nested(100000),
		}
		for name, raw := range attacks {
			srv := hostile.FixedReply(GinkgoT(), raw)
			Expect(k8s.Create(ctx, hostileConnection(ns, name, srv.Addr(), nil, 0))).To(Succeed())
		}
		for name := range attacks {
			eventuallyCondition(ns, name, rconnv1.ConditionTopologyDiscovered, metav1.ConditionFalse, rconnv1.ReasonProtocolError)
			eventuallyCondition(ns, name, rconnv1.ConditionReady, metav1.ConditionFalse, rconnv1.ReasonProtocolError)
		}
		// Still alive (this process is the manager) and still reacting to the bystander.
		by.rotate("pw-1")
		Eventually(by.outputPassword, 20*time.Second, 100*time.Millisecond).Should(Equal("pw-1"))
		eventuallyCondition(by.ns, "bystander", rconnv1.ConditionReady, metav1.ConditionTrue, rconnv1.ReasonReady)
	})

	It("cannot delay another RedisConnection: root nodes that accept and never answer hold no worker", func() {
		by := startBystander()
		ns := newNamespace()
		// The slowest settings the API allows: a probe of each of these holds its sockets for
		// the manager's cap (--max-redis-timeout), far longer than this test runs. One silent
		// server each, so that no two share an inspector.
		hc := &rconnv1.HealthCheck{Interval: &metav1.Duration{Duration: 2 * time.Minute}, Timeout: &metav1.Duration{Duration: time.Minute}}
		names := []string{"s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"}
		var silent []*hostile.Server
		for _, n := range names {
			srv := hostile.Silent(GinkgoT())
			silent = append(silent, srv)
			Expect(k8s.Create(ctx, hostileConnection(ns, n, srv.Addr(), hc, 5*time.Minute))).To(Succeed())
		}
		for _, srv := range silent {
			Eventually(srv.Accepted, 20*time.Second, 50*time.Millisecond).Should(BeNumerically(">=", 1), "every silent root is being probed")
		}
		by.rotate("pw-2")
		Eventually(by.outputPassword, 20*time.Second, 50*time.Millisecond).Should(Equal("pw-2"))
		// The rotation got through while every silent root's first probe is still waiting for
		// an answer: before, four reconcile workers sat in those probes and the rotation waited
		// for them to time out.
		for _, n := range names {
			c := condition(ns, n, rconnv1.ConditionTopologyDiscovered)
			Expect(c.Reason).To(Equal(rconnv1.ReasonDiscovering), "%s: %s", n, c.Message)
		}
	})

	It("cannot tell a closed port from an open non-Redis one, and sees none of the bytes it sent", func() {
		ns := newNamespace()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		closedAddr := ln.Addr().String()
		Expect(ln.Close()).To(Succeed())
		targets := map[string]string{
			"closed": closedAddr,
			"eof":    hostile.CloseOnAccept(GinkgoT()).Addr(),
			"ssh":    hostile.Garbage(GinkgoT(), hostile.SSHBanner).Addr(),
			"http":   hostile.Garbage(GinkgoT(), hostile.HTTPBadRequest).Addr(),
			"silent": hostile.Silent(GinkgoT()).Addr(),
		}
		hc := &rconnv1.HealthCheck{Interval: &metav1.Duration{Duration: 5 * time.Second}, Timeout: &metav1.Duration{Duration: 500 * time.Millisecond}}
		for name, addr := range targets {
			Expect(k8s.Create(ctx, hostileConnection(ns, name, addr, hc, 500*time.Millisecond))).To(Succeed())
		}
		seen := map[string]string{}
		for name, addr := range targets {
			eventuallyCondition(ns, name, rconnv1.ConditionTopologyDiscovered, metav1.ConditionFalse, rconnv1.ReasonRootNodesUnreachable)
			c := condition(ns, name, rconnv1.ConditionTopologyDiscovered)
			seen[name] = strings.ReplaceAll(c.Message, addr, "ADDR")
		}
		for name, msg := range seen {
			Expect(msg).To(Equal(seen["closed"]), "%s reads differently from a closed port", name)
		}
		for name := range targets {
			text := statusText(ns, name)
			Expect(text).NotTo(ContainSubstring(hostile.Secret))
			Expect(text).NotTo(ContainSubstring("SSH-"))
			Expect(text).NotTo(ContainSubstring("HTTP/1.1"))
			Expect(strings.ToLower(text)).NotTo(ContainSubstring("refused"))
			Expect(text).NotTo(ContainSubstring("EOF"))
		}
	})

	It("with TLS on, cannot tell a closed port from a TLS service whose certificate fails, a TLS service that is not Redis, or a plain-text banner", func() {
		// Issue 23, item 5: before, a certificate that failed verification read
		// TLSHandshakeFailed ("the TLS server certificate ... failed verification"), telling
		// every TLS listener (a kubelet, a webhook, etcd) from a closed port.
		ns := newNamespace()
		trusted, err := certs.NewCA("trusted")
		Expect(err).NotTo(HaveOccurred())
		untrusted, err := certs.NewCA("untrusted")
		Expect(err).NotTo(HaveOccurred())
		Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "ca", Namespace: ns},
			Data: map[string][]byte{"ca.crt": trusted.CertPEM}})).To(Succeed())
		loopback := []net.IP{net.IPv4(127, 0, 0, 1)}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		closedAddr := ln.Addr().String()
		Expect(ln.Close()).To(Succeed())
		targets := map[string]string{
			"closed":          closedAddr,
			"eof":             hostile.CloseOnAccept(GinkgoT()).Addr(),
			"ssh":             hostile.Garbage(GinkgoT(), hostile.SSHBanner).Addr(),
			"http":            hostile.Garbage(GinkgoT(), hostile.HTTPBadRequest).Addr(),
			"silent":          hostile.Silent(GinkgoT()).Addr(),
			"https-untrusted": hostile.HTTPS(GinkgoT(), tlsServerCert(untrusted, loopback)).Addr(),
			"https-othername": hostile.HTTPS(GinkgoT(), tlsServerCert(trusted, nil)).Addr(),
			"https-trusted":   hostile.HTTPS(GinkgoT(), tlsServerCert(trusted, loopback)).Addr(),
		}
		hc := &rconnv1.HealthCheck{Interval: &metav1.Duration{Duration: 5 * time.Second}, Timeout: &metav1.Duration{Duration: 500 * time.Millisecond}}
		for name, addr := range targets {
			rc := hostileConnection(ns, name, addr, hc, 500*time.Millisecond)
			rc.Spec.RootNodes[0].URL = rconnv1.RedisURL("rediss://" + addr)
			rc.Spec.Defaults.TLS = &rconnv1.TLSConfig{Enabled: true, SecretRef: &rconnv1.LocalSecretReference{Name: "ca"}}
			Expect(k8s.Create(ctx, rc)).To(Succeed())
		}
		seen := map[string]string{}
		for name, addr := range targets {
			eventuallyCondition(ns, name, rconnv1.ConditionTopologyDiscovered, metav1.ConditionFalse, rconnv1.ReasonRootNodesUnreachable)
			eventuallyCondition(ns, name, rconnv1.ConditionReady, metav1.ConditionFalse, rconnv1.ReasonRootNodesUnreachable)
			c := condition(ns, name, rconnv1.ConditionTopologyDiscovered)
			seen[name] = strings.ReplaceAll(c.Message, addr, "ADDR")
		}
		Expect(seen["closed"]).To(ContainSubstring("ca.crt"), "the honest case (a TLS Redis with the wrong CA) gets a hint")
		for name, msg := range seen {
			Expect(msg).To(Equal(seen["closed"]), "%s reads differently from a closed port", name)
		}
		for name := range targets {
			text := statusText(ns, name)
			Expect(text).NotTo(ContainSubstring(rconnv1.ReasonTLSHandshakeFailed))
			Expect(text).NotTo(ContainSubstring("TLS server certificate"), "the message of the old TLSHandshakeFailed")
			Expect(text).NotTo(ContainSubstring("tls-service"), "the certificate's names are the server's bytes")
			Expect(text).NotTo(ContainSubstring("x509"))
			Expect(text).NotTo(ContainSubstring(hostile.Secret))
			Expect(text).NotTo(ContainSubstring("SSH-"))
		}
	})

	It("denies loopback when the reconciler is built without allow-loopback", func() {
		// Issue 23, item 5: before, 127.0.0.0/8 and ::1 were dialable by default (0.0.0.0 was
		// denied because it "reaches the local host"; so does loopback). The suite's manager
		// allows loopback (its Redis servers live there); this reconciler runs with the
		// manager's default policy, and its status patches are captured, not written, so the
		// suite's manager keeps the object.
		ns := newNamespace()
		s := redistest.StartServer(GinkgoT(), redistest.ServerOptions{})
		_, port, err := net.SplitHostPort(s.Addr())
		Expect(err).NotTo(HaveOccurred())
		roots := map[string]string{"v4": s.Addr(), "mapped": "[::ffff:127.0.0.1]:" + port, "v6": "[::1]:" + port}
		for name, addr := range roots {
			Expect(k8s.Create(ctx, &rconnv1.RedisConnection{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
				Spec: rconnv1.RedisConnectionSpec{
					Mode:      rconnv1.ModeStandalone,
					RootNodes: []rconnv1.RootNode{{URL: rconnv1.RedisURL("redis://" + addr)}},
				},
			})).To(Succeed())
		}
		// The suite's manager (loopback allowed) finds the server: the Redis is real and answers.
		eventuallyCondition(ns, "v4", rconnv1.ConditionTopologyDiscovered, metav1.ConditionTrue, rconnv1.ReasonDiscovered)
		rec := nettest.NewRecorder(nil)
		for name, addr := range roots {
			statuses := &capturedStatus{Client: k8s}
			r := &controllers.RedisConnectionReconciler{
				Client: statuses, APIReader: k8s, Scheme: kubetest.Scheme(), Dial: rec.Dial,
				AddressPolicy: cluster.NewAddressPolicy(cluster.AddressPolicyOptions{DenyAddrPorts: apiServerAddrs}),
			}
			key := types.NamespacedName{Namespace: ns, Name: name}
			reconcile := func() {
				_, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key})
				ExpectWithOffset(1, err).NotTo(HaveOccurred())
			}
			Eventually(func() string {
				reconcile()
				c := statuses.condition(rconnv1.ConditionTopologyDiscovered)
				if c == nil {
					return ""
				}
				return c.Reason + ": " + c.Message
			}, 20*time.Second, 100*time.Millisecond).Should(Equal(rconnv1.ReasonAddressDenied+": the address policy denies "+addr+" (dialing "+addr+")"), name)
			Expect(statuses.condition(rconnv1.ConditionReady).Reason).To(Equal(rconnv1.ReasonAddressDenied), name)
			// A deleted RedisConnection's inspector is closed by its next reconcile.
			Expect(k8s.Delete(ctx, get(ns, name))).To(Succeed())
			Eventually(func() error { return k8s.Get(ctx, key, &rconnv1.RedisConnection{}) }, 10*time.Second).ShouldNot(Succeed())
			reconcile()
		}
		Expect(rec.Dialed()).To(BeEmpty(), "a denied loopback address was dialed")
	})

	It("refuses to dial the API server, and says so without dialing it", func() {
		ns := newNamespace()
		var names []string
		for i, ap := range apiServerAddrs {
			name := "api" + string(rune('a'+i))
			names = append(names, name)
			Expect(k8s.Create(ctx, hostileConnection(ns, name, ap.String(), nil, 0))).To(Succeed())
		}
		for i, name := range names {
			eventuallyCondition(ns, name, rconnv1.ConditionTopologyDiscovered, metav1.ConditionFalse, rconnv1.ReasonAddressDenied)
			eventuallyCondition(ns, name, rconnv1.ConditionReady, metav1.ConditionFalse, rconnv1.ReasonAddressDenied)
			Expect(dialer.Has(apiServerAddrs[i].String())).To(BeFalse(), "the controller dialed the API server at %s", apiServerAddrs[i])
		}
	})

	It("cannot take over a ConfigMap or Secret it does not own by naming it as an output", func() {
		ns := newNamespace()
		s := redistest.StartServer(GinkgoT(), redistest.ServerOptions{})
		Expect(k8s.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "theirs", Namespace: ns}, Data: map[string]string{"config.json": "mine"}})).To(Succeed())
		Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "their-secret", Namespace: ns}, Data: map[string][]byte{"password": []byte("mine")}})).To(Succeed())
		Expect(k8s.Create(ctx, &rconnv1.RedisConnection{
			ObjectMeta: metav1.ObjectMeta{Name: "squat", Namespace: ns},
			Spec: rconnv1.RedisConnectionSpec{
				Mode:      rconnv1.ModeStandalone,
				RootNodes: []rconnv1.RootNode{{URL: rconnv1.RedisURL("redis://" + s.Addr())}},
				Output:    &rconnv1.Output{ConfigMapName: "theirs", SecretName: "their-secret"},
			},
		})).To(Succeed())
		eventuallyCondition(ns, "squat", rconnv1.ConditionConfigRendered, metav1.ConditionFalse, rconnv1.ReasonOutputConflict)
		cm := &corev1.ConfigMap{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "theirs"}, cm)).To(Succeed())
		Expect(cm.Data).To(Equal(map[string]string{"config.json": "mine"}))
		Expect(cm.OwnerReferences).To(BeEmpty())
		sec := &corev1.Secret{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "their-secret"}, sec)).To(Succeed())
		Expect(sec.Data).To(Equal(map[string][]byte{"password": []byte("mine")}))
		Expect(sec.OwnerReferences).To(BeEmpty())
	})
})

// tlsServerCert is a server certificate from ca for ips (none: a DNS name only, so dialing an IP
// fails the name check), named tls-service: a name status must never show.
func tlsServerCert(ca *certs.CA, ips []net.IP) tls.Certificate {
	p, err := ca.Issue(certs.Request{CommonName: "tls-service", DNSNames: []string{"tls-service.rconn-test.invalid"}, IPs: ips, Server: true})
	Expect(err).NotTo(HaveOccurred())
	c, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
	Expect(err).NotTo(HaveOccurred())
	return c
}

// capturedStatus is the test's client, except that status patches are recorded instead of
// written: a second reconciler can run against a RedisConnection the suite's manager also
// reconciles without the two overwriting each other's status.
type capturedStatus struct {
	client.Client
	mu   sync.Mutex
	last *rconnv1.RedisConnection
}

func (c *capturedStatus) Status() client.SubResourceWriter { return capturedWriter{c} }

func (c *capturedStatus) condition(typ string) *metav1.Condition {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		return nil
	}
	return meta.FindStatusCondition(c.last.Status.Conditions, typ)
}

type capturedWriter struct{ c *capturedStatus }

func (w capturedWriter) Create(context.Context, client.Object, client.Object, ...client.SubResourceCreateOption) error {
	return nil
}

func (w capturedWriter) Update(_ context.Context, obj client.Object, _ ...client.SubResourceUpdateOption) error {
	return w.record(obj)
}

func (w capturedWriter) Patch(_ context.Context, obj client.Object, _ client.Patch, _ ...client.SubResourcePatchOption) error {
	return w.record(obj)
}

func (w capturedWriter) Apply(context.Context, runtime.ApplyConfiguration, ...client.SubResourceApplyOption) error {
	return nil
}

func (w capturedWriter) record(obj client.Object) error {
	if rc, ok := obj.(*rconnv1.RedisConnection); ok {
		w.c.mu.Lock()
		w.c.last = rc.DeepCopy()
		w.c.mu.Unlock()
	}
	return nil
}
