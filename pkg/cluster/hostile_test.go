package cluster_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/testing/hostile"
	"github.com/rconn-dev/redis-connection-operator/internal/world/certs"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

func hostileInspector(t *testing.T, o cluster.Options, roots ...string) *cluster.Inspector {
	t.Helper()
	for _, r := range roots {
		o.RootNodes = append(o.RootNodes, cluster.RootNode{URL: "redis://" + r})
	}
	if o.Dial == nil {
		o.Dial = newRecorder(nil).Dial
	}
	in, err := cluster.NewInspector(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close() })
	return in
}

// TestHostileRepliesAreBounded: a root answering every command with a header declaring a
// billion elements (or 2 GB, or nesting 100 deep) makes Discover fail with ErrReplyTooLarge,
// allocating almost nothing. On the code before bounded reads, go-redis allocated what the
// header declared (a billion-element slice): the test binary died of OOM.
func TestHostileRepliesAreBounded(t *testing.T) {
	for name, reply := range map[string]string{
		"billion-element array": hostile.HugeArray,
		"2 GB bulk":             hostile.HugeBulk,
		"billion-pair map":      hostile.HugeMap,
		"nested 100 deep":       hostile.Nested(100),
	} {
		t.Run(name, func(t *testing.T) {
			srv := hostile.FixedReply(t, reply)
			in := hostileInspector(t, cluster.Options{}, srv.Addr())
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := in.Discover(testCtx(t))
			runtime.ReadMemStats(&after)
			if !errors.Is(err, cluster.ErrReplyTooLarge) || !errors.Is(err, cluster.ErrNoNodeAnswered) {
				t.Fatalf("Discover = %v, want ErrNoNodeAnswered wrapping ErrReplyTooLarge", err)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
				t.Fatalf("Discover allocated %d MiB", grew>>20)
			}
			class, msg := cluster.Classify(err)
			if class != cluster.ClassReplyTooLarge || msg != "the server at "+srv.Addr()+" sent a reply beyond the configured limits" {
				t.Fatalf("Classify = %s, %q", class, msg)
			}
			if srv.Accepted() == 0 {
				t.Fatal("the hostile server was never dialed")
			}
		})
	}
}

// TestNonRedisServersLookTheSame: a closed port, a port that closes on accept, one that never
// answers, an SSH server, an HTTP server (whose reply carries a secret), a TLS client
// meeting a non-TLS server, and TLS services that are not Redis (a certificate from a CA the
// client does not trust, one for another name, one it trusts) all classify as Unreachable with
// one message naming only the address: no port-scan oracle, no echoed bytes. On the code
// before, errors differed (EOF, connection refused, i/o timeout) and quoted the server's
// bytes; and until issue 23 (item 5) a certificate that failed verification read "the TLS
// server certificate failed verification", telling every TLS listener from a closed port.
func TestNonRedisServersLookTheSame(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().String()
	_ = ln.Close()
	trusted, untrusted := testCA(t, "trusted"), testCA(t, "untrusted")
	loopback := []net.IP{net.IPv4(127, 0, 0, 1)}
	servers := map[string]string{
		"closed port":     closedPort,
		"close on accept": hostile.CloseOnAccept(t).Addr(),
		"silent":          hostile.Silent(t).Addr(),
		"ssh":             hostile.Garbage(t, hostile.SSHBanner).Addr(),
		"http":            hostile.Garbage(t, hostile.HTTPBadRequest).Addr(),
		"binary":          hostile.FixedReply(t, "\x00\x01\x02garbage\r\n").Addr(),
		"https untrusted": hostile.HTTPS(t, serverCert(t, untrusted, loopback)).Addr(),
		"https bad name":  hostile.HTTPS(t, serverCert(t, trusted, nil)).Addr(),
		"https trusted":   hostile.HTTPS(t, serverCert(t, trusted, loopback)).Addr(),
	}
	roots := x509.NewCertPool()
	roots.AddCert(trusted.Cert)
	for name, addr := range servers {
		for _, useTLS := range []bool{false, true} {
			t.Run(name+"/tls="+strconv.FormatBool(useTLS), func(t *testing.T) {
				o := cluster.Options{ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}
				scheme := "redis://"
				if useTLS {
					scheme = "rediss://"
					o.Defaults.TLS = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
					o.Defaults.ConnectTimeout = 300 * time.Millisecond
				}
				o.RootNodes = []cluster.RootNode{{URL: scheme + addr}}
				o.Dial = newRecorder(nil).Dial
				in, err := cluster.NewInspector(o)
				if err != nil {
					t.Fatal(err)
				}
				defer func() { _ = in.Close() }()
				_, err = in.Discover(testCtx(t))
				if err == nil {
					t.Fatal("Discover succeeded")
				}
				for _, leak := range []string{hostile.Secret, "SSH-2.0", "HTTP/1.1", "garbage"} {
					if strings.Contains(err.Error(), leak) {
						t.Fatalf("error quotes server bytes %q: %v", leak, err)
					}
				}
				class, msg := cluster.Classify(err)
				if class != cluster.ClassUnreachable || msg != "no Redis server answered at "+addr {
					t.Fatalf("Classify = %s, %q (error %v)", class, msg, err)
				}
				// The precise cause stays available to whoever configured the connection.
				reason, isCert := cluster.CertificateFailure(err)
				wantCert := useTLS && (name == "https untrusted" || name == "https bad name")
				if isCert != wantCert {
					t.Fatalf("CertificateFailure = %s, %v; want %v (error %v)", reason, isCert, wantCert, err)
				}
			})
		}
	}
}

