package rig

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/rconn-dev/redis-connection-operator/internal/tb"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/managertest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
)

// No test here may reach the machine's resolver: net.DefaultResolver fails and is recorded; every
// lookup goes through DNS.Resolver() to the rig's CoreDNS on loopback.
func TestMain(m *testing.M) { nettest.RunWithoutDNS(m) }

const dnsTestDomain = "cluster.local"

// dnsRig is one API server + CoreDNS shared by the subtests (each uses its own namespace).
type dnsRig struct {
	env *envtest.Environment
	c   client.Client
	dns *DNS
}

func startDNSRig(t *testing.T) *dnsRig {
	tb.Integration(t, "kube-apiserver (envtest) and CoreDNS")
	t.Helper()
	env, err := kubetest.NewEnvironment()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting envtest: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(cfg, client.Options{Scheme: kubetest.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d := StartTestDNS(t, DNSOptions{Kubeconfig: managertest.Kubeconfig(t, env)})
	t.Logf("coredns ready on %s in %v", d.Addr(), time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("coredns log (tail):\n%s", d.LogTail(40))
		}
	})
	return &dnsRig{env: env, c: c, dns: d}
}

// headless creates namespace ns, the headless Service redis-headless (port 6379 "redis") and an
// EndpointSlice for it with eps.
func (r *dnsRig) headless(t *testing.T, ns string, publishNotReady bool, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	t.Helper()
	ctx := context.Background()
	if err := r.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "redis-headless", Namespace: ns},
		Spec: corev1.ServiceSpec{
			ClusterIP:                corev1.ClusterIPNone,
			Selector:                 map[string]string{"app": "redis"},
			Ports:                    []corev1.ServicePort{{Name: "redis", Port: 6379}},
			PublishNotReadyAddresses: publishNotReady,
		},
	}
	if err := r.c.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:      "redis-headless-abcde",
			Namespace: ns,
			Labels:    map[string]string{discoveryv1.LabelServiceName: "redis-headless"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   eps,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("redis"), Port: ptr.To[int32](6379), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	if err := r.c.Create(ctx, slice); err != nil {
		t.Fatal(err)
	}
	return slice
}

func endpoint(hostname, ip string, ready, serving, terminating *bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{
		Addresses:  []string{ip},
		Hostname:   ptr.To(hostname),
		Conditions: discoveryv1.EndpointConditions{Ready: ready, Serving: serving, Terminating: terminating},
	}
}

func readyEndpoint(hostname, ip string) discoveryv1.Endpoint {
	return endpoint(hostname, ip, ptr.To(true), ptr.To(true), ptr.To(false))
}

func podDNS(host, ns string) string {
	return fmt.Sprintf("%s.redis-headless.%s.svc.%s", host, ns, dnsTestDomain)
}

// lookup resolves name through the rig's CoreDNS (sorted addresses).
func (r *dnsRig) lookup(name string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addrs, err := r.dns.Resolver().LookupHost(ctx, name)
	slices.Sort(addrs)
	return addrs, err
}

// eventually polls name until it resolves to exactly want (bounded: 15s).
func (r *dnsRig) eventually(t *testing.T, name string, want ...string) {
	t.Helper()
	slices.Sort(want)
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, err := r.lookup(name)
		if err == nil && slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: got %v, %v; want %v", name, got, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// notFound asserts name is NXDOMAIN (once the slice holding it is known to be seen).
func (r *dnsRig) notFound(t *testing.T, name string) {
	t.Helper()
	got, err := r.lookup(name)
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Fatalf("%s: got %v, %v; want NXDOMAIN", name, got, err)
	}
	if rcode, _ := rawQuery(t, r.dns.Addr(), name); rcode != rcodeNXDomain {
		t.Fatalf("%s: rcode %d, want NXDOMAIN (%d)", name, rcode, rcodeNXDomain)
	}
}

const (
	rcodeSuccess  = 0
	rcodeNXDomain = 3
	rcodeRefused  = 5
)

// rawQuery sends one A query for name over UDP to addr and returns the response code and the
// number of answers: what the server said, without Go's resolver interpreting it.
func rawQuery(t *testing.T, addr, name string) (rcode, answers int) {
	t.Helper()
	msg := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0} // id, RD, 1 question
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		msg = append(msg, byte(len(label)))
		msg = append(msg, label...)
	}
	msg = append(msg, 0, 0, 1, 0, 1) // root, type A, class IN
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("raw query %s: %v", name, err)
	}
	if n < 12 || buf[0] != 0x12 || buf[1] != 0x34 {
		t.Fatalf("raw query %s: bad response %x", name, buf[:n])
	}
	return int(buf[3] & 0x0f), int(binary.BigEndian.Uint16(buf[6:8]))
}

