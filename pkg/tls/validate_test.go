package tls

import (
	"encoding/base64"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/world/certs"
)

func TestLoadFiles(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "ca")
	cl := clientPair(t, ca, "client")
	certFile, keyFile, err := cl.WriteFiles(dir, "client")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.crt")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	m, err := LoadFiles(caFile, certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.CA) != string(ca.CertPEM) || string(m.Cert) != string(cl.CertPEM) || string(m.Key) != string(cl.KeyPEM) {
		t.Error("LoadFiles did not return the files' contents")
	}
	if m, err := LoadFiles(caFile, "", ""); err != nil || m.Cert != nil || m.Key != nil || m.CA == nil {
		t.Errorf("CA only: %+v, %v", m, err)
	}

	missing := filepath.Join(dir, "missing.key")
	_, err = LoadFiles(caFile, certFile, missing)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "key") {
		t.Errorf("missing key file: %v", err)
	}
	_, err = LoadFiles(empty, "", "")
	wantKind(t, err, ErrMalformedPEM, empty, "empty")
}

func TestValidateErrors(t *testing.T) {
	now := time.Now()
	ca := newCA(t, "ca")
	other := newCA(t, "other-ca")
	good := clientPair(t, ca, "client")
	bad2 := clientPair(t, ca, "client-2")
	otherClient := clientPair(t, other, "client-of-other-ca")
	expired := issue(t, ca, certs.Request{CommonName: "old-client", Client: true,
		NotBefore: now.Add(-72 * time.Hour), NotAfter: now.Add(-24 * time.Hour)})
	future := issue(t, ca, certs.Request{CommonName: "future-client", Client: true,
		NotBefore: now.Add(24 * time.Hour), NotAfter: now.Add(72 * time.Hour)})
	garbageCert := []byte("-----BEGIN CERTIFICATE-----\nAAECAwQ=\n-----END CERTIFICATE-----\n")
	garbageKey := []byte("-----BEGIN PRIVATE KEY-----\nAAECAwQ=\n-----END PRIVATE KEY-----\n")

	for _, tc := range []struct {
		name    string
		m       *Material
		want    *Error // nil: valid
		part    string
		details []string
	}{
		{name: "nil material", m: nil},
		{name: "empty material", m: &Material{}},
		{name: "CA only", m: &Material{CA: ca.CertPEM}},
		{name: "full", m: &Material{CA: ca.CertPEM, Cert: good.CertPEM, Key: good.KeyPEM}},
		{name: "client cert signed by another CA is fine", m: &Material{CA: ca.CertPEM, Cert: otherClient.CertPEM, Key: otherClient.KeyPEM}},
		{name: "CA no PEM block", m: &Material{CA: []byte("hello")}, want: ErrMalformedPEM, part: "CA",
			details: []string{"CA", "no PEM block found"}},
		{name: "CA double base64", m: &Material{CA: []byte(base64.StdEncoding.EncodeToString(ca.CertPEM))}, want: ErrMalformedPEM, part: "CA",
			details: []string{"no PEM block found", "base64-encoded twice"}},
		{name: "CA holds a key", m: &Material{CA: good.KeyPEM}, want: ErrMalformedPEM, part: "CA",
			details: []string{"CA", `PEM block of type "PRIVATE KEY" where a CERTIFICATE was expected`}},
		{name: "CA bundle with bad second block", m: &Material{CA: concat(ca.CertPEM, garbageCert)}, want: ErrMalformedPEM, part: "CA",
			details: []string{"CA", "CERTIFICATE block 2 cannot be parsed"}},
		{name: "certificate no PEM block", m: &Material{Cert: []byte("  \n"), Key: good.KeyPEM}, want: ErrMalformedPEM, part: "certificate",
			details: []string{"certificate", "no PEM block found"}},
		{name: "certificate is a key", m: &Material{Cert: good.KeyPEM, Key: good.KeyPEM}, want: ErrMalformedPEM, part: "certificate",
			details: []string{"certificate", `PEM block of type "PRIVATE KEY" where a CERTIFICATE was expected`}},
		{name: "certificate unparsable DER", m: &Material{Cert: garbageCert, Key: good.KeyPEM}, want: ErrMalformedPEM, part: "certificate",
			details: []string{"certificate", "cannot be parsed"}},
		{name: "key no PEM block", m: &Material{Cert: good.CertPEM, Key: []byte("secret")}, want: ErrMalformedPEM, part: "key",
			details: []string{"key", "no PEM block found"}},
		{name: "key is a certificate", m: &Material{Cert: good.CertPEM, Key: good.CertPEM}, want: ErrMalformedPEM, part: "key",
			details: []string{"key", `PEM block of type "CERTIFICATE" where a PRIVATE KEY was expected`}},
		{name: "key unparsable DER", m: &Material{Cert: good.CertPEM, Key: garbageKey}, want: ErrMalformedPEM, part: "key",
			details: []string{"key", "cannot be parsed"}},
		{name: "cert without key", m: &Material{Cert: good.CertPEM}, want: ErrIncompleteKeyPair, part: "key",
			details: []string{"without its private key", "CN=client"}},
		{name: "key without cert", m: &Material{Key: good.KeyPEM}, want: ErrIncompleteKeyPair, part: "certificate",
			details: []string{"without a client certificate"}},
		{name: "key of another certificate", m: &Material{Cert: good.CertPEM, Key: bad2.KeyPEM}, want: ErrKeyMismatch, part: "key",
			details: []string{"does not match", "CN=client", "ECDSA P-256"}},
		{name: "CA given as client certificate", m: &Material{Cert: ca.CertPEM, Key: good.KeyPEM}, want: ErrKeyMismatch,
			details: []string{"is a CA certificate"}},
		{name: "expired client certificate", m: &Material{CA: ca.CertPEM, Cert: expired.CertPEM, Key: expired.KeyPEM},
			want: ErrCertificateExpired, part: "client certificate",
			details: []string{"CN=old-client", "expired at " + expired.Cert.NotAfter.UTC().Format(time.RFC3339), "ago"}},
		{name: "not yet valid client certificate", m: &Material{Cert: future.CertPEM, Key: future.KeyPEM},
			want: ErrCertificateNotYetValid, part: "client certificate",
			details: []string{"CN=future-client", "not valid before " + future.Cert.NotBefore.UTC().Format(time.RFC3339)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Validate(tc.m, now)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if rep == nil {
					t.Fatal("no report")
				}
				return
			}
			wantKind(t, err, tc.want, tc.details...)
			var e *Error
			errors.As(err, &e)
			if tc.part != "" && e.Part != tc.part {
				t.Errorf("Part = %q, want %q", e.Part, tc.part)
			}
			if errors.Is(err, ErrMalformedPEM) != (rep == nil) {
				t.Errorf("report = %v: want a report exactly when the PEM could be decoded", rep)
			}
		})
	}
}

