// Package dnsflag is the --dns-server flag of the manager and the example app: resolve every
// name of the process through one DNS server, given as an IP:port literal, instead of the
// servers of /etc/resolv.conf. Empty keeps the system resolver (the in-cluster default). The
// real control plane rig uses it to point both at its CoreDNS on loopback.
package dnsflag

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// Usage is the flag's help text.
const Usage = "Resolve every host name only through this DNS server (IP:port literal, e.g. 10.96.0.10:53 or [fd00::a]:53; UDP, and TCP for truncated answers). Empty: the system resolver."

// Parse checks a --dns-server value: empty (ok is false) or an IP:port literal with a non-zero
// port. A host name is refused: resolving it would need DNS.
func Parse(value string) (server netip.AddrPort, ok bool, err error) {
	if value == "" {
		return netip.AddrPort{}, false, nil
	}
	server, err = netip.ParseAddrPort(value)
	if err != nil || server.Port() == 0 || server.Addr().IsUnspecified() {
		return netip.AddrPort{}, false, fmt.Errorf("--dns-server %q: want an IP:port literal such as 10.96.0.10:53 or [fd00::a]:53 (not a host name, no port 0 or unspecified address)", value)
	}
	return server, true, nil
}

// Resolver is Go's own resolver with every query dialed to server, whatever server address it
// took from /etc/resolv.conf (the search list and ndots still apply; /etc/hosts is read first).
func Resolver(server netip.AddrPort) *net.Resolver {
	addr := server.String()
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
}

// Install parses value and, when it is set, makes Resolver(server) net.DefaultResolver: call it
// right after flag.Parse, before any client exists. It returns the server ("" for none).
func Install(value string) (string, error) {
	server, ok, err := Parse(value)
	if err != nil || !ok {
		return "", err
	}
	net.DefaultResolver = Resolver(server)
	return server.String(), nil
}
