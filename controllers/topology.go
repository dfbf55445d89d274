package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// clusterOptions builds pkg/cluster options from the spec and resolved credentials.
func (r *RedisConnectionReconciler) clusterOptions(rc *rconnv1.RedisConnection, creds *credentials, m *addressMap) (cluster.Options, string, error) {
	o := cluster.Options{
		Standalone:          rc.Spec.Mode == rconnv1.ModeStandalone,
		UseReplicas:         rc.Spec.UseReplicas,
		MinimizeConnections: rc.Spec.MinimizeConnections,
		Dial:                r.Dial,
		Defaults:            cluster.NodeOptions{Username: creds.ctrlUsername, Password: creds.ctrlPassword},
		MaxTimeout:          r.maxTimeout(),
		Limits:              r.Limits,
		ReplyBudget:         r.ReplyBudget,
		AddressPolicy:       r.AddressPolicy,
	}
	nm, err := staticMap(m)
	if err != nil {
		return o, "", err
	}
	o.NodeAddressMap = nm
	// The fingerprint covers what the connections are made of, by content (not by Secret
	// resourceVersion), so RedisConnections in different namespaces with equal credentials share.
	fp := sha256.New()
	fp.Write(fmt.Appendf(nil, "%s|%q|%d:%s|", rc.Spec.Mode, creds.ctrlUsername, len(creds.ctrlPassword), creds.ctrlPassword))
	if m := creds.tls; m != nil {
		fp.Write(fmt.Appendf(nil, "ca=%d:%s|crt=%d:%s|key=%d:%s|", len(m.CA), m.CA, len(m.Cert), m.Cert, len(m.Key), m.Key))
	}
	for _, rn := range rc.Spec.RootNodes {
		if rn.URL != "" {
			o.RootNodes = append(o.RootNodes, cluster.RootNode{URL: string(rn.URL)})
		} else {
			o.RootNodes = append(o.RootNodes, cluster.RootNode{Address: cluster.Address{Host: rn.Host, Port: int(rn.Port)}})
		}
		fp.Write(fmt.Appendf(nil, "%s/%s/%d|", rn.URL, rn.Host, rn.Port))
	}
	if d := rc.Spec.Defaults; d != nil {
		if d.ConnectTimeout != nil {
			o.Defaults.ConnectTimeout = min(d.ConnectTimeout.Duration, r.maxTimeout())
		}
		if d.Database != nil && o.Standalone {
			o.Defaults.DB = int(*d.Database)
		}
		o.Defaults.ClientName = d.ClientName
		if d.TLS != nil && d.TLS.Enabled {
			cfg, err := rtls.Config(rtls.Options{Material: creds.tls, InsecureSkipVerify: d.TLS.InsecureSkipVerify})
			if err != nil {
				return o, "", credErr(tlsReason(err), "TLS: %v", err)
			}
			o.Defaults.TLS = cfg
			o.Defaults.TLSServerName = d.TLS.ServerName
			// Host/port root nodes carry no scheme: TLS comes from Defaults.
			for i, rn := range o.RootNodes {
				if rn.URL == "" {
					o.RootNodes[i] = cluster.RootNode{URL: hostPortURL(rn.Address, true)}
				}
			}
		}
		fp.Write(fmt.Appendf(nil, "%v|%d|%q|", d.ConnectTimeout, ptrVal(d.Database), d.ClientName))
		// Field by field: %v of the struct would print the SecretRef pointer's address, which
		// differs on every read of the object.
		if t := d.TLS; t != nil {
			fp.Write(fmt.Appendf(nil, "tls=%t|%q|%t|", t.Enabled, t.ServerName, t.InsecureSkipVerify))
		}
	}
	return o, hex.EncodeToString(fp.Sum(nil)), nil
}

// hostPortURL is a host/port root node of the spec as a URL, with the scheme TLS asks for (the
// rendered config and the controller's own connections agree on it).
func hostPortURL(a cluster.Address, tls bool) string {
	scheme := "redis://"
	if tls {
		scheme = "rediss://"
	}
	return scheme + cluster.Address{Host: a.Host, Port: portOr(a.Port)}.String()
}

func portOr(p int) int {
	if p == 0 {
		return cluster.DefaultPort
	}
	return p
}

func ptrVal(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

// staticMap turns the resolved map into a pkg/cluster map. An entry it cannot parse stops the
// connection (an ErrInvalidOptions error) rather than leaving every node dialed unmapped.
func staticMap(m *addressMap) (cluster.NodeAddressMap, error) {
	if m == nil || len(m.entries) == 0 {
		return nil, nil
	}
	entries := make(map[string]string, len(m.entries))
	for k, e := range m.entries {
		entries[k] = e.Reachable
	}
	nm, err := cluster.StaticMap(entries)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", cluster.ErrInvalidOptions, err)
	}
	return nm, nil
}

