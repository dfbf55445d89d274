package controllers

import (
	"sort"
	"strconv"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// renderSentinelConfig builds a Sentinel-mode config.json (pkg/client sentinelconfig.go:
// node-redis createSentinel options) from a topology whose master is confirmed: name,
// sentinelRootNodes (reachable), nodeClientOptions and sentinelClientOptions (no credentials),
// the node address map (data and sentinel addresses), url = the confirmed master (reachable),
// rconn.sentinels (announced). Called on every reconcile, so every failover re-renders it.
func renderSentinelConfig(rc *rconnv1.RedisConnection, m *addressMap, t *cluster.SentinelTopology) *pkgclient.Config {
	sn := rc.Spec.Sentinel
	cfg := &pkgclient.Config{
		Name:        sn.MasterName,
		UseReplicas: rc.Spec.UseReplicas,
		Rconn:       pkgclient.RconnConfig{Mode: pkgclient.ModeSentinel, AutoPipeline: rc.Spec.AutoPipeline},
	}
	if rc.Spec.UseReplicas {
		cfg.ReplicaPoolSize = 1
	}
	if d := rc.Spec.Defaults; d != nil {
		if d.ConnectTimeout != nil {
			cfg.NodeClientOptions.Socket.ConnectTimeout = d.ConnectTimeout.Milliseconds()
			cfg.SentinelClientOptions.Socket.ConnectTimeout = d.ConnectTimeout.Milliseconds()
		}
		if d.Database != nil {
			cfg.NodeClientOptions.Database = int(*d.Database)
		}
		cfg.NodeClientOptions.Name = d.ClientName
		if d.TLS != nil && d.TLS.Enabled {
			cfg.NodeClientOptions.Socket.TLS = true
			cfg.NodeClientOptions.Socket.ServerName = d.TLS.ServerName
			cfg.Rconn.TLSInsecureSkipVerify = d.TLS.InsecureSkipVerify
		}
	}
	renderScripts(rc, cfg)
	if t := sn.TLS; t != nil && t.Enabled {
		cfg.SentinelClientOptions.Socket.TLS = true
		cfg.SentinelClientOptions.Socket.ServerName = t.ServerName
		cfg.Rconn.SentinelTLSInsecureSkipVerify = t.InsecureSkipVerify
	}
	if len(m.entries) > 0 {
		cfg.NodeAddressMap = map[string]pkgclient.MappedAddress{}
		for k, e := range m.entries {
			if a, err := cluster.ParseAddress(e.Reachable); err == nil {
				cfg.NodeAddressMap[k] = pkgclient.MappedAddress{Host: a.Host, Port: a.Port}
			}
		}
	}
	// The root nodes as apps reach them: through the map when a root is an announced address
	// (a headless-Service name), as written otherwise.
	for _, rn := range sn.RootNodes {
		a := cluster.Address{Host: rn.Host, Port: sentinelPortOr(int(rn.Port))}
		cfg.SentinelRootNodes = append(cfg.SentinelRootNodes, reachable(cfg, a.String(), a))
	}
	for _, p := range t.Sentinels {
		cfg.Rconn.Sentinels = append(cfg.Rconn.Sentinels, p.Announced)
	}
	if ma, err := cluster.ParseAddress(t.Master.Announced); err == nil {
		r := reachable(cfg, t.Master.Announced, ma)
		scheme := "redis://"
		if cfg.NodeClientOptions.Socket.TLS {
			scheme = "rediss://"
		}
		cfg.URL = scheme + r.String()
		if db := cfg.NodeClientOptions.Database; db != 0 {
			cfg.URL += "/" + strconv.Itoa(db)
		}
	}
	return cfg
}

// reachable is the map's target for an announced address, else the address itself.
func reachable(cfg *pkgclient.Config, announced string, a cluster.Address) pkgclient.MappedAddress {
	if t, ok := cfg.NodeAddressMap[announced]; ok {
		return t
	}
	return pkgclient.MappedAddress{Host: a.Host, Port: a.Port}
}

// renderSentinelSecretData is the Secret of a Sentinel-mode connection: the data nodes'
// credentials and TLS material under the usual keys, the sentinels' under sentinel-*, and the
// Service Binding keys (type, provider, host/port of the current master, sentinel.master,
// sentinel.nodes, ssl, client-name, database).
func renderSentinelSecretData(creds *credentials, cfg *pkgclient.Config) map[string][]byte {
	data := map[string][]byte{
		"type":     []byte("redis"),
		"provider": []byte("rconn"),
	}
	if creds.username != "" {
		data[pkgclient.SecretKeyUsername] = []byte(creds.username)
	}
	if creds.hasPassword {
		data[pkgclient.SecretKeyPassword] = []byte(creds.password)
	}
	if m := creds.tls; m != nil {
		putMaterial(data, m.CA, m.Cert, m.Key, pkgclient.SecretKeyCA, pkgclient.SecretKeyCert, pkgclient.SecretKeyKey)
	}
	if sc := creds.sentinel; sc != nil {
		if sc.username != "" {
			data[pkgclient.SecretKeySentinelUsername] = []byte(sc.username)
		}
		if sc.hasPassword {
			data[pkgclient.SecretKeySentinelPassword] = []byte(sc.password)
		}
		if m := sc.tls; m != nil {
			putMaterial(data, m.CA, m.Cert, m.Key, pkgclient.SecretKeySentinelCA, pkgclient.SecretKeySentinelCert, pkgclient.SecretKeySentinelKey)
		}
	}
	keys := pkgclient.SentinelBindingKeys(cfg)
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		data[k] = []byte(keys[k])
	}
	o := cfg.NodeClientOptions
	if o.Socket.TLS {
		data["ssl"] = []byte("true")
	}
	if o.Name != "" {
		data["client-name"] = []byte(o.Name)
	}
	if o.Database != 0 {
		data["database"] = []byte(strconv.Itoa(o.Database))
	}
	return data
}

func putMaterial(data map[string][]byte, ca, cert, key []byte, caKey, certKey, keyKey string) {
	if len(ca) > 0 {
		data[caKey] = ca
	}
	if len(cert) > 0 {
		data[certKey] = cert
		data[keyKey] = key
	}
}
