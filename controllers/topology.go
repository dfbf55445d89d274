package controllers

import (
	"context"
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

// inspectors keeps the cluster.Inspectors (pooled Redis connections) of every RedisConnection.
//
// RedisConnections whose connections would be identical share one inspector: same mode, root
// nodes, credentials (by content: username and a hash of the password), TLS material and
// settings, client name, connect timeout, database, node address map and health timeout. A
// shared inspector is reference counted: a RedisConnection takes a reference when it first uses
// it, moves to another one when any of those inputs change (credential rotation, a new map), and
// drops it on delete; the inspector is closed when its last reference goes.
//
// A shared inspector also shares its results: one discovery + health check (singleflight) whose
// result is reused by every RedisConnection reconciling within half its health interval, so N
// RedisConnections naming the same cluster cost about as many Redis round trips as one. A failed
// probe is shared only with the reconciles waiting on it, never cached.
//
// With sharing disabled (DisableTopologySharing) every RedisConnection has its own inspector and
// probes on every reconcile, as before sharing existed.
type inspectors struct {
	mu     sync.Mutex
	byRC   map[types.NamespacedName]string
	shared map[string]*sharedInspector
}

// sharedInspector is one inspector with its reference count and last probe result.
type sharedInspector struct {
	in   *cluster.Inspector
	refs int

	mu     sync.Mutex
	last   *probeResult
	flight *probeFlight
}

// probeResult is one discovery + health check.
type probeResult struct {
	at     time.Time
	topo   *cluster.Topology
	health []cluster.NodeHealth
	err    error
}

type probeFlight struct {
	done chan struct{}
	res  *probeResult
}

// release drops the RedisConnection's reference; the caller holds s.mu.
func (s *inspectors) releaseLocked(key types.NamespacedName) {
	sk, ok := s.byRC[key]
	if !ok {
		return
	}
	delete(s.byRC, key)
	if e := s.shared[sk]; e != nil {
		e.refs--
		if e.refs <= 0 {
			_ = e.in.Close()
			delete(s.shared, sk)
		}
	}
}

func (s *inspectors) close(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(key)
}

// count returns how many inspectors (distinct sets of Redis connections) are open.
func (s *inspectors) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.shared)
}

// references returns how many RedisConnections hold an inspector.
func (s *inspectors) references() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byRC)
}

// clusterOptions builds pkg/cluster options from the spec and resolved credentials.
func (r *RedisConnectionReconciler) clusterOptions(rc *rconnv1.RedisConnection, creds *credentials, m *addressMap) (cluster.Options, string, error) {
	o := cluster.Options{
		Standalone:          rc.Spec.Mode == rconnv1.ModeStandalone,
		UseReplicas:         rc.Spec.UseReplicas,
		MinimizeConnections: rc.Spec.MinimizeConnections,
		NodeAddressMap:      staticMap(m),
		Dial:                r.Dial,
		Defaults:            cluster.NodeOptions{Username: creds.ctrlUsername, Password: creds.ctrlPassword},
	}
	// The fingerprint covers what the connections are made of, by content (not by Secret
	// resourceVersion), so RedisConnections in different namespaces with equal credentials share.
	fp := sha256.New()
	fmt.Fprintf(fp, "%s|%q|%d:%s|", rc.Spec.Mode, creds.ctrlUsername, len(creds.ctrlPassword), creds.ctrlPassword)
	if m := creds.tls; m != nil {
		fmt.Fprintf(fp, "ca=%d:%s|crt=%d:%s|key=%d:%s|", len(m.CA), m.CA, len(m.Cert), m.Cert, len(m.Key), m.Key)
	}
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
		fmt.Fprintf(fp, "%v|%d|%q|", d.ConnectTimeout, ptrVal(d.Database), d.ClientName)
		// Field by field: %v of the struct would print the SecretRef pointer's address, which
		// differs on every read of the object.
		if t := d.TLS; t != nil {
			fmt.Fprintf(fp, "tls=%t|%q|%t|", t.Enabled, t.ServerName, t.InsecureSkipVerify)
		}
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

// sharedKey names the inspector a RedisConnection uses: the connection fingerprint, the address
// map and the health timeout; with sharing disabled, also the RedisConnection itself.
func (r *RedisConnectionReconciler) sharedKey(key types.NamespacedName, fingerprint string, m *addressMap, healthTimeout time.Duration) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%s|", fingerprint, mapKey(m), healthTimeout)
	if r.DisableTopologySharing {
		fmt.Fprintf(h, "rc=%s|", key)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// inspector returns the shared inspector for the RedisConnection's current settings, creating it
// when none is open, and moving the RedisConnection's reference from the one it used before when
// its settings changed (that one is closed when nobody else uses it).
func (r *RedisConnectionReconciler) inspector(key types.NamespacedName, o cluster.Options, sk string) (*sharedInspector, error) {
	s := &r.inspectors
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byRC == nil {
		s.byRC = map[types.NamespacedName]string{}
		s.shared = map[string]*sharedInspector{}
	}
	if cur, ok := s.byRC[key]; ok && cur == sk {
		return s.shared[sk], nil
	}
	e := s.shared[sk]
	if e == nil {
		in, err := cluster.NewInspector(o)
		if err != nil {
			return nil, err
		}
		e = &sharedInspector{in: in}
		s.shared[sk] = e
	}
	// Take the new reference before dropping the old one, so a key that did not change in
	// substance never closes the connections in between.
	e.refs++
	s.releaseLocked(key)
	s.byRC[key] = sk
	return e, nil
}

// probe discovers the topology and checks every node's health through e, or returns a result
// younger than maxAge (0: always probe). Concurrent callers share one probe; its context is
// detached from the first caller's (bounded by discoverTimeout + healthTimeout), so a caller
// giving up does not fail the others.
func (e *sharedInspector) probe(ctx context.Context, maxAge, discoverTimeout, healthTimeout time.Duration) *probeResult {
	e.mu.Lock()
	if l := e.last; l != nil && maxAge > 0 && time.Since(l.at) < maxAge {
		e.mu.Unlock()
		return l
	}
	f := e.flight
	leader := f == nil
	if leader {
		f = &probeFlight{done: make(chan struct{})}
		e.flight = f
	}
	e.mu.Unlock()
	if !leader {
		select {
		case <-f.done:
			return f.res
		case <-ctx.Done():
			return &probeResult{at: time.Now(), err: ctx.Err()}
		}
	}

	res := &probeResult{}
	pctx := context.WithoutCancel(ctx)
	dctx, cancel := context.WithTimeout(pctx, discoverTimeout)
	res.topo, res.err = e.in.Discover(dctx)
	cancel()
	if res.err == nil {
		res.health = e.in.CheckHealth(pctx, res.topo, healthTimeout)
	}
	res.at = time.Now()

	e.mu.Lock()
	f.res = res
	e.flight = nil
	if res.err == nil {
		e.last = res
	} else {
		e.last = nil
	}
	e.mu.Unlock()
	close(f.done)
	return res
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
