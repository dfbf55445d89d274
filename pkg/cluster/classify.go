package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// ErrorClass is the kind of a discovery or health-check failure. Values are CamelCase, usable
// verbatim as Kubernetes condition reasons.
type ErrorClass string

// Error classes Classify returns.
const (
	// ClassUnreachable: refused, reset, EOF, timeout, a TLS handshake with a peer that speaks
	// no TLS, a server certificate that failed verification, a TLS alert, bytes that are not
	// RESP. Deliberately one class and one message: a status must not tell a closed port from
	// a filtered one or from an open non-Redis service (no port-scan oracle). A certificate
	// failure is in this class too: the handshake comes before any RESP, so it proves only that
	// some TLS server listens (a kubelet, a webhook, etcd), never that it is a Redis.
	// CertificateFailure tells it apart for callers who act for the person who configured
	// the connection (kubectl rconn check, the manager's debug log).
	ClassUnreachable ErrorClass = "Unreachable"
	// ClassAuthenticationFailed: the server replied WRONGPASS, NOAUTH or NOPERM. The peer
	// spoke RESP, so it is a Redis (or something speaking its protocol) by definition.
	ClassAuthenticationFailed ErrorClass = "AuthenticationFailed"
	// ClassReplyTooLarge: a reply broke Limits (ErrReplyTooLarge).
	ClassReplyTooLarge ErrorClass = "ReplyTooLarge"
	// ClassInvalidReply: a topology reply in RESP that names impossible nodes (ErrInvalidTopology).
	ClassInvalidReply ErrorClass = "InvalidReply"
	// ClassTopologyTooLarge: the topology has more nodes or shards than Limits allow.
	ClassTopologyTooLarge ErrorClass = "TopologyTooLarge"
	// ClassAddressDenied: the address policy refused the target.
	ClassAddressDenied ErrorClass = "AddressDenied"
	// ClassNotCluster: ErrNotCluster.
	ClassNotCluster ErrorClass = "NotCluster"
	// ClassClusterModeServer: ErrClusterModeServer.
	ClassClusterModeServer ErrorClass = "ClusterModeServer"
	// ClassClusterStateFail: the node answered but reports cluster_state other than ok.
	ClassClusterStateFail ErrorClass = "ClusterStateFail"
	// ClassServerError: the server answered a command with another error reply.
	ClassServerError ErrorClass = "ServerError"
	// ClassInvalidOptions: ErrInvalidOptions.
	ClassInvalidOptions ErrorClass = "InvalidOptions"
	// ClassManagerBusy: the reply budget shared by every Inspector was exhausted
	// (ErrReplyBudgetExhausted); nothing is known about the node.
	ClassManagerBusy ErrorClass = "ManagerBusy"
	// ClassUnknown: anything else (the Inspector was closed, the caller canceled).
	ClassUnknown ErrorClass = "Unknown"
)

// ErrClusterStateNotOK is wrapped by a health check whose node reports cluster_state other
// than ok (NodeHealth.ClusterState holds the value).
var ErrClusterStateNotOK = errors.New("cluster_state is not ok")

// classPriority orders classes for an error covering several nodes: the most specific
// (actionable) class wins.
var classPriority = []ErrorClass{
	ClassAddressDenied, ClassAuthenticationFailed, ClassTopologyTooLarge,
	ClassReplyTooLarge, ClassInvalidReply, ClassNotCluster, ClassClusterModeServer, ClassClusterStateFail,
	ClassServerError, ClassManagerBusy, ClassUnreachable, ClassInvalidOptions, ClassUnknown,
}

