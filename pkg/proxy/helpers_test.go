package proxy_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/rconn-dev/redis-connection-operator/internal/tb"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubeletmount"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/proxy"
)

// TestMain fails the package if any test attempted a DNS query.
func TestMain(m *testing.M) {
	tb.WideParallel() // the t.Parallel tests each own their servers and mostly wait
	nettest.RunWithoutDNS(m)
}

// env is a cluster announcing unreachable names and a proxy in front of it, configured from a
// mounted config.json exactly as the controller renders it.
type env struct {
	rc    *redistest.Cluster
	p     *proxy.Proxy
	dial  *nettest.Recorder // the proxy's base dialer
	mount string
	cfg   *client.Config
	tls   *redistest.TLS
	pass  string
	token int
	// watchErrs are the Watcher's reports (OnError).
	watchErrs lockedErrs
}

type envOptions struct {
	tls      bool
	replicas int
	seedPort int
	// password is the default user's: the Secret's password.
	password string
	// proxy, when set, adjusts the proxy's options before Start.
	proxy func(*env, *proxy.Options)
	// nodeTimeout is the cluster's cluster-node-timeout (default redistest's).
	nodeTimeout time.Duration
}

// lockedErrs collects errors from another goroutine.
type lockedErrs struct {
	mu   sync.Mutex
	errs []error
}

func (l *lockedErrs) add(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

func (l *lockedErrs) list() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.errs)
}

func startEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	e := &env{pass: o.password}
	so := redistest.ServerOptions{Password: o.password}
	if o.tls {
		e.tls = redistest.NewTLS(t, redistest.TLSOptions{})
		so.TLS = e.tls
	}
	e.rc = redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: o.replicas, Announce: redistest.AnnounceHostname, Server: so, NodeTimeout: o.nodeTimeout})
	scheme := "redis://"
	if o.tls {
		scheme = "rediss://"
	}
	e.cfg = &client.Config{RootNodes: []client.RootNodeConfig{{URL: scheme + e.rc.Nodes[0].Announced}}, NodeAddressMap: map[string]client.MappedAddress{}}
	e.cfg.Defaults.Socket.TLS = o.tls
	for announced, addr := range e.rc.AddressMap() {
		h, p, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(p)
		e.cfg.NodeAddressMap[announced] = client.MappedAddress{Host: h, Port: port}
	}
	e.mount = t.TempDir()
	e.write(t)
	src, err := client.NewMountSource(e.mount)
	if err != nil {
		t.Fatal(err)
	}
	w, err := client.Watch(ctx(t), src, client.WatchOptions{ReloadInterval: 50 * time.Millisecond, OnError: e.watchErrs.add})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	e.dial = nettest.NewRecorder(nil)
	po := proxy.Options{SeedPort: o.seedPort, Dial: e.dial.Dial, RefreshInterval: 200 * time.Millisecond, Logger: testLogger(t)}
	if o.proxy != nil {
		o.proxy(e, &po)
	}
	e.p, err = proxy.Start(ctx(t), w.Current(), po)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.p.Close() })
	go func() {
		for r := range w.Updates() {
			_ = e.p.Apply(r)
		}
	}()
	return e
}

// write renders e.cfg and its Secret as one projected volume, bound the way the controller
// binds them (client.BindSecret, a new token each time).
func (e *env) write(t testing.TB) {
	t.Helper()
	files := map[string][]byte{}
	if e.pass != "" {
		files[client.SecretKeyPassword] = []byte(e.pass)
	}
	if e.tls != nil {
		files[client.SecretKeyCA] = e.tls.CA.CertPEM
		files[client.SecretKeyCert] = e.tls.Client.CertPEM
		files[client.SecretKeyKey] = e.tls.Client.KeyPEM
	}
	e.token++
	b, err := client.BindSecret(e.cfg, files, fmt.Sprintf("t%d", e.token))
	if err != nil {
		t.Fatal(err)
	}
	files[client.ConfigFileName] = b
	if err := kubeletmount.Write(e.mount, files, 0o644); err != nil {
		t.Fatal(err)
	}
}

// listeners is every address the proxy listens on.
func (e *env) listeners() []string {
	out := []string{e.p.SeedAddr()}
	for _, n := range e.p.Nodes() {
		out = append(out, n.Listen)
	}
	return out
}

// listenerOf returns the proxy listener of a node.
func (e *env) listenerOf(t *testing.T, n *redistest.Node) string {
	t.Helper()
	for _, l := range e.p.Nodes() {
		if l.ID == n.ID {
			return l.Listen
		}
	}
	t.Fatalf("no proxy listener for node %d (%s)", n.Index, n.ID)
	return ""
}

// ownerOf is the master serving key's slot, as formed (slots split evenly over 3 masters).
func (e *env) ownerOf(key string) *redistest.Node {
	slot := slotOf(key)
	return e.rc.Masters()[slot*3/16384]
}

// appClient is a plain go-redis ClusterClient on the seed, as any app would use it: no address
// map, no custom dialer beyond one that refuses names (the test must not send DNS queries).
func appClient(t *testing.T, seed string, rec *nettest.Recorder) *redis.ClusterClient {
	t.Helper()
	c := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                    []string{seed},
		Dialer:                   rec.Dial,
		MaxRedirects:             8,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	nettest.WaitFor(t, 20*time.Second, what, cond)
}

type lockedBuffer struct {
	mu sync.Mutex
	l  []string
}

func (b *lockedBuffer) add(s string) {
	b.mu.Lock()
	b.l = append(b.l, s)
	b.mu.Unlock()
}

func (b *lockedBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.l...)
}
