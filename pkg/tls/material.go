package tls

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
)

// Material is TLS material as PEM: a CA bundle (one or more CERTIFICATE blocks) to verify
// servers with, and a client certificate (optionally followed by its intermediates) with
// its private key for mutual TLS. Any field may be empty: no CA means the system roots,
// no certificate and key means no client certificate. Certificate and key must be given
// together.
type Material struct {
	CA, Cert, Key []byte
}

// Clone returns a deep copy of m.
func (m *Material) Clone() *Material {
	if m == nil {
		return nil
	}
	return &Material{CA: bytes.Clone(m.CA), Cert: bytes.Clone(m.Cert), Key: bytes.Clone(m.Key)}
}

// LoadFiles reads Material from files. An empty path leaves that part unset. A file that
// cannot be read, or that is empty, is an error naming the file (an empty file is not
// taken to mean "unset", so that an empty CA file cannot silently switch to the system
// roots). The contents are not validated; see Validate.
func LoadFiles(caFile, certFile, keyFile string) (*Material, error) {
	m := &Material{}
	for _, f := range []struct {
		part, path string
		dst        *[]byte
	}{
		{"CA", caFile, &m.CA},
		{"certificate", certFile, &m.Cert},
		{"key", keyFile, &m.Key},
	} {
		if f.path == "" {
			continue
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			return nil, fmt.Errorf("reading TLS %s file %q: %w", f.part, f.path, err)
		}
		if len(b) == 0 {
			return nil, newError(ReasonMalformedPEM, f.part, nil, "TLS %s file %q is empty", f.part, f.path)
		}
		*f.dst = b
	}
	return m, nil
}

// parsed is Material decoded.
type parsed struct {
	ca       []*x509.Certificate
	chain    []*x509.Certificate // client certificate first, then intermediates
	chainDER [][]byte
	key      crypto.Signer
}

// parseMaterial decodes the PEM of every part that is set. It does not check that
// certificate and key belong together (checkPair) nor validity periods (checkTimes).
func parseMaterial(m *Material) (*parsed, error) {
	p := &parsed{}
	if m == nil {
		return p, nil
	}
	var err error
	if len(m.CA) > 0 {
		if p.ca, _, err = parseCerts("CA", m.CA); err != nil {
			return nil, err
		}
	}
	if len(m.Cert) > 0 {
		if p.chain, p.chainDER, err = parseCerts("certificate", m.Cert); err != nil {
			return nil, err
		}
	}
	if len(m.Key) > 0 {
		if p.key, err = parseKey(m.Key); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func malformed(part string, cause error, format string, args ...any) *Error {
	return newError(ReasonMalformedPEM, part, cause, "malformed PEM in the %s: %s", part, fmt.Sprintf(format, args...))
}

func parseCerts(part string, data []byte) ([]*x509.Certificate, [][]byte, error) {
	var certs []*x509.Certificate
	var ders [][]byte
	rest := data
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, nil, malformed(part, nil, "PEM block of type %q where a CERTIFICATE was expected (block %d)", block.Type, n)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, nil, malformed(part, err, "CERTIFICATE block %d cannot be parsed: %v", n, err)
		}
		certs = append(certs, c)
		ders = append(ders, block.Bytes)
	}
	if len(certs) == 0 {
		return nil, nil, malformed(part, nil, "no PEM block found%s", notPEMHint(data))
	}
	return certs, ders, nil
}

func parseKey(data []byte) (crypto.Signer, error) {
	const part = "key"
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, malformed(part, nil, "no PEM block found%s", notPEMHint(data))
		}
		switch {
		case block.Type == "EC PARAMETERS":
			continue // written by "openssl ecparam -genkey" before the key
		case block.Type == "ENCRYPTED PRIVATE KEY" || block.Headers["Proc-Type"] == "4,ENCRYPTED":
			return nil, malformed(part, nil, "the private key is encrypted; provide it unencrypted")
		case !strings.HasSuffix(block.Type, "PRIVATE KEY"):
			return nil, malformed(part, nil, "PEM block of type %q where a PRIVATE KEY was expected", block.Type)
		}
		key, err := parseKeyDER(block.Bytes)
		if err != nil {
			return nil, malformed(part, err, "%s block cannot be parsed: %v", block.Type, err)
		}
		return key, nil
	}
}

func parseKeyDER(der []byte) (crypto.Signer, error) {
	var key any
	var err error
	if key, err = x509.ParsePKCS8PrivateKey(der); err != nil {
		if k, err1 := x509.ParsePKCS1PrivateKey(der); err1 == nil {
			key, err = k, nil
		} else if k, err2 := x509.ParseECPrivateKey(der); err2 == nil {
			key, err = k, nil
		}
	}
	if err != nil {
		return nil, err
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", key)
	}
	return s, nil
}

// notPEMHint guesses why data holds no PEM block.
func notPEMHint(data []byte) string {
	trimmed := bytes.TrimSpace(data)
	switch {
	case len(trimmed) == 0:
		return " (the data is blank)"
	case trimmed[0] == 0x30:
		return " (the data looks like binary DER; convert it to PEM)"
	}
	if dec, err := base64.StdEncoding.DecodeString(string(trimmed)); err == nil && bytes.Contains(dec, []byte("-----BEGIN")) {
		return " (the data is base64-encoded PEM: was it base64-encoded twice, e.g. in a Secret's data field?)"
	}
	return ""
}

// checkPair checks that certificate and key are given together and belong together.
func (p *parsed) checkPair() error {
	switch {
	case len(p.chain) > 0 && p.key == nil:
		return newError(ReasonIncompleteKeyPair, "key", nil,
			"a client certificate (%s) was given without its private key", describe(p.chain[0]))
	case len(p.chain) == 0 && p.key != nil:
		return newError(ReasonIncompleteKeyPair, "certificate", nil,
			"a private key was given without a client certificate")
	case len(p.chain) == 0:
		return nil
	}
	leaf := p.chain[0]
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if ok && pub.Equal(p.key.Public()) {
		return nil
	}
	msg := fmt.Sprintf("the private key (%s) does not match the client certificate %s (whose public key is %s)",
		keyDesc(p.key.Public()), describe(leaf), keyDesc(leaf.PublicKey))
	if leaf.IsCA {
		msg += "; the certificate is a CA certificate: was the CA put where the client certificate belongs?"
	}
	return &Error{Reason: ReasonKeyMismatch, Part: "key", Msg: msg}
}

func keyDesc(k any) string {
	switch k := k.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d-bit", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	default:
		return fmt.Sprintf("%T", k)
	}
}
