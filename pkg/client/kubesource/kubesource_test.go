package kubesource_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/rconn-dev/redis-connection-operator/internal/tb"
	"github.com/rconn-dev/redis-connection-operator/internal/testing/hostile"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/client/kubesource"
)

var (
	env   *envtest.Environment
	admin kubernetes.Interface
)

// TestMain runs the tests against a real kube-apiserver + etcd (envtest, with RBAC), and fails
// the package if any test attempted a DNS query.
func TestMain(m *testing.M) {
	tb.SkipPackage("kube-apiserver (envtest)")
	os.Exit(nettest.WithoutDNS(func() int {
		var err error
		if env, err = kubetest.NewEnvironment(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		cfg, err := env.Start()
		if err != nil {
			fmt.Fprintln(os.Stderr, "starting envtest:", err)
			return 1
		}
		defer func() { _ = env.Stop() }()
		admin = kubernetes.NewForConfigOrDie(cfg)
		return m.Run()
	}))
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var errNotYet = errors.New("not yet")

func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	nettest.WaitFor(t, 15*time.Second, what, cond)
}

// reports records OnReload results and error events.
type reports struct {
	mu   sync.Mutex
	errs []error
}

func (r *reports) add(err error) {
	if err != nil {
		r.mu.Lock()
		r.errs = append(r.errs, err)
		r.mu.Unlock()
	}
}

func (r *reports) has(substr string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.errs {
		if strings.Contains(e.Error(), substr) {
			return nil
		}
	}
	return fmt.Errorf("%w: no report containing %q in %v", errNotYet, substr, r.errs)
}

func mapped(addr string) client.MappedAddress {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return client.MappedAddress{Host: host, Port: p}
}

const announced = "app-redis.rconn-test.invalid:6379"

// world is a namespace with rendered outputs for a real redis-server, and an identity that may
// only get and watch those two objects.
type world struct {
	ns    string
	srv   *redistest.Server
	cfg   *client.Config
	user  *rest.Config
	token int
}

// pair renders w.cfg and the Secret's data bound to it, the way the controller does
// (client.BindSecret, a new token each time).
func (w *world) pair(t *testing.T) (string, map[string][]byte) {
	t.Helper()
	w.token++
	sec := map[string][]byte{client.SecretKeyUsername: []byte("app"), client.SecretKeyPassword: []byte("pw"), "type": []byte("redis")}
	raw, err := client.BindSecret(w.cfg, sec, fmt.Sprintf("t%d", w.token))
	must(t, err)
	return string(raw), sec
}

// publish writes a new pair as the controller does: the ConfigMap, then the Secret.
func (w *world) publish(t *testing.T, createConfigMap bool) {
	t.Helper()
	raw, sec := w.pair(t)
	if createConfigMap {
		must(t, create(testCtx(t), admin.CoreV1().ConfigMaps(w.ns), w.rawConfigMap(raw)))
	} else {
		w.updateConfigMap(t, w.rawConfigMap(raw))
	}
	_, err := admin.CoreV1().Secrets(w.ns).Update(testCtx(t), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cache"}, Data: sec}, metav1.UpdateOptions{})
	must(t, err)
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := testCtx(t)
	w := &world{ns: fmt.Sprintf("ks-%d", time.Now().UnixNano())}
	w.srv = redistest.StartServer(t, redistest.ServerOptions{Password: "admin", Users: []redistest.User{{Name: "app", Password: "pw"}}})
	must(t, create(ctx, admin.CoreV1().Namespaces(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.ns}}))
	w.cfg = &client.Config{
		RootNodes:      []client.RootNodeConfig{{URL: "redis://" + announced}},
		NodeAddressMap: map[string]client.MappedAddress{announced: mapped(w.srv.Addr())},
		Rconn:          client.RconnConfig{Mode: client.ModeStandalone},
	}
	raw, sec := w.pair(t)
	must(t, create(ctx, admin.CoreV1().ConfigMaps(w.ns), w.rawConfigMap(raw)))
	must(t, create(ctx, admin.CoreV1().Secrets(w.ns), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cache"}, Data: sec}))
	must(t, create(ctx, admin.CoreV1().Secrets(w.ns), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "other"},
		Data:       map[string][]byte{client.SecretKeyPassword: []byte("admin")},
	}))
	// The minimal Role of the package documentation.
	must(t, create(ctx, admin.RbacV1().Roles(w.ns), &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "cache-reader"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"cache"}, Verbs: []string{"get", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"cache"}, Verbs: []string{"get", "watch"}},
		},
	}))
	userName := "app-" + w.ns
	must(t, create(ctx, admin.RbacV1().RoleBindings(w.ns), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "cache-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "cache-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: userName}},
	}))
	u, err := env.AddUser(envtest.User{Name: userName}, nil)
	must(t, err)
	w.user = u.Config()
	return w
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type creator[T any] interface {
	Create(context.Context, T, metav1.CreateOptions) (T, error)
}