// Classify returns the class of an error from Discover, CheckHealth (NodeHealth.Err),
// Client.Connect or a DialFunc, and a fixed message for status and Events. The message names
// only addresses (the dialed or announced address, a root node's address from the options,
// the IP the address policy refused) and the class: never text or bytes a server sent, and
// never the underlying error's text. For an error covering several nodes (ErrNoNodeAnswered)
// the most specific class wins and the message names the nodes of that class (at most 5).
// Classify(nil) returns "", "".
func Classify(err error) (ErrorClass, string) {
	if err == nil {
		return "", ""
	}
	type hit struct {
		class ErrorClass
		addr  string
	}
	var hits []hit
	walkNodes(err, "", func(addr string, leaf error) {
		hits = append(hits, hit{classifyOne(leaf, addr != ""), addr})
	})
	best := ClassUnknown
	for _, c := range classPriority {
		found := false
		for _, h := range hits {
			if h.class == c {
				found = true
				break
			}
		}
		if found {
			best = c
			break
		}
	}
	var addrs []string
	for _, h := range hits {
		if h.class == best && h.addr != "" && !slices.Contains(addrs, h.addr) {
			addrs = append(addrs, h.addr)
		}
	}
	var denied string
	var de *AddressDeniedError
	if best == ClassAddressDenied && errors.As(err, &de) {
		denied = sanitizeAddr(de.Addr)
	}
	return best, message(best, addrs, denied)
}

// walkNodes calls fn for every per-node failure in err's tree, with the address it concerns
// ("" when none is known). A NodeError or DialError names the address; a join is walked into.
func walkNodes(err error, addr string, fn func(addr string, leaf error)) {
	switch e := err.(type) { //nolint:errorlint // walks the tree one level at a time itself; errors.As would skip levels
	case *NodeError:
		walkNodes(e.Err, sanitizeAddr(e.Addr), fn)
		return
	case *DialError:
		a := e.Announced
		if e.Mapped && e.Dialed != "" && e.Dialed != e.Announced {
			a = e.Announced + " (mapped to " + e.Dialed + ")"
		}
		fn(sanitizeAddr(a), e.Err)
		return
	case interface{ Unwrap() []error }:
		found := false
		for _, x := range e.Unwrap() {
			if x != nil && hasNode(x) {
				found = true
				walkNodes(x, addr, fn)
			}
		}
		if found {
			return
		}
	case interface{ Unwrap() error }:
		if hasNode(e.Unwrap()) {
			walkNodes(e.Unwrap(), addr, fn)
			return
		}
	}
	fn(addr, err)
}

// hasNode reports whether err's tree holds a NodeError or DialError.
func hasNode(err error) bool {
	var ne *NodeError
	var de *DialError
	return errors.As(err, &ne) || errors.As(err, &de)
}

var certVerificationReasons = map[rtls.Reason]bool{
	rtls.ReasonUnknownAuthority: true, rtls.ReasonHostnameMismatch: true,
	rtls.ReasonCertificateExpired: true, rtls.ReasonCertificateNotYetValid: true,
	rtls.ReasonCertificateInvalid: true, rtls.ReasonMissingServerName: true,
}

// CertificateFailure reports whether err holds a server certificate that failed verification
// (in a node's failure or anywhere in its tree), and why: UnknownAuthority, HostnameMismatch,
// CertificateExpired, CertificateNotYetValid, CertificateInvalid or MissingServerName.
//
// Classify reads such a failure as ClassUnreachable, like a closed port (see there). This
// predicate is for whoever configured the connection and dials from their own place (kubectl
// rconn check), and for the operator's log; never for a status or Event a tenant reads.
func CertificateFailure(err error) (rtls.Reason, bool) {
	if err == nil {
		return "", false
	}
	found := rtls.Reason("")
	walkNodes(err, "", func(_ string, leaf error) {
		if found != "" {
			return
		}
		if r := rtls.ReasonOf(rtls.Explain(leaf)); certVerificationReasons[r] {
			found = r
			return
		}
		var cve *tls.CertificateVerificationError
		if errors.As(leaf, &cve) {
			found = rtls.ReasonCertificateInvalid
		}
	})
	return found, found != ""
}

