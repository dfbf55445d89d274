package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// sentinelOptions adds spec.sentinel to the data nodes' options (clusterOptions) and extends
// the fingerprint with everything a sentinel connection is made of: the master name, the
// sentinel root nodes, the sentinels' own credentials and TLS material and settings. Two
// RedisConnections share a SentinelInspector (and its one subscription) only when all of
// these are equal, by content.
func (r *RedisConnectionReconciler) sentinelOptions(rc *rconnv1.RedisConnection, creds *credentials, m *addressMap) (cluster.Options, string, error) {
	o, dataFP, err := r.clusterOptions(rc, creds, m)
	if err != nil {
		return o, "", err
	}
	sn := rc.Spec.Sentinel
	if d := rc.Spec.Defaults; d != nil && d.Database != nil {
		// The database is the data nodes' (nodeClientOptions.database); the fingerprint has it.
		o.Defaults.DB = int(*d.Database)
	}
	so := &cluster.SentinelOptions{MasterName: sn.MasterName, Defaults: cluster.NodeOptions{
		ConnectTimeout: o.Defaults.ConnectTimeout,
		ClientName:     o.Defaults.ClientName,
	}}
	fp := sha256.New()
	fp.Write(fmt.Appendf(nil, "data=%s|sentinel|%q|", dataFP, sn.MasterName))
	sc := creds.sentinel
	if sc == nil {
		sc = &sentinelCredentials{}
	}
	so.Defaults.Username, so.Defaults.Password = sc.username, sc.password
	fp.Write(fmt.Appendf(nil, "%q|%d:%s|", sc.username, len(sc.password), sc.password))
	if t := sc.tls; t != nil {
		fp.Write(fmt.Appendf(nil, "ca=%d:%s|crt=%d:%s|key=%d:%s|", len(t.CA), t.CA, len(t.Cert), t.Cert, len(t.Key), t.Key))
	}
	tlsOn := sn.TLS != nil && sn.TLS.Enabled
	if tlsOn {
		cfg, err := rtls.Config(rtls.Options{Material: sc.tls, InsecureSkipVerify: sn.TLS.InsecureSkipVerify})
		if err != nil {
			return o, "", credErr(tlsReason(err), "sentinel TLS: %v", err)
		}
		so.Defaults.TLS = cfg
		so.Defaults.TLSServerName = sn.TLS.ServerName
		fp.Write(fmt.Appendf(nil, "tls=%q|%t|", sn.TLS.ServerName, sn.TLS.InsecureSkipVerify))
	}
	for _, rn := range sn.RootNodes {
		a := cluster.Address{Host: rn.Host, Port: sentinelPortOr(int(rn.Port))}
		if tlsOn {
			so.RootNodes = append(so.RootNodes, cluster.RootNode{URL: "rediss://" + a.String()})
		} else {
			so.RootNodes = append(so.RootNodes, cluster.RootNode{Address: a})
		}
		fp.Write(fmt.Appendf(nil, "root=%s|", a))
	}
	o.Sentinel = so
	return o, hex.EncodeToString(fp.Sum(nil)), nil
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
