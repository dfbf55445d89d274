package tls

import (
	"bytes"
	cryptotls "crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/world/certs"
)

func newReloadable(t *testing.T, o Options) *Reloadable {
	t.Helper()
	r, err := NewReloadable(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestReloadableClientCertRotation: the server first trusts client certificates from CA1,
// then from CA2 only; Update switches the client to a certificate from CA2 and the same
// *tls.Config, obtained before, uses it for new handshakes while an established
// connection is untouched.
func TestReloadableClientCertRotation(t *testing.T) {
	srvCA, ca1, ca2 := newCA(t, "server-ca"), newCA(t, "client-ca-1"), newCA(t, "client-ca-2")
	srvPair := serverPair(t, srvCA, nil, nil)
	srv := startServer(t, serverConfig(t, srvPair, ca1))
	cl1, cl2 := clientPair(t, ca1, "client-1"), clientPair(t, ca2, "client-2")

	r := newReloadable(t, Options{Material: &Material{CA: srvCA.CertPEM, Cert: cl1.CertPEM, Key: cl1.KeyPEM}, ServerName: "redis.test"})
	cfg := r.Config()
	if !cfg.InsecureSkipVerify || cfg.VerifyConnection == nil || cfg.GetClientCertificate == nil || cfg.ServerName != "redis.test" {
		t.Fatalf("unexpected config: %+v", cfg)
	}

	established, cn, err := dial(t, srv.addr, cfg)
	if err != nil || cn != "client-1" {
		t.Fatalf("initial handshake: cn %q, %v", cn, err)
	}

	// The server rotates its client CA: the old client certificate is refused.
	srv.cfg.Store(serverConfig(t, srvPair, ca2))
	_, err = handshake(t, srv.addr, cfg)
	wantKind(t, err, ErrClientCertificateRejected)

	if err := r.Update(&Material{CA: srvCA.CertPEM, Cert: cl2.CertPEM, Key: cl2.KeyPEM}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cfg  *cryptotls.Config
	}{{"config obtained before Update", cfg}, {"new config", r.Config()}, {"ConfigFor", r.ConfigFor("redis.test")}} {
		if cn, err := handshake(t, srv.addr, c.cfg); err != nil || cn != "client-2" {
			t.Errorf("%s after rotation: cn %q, %v", c.name, cn, err)
		}
	}
	if rep := r.Report(); rep.Certificates[len(rep.Certificates)-1].Subject != "CN=client-2" {
		t.Errorf("Report after Update: %+v", rep.Certificates)
	}

	// The connection made before the rotation still works.
	established.echo(t, "still here")
}

// TestReloadableBadUpdate: an Update that fails validation changes nothing.
func TestReloadableBadUpdate(t *testing.T) {
	now := time.Now()
	srvCA, ca1 := newCA(t, "server-ca"), newCA(t, "client-ca-1")
	srv := startServer(t, serverConfig(t, serverPair(t, srvCA, nil, nil), ca1))
	cl1, other := clientPair(t, ca1, "client-1"), clientPair(t, ca1, "client-other")
	expired := issue(t, ca1, certs.Request{CommonName: "client-expired", Client: true,
		NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)})
	good := &Material{CA: srvCA.CertPEM, Cert: cl1.CertPEM, Key: cl1.KeyPEM}

	r := newReloadable(t, Options{Material: good, ServerName: "redis.test"})
	cfg := r.Config()

	for _, tc := range []struct {
		name string
		m    *Material
		want *Error
	}{
		{"malformed certificate PEM", &Material{CA: srvCA.CertPEM, Cert: []byte("-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n"), Key: other.KeyPEM}, ErrMalformedPEM},
		{"malformed CA", &Material{CA: []byte("not pem"), Cert: other.CertPEM, Key: other.KeyPEM}, ErrMalformedPEM},
		{"mismatched key", &Material{CA: srvCA.CertPEM, Cert: other.CertPEM, Key: cl1.KeyPEM}, ErrKeyMismatch},
		{"certificate without key", &Material{CA: srvCA.CertPEM, Cert: other.CertPEM}, ErrIncompleteKeyPair},
		{"expired certificate", &Material{CA: srvCA.CertPEM, Cert: expired.CertPEM, Key: expired.KeyPEM}, ErrCertificateExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantKind(t, r.Update(tc.m), tc.want)
			if m := r.Material(); !bytes.Equal(m.Cert, good.Cert) || !bytes.Equal(m.Key, good.Key) || !bytes.Equal(m.CA, good.CA) {
				t.Error("material changed by a failed Update")
			}
			if cn, err := handshake(t, srv.addr, cfg); err != nil || cn != "client-1" {
				t.Errorf("handshake after failed Update: cn %q, %v", cn, err)
			}
		})
	}
}

