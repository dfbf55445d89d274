package tls_test

import (
	"fmt"
	"log"

	"github.com/rconn-dev/redis-connection-operator/internal/world/certs"
	"github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// A client certificate that is rotated while connections use it: every handshake after an
// Update presents the new certificate, and material that does not validate is refused while
// the previous material stays in use. In an app the material comes from LoadFiles on the
// mounted Secret, and Update runs when the mount changes.
func ExampleReloadable() {
	// Stand-ins for the mounted Secret's ca.crt and two generations of tls.crt / tls.key.
	ca, err := certs.NewCA("example CA")
	if err != nil {
		log.Fatal(err)
	}
	first, second := issue(ca), issue(ca)

	r, err := tls.NewReloadable(tls.Options{
		Material:   &tls.Material{CA: ca.CertPEM, Cert: first.CertPEM, Key: first.KeyPEM},
		ServerName: "redis.example.svc",
	})
	if err != nil {
		log.Fatal(err)
	}
	cfg := r.Config() // e.g. redis.Options.TLSConfig: it reads the current material per handshake
	fmt.Println("server name:", cfg.ServerName)

	// The Secret was renewed: new connections present the new certificate.
	if err := r.Update(&tls.Material{CA: ca.CertPEM, Cert: second.CertPEM, Key: second.KeyPEM}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("rotated:", string(r.Material().Cert) == string(second.CertPEM))

	// A half-written rotation (new certificate, old key) is refused; the rotated pair stays.
	err = r.Update(&tls.Material{CA: ca.CertPEM, Cert: first.CertPEM, Key: second.KeyPEM})
	fmt.Println("refused:", tls.ReasonOf(err))
	fmt.Println("still in use:", string(r.Material().Cert) == string(second.CertPEM))
	// Output:
	// server name: redis.example.svc
	// rotated: true
	// refused: KeyMismatch
	// still in use: true
}

// issue signs a client certificate.
func issue(ca *certs.CA) *certs.Pair {
	p, err := ca.Issue(certs.Request{CommonName: "app", Client: true})
	if err != nil {
		log.Fatal(err)
	}
	return p
}
