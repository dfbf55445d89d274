package cluster_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// recordingBase records every address and dials loopback only; names resolve from a table.
type recordingBase struct {
	names  map[string]string
	dialed []string
}

func (r *recordingBase) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	r.dialed = append(r.dialed, addr)
	host, port, _ := net.SplitHostPort(addr)
	if ip, ok := r.names[host]; ok {
		host = ip
	}
	if a, err := netip.ParseAddr(host); err != nil || !a.IsLoopback() {
		return nil, fmt.Errorf("test base: refusing %s", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, net.JoinHostPort(host, port))
}

func listen(t *testing.T, network, addr string) (net.Listener, chan []byte) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	got := make(chan []byte, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, _ := io.ReadAll(c)
			_ = c.Close()
			got <- b
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })
	return ln, got
}

func TestAddressPolicyRefusesLinkLocalLiteralsWithoutDialing(t *testing.T) {
	rec := &recordingBase{}
	dial := cluster.NewAddressPolicy(cluster.AddressPolicyOptions{}).Dial(rec.dial)
	for _, addr := range []string{"169.254.169.254:80", "[fe80::1]:6379", "[fe80::1%lo]:6379", "[::ffff:169.254.169.254]:80", "[fd00:ec2::254]:80", "0.0.0.0:6379", "[::]:6379"} {
		_, err := dial(context.Background(), "tcp", addr)
		var de *cluster.AddressDeniedError
		if !errors.Is(err, cluster.ErrAddressDenied) || !errors.As(err, &de) {
			t.Errorf("%s: %v, want ErrAddressDenied", addr, err)
		}
		if class, _ := cluster.Classify(err); class != cluster.ClassAddressDenied {
			t.Errorf("%s: class %s", addr, class)
		}
	}
	if len(rec.dialed) != 0 {
		t.Fatalf("denied literals were dialed: %v", rec.dialed)
	}
	// With AllowLoopback, loopback passes.
	ln, _ := listen(t, "tcp", "127.0.0.1:0")
	open := cluster.NewAddressPolicy(cluster.AddressPolicyOptions{AllowLoopback: true}).Dial(rec.dial)
	c, err := open(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
}

// TestAddressPolicyDeniesLoopbackByDefault (issue 23, item 5): loopback reaches the manager's
// own pod, as 0.0.0.0 does, so it is denied unless AllowLoopback is set or an allow entry names
// it; IPv4-mapped forms count. On the code before, every loopback address was allowed.
func TestAddressPolicyDeniesLoopbackByDefault(t *testing.T) {
	def := cluster.NewAddressPolicy(cluster.AddressPolicyOptions{})
	allow := cluster.NewAddressPolicy(cluster.AddressPolicyOptions{AllowLoopback: true})
	explicit := cluster.NewAddressPolicy(cluster.AddressPolicyOptions{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	denyAnyway := cluster.NewAddressPolicy(cluster.AddressPolicyOptions{AllowLoopback: true, Deny: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	for _, tc := range []struct {
		addr                               string
		byDefault, withFlag, inAllow, deny bool
	}{
		{"127.0.0.1:6379", false, true, true, true},
		{"127.0.0.2:6379", false, true, false, false},
		{"127.255.255.254:1", false, true, false, true},
		{"[::1]:6379", false, true, false, true},
		{"[::ffff:127.0.0.1]:6379", false, true, true, true},
		{"[::ffff:127.0.0.2]:6379", false, true, false, false},
		{"[::ffff:7f00:1]:6379", false, true, true, true},
		{"198.18.0.1:6379", true, true, false, true},
		{"[2001:db8::1]:6379", true, true, false, true},
		{"128.0.0.1:6379", true, true, false, true},
		{"0.0.0.0:6379", false, false, false, false},
	} {
		ap := netip.MustParseAddrPort(tc.addr)
		for _, c := range []struct {
			name string
			p    *cluster.AddressPolicy
			want bool
		}{{"default", def, tc.byDefault}, {"AllowLoopback", allow, tc.withFlag}, {"Allow 127.0.0.1/32", explicit, tc.inAllow}, {"AllowLoopback + Deny", denyAnyway, tc.deny}} {
			if got := c.p.Allowed(ap); got != c.want {
				t.Errorf("%s: Allowed(%s) = %v, want %v", c.name, tc.addr, got, c.want)
			}
		}
	}
}

// TestAddressPolicyDeniesNamesThatResolveToLoopback: the policy judges the IP actually
// connected, so a name resolving to loopback (localhost) is refused by default, with the IP
// named, and no byte is written; the same name passes with AllowLoopback.
func TestAddressPolicyDeniesNamesThatResolveToLoopback(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		local := map[string]string{"tcp4": "127.0.0.1", "tcp6": "::1"}[network]
		ln, got := listen(t, network, net.JoinHostPort(local, "0"))
		_, port := splitPort(t, ln.Addr().String())
		rec := &recordingBase{names: map[string]string{"localhost.rconn-test.invalid": local}}
		conn, err := cluster.NewAddressPolicy(cluster.AddressPolicyOptions{}).Dial(rec.dial)(context.Background(), "tcp", "localhost.rconn-test.invalid:"+port)
		if err == nil {
			_ = conn.Close() // (the listener's cleanup waits for its connections to end)
		}
		var de *cluster.AddressDeniedError
		if !errors.As(err, &de) || de.Addr != net.JoinHostPort(local, port) {
			t.Fatalf("%s: dial = %v, want AddressDeniedError for %s", network, err, net.JoinHostPort(local, port))
		}
		if class, msg := cluster.Classify(&cluster.NodeError{Addr: "localhost.rconn-test.invalid:" + port, Err: err}); class != cluster.ClassAddressDenied || !strings.Contains(msg, local) {
			t.Fatalf("%s: Classify = %s, %q", network, class, msg)
		}
		select {
		case b := <-got:
			if len(b) != 0 {
				t.Fatalf("%s: bytes were written to a denied address: %q", network, b)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the denied connection was not closed", network)
		}
		c, err := cluster.NewAddressPolicy(cluster.AddressPolicyOptions{AllowLoopback: true}).Dial(rec.dial)(context.Background(), "tcp", "localhost.rconn-test.invalid:"+port)
		if err != nil {
			t.Fatalf("%s: AllowLoopback: %v", network, err)
		}
		_ = c.Close()
		// Without a custom base the net.Dialer's Control hook refuses a loopback literal
		// before any SYN.
		if _, err := cluster.NewAddressPolicy(cluster.AddressPolicyOptions{}).Dial(nil)(context.Background(), "tcp", ln.Addr().String()); !errors.Is(err, cluster.ErrAddressDenied) {
			t.Fatalf("%s: nil base: %v", network, err)
		}
	}
}

func splitPort(t *testing.T, hostport string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// TestCertificateFailure: the precise certificate cause that Classify hides is available to
// callers acting for whoever configured the connection.
func TestCertificateFailure(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want rtls.Reason
	}{
		{&cluster.NodeError{Addr: "a:1", Err: &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}, rtls.ReasonUnknownAuthority},
		{&cluster.DialError{Announced: "a:1", Err: x509.HostnameError{Host: "h", Certificate: &x509.Certificate{}}}, rtls.ReasonHostnameMismatch},
		{rtls.ErrMissingServerName, rtls.ReasonMissingServerName},
		{&tls.CertificateVerificationError{Err: errors.New("custom verifier")}, rtls.ReasonCertificateInvalid},
		{fmt.Errorf("%w: %w", cluster.ErrNoNodeAnswered, errors.Join(
			&cluster.NodeError{Addr: "a:1", Err: syscall.ECONNREFUSED},
			&cluster.NodeError{Addr: "a:2", Err: x509.UnknownAuthorityError{}})), rtls.ReasonUnknownAuthority},
		{&cluster.NodeError{Addr: "a:1", Err: syscall.ECONNREFUSED}, ""},
		{tls.RecordHeaderError{Msg: "not TLS"}, ""},
		{errors.New("remote error: tls: bad certificate"), ""},
		{nil, ""},
	} {
		got, ok := cluster.CertificateFailure(tc.err)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("CertificateFailure(%v) = %s, %v; want %s", tc.err, got, ok, tc.want)
		}
	}
}

func TestAddressPolicyAllowWinsAndAllowListIsExclusive(t *testing.T) {
	p := cluster.NewAddressPolicy(cluster.AddressPolicyOptions{
		Deny:          []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Allow:         []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32"), netip.MustParsePrefix("169.254.10.0/24")},
		DenyAddrPorts: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.2:443")},
	})
	for addr, want := range map[string]bool{
		"127.0.0.2:6379":       true,  // allow beats deny
		"169.254.10.5:6379":    true,  // allow beats the default deny
		"127.0.0.2:443":        false, // exact deny beats allow
		"127.0.0.3:6379":       false, // denied, not allowed
		"198.18.0.1:6379":      false, // outside the allow list
		"169.254.169.254:80":   false,
		"[::ffff:127.0.0.2]:1": true, // IPv4-mapped judged as IPv4
	} {
		if got := p.Allowed(netip.MustParseAddrPort(addr)); got != want {
			t.Errorf("Allowed(%s) = %v, want %v", addr, got, want)
		}
	}
	open := cluster.NewAddressPolicy(cluster.AddressPolicyOptions{})
	if !open.Allowed(netip.MustParseAddrPort("198.18.0.1:6379")) || open.Allowed(netip.MustParseAddrPort("169.254.1.1:1")) {
		t.Fatal("without an allow list only the deny lists apply")
	}
}

// TestAddressPolicyChecksTheIPANameConnectedTo: a name whose address is denied is refused
// after connecting (the custom base dials; its RemoteAddr is checked) and the connection is
// closed before any byte is written.
func TestAddressPolicyChecksTheIPANameConnectedTo(t *testing.T) {
	ln, got := listen(t, "tcp", "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	rec := &recordingBase{names: map[string]string{"metadata.rconn-test.invalid": "127.0.0.1"}}
	p := cluster.NewAddressPolicy(cluster.AddressPolicyOptions{Deny: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	_, err := p.Dial(rec.dial)(context.Background(), "tcp", "metadata.rconn-test.invalid:"+port)
	var de *cluster.AddressDeniedError
	if !errors.As(err, &de) || de.Addr != "127.0.0.1:"+port {
		t.Fatalf("dial = %v, want AddressDeniedError for 127.0.0.1:%s", err, port)
	}
	select {
	case b := <-got:
		if len(b) != 0 {
			t.Fatalf("bytes were written to a denied address: %q", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the denied connection was not closed")
	}
	// An unparseable RemoteAddr (not an IP) fails closed.
	pipe := func(context.Context, string, string) (net.Conn, error) {
		c, s := net.Pipe()
		_ = s.Close()
		return c, nil
	}
	if _, err := p.Dial(pipe)(context.Background(), "tcp", "x.rconn-test.invalid:1"); !errors.Is(err, cluster.ErrAddressDenied) {
		t.Fatalf("pipe: %v", err)
	}
}

// TestAddressPolicyNilBaseUsesControl: with no base, the net.Dialer's Control hook judges the
// address; an allowed IPv6 loopback connects.
func TestAddressPolicyNilBaseUsesControl(t *testing.T) {
	ln, _ := listen(t, "tcp6", "[::1]:0")
	p := cluster.NewAddressPolicy(cluster.AddressPolicyOptions{Allow: []netip.Prefix{netip.MustParsePrefix("::1/128")}})
	c, err := p.Dial(nil)(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	deny := cluster.NewAddressPolicy(cluster.AddressPolicyOptions{Deny: []netip.Prefix{netip.MustParsePrefix("::1/128")}})
	if _, err := deny.Dial(nil)(context.Background(), "tcp", ln.Addr().String()); !errors.Is(err, cluster.ErrAddressDenied) {
		t.Fatalf("denied ::1: %v", err)
	}
}

func TestParseCIDRList(t *testing.T) {
	got, err := cluster.ParseCIDRList(" 10.0.0.0/8, 169.254.1.7 fe80::/10,::1")
	if err != nil || fmt.Sprint(got) != "[10.0.0.0/8 169.254.1.7/32 fe80::/10 ::1/128]" {
		t.Fatalf("ParseCIDRList = %v, %v", got, err)
	}
	if got, err := cluster.ParseCIDRList(""); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v, %v", got, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "1.2.3"} {
		if _, err := cluster.ParseCIDRList(bad); err == nil {
			t.Errorf("ParseCIDRList(%q) succeeded", bad)
		}
	}
	aps, err := cluster.ParseAddrPortList("127.0.0.1:6443,[::1]:443")
	if err != nil || len(aps) != 2 {
		t.Fatalf("ParseAddrPortList = %v, %v", aps, err)
	}
	if _, err := cluster.ParseAddrPortList("127.0.0.1"); err == nil {
		t.Fatal("ip without port accepted")
	}
}

// redisErr is a Redis error reply as older go-redis versions returned it (an untyped string
// error; go-redis now returns typed errors, so a wrapped one is recognised only when typed: see
// TestClassifyAuthAgainstARealServer for the real replies, wrapped ones included).
type redisErr string

func (e redisErr) Error() string { return string(e) }
func (redisErr) RedisError()     {}

func TestClassify(t *testing.T) {
	const a = "10.9.8.7:6379"
	node := func(err error) error { return &cluster.NodeError{Addr: a, Err: err} }
	dialErr := func(err error) error {
		return &cluster.DialError{Announced: "node-0.rconn-test.invalid:6379", Dialed: "127.0.0.1:7000", Mapped: true, Err: err}
	}
	for _, tc := range []struct {
		name  string
		err   error
		class cluster.ErrorClass
		msg   string
	}{
		{"nil", nil, "", ""},
		{"refused", dialErr(&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), cluster.ClassUnreachable, "no Redis server answered at node-0.rconn-test.invalid:6379 (mapped to 127.0.0.1:7000)"},
		{"EOF", node(io.EOF), cluster.ClassUnreachable, "no Redis server answered at " + a},
		{"reset", node(syscall.ECONNRESET), cluster.ClassUnreachable, "no Redis server answered at " + a},
		{"timeout", node(os.ErrDeadlineExceeded), cluster.ClassUnreachable, "no Redis server answered at " + a},
		{"ctx deadline", node(context.DeadlineExceeded), cluster.ClassUnreachable, "no Redis server answered at " + a},
		{"protocol", node(&cluster.ProtocolError{Kind: cluster.ErrProtocol, Reason: "x"}), cluster.ClassUnreachable, "no Redis server answered at " + a},
		{"peer speaks no TLS", dialErr(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), cluster.ClassUnreachable, "no Redis server answered at node-0.rconn-test.invalid:6379 (mapped to 127.0.0.1:7000)"},
		{"TLS alert", node(errors.New("remote error: tls: bad certificate")), cluster.ClassUnreachable, "no Redis server answered at " + a},
		// A certificate that failed verification proves a TLS listener, not a Redis: it reads
		// like a closed port (issue 23, item 5).
		{"unknown CA", dialErr(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), cluster.ClassUnreachable, "no Redis server answered at node-0.rconn-test.invalid:6379 (mapped to 127.0.0.1:7000)"},
		{"hostname", node(x509.HostnameError{Host: "h"}), cluster.ClassUnreachable, "no Redis server answered at " + a},
		{"expired", node(x509.CertificateInvalidError{Reason: x509.Expired}), cluster.ClassUnreachable, "no Redis server answered at " + a},
		{"explained", node(rtls.Explain(x509.UnknownAuthorityError{})), cluster.ClassUnreachable, "no Redis server answered at " + a},
		{"missing server name", node(rtls.ErrMissingServerName), cluster.ClassUnreachable, "no Redis server answered at " + a},
		{"certificate and closed port", fmt.Errorf("%w: %w", cluster.ErrNoNodeAnswered, errors.Join(
			&cluster.NodeError{Addr: "127.0.0.1:1", Err: x509.UnknownAuthorityError{}},
			&cluster.NodeError{Addr: "127.0.0.1:2", Err: syscall.ECONNREFUSED})),
			cluster.ClassUnreachable, "no Redis server answered at 127.0.0.1:1, 127.0.0.1:2"},
		{"WRONGPASS", node(redisErr("WRONGPASS invalid username-password pair SECRET")), cluster.ClassAuthenticationFailed, "the Redis server at " + a + " refused the credentials or a command the check needs (WRONGPASS, NOAUTH or NOPERM)"},
		{"NOPERM", node(redisErr("NOPERM User rconn has no permissions")), cluster.ClassAuthenticationFailed, "the Redis server at " + a + " refused the credentials or a command the check needs (WRONGPASS, NOAUTH or NOPERM)"},
		{"server error", node(redisErr("LOADING Redis is loading SECRET")), cluster.ClassServerError, "the Redis server at " + a + " answered with an error reply"},
		{"too large", node(&cluster.ProtocolError{Kind: cluster.ErrReplyTooLarge, Reason: "x"}), cluster.ClassReplyTooLarge, "the server at " + a + " sent a reply beyond the configured limits"},
		{"topology", node(cluster.ErrTopologyTooLarge), cluster.ClassTopologyTooLarge, "the cluster at " + a + " reports more nodes or shards than the configured limits"},
		{"denied", dialErr(&cluster.AddressDeniedError{Addr: "169.254.169.254:80"}), cluster.ClassAddressDenied, "the address policy denies 169.254.169.254:80 (dialing node-0.rconn-test.invalid:6379 (mapped to 127.0.0.1:7000))"},
		{"not cluster", node(cluster.ErrNotCluster), cluster.ClassNotCluster, "the server at " + a + " is not a Redis Cluster node (cluster support disabled)"},
		{"cluster mode", node(cluster.ErrClusterModeServer), cluster.ClassClusterModeServer, "the server at " + a + " is a Redis Cluster node, not a standalone server"},
		{"cluster state", node(cluster.ErrClusterStateNotOK), cluster.ClassClusterStateFail, "the node at " + a + " reports cluster_state other than ok"},
		{"options", fmt.Errorf("%w: rootNodes[0]: redis://u:SECRET@x", cluster.ErrInvalidOptions), cluster.ClassInvalidOptions, "invalid connection options"},
		{"unknown", errors.New("inspector closed SECRET"), cluster.ClassUnknown, "the check failed"},
		{"control bytes in an announced address", node(io.EOF), cluster.ClassUnreachable, "no Redis server answered at " + a},
		{"several nodes: most specific wins", fmt.Errorf("%w: %w", cluster.ErrNoNodeAnswered, errors.Join(
			&cluster.NodeError{Addr: "127.0.0.1:1", Err: io.EOF},
			&cluster.NodeError{Addr: "127.0.0.1:2", Err: redisErr("WRONGPASS x")},
			&cluster.NodeError{Addr: "127.0.0.1:3", Err: redisErr("NOAUTH x")})),
			cluster.ClassAuthenticationFailed, "the Redis server at 127.0.0.1:2, 127.0.0.1:3 refused the credentials or a command the check needs (WRONGPASS, NOAUTH or NOPERM)"},
		{"several unreachable", fmt.Errorf("%w: %w", cluster.ErrNoNodeAnswered, errors.Join(
			&cluster.NodeError{Addr: "127.0.0.1:1", Err: io.EOF},
			&cluster.NodeError{Addr: "127.0.0.1:2", Err: dialErr(syscall.ECONNREFUSED)})),
			cluster.ClassUnreachable, "no Redis server answered at 127.0.0.1:1, node-0.rconn-test.invalid:6379 (mapped to 127.0.0.1:7000)"},
	} {
		class, msg := cluster.Classify(tc.err)
		if class != tc.class || msg != tc.msg {
			t.Errorf("%s: Classify = %s, %q; want %s, %q", tc.name, class, msg, tc.class, tc.msg)
		}
	}
	if _, msg := cluster.Classify(&cluster.NodeError{Addr: "a\x1b[31m\nb:1", Err: io.EOF}); msg != "no Redis server answered at a?[31m?b:1" {
		t.Errorf("control bytes not sanitized: %q", msg)
	}
}
