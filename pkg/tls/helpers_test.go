package tls

import (
	"bufio"
	cryptotls "crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/world/certs"
)

// ioTimeout bounds every network operation of the tests.
const ioTimeout = 5 * time.Second

func newCA(t *testing.T, name string) *certs.CA {
	t.Helper()
	ca, err := certs.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t *testing.T, ca *certs.CA, r certs.Request) *certs.Pair {
	t.Helper()
	p, err := ca.Issue(r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func clientPair(t *testing.T, ca *certs.CA, cn string) *certs.Pair {
	return issue(t, ca, certs.Request{CommonName: cn, Client: true})
}

// serverPair is valid for redis.test and 127.0.0.1 unless names are given.
func serverPair(t *testing.T, ca *certs.CA, dnsNames []string, ips []net.IP) *certs.Pair {
	if dnsNames == nil && ips == nil {
		dnsNames, ips = []string{"redis.test"}, []net.IP{net.ParseIP("127.0.0.1")}
	}
	return issue(t, ca, certs.Request{CommonName: "redis-server", DNSNames: dnsNames, IPs: ips, Server: true})
}

func concat(b ...[]byte) []byte {
	var out []byte
	for _, x := range b {
		out = append(out, x...)
	}
	return out
}

// serverConfig presents srv and, when clientCAs are given, requires client certificates
// signed by one of them.
func serverConfig(t *testing.T, srv *certs.Pair, clientCAs ...*certs.CA) *cryptotls.Config {
	t.Helper()
	kp, err := cryptotls.X509KeyPair(srv.CertPEM, srv.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &cryptotls.Config{Certificates: []cryptotls.Certificate{kp}, MinVersion: cryptotls.VersionTLS12}
	if len(clientCAs) > 0 {
		pool := x509.NewCertPool()
		for _, ca := range clientCAs {
			pool.AddCert(ca.Cert)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, cryptotls.RequireAndVerifyClientCert
	}
	return cfg
}

// testServer is a TLS server on 127.0.0.1 whose configuration can be switched between
// handshakes. After a handshake it writes the common name of the client certificate (or
// "-") and a newline, then echoes lines.
type testServer struct {
	addr string
	cfg  atomic.Pointer[cryptotls.Config]
}

func startServer(t *testing.T, cfg *cryptotls.Config) *testServer {
	t.Helper()
	s := &testServer{}
	s.cfg.Store(cfg)
	ln, err := cryptotls.Listen("tcp", "127.0.0.1:0", &cryptotls.Config{
		GetConfigForClient: func(*cryptotls.ClientHelloInfo) (*cryptotls.Config, error) { return s.cfg.Load(), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { serveConn(conn.(*cryptotls.Conn)) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return s
}

func serveConn(c *cryptotls.Conn) {
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	if err := c.Handshake(); err != nil {
		return
	}
	cn := "-"
	if pc := c.ConnectionState().PeerCertificates; len(pc) > 0 {
		cn = pc[0].Subject.CommonName
	}
	if _, err := io.WriteString(c, cn+"\n"); err != nil {
		return
	}
	_, _ = io.Copy(c, c) // echo until the client closes or the deadline passes
}

// clientConn is an established client connection to a testServer.
type clientConn struct {
	*cryptotls.Conn
	r *bufio.Reader
}

// dial connects to addr with cfg, completes the handshake and reads the server's greeting
// (the client certificate's common name as the server saw it). In TLS 1.3 the server's
// verdict on the client certificate arrives after the client's handshake, so reading the
// greeting is what surfaces it. Every step has a deadline.
func dial(t *testing.T, addr string, cfg *cryptotls.Config) (*clientConn, string, error) {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	_ = raw.SetDeadline(time.Now().Add(ioTimeout))
	c := cryptotls.Client(raw, cfg)
	if err := c.Handshake(); err != nil {
		_ = raw.Close()
		return nil, "", err
	}
	cc := &clientConn{Conn: c, r: bufio.NewReader(c)}
	line, err := cc.r.ReadString('\n')
	if err != nil {
		_ = raw.Close()
		return nil, "", err
	}
	t.Cleanup(func() { _ = c.Close() })
	return cc, strings.TrimSuffix(line, "\n"), nil
}

// handshake dials, checks the greeting and closes; it returns the client certificate's
// common name as seen by the server.
func handshake(t *testing.T, addr string, cfg *cryptotls.Config) (string, error) {
	t.Helper()
	c, cn, err := dial(t, addr, cfg)
	if err != nil {
		return "", err
	}
	_ = c.Close()
	return cn, nil
}

// echo checks that an established connection still works.
func (c *clientConn) echo(t *testing.T, msg string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		t.Fatalf("write on established connection: %v", err)
	}
	got, err := c.r.ReadString('\n')
	if err != nil || got != msg+"\n" {
		t.Fatalf("echo on established connection = %q, %v", got, err)
	}
}

// wantKind asserts that err, explained, is of reason want and mentions every detail.
func wantKind(t *testing.T, err error, want *Error, details ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", want.Reason)
	}
	ex := Explain(err)
	if !errors.Is(ex, want) {
		t.Fatalf("got %v (reason %q), want reason %s", ex, ReasonOf(ex), want.Reason)
	}
	var e *Error
	if !errors.As(ex, &e) || e.Reason != want.Reason {
		t.Fatalf("errors.As(*Error) = %v, reason %q; want %s", e, ReasonOf(ex), want.Reason)
	}
	if ReasonOf(ex) != want.Reason {
		t.Fatalf("ReasonOf = %q, want %q", ReasonOf(ex), want.Reason)
	}
	for _, d := range details {
		if !strings.Contains(ex.Error(), d) {
			t.Errorf("message %q does not mention %q", ex.Error(), d)
		}
	}
}
