package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// Sentinel mode in Go: a go-redis FailoverClient (or, with useReplicas, the failover cluster
// client that routes reads to replicas) whose every connection, to a sentinel or to a data node,
// goes through the mapping dialer. go-redis gives sentinel and data connections one Dialer and
// one TLSConfig, so the dialer tells them apart by address (sentinelRootNodes and
// rconn.sentinels are sentinels, everything else a data node) and does TLS itself, with the
// sentinels' or the data nodes' material and names; it also sends the sentinels' AUTH, so that
// their credentials reload live like the data nodes' (go-redis reads those from the
// CredentialsProvider).

// sentinelSpec is what a sentinel-mode config resolves to beyond spec.
type sentinelSpec struct {
	master     string
	addrs      []string // sentinelRootNodes as configured (reachable): go-redis's SentinelAddrs
	known      []string // announced sentinel addresses (rconn.sentinels)
	username   string
	password   string
	tls        *rtls.Reloadable // nil: plaintext to the sentinels
	serverName string
}

// sentinelState is the live part of a sentinel-mode client.
type sentinelState struct {
	creds atomic.Pointer[credentials]
	known atomic.Pointer[map[string]bool]
	tls   *rtls.Reloadable
}

func (st *sentinelState) setKnown(roots, announced []string) {
	m := make(map[string]bool, len(roots)+len(announced))
	for _, a := range append(append([]string(nil), roots...), announced...) {
		m[a] = true
	}
	st.known.Store(&m)
}

// sentinelSpec turns a sentinel-mode snapshot into client options: ConnOptions (connection.go),
// then what only a client has.
func (s *snapshot) sentinelSpec() (*spec, error) {
	cfg := s.cfg
	sec := s.secret()
	if s.sentinelUsername != nil {
		sec.SentinelUsername = *s.sentinelUsername
	}
	if s.sentinelPassword != nil {
		sec.SentinelPassword = *s.sentinelPassword
	}
	sec.SentinelTLS = s.sentinelMaterial
	o, tlsr, sentTLS, err := cfg.sentinelConnOptions(sec)
	if err != nil {
		return nil, err
	}
	sp := &spec{
		db: o.Defaults.DB, name: o.Defaults.ClientName, connectTimeout: o.Defaults.ConnectTimeout,
		username: o.Defaults.Username, password: o.Defaults.Password, tls: tlsr,
		serverName: o.Defaults.TLSServerName, nodeMap: o.NodeAddressMap, useReplicas: o.UseReplicas,
		strategy: cfg.Rconn.ReconnectStrategy.strategy(), autoPipeline: cfg.Rconn.AutoPipeline,
		scripts: cfg.scriptOptions(), functions: cfg.Rconn.FunctionLibraries,
	}
	sn := &sentinelSpec{
		master: o.Sentinel.MasterName, known: cfg.Rconn.Sentinels, tls: sentTLS,
		username: o.Sentinel.Defaults.Username, password: o.Sentinel.Defaults.Password,
		serverName: o.Sentinel.Defaults.TLSServerName,
	}
	// go-redis gets the roots as configured (reachable, stable names), not o.Sentinel.RootNodes:
	// those are renamed to their announced aliases for the inspector's majority count, and an
	// announced address the map no longer has (after a rollout) is unreachable, so a client
	// holding only those loses every sentinel.
	for _, n := range cfg.SentinelRootNodes {
		sn.addrs = append(sn.addrs, n.String())
	}
	sp.sentinel = sn
	return sp, nil
}