func TestDNS(t *testing.T) {
	r := startDNSRig(t)

	t.Run("PodDNS names of a headless Service resolve to the EndpointSlice's addresses", func(t *testing.T) {
		ns := "dns-resolve"
		r.headless(t, ns, false, readyEndpoint("redis-0", "198.18.0.5"), readyEndpoint("redis-1", "198.18.0.6"))
		r.eventually(t, podDNS("redis-0", ns), "198.18.0.5")
		r.eventually(t, podDNS("redis-0", ns)+".", "198.18.0.5") // fully qualified: no search list
		r.eventually(t, podDNS("redis-1", ns), "198.18.0.6")
		r.eventually(t, "redis-headless."+ns+".svc."+dnsTestDomain, "198.18.0.5", "198.18.0.6")
		if rcode, answers := rawQuery(t, r.dns.Addr(), podDNS("redis-0", ns)); rcode != rcodeSuccess || answers != 1 {
			t.Fatalf("raw query: rcode %d, %d answers; want NOERROR, 1", rcode, answers)
		}
		r.notFound(t, podDNS("redis-2", ns))
		// A ClusterIP Service: its ClusterIP (the API server's first of kubetest.ServiceCIDR).
		r.eventually(t, "kubernetes.default.svc."+dnsTestDomain, "127.1.0.1")
	})

	t.Run("an EndpointSlice update is seen at once", func(t *testing.T) {
		ns := "dns-update"
		slice := r.headless(t, ns, false, readyEndpoint("redis-0", "198.18.0.5"), readyEndpoint("redis-1", "198.18.0.6"))
		r.eventually(t, podDNS("redis-0", ns), "198.18.0.5")
		slice.Endpoints[0].Addresses = []string{"198.18.0.7"} // redis-0 rescheduled: a new pod IP
		start := time.Now()
		if err := r.c.Update(context.Background(), slice); err != nil {
			t.Fatal(err)
		}
		r.eventually(t, podDNS("redis-0", ns), "198.18.0.7")
		t.Logf("new address answered %v after the update", time.Since(start).Round(time.Millisecond))
		r.eventually(t, podDNS("redis-1", ns), "198.18.0.6")
	})

	t.Run("nothing outside the cluster domain is answered or forwarded", func(t *testing.T) {
		for _, name := range []string{"example.invalid", "example.com", "redis.internal", "cluster.local.example.com"} {
			if addrs, err := r.lookup(name + "."); err == nil {
				t.Fatalf("%s resolved to %v", name, addrs)
			}
			// REFUSED: no server block serves the name, and no plugin could send it anywhere.
			if rcode, answers := rawQuery(t, r.dns.Addr(), name); rcode != rcodeRefused || answers != 0 {
				t.Fatalf("%s: rcode %d, %d answers; want REFUSED, 0", name, rcode, answers)
			}
		}
		// Inside the zone, an unknown name is NXDOMAIN (authoritative), not passed on.
		r.notFound(t, "nosuch.nosuch.svc."+dnsTestDomain)
		r.notFound(t, "1-2-3-4.default.pod."+dnsTestDomain) // pods disabled
	})

	// What rconn can expect of a real cluster's DNS for pods that are not ready: CoreDNS publishes
	// an endpoint only when conditions.ready is true or unset. serving and terminating are not
	// looked at: a terminating pod that still serves (ready=false, serving=true, terminating=true)
	// has no PodDNS name any more.
	t.Run("only ready (or unset) endpoints are published", func(t *testing.T) {
		ns := "dns-not-ready"
		r.headless(t, ns, false,
			readyEndpoint("redis-0", "198.18.0.5"),
			endpoint("redis-1", "198.18.0.6", ptr.To(false), ptr.To(true), ptr.To(true)),   // terminating, still serving
			endpoint("redis-2", "198.18.0.8", ptr.To(false), ptr.To(false), ptr.To(false)), // starting, not ready yet
			endpoint("redis-3", "198.18.0.9", nil, nil, nil),                               // conditions unknown
			endpoint("redis-4", "198.18.0.10", ptr.To(false), ptr.To(false), ptr.To(true)), // terminating, not serving
		)
		r.eventually(t, podDNS("redis-0", ns), "198.18.0.5") // the slice is seen
		r.eventually(t, podDNS("redis-3", ns), "198.18.0.9")
		r.notFound(t, podDNS("redis-1", ns))
		r.notFound(t, podDNS("redis-2", ns))
		r.notFound(t, podDNS("redis-4", ns))
		r.eventually(t, "redis-headless."+ns+".svc."+dnsTestDomain, "198.18.0.5", "198.18.0.9")
	})

	// publishNotReadyAddresses is not read by CoreDNS: the EndpointSlice controller honours it by
	// writing ready=true (k8s.io/endpointslice: ready = publishNotReadyAddresses || (serving &&
	// !terminating)). A slice that says ready=false stays unpublished whatever the Service says.
	t.Run("publishNotReadyAddresses is the EndpointSlice controller's business", func(t *testing.T) {
		ns := "dns-publish-not-ready"
		r.headless(t, ns, true,
			readyEndpoint("redis-0", "198.18.0.5"),
			endpoint("redis-1", "198.18.0.6", ptr.To(false), ptr.To(true), ptr.To(true)),
			endpoint("redis-2", "198.18.0.8", ptr.To(false), ptr.To(false), ptr.To(false)),
			// What the EndpointSlice controller writes for a terminating pod of such a Service.
			endpoint("redis-3", "198.18.0.9", ptr.To(true), ptr.To(true), ptr.To(true)),
		)
		r.eventually(t, podDNS("redis-0", ns), "198.18.0.5")
		r.eventually(t, podDNS("redis-3", ns), "198.18.0.9")
		r.notFound(t, podDNS("redis-1", ns))
		r.notFound(t, podDNS("redis-2", ns))
		r.eventually(t, "redis-headless."+ns+".svc."+dnsTestDomain, "198.18.0.5", "198.18.0.9")
	})

	t.Run("Stop ends the process", func(t *testing.T) {
		d := StartTestDNS(t, DNSOptions{Kubeconfig: managertest.Kubeconfig(t, r.env)})
		d.Stop()
		d.Stop() // idempotent
		select {
		case <-d.exited:
		default:
			t.Fatal("coredns still running after Stop")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := d.Resolver().LookupHost(ctx, "kubernetes.default.svc."+dnsTestDomain+"."); err == nil {
			t.Fatal("a stopped server answered")
		}
	})
}