func testCA(t *testing.T, name string) *certs.CA {
	t.Helper()
	ca, err := certs.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// serverCert is a server certificate from ca for ips (none: a DNS name only, so an IP dial
// fails the name check).
func serverCert(t *testing.T, ca *certs.CA, ips []net.IP) tls.Certificate {
	t.Helper()
	p, err := ca.Issue(certs.Request{CommonName: "tls-service", DNSNames: []string{"tls-service.rconn-test.invalid"}, IPs: ips, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSilentRootCostsNothing: roots that never answer (or answer only after a minute) do not
// delay discovery from a root that answers: they are asked in parallel. On the code before,
// roots were asked one after the other and the silent first root used up the context.
func TestSilentRootCostsNothing(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	silent := hostile.Silent(t)
	slow := hostile.Slow(t, time.Minute, nil)
	good := hostile.Slow(t, 0, nil)
	in := hostileInspector(t, cluster.Options{ReadTimeout: time.Minute}, silent.Addr(), slow.Addr(), good.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	topo, err := in.Discover(ctx)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if topo.Source != good.Addr() || len(topo.Nodes) != 1 || topo.Nodes[0].Announced != good.Addr() || !topo.FullCoverage() {
		t.Fatalf("topology from %s: %+v", topo.Source, topo.Nodes)
	}
}

// TestDeadlinesBoundDiscovery: ctx bounds the whole, and MaxTimeout caps an hour-long
// ReadTimeout (Discover returns long before ctx would end it).
func TestDeadlinesBoundDiscovery(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	silent := hostile.Silent(t)
	t.Run("ctx", func(t *testing.T) {
		in := hostileInspector(t, cluster.Options{ReadTimeout: time.Hour}, silent.Addr())
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := in.Discover(ctx)
		if !errors.Is(err, cluster.ErrNoNodeAnswered) {
			t.Fatalf("Discover = %v", err)
		}
		if class, _ := cluster.Classify(err); class != cluster.ClassUnreachable {
			t.Fatalf("class %s", class)
		}
	})
	t.Run("MaxTimeout", func(t *testing.T) {
		in := hostileInspector(t, cluster.Options{ReadTimeout: time.Hour, WriteTimeout: time.Hour, MaxTimeout: 300 * time.Millisecond}, silent.Addr())
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_, err := in.Discover(ctx)
		if err == nil || ctx.Err() != nil {
			t.Fatalf("Discover = %v after the context ended (%v): MaxTimeout did not cap the read timeout", err, ctx.Err())
		}
		// CheckHealth's per-node timeout is capped too.
		topo := &cluster.Topology{Nodes: []*cluster.Node{{Announced: silent.Addr()}}}
		h := in.CheckHealth(ctx, topo, time.Hour)
		if h[0].Healthy() || ctx.Err() != nil {
			t.Fatalf("health %+v, ctx %v", h[0], ctx.Err())
		}
	})
}

// shardsHandler answers like MinimalRedis but CLUSTER SHARDS lists n one-node shards.
func shardsHandler(n int) hostile.Handler {
	return func(r hostile.Request) []byte {
		if r.Name() != "CLUSTER SHARDS" {
			return hostile.MinimalRedis(r)
		}
		var b strings.Builder
		b.WriteString("*" + strconv.Itoa(n) + "\r\n")
		for i := 0; i < n; i++ {
			host := "n" + strconv.Itoa(i) + ".rconn-test.invalid"
			b.WriteString("*4\r\n$5\r\nslots\r\n*0\r\n$5\r\nnodes\r\n*1\r\n*8\r\n$2\r\nid\r\n$1\r\na\r\n$4\r\nport\r\n:6379\r\n$8\r\nendpoint\r\n$" +
				strconv.Itoa(len(host)) + "\r\n" + host + "\r\n$4\r\nrole\r\n$6\r\nmaster\r\n")
		}
		return []byte(b.String())
	}
}

func TestTopologyTooLarge(t *testing.T) {
	for _, tc := range []struct {
		name   string
		shards int
		limits *cluster.Limits
	}{
		{"default limits, 1001 nodes", 1001, nil},
		{"MaxTopologyShards 2", 3, &cluster.Limits{MaxTopologyShards: 2}},
		{"MaxTopologyNodes 2", 3, &cluster.Limits{MaxTopologyNodes: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := hostile.Slow(t, 0, shardsHandler(tc.shards))
			in := hostileInspector(t, cluster.Options{Limits: tc.limits}, srv.Addr())
			_, err := in.Discover(testCtx(t))
			if !errors.Is(err, cluster.ErrTopologyTooLarge) {
				t.Fatalf("Discover = %v, want ErrTopologyTooLarge", err)
			}
			if class, _ := cluster.Classify(err); class != cluster.ClassTopologyTooLarge {
				t.Fatalf("class %s", class)
			}
		})
	}
	// More slot ranges than slots (each claiming every slot: CPU, not memory) are rejected. One
	// shard's list of more than 16,384 ranges is refused while it is read (ReplyTooLarge: the
	// CLUSTER SHARDS cap); spread over two shards the reply passes the caps and the parsed
	// topology is refused.
	srv := hostile.Slow(t, 0, func(r hostile.Request) []byte {
		if r.Name() != "CLUSTER SHARDS" {
			return hostile.MinimalRedis(r)
		}
		shard := func(ranges int) string {
			return "*4\r\n$5\r\nslots\r\n*" + strconv.Itoa(2*ranges) + "\r\n" + strings.Repeat(":0\r\n:16383\r\n", ranges) +
				"$5\r\nnodes\r\n*1\r\n*4\r\n$4\r\nport\r\n:6379\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n"
		}
		return []byte("*2\r\n" + shard(16384) + shard(1))
	})
	in := hostileInspector(t, cluster.Options{}, srv.Addr())
	if _, err := in.Discover(testCtx(t)); !errors.Is(err, cluster.ErrTopologyTooLarge) {
		t.Fatalf("16385 ranges: %v, want ErrTopologyTooLarge", err)
	}
	// Within the limits the same kind of server is fine.
	srv = hostile.Slow(t, 0, shardsHandler(1000))
	in = hostileInspector(t, cluster.Options{}, srv.Addr())
	if topo, err := in.Discover(testCtx(t)); err != nil || len(topo.Nodes) != 1000 {
		t.Fatalf("1000 shards: %v", err)
	}
}

// TestAuthFailureIsClassifiedWithoutEcho: a server refusing the credentials is
// AuthenticationFailed, and its error text does not reach the message.
func TestAuthFailureIsClassifiedWithoutEcho(t *testing.T) {
	srv := hostile.Slow(t, 0, func(r hostile.Request) []byte {
		switch r.Name() {
		case "HELLO", "AUTH":
			return []byte("-WRONGPASS invalid username-password pair " + hostile.Secret + "\r\n")
		}
		return []byte("-NOAUTH Authentication required.\r\n")
	})
	in := hostileInspector(t, cluster.Options{Defaults: cluster.NodeOptions{Username: "u", Password: "p"}}, srv.Addr())
	_, err := in.Discover(testCtx(t))
	class, msg := cluster.Classify(err)
	if class != cluster.ClassAuthenticationFailed || strings.Contains(msg, hostile.Secret) || !strings.Contains(msg, srv.Addr()) {
		t.Fatalf("Classify(%v) = %s, %q", err, class, msg)
	}
}

// TestAddressPolicyAppliesToTheInspector: a denied root is never dialed.
func TestAddressPolicyAppliesToTheInspector(t *testing.T) {
	srv := hostile.Slow(t, 0, nil)
	rec := newRecorder(nil)
	ap, _ := cluster.ParseAddrPortList(srv.Addr())
	policy := cluster.NewAddressPolicy(cluster.AddressPolicyOptions{DenyAddrPorts: ap, AllowLoopback: true})
	in := hostileInspector(t, cluster.Options{Dial: rec.Dial, AddressPolicy: policy}, srv.Addr())
	_, err := in.Discover(testCtx(t))
	if class, msg := cluster.Classify(err); class != cluster.ClassAddressDenied || !strings.Contains(msg, srv.Addr()) {
		t.Fatalf("Classify(%v) = %s, %q", err, class, msg)
	}
	if len(rec.Dialed()) != 0 || srv.Accepted() != 0 {
		t.Fatalf("a denied address was dialed: %v", rec.Dialed())
	}
}

// TestHealthChecksAreBoundedToo: CheckHealth's connections pass the same limits as
// discovery's, and the result classifies without echo.
func TestHealthChecksAreBoundedToo(t *testing.T) {
	huge := hostile.FixedReply(t, hostile.HugeArray)
	ssh := hostile.Garbage(t, hostile.SSHBanner)
	good := hostile.Slow(t, 0, nil)
	in := hostileInspector(t, cluster.Options{}, good.Addr())
	topo := &cluster.Topology{Nodes: []*cluster.Node{{Announced: huge.Addr()}, {Announced: ssh.Addr()}, {Announced: good.Addr()}}}
	h := in.CheckHealth(testCtx(t), topo, 5*time.Second)
	if !errors.Is(h[0].Err, cluster.ErrReplyTooLarge) {
		t.Fatalf("huge: %v", h[0].Err)
	}
	if class, msg := cluster.Classify(h[1].Err); class != cluster.ClassUnreachable || msg != "no Redis server answered at "+ssh.Addr() {
		t.Fatalf("ssh: %s, %q (%v)", class, msg, h[1].Err)
	}
	if !h[2].Healthy() {
		t.Fatalf("good: %+v", h[2])
	}
}