// buildSentinel sets c up as a failover client (build calls it for a sentinel spec).
func (c *Client) buildSentinel(s *spec, provider func() (string, string), base cluster.DialFunc, dataTLS func(string) *tls.Config) error {
	sn := s.sentinel
	if s.useReplicas && len(s.functions) > 0 {
		return errors.New("rconn: function libraries with useReplicas are not supported in sentinel mode")
	}
	st := &sentinelState{tls: sn.tls}
	st.creds.Store(&credentials{sn.username, sn.password})
	st.setKnown(sn.addrs, sn.known)
	var sentTLS func(string) *tls.Config
	if sn.tls != nil {
		sentTLS = sn.tls.ConfigFor
	}
	data := cluster.NewDialer(cluster.DialerOptions{Map: s.nodeMap, Dial: base, ConnectTimeout: s.connectTimeout, TLSConfigFor: dataTLS, ServerName: s.serverName})
	sent := cluster.NewDialer(cluster.DialerOptions{Map: s.nodeMap, Dial: base, ConnectTimeout: s.connectTimeout, TLSConfigFor: sentTLS, ServerName: sn.serverName})
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if !(*st.known.Load())[addr] {
			return data.DialContext(ctx, network, addr)
		}
		conn, err := sent.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if cr := st.creds.Load(); cr.password != "" || cr.username != "" {
			if err := sentinelAuth(conn, cr.username, cr.password, s.connectTimeout); err != nil {
				_ = conn.Close()
				return nil, fmt.Errorf("rconn: sentinel %s: %w", addr, err)
			}
		}
		return conn, nil
	}
	fo := &redis.FailoverOptions{
		MasterName: sn.master, SentinelAddrs: sn.addrs, Dialer: dial, CredentialsProvider: provider,
		DB: s.db, ClientName: s.name, DialTimeout: s.connectTimeout,
	}
	c.sentinel = st
	c.setMap = func(m cluster.NodeAddressMap) { data.SetMap(m); sent.SetMap(m) }
	if s.useReplicas {
		fo.RouteRandomly = true
		cc := redis.NewFailoverClusterClient(fo)
		cc.AddHook(gateHook{&c.gate})
		c.direct = cc
		c.probe = func(ctx context.Context) error { return cc.Ping(ctx).Err() }
	} else {
		rc := redis.NewFailoverClient(fo)
		rc.AddHook(gateHook{&c.gate})
		c.single, c.direct = rc, rc
		c.probe = func(ctx context.Context) error { return rc.Ping(ctx).Err() }
	}
	if s.autoPipeline {
		// As in Cluster and Standalone mode (client.go): one batching hook per node client.
		switch d := c.direct.(type) {
		case *redis.ClusterClient:
			d.OnNewNode(func(n *redis.Client) { n.AddHook(newBatchHook(n)) })
			c.batched = true
		case *redis.Client:
			d.AddHook(newBatchHook(d))
			c.batched = true
		}
	}
	return nil
}

// maxAuthReply bounds the reply to the sentinels' AUTH: "+OK" or a short error.
const maxAuthReply = 512

// sentinelAuth authenticates a fresh sentinel connection with the current sentinel credentials,
// before go-redis sends HELLO on it.
func sentinelAuth(conn net.Conn, username, password string, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	args := []string{"AUTH", password}
	if username != "" {
		args = []string{"AUTH", username, password}
	}
	var b strings.Builder
	b.WriteString("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b.WriteString("$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n")
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	defer func() { _ = conn.SetDeadline(time.Time{}) }()
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return fmt.Errorf("AUTH: %w", err)
	}
	// One byte at a time up to the line end: nothing may stay buffered here that go-redis's
	// reader should see (the server sends nothing else before the next command).
	line := make([]byte, 0, 64)
	one := make([]byte, 1)
	for len(line) < maxAuthReply {
		if _, err := conn.Read(one); err != nil {
			return fmt.Errorf("AUTH: %w", err)
		}
		if one[0] == '\n' {
			break
		}
		line = append(line, one[0])
	}
	switch reply := strings.TrimRight(string(line), "\r"); {
	case reply == "+OK":
		return nil
	case strings.HasPrefix(reply, "-WRONGPASS"), strings.HasPrefix(reply, "-ERR invalid password"), strings.HasPrefix(reply, "-NOPERM"):
		return errors.New("AUTH refused: wrong sentinel username or password")
	case strings.HasPrefix(reply, "-"):
		return errors.New("AUTH refused by the sentinel")
	default:
		return errors.New("AUTH: unexpected reply from the sentinel")
	}
}

// updateSentinel applies a reloaded snapshot's sentinel TLS material (may fail: first), then
// its credentials and known sentinel addresses.
func (c *Client) updateSentinelTLS(next *snapshot) error {
	if c.sentinel == nil || c.sentinel.tls == nil || next.sentinelMaterial == nil {
		return nil
	}
	if err := c.sentinel.tls.Update(next.sentinelMaterial); err != nil {
		return fmt.Errorf("rconn: config reload failed, keeping the last good configuration: sentinel TLS material: %w", err)
	}
	return nil
}

func (c *Client) updateSentinel(next *snapshot) {
	if c.sentinel == nil {
		return
	}
	var u, p string
	if next.sentinelUsername != nil {
		u = *next.sentinelUsername
	}
	if next.sentinelPassword != nil {
		p = *next.sentinelPassword
	}
	c.sentinel.creds.Store(&credentials{u, p})
	roots := make([]string, 0, len(next.cfg.SentinelRootNodes))
	for _, n := range next.cfg.SentinelRootNodes {
		roots = append(roots, n.String())
	}
	c.sentinel.setKnown(roots, next.cfg.Rconn.Sentinels)
}
