package tls

import (
	cryptotls "crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Options configure a client TLS configuration.
type Options struct {
	// Material holds the CA bundle and the client certificate and key; nil means system
	// roots and no client certificate.
	Material *Material
	// ServerName is the name the server certificate must be valid for (a DNS name or an
	// IP address). Empty lets crypto/tls.Dial fill in the host of the address dialed.
	ServerName string
	// InsecureSkipVerify disables verification of the server certificate. Connections can
	// then be intercepted; a warning is logged.
	InsecureSkipVerify bool
	// MinVersion is the minimum TLS version; 0 means TLS 1.2.
	MinVersion uint16
}

func (o Options) minVersion() uint16 {
	if o.MinVersion == 0 {
		return cryptotls.VersionTLS12
	}
	return o.MinVersion
}

// state is validated, ready-to-use material.
type state struct {
	material *Material
	roots    *x509.CertPool // nil: system roots
	ca       []*x509.Certificate
	trusted  []string // descriptions of ca, for messages
	cert     *cryptotls.Certificate
	report   *Report
}

// newState validates m at now and prepares it for use. Malformed PEM, an incomplete or
// mismatched key pair and expired certificates are errors; a certificate that is not yet
// valid is accepted with a warning, because a freshly issued certificate can look so on a
// machine whose clock is slightly behind, and refusing it would lose a rotation.
func newState(m *Material, now time.Time) (*state, error) {
	p, err := parseMaterial(m)
	if err != nil {
		return nil, err
	}
	if err := p.checkPair(); err != nil {
		return nil, err
	}
	if err := p.checkTimes(now); err != nil {
		if !errors.Is(err, ErrCertificateNotYetValid) {
			return nil, err
		}
		slog.Warn("TLS certificate is not valid yet; using it anyway", "error", err.Error())
	}
	s := &state{material: m.Clone(), ca: p.ca, report: p.report()}
	if len(p.ca) > 0 {
		s.roots = x509.NewCertPool()
		for _, c := range p.ca {
			s.roots.AddCert(c)
			s.trusted = append(s.trusted, describe(c))
		}
	}
	if len(p.chain) > 0 {
		s.cert = &cryptotls.Certificate{Certificate: p.chainDER, PrivateKey: p.key, Leaf: p.chain[0]}
	}
	return s, nil
}

// Config builds a client *tls.Config from o: RootCAs from the CA bundle (nil, meaning the
// system roots, when there is none), the client certificate for mutual TLS (in
// Certificates, and sent by GetClientCertificate whenever the server asks), ServerName and
// MinVersion. The material is validated as by Validate, except that a certificate that
// is not yet valid is only logged. Verification is left to crypto/tls, whose errors
// Explain can classify.
func Config(o Options) (*cryptotls.Config, error) {
	s, err := newState(o.Material, time.Now())
	if err != nil {
		return nil, err
	}
	cfg := &cryptotls.Config{
		MinVersion:         o.minVersion(),
		ServerName:         o.ServerName,
		RootCAs:            s.roots,
		InsecureSkipVerify: o.InsecureSkipVerify,
	}
	if s.cert != nil {
		cfg.Certificates = []cryptotls.Certificate{*s.cert}
		// Always send the certificate. With Certificates alone crypto/tls silently sends
		// none when the server's list of acceptable CAs does not name its issuer (e.g. a
		// leaf from an intermediate), and the server then only says "certificate
		// required"; sent, a wrong certificate is reported as rejected.
		cert := s.cert
		cfg.GetClientCertificate = func(*cryptotls.CertificateRequestInfo) (*cryptotls.Certificate, error) {
			return cert, nil
		}
	}
	if o.InsecureSkipVerify {
		warnInsecure(o.ServerName)
	}
	return cfg, nil
}

// insecureWarned holds the server names already warned about, so that the warning is
// logged once per server name and not on every reconcile or reconnect.
var insecureWarned sync.Map

// InsecureWarning is the message logged when verification is disabled.
const InsecureWarning = "INSECURE: TLS certificate verification is disabled (InsecureSkipVerify): the server's identity is not checked and connections can be intercepted by anyone on the network path (man-in-the-middle); do not use this outside of testing"

func warnInsecure(serverName string) {
	if _, done := insecureWarned.LoadOrStore(serverName, struct{}{}); done {
		return
	}
	slog.Warn(InsecureWarning, "serverName", serverName)
}
