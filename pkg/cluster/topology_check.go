package cluster

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
)

// ErrInvalidTopology means that a topology reply is valid RESP but names nodes no real cluster could:
// an announced host that is neither an IP nor a DNS name (a server can put any bytes there, and
// they would end up in status), a node ID that is not hex, a port out of range. The node
// addresses a cluster announces are reported in status, so they must be what they claim.
var ErrInvalidTopology = errors.New("topology reply names invalid node addresses or IDs")

// checkTopology rejects a topology with a node whose announced address or ID is malformed.
func checkTopology(t *Topology) error {
	for _, n := range t.Nodes {
		if !validAnnounced(n.Announced) || !validNodeID(n.ID) {
			return ErrInvalidTopology
		}
	}
	return nil
}

// validAnnounced: host:port with an IP or a DNS name (letters, digits, '-', '_', '.'; at most
// 253 bytes), or "?" (a node whose endpoint the cluster does not know yet), and a port in
// 0-65535.
func validAnnounced(a string) bool {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return false
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return false
	}
	if host == "?" || host == "" {
		return true
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if len(host) > 253 {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// validNodeID: empty (standalone) or at most 64 hex digits (Redis uses 40).
func validNodeID(id string) bool {
	if len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !hexDigit(id[i]) {
			return false
		}
	}
	return true
}

// hexDigit reports whether c is one of [0-9a-fA-F].
func hexDigit(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