// sharedKey names the inspector a RedisConnection uses: the connection fingerprint, the address
// map and the health timeout; with sharing disabled, also the RedisConnection itself.
func (r *RedisConnectionReconciler) sharedKey(key types.NamespacedName, fingerprint string, m *addressMap, healthTimeout time.Duration) string {
	h := sha256.New()
	h.Write(fmt.Appendf(nil, "%s|%s|%s|", fingerprint, mappingKey(m.list()), healthTimeout))
	if r.DisableTopologySharing {
		h.Write(fmt.Appendf(nil, "rc=%s|", key))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// topologyFailure classifies a discovery error for TopologyDiscovered: a reason and a fixed
// message naming only addresses from the spec or the map, never bytes a server sent (a
// non-Redis server's banner, an error line) and never a difference an attacker could use to
// tell a closed port from an open one (refused, reset, EOF, timeout, garbage and, with TLS, a
// certificate that failed verification all read the same: see tlsHint).
func topologyFailure(rc *rconnv1.RedisConnection, err error) (reason, message string) {
	class, msg := cluster.Classify(err)
	switch class {
	case cluster.ClassNotCluster:
		return rconnv1.ReasonNotACluster, msg
	case cluster.ClassClusterModeServer:
		return rconnv1.ReasonClusterModeServer, msg
	case cluster.ClassAuthenticationFailed:
		return rconnv1.ReasonAuthenticationFailed, msg
	case cluster.ClassReplyTooLarge, cluster.ClassInvalidReply:
		// A Redis-speaking server whose reply broke the caps. Bytes that are not RESP at all
		// (an SSH banner, an HTTP page) read as "no Redis server answered", like a closed port.
		return rconnv1.ReasonProtocolError, msg
	case cluster.ClassTopologyTooLarge:
		return rconnv1.ReasonTopologyTooLarge, msg
	case cluster.ClassAddressDenied:
		return rconnv1.ReasonAddressDenied, msg
	case cluster.ClassInvalidOptions:
		return rconnv1.ReasonInvalidOptions, msg
	case cluster.ClassManagerBusy:
		// Nothing is known about the root nodes: other replies held the manager's budget.
		return rconnv1.ReasonManagerBusy, msg
	default:
		return rconnv1.ReasonRootNodesUnreachable, "no Redis server answered at " + rootList(rc) + tlsHint(usesTLS(rc))
	}
}

// tlsHint is the suffix of every "no Redis server answered" message of a RedisConnection that
// uses TLS. A certificate that failed verification reads like a closed port (the handshake
// comes before any RESP, so it proves a TLS listener, not a Redis: a kubelet, a webhook, etcd);
// the honest cause of it, a wrong CA or a certificate without the dialed name, is named here,
// the same for every peer that did not speak RESP. The manager's debug log names the precise
// certificate problem (certificateLog).
func tlsHint(tls bool) string {
	if !tls {
		return ""
	}
	return " (TLS is on: if a Redis server listens there, check that ca.crt issued its certificate and that the certificate names the host dialed or tls.serverName; this message reads the same for a closed port, a service that is not Redis and a certificate that failed verification)"
}

// usesTLS reports whether the controller's connections of rc use TLS: defaults.tls.enabled,
// or a rediss:// root node URL.
func usesTLS(rc *rconnv1.RedisConnection) bool {
	if sentinelUsesTLS(rc) {
		return true
	}
	if d := rc.Spec.Defaults; d != nil && d.TLS != nil && d.TLS.Enabled {
		return true
	}
	for _, rn := range rc.Spec.RootNodes {
		if len(rn.URL) >= len("rediss://") && strings.EqualFold(string(rn.URL[:len("rediss://")]), "rediss://") {
			return true
		}
	}
	return false
}

// certificateLog is what the manager's debug log adds to a failure that hides a server
// certificate problem from status: the reason (UnknownAuthority, HostnameMismatch, ...), a
// fixed word, so nothing a server chose reaches the log either.
func certificateLog(err error) []any {
	if r, ok := cluster.CertificateFailure(err); ok {
		return []any{"certificate", string(r)}
	}
	return nil
}

// rootList names the root nodes as the spec gives them.
func rootList(rc *rconnv1.RedisConnection) string {
	if rc.Spec.Mode == rconnv1.ModeSentinel {
		return sentinelRootList(rc)
	}
	parts := make([]string, 0, len(rc.Spec.RootNodes))
	for _, rn := range rc.Spec.RootNodes {
		if rn.URL != "" {
			parts = append(parts, string(rn.URL))
		} else {
			parts = append(parts, cluster.Address{Host: rn.Host, Port: portOr(int(rn.Port))}.String())
		}
	}
	return strings.Join(parts, ", ")
}

// healthTimeout and interval from the spec with defaults.
func healthSettings(rc *rconnv1.RedisConnection) (interval, timeout time.Duration) {
	interval, timeout = 30*time.Second, 2*time.Second
	if hc := rc.Spec.HealthCheck; hc != nil {
		if hc.Interval != nil && hc.Interval.Duration > 0 {
			interval = hc.Interval.Duration
		}
		if hc.Timeout != nil && hc.Timeout.Duration > 0 {
			timeout = hc.Timeout.Duration
		}
	}
	return interval, timeout
}
