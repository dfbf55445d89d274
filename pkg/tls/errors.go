package tls

import (
	cryptotls "crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"time"
)

// Reason is the kind of a TLS problem. Its values are CamelCase so that they can be used
// verbatim as Kubernetes condition reasons.
type Reason string

// The reasons reported by this package.
const (
	// ReasonMalformedPEM: the CA, certificate or key is not usable PEM (no PEM block, a
	// block of the wrong type, or DER that does not parse).
	ReasonMalformedPEM Reason = "MalformedPEM"
	// ReasonIncompleteKeyPair: a client certificate without a key, or a key without a
	// certificate.
	ReasonIncompleteKeyPair Reason = "IncompleteKeyPair"
	// ReasonKeyMismatch: the private key does not belong to the client certificate.
	ReasonKeyMismatch Reason = "KeyMismatch"
	// ReasonCertificateExpired: a certificate's NotAfter is in the past.
	ReasonCertificateExpired Reason = "CertificateExpired"
	// ReasonCertificateNotYetValid: a certificate's NotBefore is in the future.
	ReasonCertificateNotYetValid Reason = "CertificateNotYetValid"
	// ReasonCertificateInvalid: the server certificate was rejected for another reason
	// (wrong key usage, an intermediate that may not sign, ...).
	ReasonCertificateInvalid Reason = "CertificateInvalid"
	// ReasonUnknownAuthority: the server certificate is not signed by a trusted CA.
	ReasonUnknownAuthority Reason = "UnknownAuthority"
	// ReasonHostnameMismatch: the server certificate is not valid for the name dialed.
	ReasonHostnameMismatch Reason = "HostnameMismatch"
	// ReasonMissingServerName: there is no server name to check the server certificate
	// against (see the package documentation about IP addresses).
	ReasonMissingServerName Reason = "MissingServerName"
	// ReasonNotTLS: the server answered with something that is not TLS, typically a
	// plain-text Redis port.
	ReasonNotTLS Reason = "NotTLS"
	// ReasonClientCertificateRejected: the server required a client certificate and none
	// was sent, or it rejected the one that was sent.
	ReasonClientCertificateRejected Reason = "ClientCertificateRejected"
	// ReasonHandshakeFailure: the server aborted the handshake for another reason (no
	// common protocol version or cipher suite; with TLS 1.2 also a missing client
	// certificate).
	ReasonHandshakeFailure Reason = "HandshakeFailure"
)

func (r Reason) String() string { return string(r) }

// Error is a TLS problem of a known kind. Msg is a complete sentence meant for people;
// Err, when set, is the underlying error (a crypto/x509 or crypto/tls error), reachable
// with errors.As.
type Error struct {
	Reason Reason
	// Part names the material concerned: "CA", "certificate", "key" or "server
	// certificate"; empty when not about one part.
	Part string
	Msg  string
	Err  error
}

func (e *Error) Error() string { return e.Msg }

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error of the same Reason, so that
// errors.Is(err, ErrKeyMismatch) works for every error of that kind.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Reason == e.Reason
}

// Sentinel errors, one per Reason, for errors.Is.
var (
	ErrMalformedPEM              = &Error{Reason: ReasonMalformedPEM, Msg: "malformed PEM"}
	ErrIncompleteKeyPair         = &Error{Reason: ReasonIncompleteKeyPair, Msg: "client certificate and key must be given together"}
	ErrKeyMismatch               = &Error{Reason: ReasonKeyMismatch, Msg: "private key does not match the certificate"}
	ErrCertificateExpired        = &Error{Reason: ReasonCertificateExpired, Msg: "certificate has expired"}
	ErrCertificateNotYetValid    = &Error{Reason: ReasonCertificateNotYetValid, Msg: "certificate is not yet valid"}
	ErrCertificateInvalid        = &Error{Reason: ReasonCertificateInvalid, Msg: "certificate is invalid"}
	ErrUnknownAuthority          = &Error{Reason: ReasonUnknownAuthority, Msg: "certificate signed by an unknown authority"}
	ErrHostnameMismatch          = &Error{Reason: ReasonHostnameMismatch, Msg: "certificate is not valid for the server name"}
	ErrMissingServerName         = &Error{Reason: ReasonMissingServerName, Msg: "no server name to verify the server certificate against"}
	ErrNotTLS                    = &Error{Reason: ReasonNotTLS, Msg: "server does not speak TLS"}
	ErrClientCertificateRejected = &Error{Reason: ReasonClientCertificateRejected, Msg: "server rejected the client certificate"}
	ErrHandshakeFailure          = &Error{Reason: ReasonHandshakeFailure, Msg: "TLS handshake failed"}
)

// ReasonOf returns the Reason of the first *Error in err's chain, or "" if there is none.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func newError(r Reason, part string, cause error, format string, args ...any) *Error {
	return &Error{Reason: r, Part: part, Msg: fmt.Sprintf(format, args...), Err: cause}
}