// TestReloadableCARotation: the server switches to a certificate from another CA; the
// client fails with UnknownAuthority until Update gives it the new CA.
func TestReloadableCARotation(t *testing.T) {
	srvCA1, srvCA2, clientCA := newCA(t, "server-ca-1"), newCA(t, "server-ca-2"), newCA(t, "client-ca")
	cl := clientPair(t, clientCA, "client")
	srv := startServer(t, serverConfig(t, serverPair(t, srvCA1, nil, nil), clientCA))

	r := newReloadable(t, Options{Material: &Material{CA: srvCA1.CertPEM, Cert: cl.CertPEM, Key: cl.KeyPEM}, ServerName: "redis.test"})
	cfg := r.Config()
	if _, err := handshake(t, srv.addr, cfg); err != nil {
		t.Fatalf("initial handshake: %v", err)
	}

	srv.cfg.Store(serverConfig(t, serverPair(t, srvCA2, nil, nil), clientCA))
	_, err := handshake(t, srv.addr, cfg)
	wantKind(t, err, ErrUnknownAuthority, "CN=server-ca-2", "CN=server-ca-1")

	// A bundle of old and new CA, as during a rotation, accepts the new server.
	if err := r.Update(&Material{CA: concat(srvCA1.CertPEM, srvCA2.CertPEM), Cert: cl.CertPEM, Key: cl.KeyPEM}); err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(t, srv.addr, cfg); err != nil {
		t.Fatalf("with CA bundle: %v", err)
	}
	// The new CA alone.
	if err := r.Update(&Material{CA: srvCA2.CertPEM, Cert: cl.CertPEM, Key: cl.KeyPEM}); err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(t, srv.addr, cfg); err != nil {
		t.Fatalf("after CA rotation: %v", err)
	}
}

// TestReloadableServerName: the server name checked is the connection's: ConfigFor, a
// clone with another DNS name, IP addresses, and the refusal when it cannot be known.
func TestReloadableServerName(t *testing.T) {
	srvCA := newCA(t, "server-ca")
	dnsOnly := startServer(t, serverConfig(t, serverPair(t, srvCA, []string{"redis.test"}, nil)))
	withIP := startServer(t, serverConfig(t, serverPair(t, srvCA, nil, []net.IP{net.ParseIP("127.0.0.1")})))
	r := newReloadable(t, Options{Material: &Material{CA: srvCA.CertPEM}, ServerName: "redis.test"})

	if _, err := handshake(t, dnsOnly.addr, r.ConfigFor("redis.test")); err != nil {
		t.Errorf("ConfigFor(redis.test): %v", err)
	}
	_, err := handshake(t, dnsOnly.addr, r.ConfigFor("other.test"))
	wantKind(t, err, ErrHostnameMismatch, "DNS names [redis.test]", "not other.test")

	_, err = handshake(t, dnsOnly.addr, r.ConfigFor("127.0.0.1"))
	wantKind(t, err, ErrHostnameMismatch, "DNS names [redis.test]", "no IP addresses", "not 127.0.0.1", "IP address")

	if _, err := handshake(t, withIP.addr, r.ConfigFor("127.0.0.1")); err != nil {
		t.Errorf("ConfigFor(127.0.0.1) with an IP SAN: %v", err)
	}

	// A clone with another DNS name is verified against that name, not the original one.
	clone := r.Config().Clone()
	clone.ServerName = "other.test"
	_, err = handshake(t, dnsOnly.addr, clone)
	wantKind(t, err, ErrHostnameMismatch, "not other.test")

	// A clone changed to an IP address cannot be checked (TLS sends no IP as SNI): refused.
	clone = r.Config().Clone()
	clone.ServerName = "127.0.0.1"
	_, err = handshake(t, withIP.addr, clone)
	wantKind(t, err, ErrMissingServerName, "ConfigFor")

	// No server name at all: refused, never accepted unchecked.
	_, err = handshake(t, withIP.addr, r.ConfigFor(""))
	wantKind(t, err, ErrMissingServerName, "no server name")
}

// TestReloadableConcurrent: handshakes and Updates at the same time (run with -race).
func TestReloadableConcurrent(t *testing.T) {
	srvCA, ca1, ca2 := newCA(t, "server-ca"), newCA(t, "client-ca-1"), newCA(t, "client-ca-2")
	srv := startServer(t, serverConfig(t, serverPair(t, srvCA, nil, nil), ca1, ca2))
	m1 := &Material{CA: srvCA.CertPEM}
	m2 := &Material{CA: srvCA.CertPEM}
	p1, p2 := clientPair(t, ca1, "client-1"), clientPair(t, ca2, "client-2")
	m1.Cert, m1.Key, m2.Cert, m2.Key = p1.CertPEM, p1.KeyPEM, p2.CertPEM, p2.KeyPEM
	r := newReloadable(t, Options{Material: m1, ServerName: "redis.test"})
	cfg := r.Config()

	stop := make(chan struct{})
	var updates sync.WaitGroup
	updates.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			m := m1
			if i%2 == 1 {
				m = m2
			}
			if err := r.Update(m); err != nil {
				t.Error(err)
				return
			}
		}
	})
	var clients sync.WaitGroup
	for range 2 {
		clients.Go(func() {
			for range 5 {
				if cn, err := handshake(t, srv.addr, cfg); err != nil || (cn != "client-1" && cn != "client-2") {
					t.Errorf("handshake during updates: cn %q, %v", cn, err)
				}
			}
		})
	}
	clients.Wait()
	close(stop)
	updates.Wait()
}
