package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

const (
	// FieldOwner is the server-side apply field manager of rendered objects.
	FieldOwner = "rconn-controller"
	// AnnotationContentHash holds the sha256 of the rendered data; consumers roll on change.
	AnnotationContentHash = "rconn.dev/content-hash"
	// LabelConnection names the RedisConnection a rendered object belongs to.
	LabelConnection = "rconn.dev/connection"
	// LabelManagedBy is app.kubernetes.io/managed-by.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	managedBy      = "rconn"
)

func outputNames(rc *rconnv1.RedisConnection) (configMap, secret string) {
	configMap, secret = rc.Name, rc.Name
	if o := rc.Spec.Output; o != nil {
		if o.ConfigMapName != "" {
			configMap = o.ConfigMapName
		}
		if o.SecretName != "" {
			secret = o.SecretName
		}
	}
	return configMap, secret
}

// renderConfig builds config.json: node-redis createCluster/createClient options, no secrets.
// topo (nil: none) adds rconn.nodeIds: each node's ID -> the reachable address its announced
// address maps to, so that pkg/client finds a restarted node (same ID, new address) before the
// new map reaches it.
func renderConfig(rc *rconnv1.RedisConnection, m *addressMap, topo *cluster.Topology) *pkgclient.Config {
	cfg := &pkgclient.Config{
		UseReplicas:         rc.Spec.UseReplicas,
		MinimizeConnections: rc.Spec.MinimizeConnections,
		Rconn: pkgclient.RconnConfig{
			Mode:         pkgclient.ModeCluster,
			AutoPipeline: rc.Spec.AutoPipeline,
		},
	}
	if rc.Spec.Mode == rconnv1.ModeStandalone {
		cfg.Rconn.Mode = pkgclient.ModeStandalone
	} else if rc.Spec.MaxCommandRedirections != nil {
		cfg.MaxCommandRedirections = int(*rc.Spec.MaxCommandRedirections)
	}
	tlsOn := false
	if d := rc.Spec.Defaults; d != nil {
		if d.ConnectTimeout != nil {
			cfg.Defaults.Socket.ConnectTimeout = d.ConnectTimeout.Milliseconds()
		}
		if d.Database != nil {
			cfg.Defaults.Database = int(*d.Database)
		}
		cfg.Defaults.Name = d.ClientName
		if d.TLS != nil && d.TLS.Enabled {
			tlsOn = true
			cfg.Defaults.Socket.TLS = true
			cfg.Defaults.Socket.ServerName = d.TLS.ServerName
			cfg.Rconn.TLSInsecureSkipVerify = d.TLS.InsecureSkipVerify
		}
	}
	if o := rc.Spec.Output; o != nil {
		cfg.Defaults.Socket.Path = o.SocketPath // apps dial it; the controller keeps rootNodes
	}
	renderScripts(rc, cfg)
	for _, rn := range rc.Spec.RootNodes {
		url := string(rn.URL)
		if url == "" {
			url = hostPortURL(cluster.Address{Host: rn.Host, Port: int(rn.Port)}, tlsOn)
		}
		cfg.RootNodes = append(cfg.RootNodes, pkgclient.RootNodeConfig{URL: url})
	}
	if len(m.entries) > 0 {
		cfg.NodeAddressMap = map[string]pkgclient.MappedAddress{}
		for k, e := range m.entries {
			a, err := cluster.ParseAddress(e.Reachable)
			if err != nil {
				continue
			}
			cfg.NodeAddressMap[k] = pkgclient.MappedAddress{Host: a.Host, Port: a.Port}
		}
	}
	if topo != nil && !topo.Standalone && len(cfg.NodeAddressMap) > 0 {
		for _, n := range topo.Nodes {
			a, ok := cfg.NodeAddressMap[n.Announced]
			if !ok || cluster.ValidateNodeIDMap(cluster.NodeIDMap{n.ID: {Host: a.Host, Port: a.Port}}) != nil {
				continue // unmapped, or not an ID pkg/client would accept (a hostile node)
			}
			if cfg.Rconn.NodeIDs == nil {
				cfg.Rconn.NodeIDs = map[string]pkgclient.MappedAddress{}
			}
			cfg.Rconn.NodeIDs[n.ID] = a
		}
	}
	if s := rc.Spec.ReconnectStrategy; s != nil {
		rs := &pkgclient.ReconnectConfig{}
		switch s.Type {
		case rconnv1.ReconnectNone:
			rs.Type = pkgclient.ReconnectTypeNone
		case rconnv1.ReconnectFixedDelay:
			rs.Type = pkgclient.ReconnectTypeFixedDelay
			if s.Delay != nil {
				rs.DelayMs = s.Delay.Milliseconds()
			}
		default:
			rs.Type = pkgclient.ReconnectTypeExponentialBackoff
			if s.Base != nil {
				rs.BaseMs = s.Base.Milliseconds()
			}
			if s.Cap != nil {
				rs.CapMs = s.Cap.Milliseconds()
			}
			// The documented default (200ms) is rendered, so "jitter: 0s" stays expressible.
			rs.JitterMs = pkgclient.DefaultReconnectJitter.Milliseconds()
			if s.Jitter != nil {
				rs.JitterMs = s.Jitter.Milliseconds()
			}
		}
		cfg.Rconn.ReconnectStrategy = rs
	}
	return cfg
}

