package tls

import (
	cryptotls "crypto/tls"
	"net"
	"strings"
	"sync/atomic"
	"time"
)

// Reloadable is TLS material that can be replaced while in use. Configurations obtained
// from Config and ConfigFor read the current material at each handshake: new connections
// use the material of the latest successful Update, established connections are not
// affected. It is safe for concurrent use.
type Reloadable struct {
	serverName string
	insecure   bool
	minVersion uint16
	cur        atomic.Pointer[state]
}

// NewReloadable validates o.Material like Config and returns a Reloadable using it.
func NewReloadable(o Options) (*Reloadable, error) {
	s, err := newState(o.Material, time.Now())
	if err != nil {
		return nil, err
	}
	r := &Reloadable{serverName: o.ServerName, insecure: o.InsecureSkipVerify, minVersion: o.minVersion()}
	r.cur.Store(s)
	if o.InsecureSkipVerify {
		warnInsecure(o.ServerName)
	}
	return r, nil
}

// Update validates m and, if it is usable, makes it the material of new handshakes. On any
// error the previous material stays in use unchanged and the error (an *Error) is
// returned. A nil or empty CA in m means the system roots, as in Config.
func (r *Reloadable) Update(m *Material) error {
	s, err := newState(m, time.Now())
	if err != nil {
		return err
	}
	r.cur.Store(s)
	return nil
}

// Material returns a copy of the material in use.
func (r *Reloadable) Material() *Material { return r.cur.Load().material.Clone() }

// Report returns the report of the material in use, e.g. to watch its expiry.
func (r *Reloadable) Report() *Report { return r.cur.Load().report }

// Config returns a client configuration for the ServerName of the Options. It sets
// InsecureSkipVerify so that crypto/tls does not verify with a fixed pool, and verifies the
// server itself in VerifyConnection against the current CA and the server name of the
// connection; do not remove VerifyConnection from a clone. Set ServerName on a clone only
// to a DNS name: for IP addresses use ConfigFor (see the package documentation).
func (r *Reloadable) Config() *cryptotls.Config { return r.config(r.serverName) }

// ConfigFor is Config with ServerName set to serverName (a DNS name or an IP address), for
// clients that dial each server under its own name, such as a cluster client.
func (r *Reloadable) ConfigFor(serverName string) *cryptotls.Config { return r.config(serverName) }

func (r *Reloadable) config(name string) *cryptotls.Config {
	return &cryptotls.Config{
		MinVersion: r.minVersion,
		ServerName: name,
		// Verification is done by VerifyConnection, against the current CA pool.
		InsecureSkipVerify:   true,
		GetClientCertificate: r.getClientCertificate,
		VerifyConnection: func(cs cryptotls.ConnectionState) error {
			return r.verify(cs, name)
		},
	}
}

func (r *Reloadable) getClientCertificate(*cryptotls.CertificateRequestInfo) (*cryptotls.Certificate, error) {
	if c := r.cur.Load().cert; c != nil {
		return c, nil
	}
	return &cryptotls.Certificate{}, nil // send no certificate
}

// verify checks the server of a connection. configured is the server name the config was
// built with. The connection's own name is cs.ServerName, the SNI sent, which follows a
// clone's ServerName but is empty when that name is an IP address (TLS does not send IPs
// as SNI). So: a non-empty cs.ServerName is used; otherwise configured is used if it is an
// IP address (an unchanged IP config); otherwise (configured empty or a DNS name, while
// the connection sent none) the name dialed is unknown and the connection is refused.
func (r *Reloadable) verify(cs cryptotls.ConnectionState, configured string) error {
	if r.insecure {
		return nil
	}
	s := r.cur.Load()
	name := cs.ServerName
	if name == "" {
		host := strings.TrimSuffix(strings.TrimPrefix(configured, "["), "]")
		if net.ParseIP(host) == nil {
			return missingServerName(cs, configured)
		}
		name = host
	}
	return verifyServerChain(s.ca, cs.PeerCertificates, name, time.Now())
}

func missingServerName(cs cryptotls.ConnectionState, configured string) error {
	what := "the server certificate"
	if len(cs.PeerCertificates) > 0 {
		what += " " + describe(cs.PeerCertificates[0])
	}
	why := "the configuration has no server name"
	if configured != "" {
		why = "the connection's server name was changed from \"" + configured + "\" to an IP address or to empty on a copy of the configuration, and TLS does not transmit IP addresses as server names"
	}
	return newError(ReasonMissingServerName, "server certificate", nil,
		"cannot check %s: %s; use ConfigFor(address) to get a configuration for each address",
		what, why)
}
