package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// inspectors keeps one cluster.Inspector per RedisConnection, so connections are reused across
// reconciles; it is rebuilt when what the connections depend on changes, and closed on delete.
type inspectors struct {
	mu sync.Mutex
	m  map[types.NamespacedName]*inspectorEntry
}

type inspectorEntry struct {
	fingerprint string
	in          *cluster.Inspector
	mapKey      string
}

func (s *inspectors) close(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.m[key]; e != nil {
		_ = e.in.Close()
		delete(s.m, key)
	}
}

// count returns how many inspectors are open.
func (s *inspectors) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// clusterOptions builds pkg/cluster options from the spec and resolved credentials.
func (r *RedisConnectionReconciler) clusterOptions(rc *rconnv1.RedisConnection, creds *credentials, m *addressMap) (cluster.Options, string, error) {
	o := cluster.Options{
		Standalone:          rc.Spec.Mode == rconnv1.ModeStandalone,
		UseReplicas:         rc.Spec.UseReplicas,
		MinimizeConnections: rc.Spec.MinimizeConnections,
		NodeAddressMap:      staticMap(m),
		Dial:                r.Dial,
		Defaults:            cluster.NodeOptions{Username: creds.username, Password: creds.password},
	}
	fp := sha256.New()
	fmt.Fprintf(fp, "%s|%s|%s|", rc.Spec.Mode, creds.versions, creds.username)
	for _, rn := range rc.Spec.RootNodes {
		if rn.URL != "" {
			o.RootNodes = append(o.RootNodes, cluster.RootNode{URL: string(rn.URL)})
		} else {
			o.RootNodes = append(o.RootNodes, cluster.RootNode{Address: cluster.Address{Host: rn.Host, Port: int(rn.Port)}})
		}
		fmt.Fprintf(fp, "%s/%s/%d|", rn.URL, rn.Host, rn.Port)
	}
	if d := rc.Spec.Defaults; d != nil {
		if d.ConnectTimeout != nil {
			o.Defaults.ConnectTimeout = d.ConnectTimeout.Duration
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
					o.RootNodes[i] = cluster.RootNode{URL: "rediss://" + cluster.Address{Host: rn.Address.Host, Port: portOr(rn.Address.Port)}.String()}
				}
			}
		}
		fmt.Fprintf(fp, "%v|%d|%s|%v", d.ConnectTimeout, ptrVal(d.Database), d.ClientName, d.TLS)
	}
	return o, hex.EncodeToString(fp.Sum(nil)), nil
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

// staticMap turns the resolved map into a pkg/cluster map.
func staticMap(m *addressMap) cluster.NodeAddressMap {
	if m == nil || len(m.entries) == 0 {
		return nil
	}
	entries := make(map[string]string, len(m.entries))
	for k, e := range m.entries {
		entries[k] = e.Reachable
	}
	nm, err := cluster.StaticMap(entries)
	if err != nil {
		// Entries come from validated spec fields and endpoint addresses; a bad one maps nothing.
		return nil
	}
	return nm
}

func mapKey(m *addressMap) string {
	var b strings.Builder
	for _, e := range m.list() {
		b.WriteString(e.Announced + "=" + e.Reachable + ";")
	}
	return b.String()
}

// inspector returns the RedisConnection's inspector, creating or rebuilding it when its
// connection settings changed, and swapping in the current address map.
func (r *RedisConnectionReconciler) inspector(key types.NamespacedName, o cluster.Options, fingerprint string, m *addressMap) (*cluster.Inspector, error) {
	r.inspectors.mu.Lock()
	defer r.inspectors.mu.Unlock()
	if r.inspectors.m == nil {
		r.inspectors.m = map[types.NamespacedName]*inspectorEntry{}
	}
	e := r.inspectors.m[key]
	if e != nil && e.fingerprint != fingerprint {
		_ = e.in.Close()
		e = nil
	}
	mk := mapKey(m)
	if e == nil {
		in, err := cluster.NewInspector(o)
		if err != nil {
			return nil, err
		}
		e = &inspectorEntry{fingerprint: fingerprint, in: in, mapKey: mk}
		r.inspectors.m[key] = e
	} else if e.mapKey != mk {
		e.in.SetNodeAddressMap(o.NodeAddressMap)
		e.mapKey = mk
	}
	return e.in, nil
}

// topologyReason classifies a discovery error for TopologyDiscovered.
func topologyReason(err error) string {
	switch {
	case errors.Is(err, cluster.ErrNotCluster):
		return rconnv1.ReasonNotACluster
	case errors.Is(err, cluster.ErrClusterModeServer):
		return rconnv1.ReasonClusterModeServer
	case strings.Contains(err.Error(), "WRONGPASS") || strings.Contains(err.Error(), "NOAUTH") || strings.Contains(err.Error(), "NOPERM"):
		return rconnv1.ReasonAuthenticationFailed
	case rtls.ReasonOf(err) != "":
		return rconnv1.ReasonTLSHandshakeFailed
	default:
		return rconnv1.ReasonRootNodesUnreachable
	}
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
