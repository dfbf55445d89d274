package controllers

import (
	"strings"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// sentinelOptions is clusterOptions for Sentinel mode: the Sentinel-mode config.json the
// controller renders (without a topology yet), through pkg/client's one conversion, with the
// sentinels' own credentials and TLS material. The fingerprint (ConnectionKey) covers the
// master name, the sentinel root nodes, both sides' options and secret material: two
// RedisConnections share a SentinelInspector (and its subscriptions) only when all are equal.
func (r *RedisConnectionReconciler) sentinelOptions(rc *rconnv1.RedisConnection, creds *credentials, m *addressMap) (cluster.Options, string, error) {
	if _, err := staticMap(m); err != nil {
		return cluster.Options{}, "", err
	}
	cfg := renderSentinelConfig(rc, m, nil)
	sec := pkgclient.Secret{Username: creds.ctrlUsername, Password: creds.ctrlPassword, TLS: creds.tls}
	if sc := creds.sentinel; sc != nil {
		sec.SentinelUsername, sec.SentinelPassword, sec.SentinelTLS = sc.username, sc.password, sc.tls
	}
	return r.connOptions(cfg, sec)
}

func sentinelPortOr(p int) int {
	if p == 0 {
		return cluster.DefaultSentinelPort
	}
	return p
}

// sentinelRootList names the sentinel root nodes as the spec gives them (for messages).
func sentinelRootList(rc *rconnv1.RedisConnection) string {
	if rc.Spec.Sentinel == nil {
		return ""
	}
	parts := make([]string, 0, len(rc.Spec.Sentinel.RootNodes))
	for _, rn := range rc.Spec.Sentinel.RootNodes {
		parts = append(parts, cluster.Address{Host: rn.Host, Port: sentinelPortOr(int(rn.Port))}.String())
	}
	return strings.Join(parts, ", ")
}

// sentinelUsesTLS: the sentinel connections use TLS.
func sentinelUsesTLS(rc *rconnv1.RedisConnection) bool {
	sn := rc.Spec.Sentinel
	return sn != nil && sn.TLS != nil && sn.TLS.Enabled
}

// sentinelAnnounced lists the addresses a Sentinel group announces that apps dial through
// the map: the master the majority names (confirmed or not: an unmapped master is a reason it
// is not), its replicas, and the peer sentinels that were asked. Root nodes are left out: they
// are the spec's own addresses (often a Service name apps reach as it is), not announced ones;
// so are peers only listed, never asked (a liar may list any name). nil for nil.
func sentinelAnnounced(t *cluster.SentinelTopology) []string {
	if t == nil {
		return nil
	}
	var out []string
	if t.Master != nil {
		out = append(out, t.Master.Announced)
	}
	for _, r := range t.Replicas {
		out = append(out, r.Announced)
	}
	for _, p := range t.Sentinels {
		if p.Asked && !p.Root {
			out = append(out, p.Announced)
		}
	}
	return out
}
