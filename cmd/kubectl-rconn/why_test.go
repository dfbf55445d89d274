package main

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// TestWhyNamesTheCertificateProblem: the manager's status reads a certificate that failed
// verification like a closed port (issue 23, item 5); check, run by the user from their own
// place, still names the problem, also when pkg/tls explained it.
func TestWhyNamesTheCertificateProblem(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&cluster.NodeError{Addr: "a:1", Err: &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}, "unknown authority"},
		{&cluster.NodeError{Addr: "a:1", Err: x509.HostnameError{Host: "h", Certificate: &x509.Certificate{}}}, `not valid for "h"`},
		{&cluster.NodeError{Addr: "a:1", Err: rtls.ErrMissingServerName}, "(MissingServerName)"},
	} {
		if got := why(tc.err, time.Second); !strings.Contains(got, tc.want) {
			t.Errorf("why(%v) = %q, want it to contain %q", tc.err, got, tc.want)
		}
	}
}