// Explain classifies an error from a TLS handshake (or from the first read after it, where
// TLS 1.3 reports a rejected client certificate) and returns an *Error of the matching
// Reason with a sentence a person can act on, wrapping the original error. Errors that are
// already classified, nil, and errors it does not recognise are returned unchanged.
//
// Recognised: x509.UnknownAuthorityError, x509.HostnameError, x509.CertificateInvalidError
// (expired, not yet valid, other), tls.RecordHeaderError (the server does not speak TLS),
// and TLS alerts received from the server about the client certificate ("certificate
// required", "bad certificate", ...) or the handshake ("handshake failure", "protocol
// version").
func Explain(err error) error { return explain(err, nil, time.Now()) }

// explain is Explain with the subjects of the trusted CAs, if known, for a better
// UnknownAuthority message, and the time the verification used.
func explain(err error, trusted []string, now time.Time) error {
	if err == nil {
		return nil
	}
	var classified *Error
	if errors.As(err, &classified) {
		return err
	}

	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return explainUnknownAuthority(err, ua.Cert, trusted)
	}
	var he x509.HostnameError
	if errors.As(err, &he) {
		return explainHostname(err, he.Certificate, he.Host)
	}
	var ci x509.CertificateInvalidError
	if errors.As(err, &ci) {
		return explainInvalid(err, ci, now)
	}
	var rh cryptotls.RecordHeaderError
	if errors.As(err, &rh) {
		return explainNotTLS(err, rh)
	}
	if code, name, ok := remoteAlert(err); ok {
		return explainAlert(err, code, name)
	}
	return err
}

func explainUnknownAuthority(err error, cert *x509.Certificate, trusted []string) error {
	what := "the server certificate"
	if cert != nil {
		what = fmt.Sprintf("the server certificate %s (issued by %s)", describe(cert), issuerOf(cert))
	}
	by := "by any of the trusted CAs"
	if len(trusted) > 0 {
		by = fmt.Sprintf("by any CA in the trusted CA bundle [%s]", strings.Join(trusted, "; "))
	}
	return newError(ReasonUnknownAuthority, "server certificate", err,
		"%s is not signed %s; configure the CA that issued the server certificate", what, by)
}

func explainHostname(err error, cert *x509.Certificate, host string) error {
	if cert == nil {
		return newError(ReasonHostnameMismatch, "server certificate", err,
			"the server certificate is not valid for %q", host)
	}
	msg := fmt.Sprintf("the server certificate %s is valid for %s, not %s", describe(cert), sans(cert), host)
	h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	isIP := net.ParseIP(h) != nil
	switch {
	case len(cert.DNSNames) == 0 && len(cert.IPAddresses) == 0:
		msg += fmt.Sprintf("; the certificate has no subject alternative names, and its common name %q is not used for name checks: reissue it with DNS names or IP addresses", cert.Subject.CommonName)
	case isIP && len(cert.IPAddresses) == 0:
		msg += "; the address dialed is an IP address but the certificate has DNS names only: connect by one of its DNS names (or set the server name to one), or reissue the certificate with the IP address"
	case !isIP && len(cert.DNSNames) == 0:
		msg += "; the server name is a DNS name but the certificate has IP addresses only: connect by one of its IP addresses, or reissue the certificate with the DNS name"
	}
	return &Error{Reason: ReasonHostnameMismatch, Part: "server certificate", Msg: msg, Err: err}
}

func explainInvalid(err error, ci x509.CertificateInvalidError, now time.Time) error {
	c := ci.Cert
	if ci.Reason == x509.Expired && c != nil {
		if strings.Contains(ci.Detail, "is before") || (!strings.Contains(ci.Detail, "is after") && now.Before(c.NotBefore)) {
			return notYetValid("server certificate", c, now, err)
		}
		return expired("server certificate", c, now, err)
	}
	what := "the server certificate"
	if c != nil {
		what += " " + describe(c)
	}
	return newError(ReasonCertificateInvalid, "server certificate", err, "%s was rejected: %v", what, ci)
}

func explainNotTLS(err error, rh cryptotls.RecordHeaderError) error {
	hdr := rh.RecordHeader[:]
	hint := ""
	switch {
	case len(hdr) > 0 && (hdr[0] == '-' || hdr[0] == '+' || hdr[0] == '$' || hdr[0] == '*' || hdr[0] == ':'):
		hint = ", which looks like a plain-text Redis reply"
	case strings.HasPrefix(string(hdr), "HTTP"):
		hint = ", which looks like an HTTP server"
	}
	return newError(ReasonNotTLS, "", err,
		"the server did not answer with TLS (it sent %q%s); it is probably a plain-text port: connect to the TLS port, or disable TLS for this connection",
		string(hdr), hint)
}

