package client

import (
	"fmt"

	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// InspectorOptions returns the cluster.Options that reach the nodes r describes the way a
// client of this package does: its root nodes, the Secret's credentials, TLS with the
// per-node server name and the Secret's material, the node address map and (NodeIDMap) the
// node-ID fallback. For tools that look at the cluster without a go-redis client (kubectl
// rconn check): pass them to cluster.NewInspector, and the NodeIDMap to its Dialer's
// SetNodeIDs. base is the dial function beneath the map (nil: net.Dialer).
func (r *Resolved) InspectorOptions(base cluster.DialFunc) (cluster.Options, error) {
	o, _, err := r.Config.ConnOptions(r.snap.secret())
	o.Dial = base
	return o, err
}

// ResolveWithoutSecret validates config.json on its own, for a person's diagnostic look who
// may not read the Secret (kubectl rconn check). Nothing binds config.json to anything then, so
// the result carries no secret material at all, whatever config.json names: no credentials and
// no TLS client certificate (and no CA: the system roots verify), so nothing secret is sent
// where an unverified config.json points. Apps never use it: Open reads the Secret, and refuses
// a config.json the Secret does not bind (ErrConfigNotBound).
func ResolveWithoutSecret(config []byte) (*Resolved, error) {
	if len(config) > MaxConfigBytes {
		return nil, fmt.Errorf("rconn: %s is larger than %d bytes", ConfigFileName, MaxConfigBytes)
	}
	cfg, err := LoadConfig(config)
	if err != nil {
		return nil, err
	}
	s := &snapshot{cfg: cfg, files: map[string]bool{}}
	if cfg.Defaults.Socket.TLS {
		s.material = &rtls.Material{}
	}
	return resolvedOf(s, "unverified"), nil
}