func TestValidateExpiredCA(t *testing.T) {
	now := time.Now()
	ca := newCA(t, "ca")
	// A CA that has expired, simulated by validating a year and a day from now.
	later := now.Add(366 * 24 * time.Hour)
	_, err := Validate(&Material{CA: ca.CertPEM}, later)
	wantKind(t, err, ErrCertificateExpired, "CA certificate", "CN=ca", ca.Cert.NotAfter.UTC().Format(time.RFC3339))

	// A bundle keeping an expired CA next to a valid one is fine (rotation overlap).
	old := newCA(t, "old-ca")
	next, err := certs.NewCA("next-ca")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Validate(&Material{CA: concat(old.CertPEM, next.CertPEM)}, now); err != nil {
		t.Errorf("bundle: %v", err)
	}
}

func TestReportExpiry(t *testing.T) {
	now := time.Now()
	ca := newCA(t, "ca")          // valid for a year
	ca2 := newCA(t, "ca-bundled") // valid for a year
	cl := issue(t, ca, certs.Request{CommonName: "client", Client: true, NotAfter: now.Add(10 * 24 * time.Hour)})
	inter := issue(t, ca, certs.Request{CommonName: "intermediate", NotAfter: now.Add(40 * 24 * time.Hour)})

	rep, err := Validate(&Material{CA: concat(ca.CertPEM, ca2.CertPEM), Cert: concat(cl.CertPEM, inter.CertPEM), Key: cl.KeyPEM}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Certificates) != 4 {
		t.Fatalf("report has %d certificates, want 4: %+v", len(rep.Certificates), rep.Certificates)
	}
	wantRoles := []Role{RoleCA, RoleCA, RoleClient, RoleIntermediate}
	for i, c := range rep.Certificates {
		if c.Role != wantRoles[i] || c.Subject == "" || c.NotBefore.IsZero() || c.NotAfter.IsZero() {
			t.Errorf("certificate %d = %+v, want role %s with subject and dates", i, c, wantRoles[i])
		}
	}
	if !rep.Expiry.Equal(cl.Cert.NotAfter) {
		t.Errorf("Expiry = %v, want the client certificate's %v", rep.Expiry, cl.Cert.NotAfter)
	}
	if e := rep.Earliest(); e == nil || e.Subject != "CN=client" {
		t.Errorf("Earliest = %+v", e)
	}
	if d := rep.ExpiresIn(now); d < 10*24*time.Hour-2*time.Second || d > 10*24*time.Hour {
		t.Errorf("ExpiresIn = %v, want about 10 days", d)
	}

	// Only the CA: its expiry.
	rep, _ = Validate(&Material{CA: ca.CertPEM}, now)
	if !rep.Expiry.Equal(ca.Cert.NotAfter) {
		t.Errorf("CA only: Expiry = %v, want %v", rep.Expiry, ca.Cert.NotAfter)
	}
	// Nothing: no expiry, never "about to expire".
	rep, _ = Validate(nil, now)
	if !rep.Expiry.IsZero() || rep.ExpiresIn(now) < 100*365*24*time.Hour {
		t.Errorf("empty: Expiry = %v, ExpiresIn = %v", rep.Expiry, rep.ExpiresIn(now))
	}
}

