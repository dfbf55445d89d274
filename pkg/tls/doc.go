// Package tls validates TLS material (CA bundle, client certificate and key, as PEM) and
// builds client *crypto/tls.Config values from it, including configurations whose
// certificates can be rotated without reconnecting.
//
// It serves two users:
//
//   - the operator's controller, which reads a Secret into a [Material], calls [Validate]
//     to reject malformed or mismatched material with a precise message, and uses the
//     returned [Report] (Expiry, ExpiresIn) to warn before certificates expire;
//   - the Redis client library, which calls [Config] for a static *tls.Config, or
//     [NewReloadable] and [Reloadable.Config] / [Reloadable.ConfigFor] for a configuration
//     whose CA pool and client certificate follow [Reloadable.Update].
//
// Every failure this package reports is an [*Error] carrying a [Reason] (MalformedPEM,
// KeyMismatch, CertificateExpired, UnknownAuthority, HostnameMismatch, NotTLS, ...). The
// reasons are CamelCase strings meant for Kubernetes condition reasons; test for them with
// errors.Is(err, ErrKeyMismatch) or read them with [ReasonOf]. [Explain] turns the raw
// errors of a TLS handshake (crypto/x509 verification errors, TLS alerts, a plain-text
// server) into the same kinds, so clients and the controller describe handshake failures
// the same way. [VerifyServer] checks a server certificate against the CA and a name
// without connecting.
//
// Typical client use:
//
//	m, err := tls.LoadFiles("/etc/redis-tls/ca.crt", "/etc/redis-tls/tls.crt", "/etc/redis-tls/tls.key")
//	if err != nil { ... }
//	r, err := tls.NewReloadable(tls.Options{Material: m, ServerName: "redis.example.svc"})
//	if err != nil { ... }
//	opts := &redis.Options{Addr: "redis.example.svc:6379", TLSConfig: r.Config()}
//	...
//	// when the mounted Secret changes:
//	if err := r.Update(newMaterial); err != nil {
//		// the previous material stays in use; report tls.ReasonOf(err)
//	}
//
// ExampleReloadable runs this rotation, including a refused half-written one, with the tests.
//
// A note on server names and IP addresses: a Reloadable config verifies the server itself,
// using the server name of each connection as seen in the TLS ClientHello (SNI). TLS never
// sends an IP address as SNI, so when a connection is addressed by IP the only name the
// config knows is the one it was built with. Build one config per address with
// [Reloadable.ConfigFor] rather than cloning a config and changing its ServerName to an
// IP; a clone whose name cannot be determined is refused (ReasonMissingServerName) instead
// of being accepted unchecked.
package tls
