package tls

import (
	"crypto/x509"
	"math"
	"net"
	"strings"
	"time"
)

// Role says what a certificate in a Report is.
type Role string

// Roles of certificates in a Report.
const (
	RoleCA           Role = "CA"
	RoleClient       Role = "client certificate"
	RoleIntermediate Role = "intermediate certificate"
)

// CertificateInfo describes one certificate of the material.
type CertificateInfo struct {
	Role      Role
	Subject   string
	Issuer    string
	NotBefore time.Time
	NotAfter  time.Time
}

// Report describes the certificates in Material.
type Report struct {
	// Certificates lists the CA certificates in bundle order, then the client certificate
	// and the intermediates that follow it.
	Certificates []CertificateInfo
	// Expiry is the earliest NotAfter among Certificates; zero when there are none.
	Expiry time.Time
}

// ExpiresIn returns how long until the first certificate expires (negative once it has).
// With no certificates nothing expires and it returns the largest Duration, so that
// "ExpiresIn(now) < threshold" never warns about material that has no certificates.
func (r *Report) ExpiresIn(now time.Time) time.Duration {
	if r == nil || r.Expiry.IsZero() {
		return time.Duration(math.MaxInt64)
	}
	return r.Expiry.Sub(now)
}

// Earliest returns the certificate that expires first, or nil.
func (r *Report) Earliest() *CertificateInfo {
	if r == nil {
		return nil
	}
	var first *CertificateInfo
	for i := range r.Certificates {
		if first == nil || r.Certificates[i].NotAfter.Before(first.NotAfter) {
			first = &r.Certificates[i]
		}
	}
	return first
}

func (p *parsed) report() *Report {
	r := &Report{}
	add := func(role Role, c *x509.Certificate) {
		r.Certificates = append(r.Certificates, CertificateInfo{
			Role: role, Subject: c.Subject.String(), Issuer: c.Issuer.String(),
			NotBefore: c.NotBefore, NotAfter: c.NotAfter,
		})
		if r.Expiry.IsZero() || c.NotAfter.Before(r.Expiry) {
			r.Expiry = c.NotAfter
		}
	}
	for _, c := range p.ca {
		add(RoleCA, c)
	}
	for i, c := range p.chain {
		role := RoleClient
		if i > 0 {
			role = RoleIntermediate
		}
		add(role, c)
	}
	return r
}

// checkTimes checks validity periods at now: every certificate of the client chain must be
// valid, and at least one CA of the bundle (a bundle may keep an expired CA next to its
// successor during a rotation).
func (p *parsed) checkTimes(now time.Time) error {
	for i, c := range p.chain {
		part := "client certificate"
		if i > 0 {
			part = "intermediate certificate of the client certificate"
		}
		if err := checkTime(part, c, now); err != nil {
			return err
		}
	}
	var first error
	for _, c := range p.ca {
		err := checkTime("CA certificate", c, now)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}

func checkTime(part string, c *x509.Certificate, now time.Time) error {
	switch {
	case now.After(c.NotAfter):
		return expired(part, c, now, nil)
	case now.Before(c.NotBefore):
		return notYetValid(part, c, now, nil)
	}
	return nil
}

// Validate decodes m and checks it at time now. It returns an *Error of Reason
// MalformedPEM, IncompleteKeyPair, KeyMismatch, CertificateExpired or
// CertificateNotYetValid for the first problem found. The Report is returned whenever the
// PEM could be decoded, also alongside the other errors, so that a caller can still show
// expiry dates. A nil m is valid (system roots, no client certificate).
//
// A client certificate that is not signed by the CA is not an error: the CA verifies the
// server, and the server may trust another CA for clients. See VerifyServer.
func Validate(m *Material, now time.Time) (*Report, error) {
	p, err := parseMaterial(m)
	if err != nil {
		return nil, err
	}
	r := p.report()
	if err := p.checkPair(); err != nil {
		return r, err
	}
	if err := p.checkTimes(now); err != nil {
		return r, err
	}
	return r, nil
}

// VerifyServer checks, at time now, that the server certificate in serverCertPEM (the
// server's certificate, optionally followed by intermediates) chains to the CA of m (the
// system roots if m has none) and is valid for serverName (a DNS name or an IP address).
// It returns an *Error of Reason MalformedPEM, CertificateExpired, CertificateNotYetValid,
// UnknownAuthority, HostnameMismatch, CertificateInvalid or MissingServerName.
func VerifyServer(m *Material, serverCertPEM []byte, serverName string, now time.Time) error {
	var p *parsed
	var err error
	if p, err = parseMaterial(&Material{CA: m.caOrNil()}); err != nil {
		return err
	}
	chain, _, err := parseCerts("server certificate", serverCertPEM)
	if err != nil {
		return err
	}
	return verifyServerChain(p.ca, chain, serverName, now)
}

func (m *Material) caOrNil() []byte {
	if m == nil {
		return nil
	}
	return m.CA
}

// verifyServerChain verifies a server chain against ca (nil: system roots) and name.
// Validity periods are checked first, then the chain, then the name.
func verifyServerChain(ca []*x509.Certificate, chain []*x509.Certificate, name string, now time.Time) error {
	if len(chain) == 0 {
		return newError(ReasonCertificateInvalid, "server certificate", nil, "the server presented no certificate")
	}
	host := strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
	if host == "" {
		return newError(ReasonMissingServerName, "server certificate", nil,
			"there is no server name to check the server certificate %s against; set ServerName, or use ConfigFor(address) when dialing by IP address",
			describe(chain[0]))
	}
	opts := x509.VerifyOptions{
		Intermediates: x509.NewCertPool(),
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	var trusted []string
	if ca != nil {
		opts.Roots = x509.NewCertPool()
		for _, c := range ca {
			opts.Roots.AddCert(c)
			trusted = append(trusted, describe(c))
		}
	}
	for _, c := range chain[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := chain[0].Verify(opts); err != nil {
		return explain(err, trusted, now)
	}
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	if err := chain[0].VerifyHostname(host); err != nil {
		return explain(err, trusted, now)
	}
	return nil
}
