package client

import (
	"fmt"
	"time"

	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// SentinelCredentials returns the Secret's sentinel-username and sentinel-password ("" for
// missing keys): the sentinels' own credentials, separate from Credentials (the data nodes').
func (r *Resolved) SentinelCredentials() (string, string) {
	var u, p string
	if r.snap.sentinelUsername != nil {
		u = *r.snap.sentinelUsername
	}
	if r.snap.sentinelPassword != nil {
		p = *r.snap.sentinelPassword
	}
	return u, p
}

// SentinelTLS is the sentinels' TLS material when sentinelClientOptions.socket.tls (nil
// otherwise).
func (r *Resolved) SentinelTLS() *rtls.Material { return r.snap.sentinelMaterial }

// SentinelInspectorOptions returns the cluster.Options for cluster.NewSentinelInspector that
// reach a sentinel-mode group the way Open does: the sentinel root nodes with the sentinels'
// credentials and TLS, the data nodes with theirs (nodeClientOptions), one node address map
// for both. base is the dial function beneath the map (nil: net.Dialer). The credentials are
// the ones of r (no live reload: tools that follow updates pass their own
// CredentialsProvider).
func (r *Resolved) SentinelInspectorOptions(base cluster.DialFunc) (cluster.Options, error) {
	cfg := r.Config
	if cfg.ModeOrDefault() != ModeSentinel {
		return cluster.Options{}, fmt.Errorf("rconn: SentinelInspectorOptions: the config is in %s mode", cfg.ModeOrDefault())
	}
	d, s := cfg.NodeClientOptions, cfg.SentinelClientOptions
	o := cluster.Options{
		Dial: base,
		Defaults: cluster.NodeOptions{
			TLSServerName:  d.Socket.ServerName,
			ConnectTimeout: time.Duration(d.Socket.ConnectTimeout) * time.Millisecond,
		},
		Sentinel: &cluster.SentinelOptions{
			MasterName: cfg.Name,
			Defaults: cluster.NodeOptions{
				TLSServerName:  s.Socket.ServerName,
				ConnectTimeout: time.Duration(s.Socket.ConnectTimeout) * time.Millisecond,
			},
		},
	}
	o.Defaults.Username, o.Defaults.Password = r.snap.creds()
	o.Sentinel.Defaults.Username, o.Sentinel.Defaults.Password = r.SentinelCredentials()
	// A root node is named by its announced address when rconn.sentinels has one the map
	// sends there: the sentinels list each other by announced address, and one sentinel
	// known under two names would be asked, and counted in the majority, twice.
	byReachable := map[string]string{}
	for _, a := range cfg.Rconn.Sentinels {
		if to, ok := cfg.NodeAddressMap[a]; ok {
			byReachable[to.String()] = a
		}
	}
	for _, n := range cfg.SentinelRootNodes {
		rn := cluster.RootNode{Address: cluster.Address{Host: n.Host, Port: n.Port}}
		if a, ok := byReachable[n.String()]; ok {
			if pa, err := cluster.ParseAddress(a); err == nil {
				rn.Address = pa
			}
		}
		o.Sentinel.RootNodes = append(o.Sentinel.RootNodes, rn)
	}
	m, err := r.snap.nodeMap()
	if err != nil {
		return cluster.Options{}, err
	}
	o.NodeAddressMap = m
	if d.Socket.TLS {
		t, err := rtls.NewReloadable(rtls.Options{Material: r.TLS, ServerName: d.Socket.ServerName, InsecureSkipVerify: cfg.Rconn.TLSInsecureSkipVerify})
		if err != nil {
			return cluster.Options{}, fmt.Errorf("rconn: TLS material: %w", err)
		}
		o.Defaults.TLSConfigFor = t.ConfigFor
	}
	if s.Socket.TLS {
		t, err := rtls.NewReloadable(rtls.Options{Material: r.SentinelTLS(), ServerName: s.Socket.ServerName, InsecureSkipVerify: cfg.Rconn.SentinelTLSInsecureSkipVerify})
		if err != nil {
			return cluster.Options{}, fmt.Errorf("rconn: sentinel TLS material: %w", err)
		}
		o.Sentinel.Defaults.TLSConfigFor = t.ConfigFor
	}
	return o, nil
}