func create[T any](ctx context.Context, c creator[T], obj T) error {
	_, err := c.Create(ctx, obj, metav1.CreateOptions{})
	return err
}

func (w *world) rawConfigMap(raw string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cache"}, Data: map[string]string{client.ConfigFileName: raw}}
}

func (w *world) updateConfigMap(t *testing.T, cm *corev1.ConfigMap) {
	t.Helper()
	_, err := admin.CoreV1().ConfigMaps(w.ns).Update(testCtx(t), cm, metav1.UpdateOptions{})
	must(t, err)
}

func TestOpenThroughTheAPI(t *testing.T) {
	w := newWorld(t)
	ctx := testCtx(t)
	var rep reports
	rec := &nettest.Recorder{}
	c, err := kubesource.Open(ctx, kubesource.Options{Config: w.user, Namespace: w.ns, Name: "cache"},
		client.OpenOptions{Dial: rec.Dial, OnReload: rep.add, OnEvent: func(e client.Event) { rep.add(e.Err) }})
	must(t, err)
	defer func() { _ = c.Close() }()

	// Initial load: the map and the credentials from the API.
	if who, err := c.Do(ctx, "ACL", "WHOAMI").Text(); err != nil || who != "app" {
		t.Fatalf("ACL WHOAMI = %q, %v", who, err)
	}

	// A new map applies without any mount, on the watch event.
	p1 := nettest.StartProxy(t, w.srv.Addr())
	w.cfg.NodeAddressMap[announced] = mapped(p1.Addr())
	w.publish(t, false)
	waitFor(t, "the new map", func() error {
		if got := c.Config().NodeAddressMap[announced]; got != mapped(p1.Addr()) {
			return fmt.Errorf("%w: map has %v", errNotYet, got)
		}
		return nil
	})
	if err := c.Set(ctx, "k", "1", 0).Err(); err != nil || p1.Accepted.Load() == 0 {
		t.Fatalf("SET = %v, %d connections through the new mapping", err, p1.Accepted.Load())
	}

	// A broken config.json keeps the last good configuration.
	w.updateConfigMap(t, w.rawConfigMap(`{"rootNodes": [`))
	waitFor(t, "the broken update to be reported", func() error { return rep.has("keeping the last good configuration") })
	if got := c.Config().NodeAddressMap[announced]; got != mapped(p1.Addr()) {
		t.Fatalf("a broken update changed the map to %v", got)
	}
	if err := c.Set(ctx, "k", "2", 0).Err(); err != nil {
		t.Fatalf("traffic broke after a broken update: %v", err)
	}

	// Deleting the ConfigMap is reported; the client keeps running, and picks it up again.
	must(t, admin.CoreV1().ConfigMaps(w.ns).Delete(ctx, "cache", metav1.DeleteOptions{}))
	waitFor(t, "the deletion to be reported", func() error { return rep.has("not found") })
	if err := c.Set(ctx, "k", "3", 0).Err(); err != nil {
		t.Fatalf("traffic broke after the ConfigMap was deleted: %v", err)
	}
	p2 := nettest.StartProxy(t, w.srv.Addr())
	w.cfg.NodeAddressMap[announced] = mapped(p2.Addr())
	w.publish(t, true)
	waitFor(t, "the re-created ConfigMap", func() error {
		if got := c.Config().NodeAddressMap[announced]; got != mapped(p2.Addr()) {
			return fmt.Errorf("%w: map has %v", errNotYet, got)
		}
		return nil
	})
	rec.AssertOnly(t, w.srv.Addr(), p1.Addr(), p2.Addr())
	must(t, c.Close())
	waitWatchesEnded(t)
}

