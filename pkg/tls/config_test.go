package tls

import (
	"bytes"
	cryptotls "crypto/tls"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

func TestConfig(t *testing.T) {
	ca := newCA(t, "ca")
	cl := clientPair(t, ca, "client")

	for _, tc := range []struct {
		name       string
		o          Options
		want       *Error
		wantRoots  bool
		wantCert   bool
		wantMinVer uint16
	}{
		{name: "nothing: system roots, no client cert", o: Options{ServerName: "redis.test"}, wantMinVer: cryptotls.VersionTLS12},
		{name: "CA only", o: Options{Material: &Material{CA: ca.CertPEM}, ServerName: "redis.test"}, wantRoots: true, wantMinVer: cryptotls.VersionTLS12},
		{name: "mutual TLS", o: Options{Material: &Material{CA: ca.CertPEM, Cert: cl.CertPEM, Key: cl.KeyPEM}, ServerName: "redis.test"},
			wantRoots: true, wantCert: true, wantMinVer: cryptotls.VersionTLS12},
		{name: "TLS 1.3", o: Options{Material: &Material{CA: ca.CertPEM}, ServerName: "redis.test", MinVersion: cryptotls.VersionTLS13},
			wantRoots: true, wantMinVer: cryptotls.VersionTLS13},
		{name: "cert without key", o: Options{Material: &Material{CA: ca.CertPEM, Cert: cl.CertPEM}}, want: ErrIncompleteKeyPair},
		{name: "key without cert", o: Options{Material: &Material{CA: ca.CertPEM, Key: cl.KeyPEM}}, want: ErrIncompleteKeyPair},
		{name: "malformed CA", o: Options{Material: &Material{CA: []byte("x")}}, want: ErrMalformedPEM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Config(tc.o)
			if tc.want != nil {
				wantKind(t, err, tc.want)
				if cfg != nil {
					t.Error("config returned with an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (cfg.RootCAs != nil) != tc.wantRoots {
				t.Errorf("RootCAs = %v, want set: %v", cfg.RootCAs, tc.wantRoots)
			}
			if (len(cfg.Certificates) == 1) != tc.wantCert {
				t.Errorf("%d client certificates, want one: %v", len(cfg.Certificates), tc.wantCert)
			}
			if tc.wantCert && cfg.Certificates[0].Leaf.Subject.CommonName != "client" {
				t.Errorf("client certificate leaf = %v", cfg.Certificates[0].Leaf.Subject)
			}
			if cfg.ServerName != tc.o.ServerName || cfg.MinVersion != tc.wantMinVer || cfg.InsecureSkipVerify {
				t.Errorf("ServerName %q MinVersion %x InsecureSkipVerify %v", cfg.ServerName, cfg.MinVersion, cfg.InsecureSkipVerify)
			}
		})
	}
}

// TestConfigHandshakes runs static configurations against a real server and classifies
// the handshake errors crypto/tls returns with Explain.
func TestConfigHandshakes(t *testing.T) {
	srvCA, clientCA, otherCA := newCA(t, "server-ca"), newCA(t, "client-ca"), newCA(t, "other-ca")
	srv := startServer(t, serverConfig(t, serverPair(t, srvCA, []string{"redis.test"}, nil), clientCA))
	cl := clientPair(t, clientCA, "client")
	stranger := clientPair(t, otherCA, "stranger")

	config := func(o Options) *cryptotls.Config {
		t.Helper()
		cfg, err := Config(o)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}

	cn, err := handshake(t, srv.addr, config(Options{Material: &Material{CA: srvCA.CertPEM, Cert: cl.CertPEM, Key: cl.KeyPEM}, ServerName: "redis.test"}))
	if err != nil || cn != "client" {
		t.Fatalf("mutual TLS handshake: cn %q, %v", cn, err)
	}

	_, err = handshake(t, srv.addr, config(Options{Material: &Material{CA: srvCA.CertPEM}, ServerName: "redis.test"}))
	wantKind(t, err, ErrClientCertificateRejected, "requires a client certificate")

	_, err = handshake(t, srv.addr, config(Options{Material: &Material{CA: srvCA.CertPEM, Cert: stranger.CertPEM, Key: stranger.KeyPEM}, ServerName: "redis.test"}))
	wantKind(t, err, ErrClientCertificateRejected, "rejected the client certificate")

	_, err = handshake(t, srv.addr, config(Options{Material: &Material{CA: otherCA.CertPEM, Cert: cl.CertPEM, Key: cl.KeyPEM}, ServerName: "redis.test"}))
	wantKind(t, err, ErrUnknownAuthority, "CN=server-ca")

	_, err = handshake(t, srv.addr, config(Options{Material: &Material{CA: srvCA.CertPEM, Cert: cl.CertPEM, Key: cl.KeyPEM}, ServerName: "127.0.0.1"}))
	wantKind(t, err, ErrHostnameMismatch, "DNS names [redis.test]", "not 127.0.0.1")
}

// TestConfigTLS12MissingClientCert: with TLS 1.2 the server says only "handshake failure".
func TestConfigTLS12MissingClientCert(t *testing.T) {
	srvCA, clientCA := newCA(t, "server-ca"), newCA(t, "client-ca")
	sc := serverConfig(t, serverPair(t, srvCA, nil, nil), clientCA)
	sc.MaxVersion = cryptotls.VersionTLS12
	srv := startServer(t, sc)
	cfg, err := Config(Options{Material: &Material{CA: srvCA.CertPEM}, ServerName: "redis.test"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = handshake(t, srv.addr, cfg)
	wantKind(t, err, ErrHandshakeFailure, "client certificate")
}

func TestNotTLS(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { _ = ln.Close(); <-done })
	go func() { // a plain-text Redis answering the ClientHello with an error
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer func() { _ = c.Close() }()
		_ = c.SetDeadline(time.Now().Add(ioTimeout))
		buf := make([]byte, 512)
		_, _ = c.Read(buf)
		_, _ = c.Write([]byte("-ERR Protocol error: invalid multibulk length\r\n"))
	}()
	ca := newCA(t, "ca")
	cfg, err := Config(Options{Material: &Material{CA: ca.CertPEM}, ServerName: "redis.test"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = handshake(t, ln.Addr().String(), cfg)
	wantKind(t, err, ErrNotTLS, "did not answer with TLS", "-ERR", "plain-text Redis")
}

func TestInsecureWarning(t *testing.T) {
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })

	name := "insecure-warning.test"
	for range 3 {
		cfg, err := Config(Options{ServerName: name, InsecureSkipVerify: true})
		if err != nil || !cfg.InsecureSkipVerify {
			t.Fatalf("Config: %v, %v", cfg, err)
		}
	}
	if _, err := NewReloadable(Options{ServerName: name, InsecureSkipVerify: true}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if n := strings.Count(out, "certificate verification is disabled"); n != 1 {
		t.Errorf("warning logged %d times, want once:\n%s", n, out)
	}
	for _, want := range []string{"level=WARN", "can be intercepted", name} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q lacks %q", out, want)
		}
	}

	buf.Reset()
	if _, err := Config(Options{ServerName: "secure.test"}); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Errorf("warning without InsecureSkipVerify: %s", buf.String())
	}
}
