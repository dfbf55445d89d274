package client_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/world/kubeletmount"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
)

type recorder = nettest.Recorder

// mount is a directory laid out exactly like a kubelet projected volume
// (internal/world/kubeletmount).
type mount struct {
	dir string
}

func newMount(t *testing.T, files map[string][]byte) *mount {
	t.Helper()
	m := &mount{dir: t.TempDir()}
	m.update(t, files)
	return m
}

// update writes a new version and swaps it in atomically, as kubelet does. A version with
// config.json and no client.SecretKeyConfigDigest is one projected volume of a rendered pair:
// the digest that binds config.json is added (client.ConfigDigest). Split mounts bind in the
// Secret's mount (bindTo); writeRaw writes what it is given.
func (m *mount) update(t *testing.T, files map[string][]byte) {
	t.Helper()
	if raw, ok := files[client.ConfigFileName]; ok {
		if _, has := files[client.SecretKeyConfigDigest]; !has {
			files = maps.Clone(files)
			files[client.SecretKeyConfigDigest] = []byte(client.ConfigDigest(raw))
		}
	}
	m.writeRaw(t, files)
}

// writeRaw writes a new version exactly as given.
func (m *mount) writeRaw(t *testing.T, files map[string][]byte) {
	t.Helper()
	if err := kubeletmount.Write(m.dir, files, 0o644); err != nil {
		t.Fatal(err)
	}
}

// bindTo returns the Secret's files with the digest that binds config.json added.
func bindTo(config []byte, secret map[string][]byte) map[string][]byte {
	out := maps.Clone(secret)
	if out == nil {
		out = map[string][]byte{}
	}
	out[client.SecretKeyConfigDigest] = []byte(client.ConfigDigest(config))
	return out
}

// events records client events.
type events struct {
	mu  sync.Mutex
	all []client.Event
}

func (e *events) handle(ev client.Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
}

func (e *events) list() []client.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.all)
}

func (e *events) types() []client.EventType {
	var out []client.EventType
	for _, ev := range e.list() {
		out = append(out, ev.Type)
	}
	return out
}

// reloads records OnReload results.
type reloads struct {
	mu   sync.Mutex
	errs []error
	ok   atomic.Int64
}

func (r *reloads) handle(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
	if err == nil {
		r.ok.Add(1)
	}
}

// since returns the results after the first n.
func (r *reloads) since(n int) []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs[n:])
}

func (r *reloads) last() (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) == 0 {
		return 0, nil
	}
	return len(r.errs), r.errs[len(r.errs)-1]
}

// waitFor polls cond every 20ms for up to 10s.
func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	nettest.WaitFor(t, 10*time.Second, what, cond)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type proxy = nettest.Proxy

func startProxy(t *testing.T, target string) *proxy { return nettest.StartProxy(t, target) }

var errNotYet = errors.New("not yet")

// mappedConfig is a cluster Config rooted at node 0 whose nodeAddressMap sends every announced
// address to the address that really listens; it also returns those addresses.
func mappedConfig(rc *redistest.Cluster) (*client.Config, []string) {
	cfg := &client.Config{RootNodes: []client.RootNodeConfig{{URL: "redis://" + rc.Nodes[0].Announced}}, NodeAddressMap: map[string]client.MappedAddress{}}
	var dialed []string
	for announced, addr := range rc.AddressMap() {
		cfg.NodeAddressMap[announced] = mapped(addr)
		dialed = append(dialed, addr)
	}
	return cfg, dialed
}
