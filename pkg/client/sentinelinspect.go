package client

import (
	"fmt"

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
// reach a sentinel-mode group the way Open does: ConnOptions (connection.go) with r's secret
// material, the sentinels' included. base is the dial function beneath the map (nil:
// net.Dialer). The credentials are the ones of r (no live reload: tools that follow updates
// pass their own CredentialsProvider).
func (r *Resolved) SentinelInspectorOptions(base cluster.DialFunc) (cluster.Options, error) {
	cfg := r.Config
	if cfg.ModeOrDefault() != ModeSentinel {
		return cluster.Options{}, fmt.Errorf("rconn: SentinelInspectorOptions: the config is in %s mode", cfg.ModeOrDefault())
	}
	sec := r.snap.secret()
	sec.SentinelUsername, sec.SentinelPassword = r.SentinelCredentials()
	sec.SentinelTLS = r.SentinelTLS()
	o, _, err := cfg.ConnOptions(sec)
	if err != nil {
		return cluster.Options{}, err
	}
	o.Dial = base
	return o, nil
}
