package hostile

import (
	"crypto/tls"
	"net"
)

// StartTLS is Start behind TLS: it listens on 127.0.0.1:0 and serves cfg inside TLS
// connections made with tlsCfg (which needs a certificate). The handshake runs on the first
// read or write, so a client that rejects the certificate gets nowhere further, like a client
// of any TLS service (a kubelet, a webhook, etcd) whose certificate it does not trust.
func StartTLS(cfg Config, tlsCfg *tls.Config) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, ln: tls.NewListener(ln, tlsCfg), done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// HTTPS is an HTTPS-like TLS service on loopback presenting cert: after the handshake it sends
// HTTPBadRequest, on accept and in answer to every command. With a certificate the client does
// not trust it is what a dial of a kubelet's or webhook's port looks like; with one it trusts,
// a TLS service that is not a Redis. Close is registered with t.Cleanup.
func HTTPS(t TB, cert tls.Certificate) *Server {
	t.Helper()
	s, err := StartTLS(Config{Greeting: []byte(HTTPBadRequest), Reply: []byte(HTTPBadRequest)},
		&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("hostile: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}