func TestVerifyServer(t *testing.T) {
	now := time.Now()
	ca := newCA(t, "server-ca")
	other := newCA(t, "other-ca")
	dnsOnly := serverPair(t, ca, []string{"redis.test", "*.redis.test"}, nil)
	ipOnly := serverPair(t, ca, nil, []net.IP{net.ParseIP("10.1.2.3")})
	cnOnly := issue(t, ca, certs.Request{CommonName: "redis.test", Server: true})
	expired := issue(t, ca, certs.Request{CommonName: "old-server", DNSNames: []string{"redis.test"}, Server: true,
		NotBefore: now.Add(-72 * time.Hour), NotAfter: now.Add(-24 * time.Hour)})
	future := issue(t, ca, certs.Request{CommonName: "new-server", DNSNames: []string{"redis.test"}, Server: true,
		NotBefore: now.Add(24 * time.Hour)})
	clientOnly := issue(t, ca, certs.Request{CommonName: "client-usage", DNSNames: []string{"redis.test"}, Client: true})
	m := &Material{CA: ca.CertPEM}

	for _, tc := range []struct {
		name    string
		m       *Material
		server  []byte
		host    string
		want    *Error
		details []string
	}{
		{name: "valid DNS", m: m, server: dnsOnly.CertPEM, host: "a.redis.test"},
		{name: "valid IP", m: m, server: ipOnly.CertPEM, host: "10.1.2.3"},
		{name: "unknown authority", m: &Material{CA: other.CertPEM}, server: dnsOnly.CertPEM, host: "redis.test",
			want: ErrUnknownAuthority, details: []string{"CN=redis-server", "issued by", "CN=server-ca", "CN=other-ca"}},
		{name: "IP dialed, DNS-only certificate", m: m, server: dnsOnly.CertPEM, host: "10.1.2.3",
			want: ErrHostnameMismatch, details: []string{"DNS names [redis.test, *.redis.test]", "no IP addresses", "not 10.1.2.3", "IP address"}},
		{name: "other DNS name", m: m, server: dnsOnly.CertPEM, host: "cache.example",
			want: ErrHostnameMismatch, details: []string{"DNS names [redis.test, *.redis.test]", "not cache.example"}},
		{name: "DNS dialed, IP-only certificate", m: m, server: ipOnly.CertPEM, host: "redis.test",
			want: ErrHostnameMismatch, details: []string{"no DNS names", "IP addresses [10.1.2.3]", "not redis.test"}},
		{name: "common name only", m: m, server: cnOnly.CertPEM, host: "redis.test",
			want: ErrHostnameMismatch, details: []string{"no subject alternative names", "common name"}},
		{name: "expired", m: m, server: expired.CertPEM, host: "redis.test",
			want: ErrCertificateExpired, details: []string{"CN=old-server", expired.Cert.NotAfter.UTC().Format(time.RFC3339)}},
		{name: "not yet valid", m: m, server: future.CertPEM, host: "redis.test",
			want: ErrCertificateNotYetValid, details: []string{"CN=new-server", future.Cert.NotBefore.UTC().Format(time.RFC3339)}},
		{name: "client-only usage", m: m, server: clientOnly.CertPEM, host: "redis.test",
			want: ErrCertificateInvalid, details: []string{"CN=client-usage"}},
		{name: "malformed server PEM", m: m, server: []byte("nope"), host: "redis.test",
			want: ErrMalformedPEM, details: []string{"server certificate", "no PEM block found"}},
		{name: "malformed CA", m: &Material{CA: []byte("nope")}, server: dnsOnly.CertPEM, host: "redis.test",
			want: ErrMalformedPEM, details: []string{"CA"}},
		{name: "no name", m: m, server: dnsOnly.CertPEM, host: "",
			want: ErrMissingServerName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyServer(tc.m, tc.server, tc.host, now)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantKind(t, err, tc.want, tc.details...)
		})
	}
}