// classifyOne classifies one node's failure (atNode: the error concerns a node, so anything
// unrecognised is "no Redis server answered").
//
// There is no certificate case: a certificate that failed verification takes the path of a
// refused connection (ClassUnreachable at a node), so the two read the same.
func classifyOne(err error, atNode bool) ErrorClass {
	switch {
	case errors.Is(err, ErrAddressDenied):
		return ClassAddressDenied
	case errors.Is(err, ErrInvalidOptions):
		return ClassInvalidOptions
	case errors.Is(err, ErrTopologyTooLarge):
		return ClassTopologyTooLarge
	case errors.Is(err, ErrReplyTooLarge):
		return ClassReplyTooLarge
	case errors.Is(err, ErrReplyBudgetExhausted):
		return ClassManagerBusy
	case errors.Is(err, ErrInvalidTopology):
		return ClassInvalidReply
	case errors.Is(err, ErrProtocol):
		return ClassUnreachable
	case errors.Is(err, ErrNotCluster):
		return ClassNotCluster
	case errors.Is(err, ErrClusterModeServer):
		return ClassClusterModeServer
	case errors.Is(err, ErrClusterStateNotOK):
		return ClassClusterStateFail
	case errors.Is(err, context.DeadlineExceeded):
		return ClassUnreachable
	case errors.Is(err, context.Canceled):
		return ClassUnknown
	}
	var re redis.Error
	if errors.As(err, &re) {
		if redis.IsAuthError(err) || redis.IsPermissionError(err) {
			return ClassAuthenticationFailed
		}
		return ClassServerError
	}
	if atNode {
		return ClassUnreachable
	}
	return ClassUnknown
}

// message is the fixed text for a class; addrs are sanitized addresses.
func message(c ErrorClass, addrs []string, denied string) string {
	at := ""
	if len(addrs) > 0 {
		shown := addrs
		if len(shown) > 5 {
			shown = shown[:5]
		}
		at = strings.Join(shown, ", ")
		if len(addrs) > 5 {
			at += fmt.Sprintf(" and %d more", len(addrs)-5)
		}
	}
	with := func(prefix, suffix string) string {
		if at == "" {
			return prefix + suffix
		}
		return prefix + " at " + at + suffix
	}
	switch c {
	case ClassUnreachable:
		return with("no Redis server answered", "")
	case ClassAuthenticationFailed:
		return with("the Redis server", " refused the credentials or a command the check needs (WRONGPASS, NOAUTH or NOPERM)")
	case ClassReplyTooLarge:
		return with("the server", " sent a reply beyond the configured limits")
	case ClassInvalidReply:
		return with("the server", " sent a topology with invalid node addresses or IDs")
	case ClassTopologyTooLarge:
		return with("the cluster", " reports more nodes or shards than the configured limits")
	case ClassAddressDenied:
		m := "the address policy denies "
		if denied != "" {
			m += denied
		} else {
			m += "the target"
		}
		if at != "" {
			m += " (dialing " + at + ")"
		}
		return m
	case ClassNotCluster:
		return with("the server", " is not a Redis Cluster node (cluster support disabled)")
	case ClassClusterModeServer:
		return with("the server", " is a Redis Cluster node, not a standalone server")
	case ClassClusterStateFail:
		return with("the node", " reports cluster_state other than ok")
	case ClassServerError:
		return with("the Redis server", " answered with an error reply")
	case ClassInvalidOptions:
		return "invalid connection options"
	case ClassManagerBusy:
		return with("the manager's budget for replies in flight is exhausted (other replies are being read); the node", " is asked again later")
	default:
		return with("the check", " failed")
	}
}

// sanitizeAddr bounds an address for a message: printable ASCII only, at most 256 bytes.
// (Announced addresses come from servers; a status must not carry their control bytes.)
func sanitizeAddr(s string) string {
	if len(s) > 256 {
		s = s[:256]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}