// renderSecretData holds credentials, certificates and the Service Binding keys.
func renderSecretData(creds *credentials, cfg *pkgclient.Config) map[string][]byte {
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
	if creds.tls != nil {
		if len(creds.tls.CA) > 0 {
			data[pkgclient.SecretKeyCA] = creds.tls.CA
		}
		if len(creds.tls.Cert) > 0 {
			data[pkgclient.SecretKeyCert] = creds.tls.Cert
			data[pkgclient.SecretKeyKey] = creds.tls.Key
		}
	}
	if len(cfg.RootNodes) > 0 {
		if u, err := cluster.ParseURL(cfg.RootNodes[0].URL); err == nil {
			host, port := u.Address.Host, u.Address.Port
			data["host"] = []byte(host)
			data["port"] = []byte(strconv.Itoa(port))
			if u.TLS {
				data["ssl"] = []byte("true")
			}
		}
	}
	addSpringBindingKeys(data, cfg)
	return data
}

// addSpringBindingKeys adds what Spring Cloud Bindings' "redis" type reads beyond host and port
// (docs/consuming.md, "Service Binding"): database, client-name, ssl, and in cluster mode
// cluster.nodes (reachable seeds: the root nodes, then every distinct nodeAddressMap target)
// and cluster.max-redirects.
func addSpringBindingKeys(data map[string][]byte, cfg *pkgclient.Config) {
	if cfg.Defaults.Socket.TLS {
		data["ssl"] = []byte("true")
	}
	if cfg.Defaults.Name != "" {
		data["client-name"] = []byte(cfg.Defaults.Name)
	}
	if cfg.Defaults.Database != 0 {
		data["database"] = []byte(strconv.Itoa(cfg.Defaults.Database))
	}
	if cfg.Rconn.Mode == pkgclient.ModeStandalone {
		return
	}
	var seeds, mapped []string
	seen := map[string]bool{}
	for _, rn := range cfg.RootNodes {
		if u, err := cluster.ParseURL(rn.URL); err == nil && !seen[u.Address.String()] {
			seen[u.Address.String()] = true
			seeds = append(seeds, u.Address.String())
		}
	}
	for _, a := range cfg.NodeAddressMap {
		if !seen[a.String()] {
			seen[a.String()] = true
			mapped = append(mapped, a.String())
		}
	}
	sort.Strings(mapped)
	if seeds = append(seeds, mapped...); len(seeds) > 0 {
		data["cluster.nodes"] = []byte(strings.Join(seeds, ","))
	}
	redirects := cfg.MaxCommandRedirections
	if redirects == 0 {
		redirects = cluster.DefaultMaxCommandRedirections
	}
	data["cluster.max-redirects"] = []byte(strconv.Itoa(redirects))
}

func hashData(strs map[string]string, bins map[string][]byte) string {
	h := sha256.New()
	keys := make([]string, 0, len(strs)+len(bins))
	for k := range strs {
		keys = append(keys, "s:"+k)
	}
	for k := range bins {
		keys = append(keys, "b:"+k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var v []byte
		if k[0] == 's' {
			v = []byte(strs[k[2:]])
		} else {
			v = bins[k[2:]]
		}
		h.Write(fmt.Appendf(nil, "%s=%d:", k, len(v)))
		h.Write(v)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// sameStrings reports whether have holds every key of want with the same value. Keys someone
// added by hand are not ours (server-side apply leaves them to their manager) and are ignored;
// a changed or deleted key of ours is restored.
func sameStrings(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

func sameBytes(have, want map[string][]byte) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || string(hv) != string(v) {
			return false
		}
	}
	return true
}

// stickyNodeIDs keeps the last rendered address of a node that is still in the topology but
// whose announced address has no map entry right now: a restarting pod is gossiped under its
// old address while its endpoint is already gone, and exactly then apps need its ID entry.
// Nodes that left the topology drop out.
func stickyNodeIDs(prev, now map[string]pkgclient.MappedAddress, topo *cluster.Topology) map[string]pkgclient.MappedAddress {
	if len(prev) == 0 || topo == nil {
		return now
	}
	for _, n := range topo.Nodes {
		if _, ok := now[n.ID]; ok {
			continue
		}
		if a, ok := prev[n.ID]; ok {
			if now == nil {
				now = map[string]pkgclient.MappedAddress{}
			}
			now[n.ID] = a
		}
	}
	return now
}
