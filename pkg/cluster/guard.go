package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// ErrAddressDenied is wrapped by every refusal of the address policy.
var ErrAddressDenied = errors.New("address denied by the address policy")

// AddressDeniedError names the address the policy refused: the dial target for an IP
// literal, or the IP actually connected to for a name.
type AddressDeniedError struct {
	Addr string
}

func (e *AddressDeniedError) Error() string {
	return fmt.Sprintf("%s: %v", e.Addr, ErrAddressDenied)
}
func (e *AddressDeniedError) Unwrap() error { return ErrAddressDenied }

// DefaultDeniedPrefixes are always denied unless an allow entry matches: link-local ranges
// (cloud metadata services at 169.254.169.254, fe80::/10), AWS's IPv6 metadata address, and
// the unspecified addresses (dialing 0.0.0.0 or :: reaches the local host).
var DefaultDeniedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("fd00:ec2::254/128"),
	netip.MustParsePrefix("0.0.0.0/32"),
	netip.MustParsePrefix("::/128"),
}

// LoopbackPrefixes are denied unless AddressPolicyOptions.AllowLoopback is set or an allow entry
// matches: a tenant-named root node or a server-announced address on loopback reaches the
// manager's own pod (its metrics and health ports, sidecars, anything else listening there), as
// 0.0.0.0 does. IPv4-mapped forms (::ffff:127.0.0.1) are judged as IPv4.
var LoopbackPrefixes = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
}

// AddressPolicyOptions configure NewAddressPolicy.
type AddressPolicyOptions struct {
	// Deny lists denied ranges, in addition to DefaultDeniedPrefixes (and LoopbackPrefixes,
	// unless AllowLoopback).
	Deny []netip.Prefix
	// AllowLoopback lifts the default denial of LoopbackPrefixes (tests and local demos, whose
	// Redis servers listen on loopback). A loopback range in Deny still denies.
	AllowLoopback bool
	// Allow, when not empty, is the only set of addresses that may be dialed; an address in
	// it is allowed even when Deny (or the defaults) also match: an operator's explicit
	// exception wins.
	Allow []netip.Prefix
	// DenyAddrPorts are exact ip:port targets denied whatever the lists say (the Kubernetes
	// API server's addresses, the manager's own endpoints).
	DenyAddrPorts []netip.AddrPort
}

// AddressPolicy decides which IP:port targets connections may go to (no SSRF through
// tenant-named root nodes or server-announced node addresses). Immutable; safe for concurrent
// use.
type AddressPolicy struct {
	deny, allow []netip.Prefix
	denyExact   map[netip.AddrPort]bool
}

// NewAddressPolicy builds a policy.
func NewAddressPolicy(o AddressPolicyOptions) *AddressPolicy {
	p := &AddressPolicy{denyExact: map[netip.AddrPort]bool{}}
	deny := append([]netip.Prefix(nil), DefaultDeniedPrefixes...)
	if !o.AllowLoopback {
		deny = append(deny, LoopbackPrefixes...)
	}
	for _, pr := range append(deny, o.Deny...) {
		p.deny = append(p.deny, pr.Masked())
	}
	for _, pr := range o.Allow {
		p.allow = append(p.allow, pr.Masked())
	}
	for _, ap := range o.DenyAddrPorts {
		p.denyExact[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())] = true
	}
	return p
}

// Allowed reports whether ap may be dialed. IPv4-mapped IPv6 addresses are judged as IPv4;
// zones are ignored.
func (p *AddressPolicy) Allowed(ap netip.AddrPort) bool {
	a := ap.Addr().Unmap().WithZone("")
	if p.denyExact[netip.AddrPortFrom(a, ap.Port())] {
		return false
	}
	for _, pr := range p.allow {
		if pr.Contains(a) {
			return true
		}
	}
	if len(p.allow) > 0 {
		return false
	}
	for _, pr := range p.deny {
		if pr.Contains(a) {
			return false
		}
	}
	return true
}

func (p *AddressPolicy) check(hostport string) error {
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		return &AddressDeniedError{Addr: hostport} // fail closed: not an IP:port we can judge
	}
	if !p.Allowed(ap) {
		return &AddressDeniedError{Addr: ap.String()}
	}
	return nil
}

// Dial returns a DialFunc that refuses denied targets with an *AddressDeniedError (wrapping
// ErrAddressDenied). An IP-literal target is checked before anything is dialed. For a name,
// the IP actually connected is checked: with base nil, a net.Dialer checks every address it
// tries before connecting (net.Dialer.Control, so a name resolving to a denied IP never gets a
// SYN); with a custom base, the connection's RemoteAddr is checked after dialing and a denied
// (or unparseable) one is closed before any byte is written. A base that connects through a
// proxy reports the proxy's address there: the policy then judges the proxy, not the target.
func (p *AddressPolicy) Dial(base DialFunc) DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if _, err := netip.ParseAddr(host); err == nil {
			if err := p.check(addr); err != nil {
				return nil, err
			}
		}
		if base == nil {
			d := net.Dialer{KeepAlive: 5 * time.Minute, Control: func(_, address string, _ syscall.RawConn) error {
				return p.check(address)
			}}
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				var de *AddressDeniedError
				if errors.As(err, &de) {
					return nil, de
				}
				return nil, err
			}
			return c, nil
		}
		c, err := base(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		remote := ""
		if ra := c.RemoteAddr(); ra != nil {
			remote = ra.String()
		}
		if err := p.check(remote); err != nil {
			_ = c.Close()
			return nil, err
		}
		return c, nil
	}
}

// ParseCIDRList parses a comma- or space-separated list of CIDR prefixes (a flag value);
// a bare IP is taken as a single-address prefix. Empty input gives an empty list.
func ParseCIDRList(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		if strings.Contains(f, "/") {
			pr, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("CIDR %q: %w", f, err)
			}
			out = append(out, pr.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("CIDR %q: %w", f, err)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// ParseAddrPortList parses a comma- or space-separated list of exact ip:port targets (a flag
// value; IPv6 as [addr]:port).
func ParseAddrPortList(s string) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		ap, err := netip.ParseAddrPort(f)
		if err != nil {
			return nil, fmt.Errorf("ip:port %q: %w", f, err)
		}
		out = append(out, ap)
	}
	return out, nil
}