// TLS alert codes (RFC 8446 section 6).
const (
	alertHandshakeFailure      = 40
	alertBadCertificate        = 42
	alertUnsupportedCert       = 43
	alertCertificateRevoked    = 44
	alertCertificateExpired    = 45
	alertCertificateUnknown    = 46
	alertUnknownCA             = 48
	alertAccessDenied          = 49
	alertProtocolVersion       = 70
	alertInsufficientSecurity  = 71
	alertCertificateRequired   = 116
	alertCodeUnknown           = -1
	remoteErrorOp              = "remote error"
	remoteAlertTextPrefix      = "tls: "
	alertNameCertificateNeeded = "certificate required"
)

var alertNames = map[string]int{
	"handshake failure":              alertHandshakeFailure,
	"bad certificate":                alertBadCertificate,
	"unsupported certificate":        alertUnsupportedCert,
	"revoked certificate":            alertCertificateRevoked,
	"expired certificate":            alertCertificateExpired,
	"unknown certificate":            alertCertificateUnknown,
	"unknown certificate authority":  alertUnknownCA,
	"access denied":                  alertAccessDenied,
	"protocol version not supported": alertProtocolVersion,
	"insufficient security level":    alertInsufficientSecurity,
	alertNameCertificateNeeded:       alertCertificateRequired,
}

// remoteAlert finds a TLS alert sent by the peer. crypto/tls reports those as a
// *net.OpError with Op "remote error" around an unexported uint8 alert type; AlertError
// (used with QUIC) is recognised too.
func remoteAlert(err error) (code int, name string, ok bool) {
	var ae cryptotls.AlertError
	if errors.As(err, &ae) {
		name = strings.TrimPrefix(ae.Error(), remoteAlertTextPrefix)
		return int(ae), name, true
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != remoteErrorOp || op.Err == nil {
		return 0, "", false
	}
	name = strings.TrimPrefix(op.Err.Error(), remoteAlertTextPrefix)
	v := reflect.ValueOf(op.Err)
	if v.Kind() == reflect.Uint8 {
		return int(v.Uint()), name, true
	}
	if c, found := alertNames[name]; found {
		return c, name, true
	}
	return alertCodeUnknown, name, true
}

func explainAlert(err error, code int, name string) error {
	switch code {
	case alertCertificateRequired:
		return newError(ReasonClientCertificateRejected, "certificate", err,
			"the server requires a client certificate but none was sent (TLS alert %q); configure a client certificate and key", name)
	case alertBadCertificate, alertUnsupportedCert, alertCertificateRevoked, alertCertificateExpired,
		alertCertificateUnknown, alertUnknownCA, alertAccessDenied:
		return newError(ReasonClientCertificateRejected, "certificate", err,
			"the server rejected the client certificate (TLS alert %q); check that the server trusts the CA that issued it, that it is valid now, and that it may be used for client authentication", name)
	case alertHandshakeFailure:
		return newError(ReasonHandshakeFailure, "", err,
			"the server aborted the TLS handshake (TLS alert %q); with TLS 1.2 this usually means it requires a client certificate that was not sent, otherwise there is no common TLS version or cipher suite", name)
	default:
		return newError(ReasonHandshakeFailure, "", err, "the server aborted the TLS handshake (TLS alert %q)", name)
	}
}

func expired(part string, c *x509.Certificate, now time.Time, cause error) *Error {
	return newError(ReasonCertificateExpired, part, cause, "the %s %s expired at %s (%s ago)",
		part, describe(c), formatTime(c.NotAfter), humanDuration(now.Sub(c.NotAfter)))
}

func notYetValid(part string, c *x509.Certificate, now time.Time, cause error) *Error {
	return newError(ReasonCertificateNotYetValid, part, cause,
		"the %s %s is not valid before %s (%s from now); check the clocks of this machine and of the issuer",
		part, describe(c), formatTime(c.NotBefore), humanDuration(c.NotBefore.Sub(now)))
}

// describe names a certificate for people: its subject, or its SANs when the subject is
// empty.
func describe(c *x509.Certificate) string {
	if s := c.Subject.String(); s != "" {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("(empty subject, %s)", sans(c))
}

func issuerOf(c *x509.Certificate) string {
	if s := c.Issuer.String(); s != "" {
		return fmt.Sprintf("%q", s)
	}
	return "an issuer with an empty name"
}

func sans(c *x509.Certificate) string {
	dns := "no DNS names"
	if len(c.DNSNames) > 0 {
		dns = fmt.Sprintf("DNS names [%s]", strings.Join(c.DNSNames, ", "))
	}
	ips := "no IP addresses"
	if len(c.IPAddresses) > 0 {
		s := make([]string, len(c.IPAddresses))
		for i, ip := range c.IPAddresses {
			s[i] = ip.String()
		}
		ips = fmt.Sprintf("IP addresses [%s]", strings.Join(s, ", "))
	}
	return dns + " and " + ips
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func humanDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	}
	return d.Round(time.Second).String()
}
