package tls

import (
	cryptotls "crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/world/certs"
)

func TestExplain(t *testing.T) {
	now := time.Now()
	ca := newCA(t, "server-ca")
	srv := serverPair(t, ca, []string{"redis.test"}, nil)
	expired := issue(t, ca, certs.Request{CommonName: "old-server", Server: true,
		NotBefore: now.Add(-72 * time.Hour), NotAfter: now.Add(-24 * time.Hour)})
	future := issue(t, ca, certs.Request{CommonName: "new-server", Server: true, NotBefore: now.Add(24 * time.Hour)})
	wrap := func(err error) error { // as crypto/tls reports verification failures
		return fmt.Errorf("dial: %w", &cryptotls.CertificateVerificationError{Err: err})
	}

	for _, tc := range []struct {
		name    string
		err     error
		want    *Error
		details []string
	}{
		{name: "unknown authority", err: wrap(x509.UnknownAuthorityError{Cert: srv.Cert}),
			want: ErrUnknownAuthority, details: []string{"CN=redis-server", "CN=server-ca", "not signed"}},
		{name: "hostname", err: wrap(x509.HostnameError{Certificate: srv.Cert, Host: "127.0.0.1"}),
			want: ErrHostnameMismatch, details: []string{"DNS names [redis.test]", "no IP addresses", "not 127.0.0.1", "IP address"}},
		{name: "expired", err: wrap(x509.CertificateInvalidError{Cert: expired.Cert, Reason: x509.Expired,
			Detail: "current time x is after y"}),
			want: ErrCertificateExpired, details: []string{"CN=old-server", expired.Cert.NotAfter.UTC().Format(time.RFC3339)}},
		{name: "not yet valid", err: wrap(x509.CertificateInvalidError{Cert: future.Cert, Reason: x509.Expired,
			Detail: "current time x is before y"}),
			want: ErrCertificateNotYetValid, details: []string{"CN=new-server", future.Cert.NotBefore.UTC().Format(time.RFC3339)}},
		{name: "other invalid", err: wrap(x509.CertificateInvalidError{Cert: srv.Cert, Reason: x509.IncompatibleUsage}),
			want: ErrCertificateInvalid, details: []string{"CN=redis-server"}},
		{name: "plain-text Redis", err: cryptotls.RecordHeaderError{Msg: "first record does not look like a TLS handshake",
			RecordHeader: [5]byte{'-', 'E', 'R', 'R', ' '}},
			want: ErrNotTLS, details: []string{"did not answer with TLS", `"-ERR "`, "plain-text Redis"}},
		{name: "HTTP", err: cryptotls.RecordHeaderError{RecordHeader: [5]byte{'H', 'T', 'T', 'P', '/'}},
			want: ErrNotTLS, details: []string{"HTTP"}},
		{name: "remote certificate required (by text)", err: &net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")},
			want: ErrClientCertificateRejected, details: []string{"requires a client certificate", "none was sent"}},
		{name: "remote bad certificate (by text)", err: &net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")},
			want: ErrClientCertificateRejected, details: []string{"rejected the client certificate", "bad certificate"}},
		{name: "alert error", err: fmt.Errorf("quic: %w", cryptotls.AlertError(116)),
			want: ErrClientCertificateRejected, details: []string{"certificate required"}},
		{name: "handshake failure", err: &net.OpError{Op: "remote error", Err: errors.New("tls: handshake failure")},
			want: ErrHandshakeFailure, details: []string{"handshake failure", "client certificate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantKind(t, tc.err, tc.want, tc.details...)
			if ex := Explain(tc.err); !errors.Is(ex, tc.err) {
				t.Errorf("Explain does not wrap the original error")
			}
		})
	}

	if Explain(nil) != nil {
		t.Error("Explain(nil) != nil")
	}
	plain := errors.New("connection refused")
	if Explain(plain) != plain { //nolint:errorlint // the very same value must come back, not an equivalent one
		t.Error("an unrelated error must be returned unchanged")
	}
	classified := error(&Error{Reason: ReasonKeyMismatch, Msg: "x"})
	wrapped := fmt.Errorf("ctx: %w", classified)
	if Explain(wrapped) != wrapped { //nolint:errorlint // the very same value must come back, not an equivalent one
		t.Error("an already classified error must be returned unchanged")
	}
	// The original x509 error stays reachable.
	var he x509.HostnameError
	if !errors.As(Explain(wrap(x509.HostnameError{Certificate: srv.Cert, Host: "x"})), &he) {
		t.Error("x509.HostnameError not reachable through errors.As")
	}
}

func TestReasonValues(t *testing.T) {
	for r, want := range map[Reason]string{
		ReasonMalformedPEM: "MalformedPEM", ReasonKeyMismatch: "KeyMismatch",
		ReasonCertificateExpired: "CertificateExpired", ReasonCertificateNotYetValid: "CertificateNotYetValid",
		ReasonUnknownAuthority: "UnknownAuthority", ReasonHostnameMismatch: "HostnameMismatch",
		ReasonNotTLS: "NotTLS", ReasonClientCertificateRejected: "ClientCertificateRejected",
		ReasonIncompleteKeyPair: "IncompleteKeyPair", ReasonCertificateInvalid: "CertificateInvalid",
		ReasonMissingServerName: "MissingServerName", ReasonHandshakeFailure: "HandshakeFailure",
	} {
		if string(r) != want {
			t.Errorf("%q != %q", r, want)
		}
	}
	if ReasonOf(errors.New("x")) != "" || ReasonOf(fmt.Errorf("w: %w", ErrNotTLS)) != ReasonNotTLS {
		t.Error("ReasonOf")
	}
	if errors.Is(ErrNotTLS, ErrKeyMismatch) {
		t.Error("different reasons must not match")
	}
}