// Issue 23 item 2 through the API: someone who may update the ConfigMap (not the Secret)
// points config.json's map at their listener, token unchanged. The client refuses the edit
// (ErrConfigNotBound, reported), keeps its map, and new connections never reach the listener.
func TestSteeredConfigMapIsRefused(t *testing.T) {
	w := newWorld(t)
	ctx := testCtx(t)
	sink := hostile.StartSink(t)
	var rep reports
	var notBound atomic.Bool
	c, err := kubesource.Open(ctx, kubesource.Options{Config: w.user, Namespace: w.ns, Name: "cache"},
		client.OpenOptions{Dial: (&nettest.Recorder{}).Dial, OnReload: rep.add, OnEvent: func(e client.Event) {
			rep.add(e.Err)
			if e.Type == client.EventError && errors.Is(e.Err, client.ErrConfigNotBound) {
				notBound.Store(true)
			}
		}})
	must(t, err)
	defer func() { _ = c.Close() }()
	if err := c.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}

	cm, err := admin.CoreV1().ConfigMaps(w.ns).Get(ctx, "cache", metav1.GetOptions{})
	must(t, err)
	cfg, err := client.LoadConfig([]byte(cm.Data[client.ConfigFileName]))
	must(t, err)
	cfg.NodeAddressMap[announced] = mapped(sink.Addr())
	steered, err := client.Render(cfg)
	must(t, err)
	cm.Data[client.ConfigFileName] = string(steered)
	w.updateConfigMap(t, cm)
	for deadline := time.Now().Add(10 * time.Second); !notBound.Load() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !notBound.Load() {
		t.Errorf("no EventError wrapping ErrConfigNotBound: %v", rep.has(client.SecretKeyConfigDigest))
	}
	rdb := w.srv.Client()
	defer func() { _ = rdb.Close() }()
	must(t, rdb.Do(ctx, "CLIENT", "KILL", "USER", "app").Err())
	worked := c.Set(ctx, "k", "after", 0).Err()
	for deadline := time.Now().Add(5 * time.Second); worked != nil && time.Now().Before(deadline); worked = c.Set(ctx, "k", "after", 0).Err() {
		time.Sleep(50 * time.Millisecond)
	}
	if sink.Accepted() > 0 || sink.Saw("pw") {
		t.Fatalf("the attacker's listener accepted %d connections: %q", sink.Accepted(), sink.Requests())
	}
	if worked != nil {
		t.Fatalf("SET after the refused edit: %v", worked)
	}
	if got := c.Config().NodeAddressMap[announced]; got != mapped(w.srv.Addr()) {
		t.Fatalf("the client runs on the steered map: %v", got)
	}
}

// waitWatchesEnded waits until no watch goroutine of any Source runs.
func waitWatchesEnded(t *testing.T) {
	t.Helper()
	waitFor(t, "the watches to end", func() error {
		buf := make([]byte, 1<<22)
		n := runtime.Stack(buf, true)
		if k := strings.Count(string(buf[:n]), "kubesource.(*object).run"); k > 0 {
			return fmt.Errorf("%w: %d watch goroutines", errNotYet, k)
		}
		return nil
	})
}

// The identity of the minimal Role reads the two outputs and nothing else.
func TestMinimalRoleReadsNothingElse(t *testing.T) {
	w := newWorld(t)
	ctx := testCtx(t)
	user := kubernetes.NewForConfigOrDie(w.user)
	if _, err := user.CoreV1().Secrets(w.ns).Get(ctx, "cache", metav1.GetOptions{}); err != nil {
		t.Fatalf("get of its own Secret: %v", err)
	}
	sel := fields.OneTermEqualSelector("metadata.name", "cache").String()
	wi, err := user.CoreV1().Secrets(w.ns).Watch(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		t.Fatalf("watch of its own Secret by name: %v", err)
	}
	wi.Stop()
	for name, call := range map[string]func() error{
		"get another Secret": func() error {
			_, err := user.CoreV1().Secrets(w.ns).Get(ctx, "other", metav1.GetOptions{})
			return err
		},
		"list Secrets": func() error {
			_, err := user.CoreV1().Secrets(w.ns).List(ctx, metav1.ListOptions{})
			return err
		},
		"list its own Secret by name": func() error {
			_, err := user.CoreV1().Secrets(w.ns).List(ctx, metav1.ListOptions{FieldSelector: sel})
			return err
		},
		"watch all Secrets": func() error {
			wi, err := user.CoreV1().Secrets(w.ns).Watch(ctx, metav1.ListOptions{})
			if err == nil {
				wi.Stop()
			}
			return err
		},
		"watch another Secret": func() error {
			wi, err := user.CoreV1().Secrets(w.ns).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", "other").String()})
			if err == nil {
				wi.Stop()
			}
			return err
		},
	} {
		if err := call(); !apierrors.IsForbidden(err) {
			t.Errorf("%s: %v, want Forbidden", name, err)
		}
	}
	// Through kubesource: pointing it at another Secret fails, with the reason.
	octx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err = kubesource.Open(octx, kubesource.Options{Config: w.user, Namespace: w.ns, ConfigMap: "cache", Secret: "other"}, client.OpenOptions{})
	if err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("Open on a Secret it may not read: %v", err)
	}
	waitWatchesEnded(t)
}
