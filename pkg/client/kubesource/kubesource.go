// Package kubesource feeds pkg/client from the rendered ConfigMap and Secret read through the
// Kubernetes API instead of a volume mount: for apps outside the cluster (a VM, a laptop,
// another cluster) and for apps that cannot wait for the kubelet's volume sync (about a minute)
// after the controller re-renders the node address map. Updates arrive by watch and apply in
// well under a second, by the same rules as a mount (client.OpenSource): a broken update keeps
// the last good configuration, config.json and the Secret apply as a pair, secret material
// comes from the Secret only, and read failures are retried.
//
//	c, err := kubesource.Open(ctx, kubesource.Options{Namespace: "shop", Name: "cache"}, client.OpenOptions{})
//
// It is a package of its own so that apps that mount the outputs do not link client-go.
//
// # Access
//
// The identity needs exactly get and watch on the two objects, and nothing else (no list:
// the watch selects the object by metadata.name, which the API server authorizes against
// resourceNames):
//
//	apiVersion: rbac.authorization.k8s.io/v1
//	kind: Role
//	metadata: {name: cache-reader, namespace: shop}
//	rules:
//	- apiGroups: [""]
//	  resources: [configmaps]
//	  resourceNames: [cache]
//	  verbs: [get, watch]
//	- apiGroups: [""]
//	  resources: [secrets]
//	  resourceNames: [cache]
//	  verbs: [get, watch]
//
// # Watches
//
// Each object is read with a GET and then watched from its resourceVersion (one object,
// selected by name). A watch that ends is resumed from the last resourceVersion seen; one that
// fails is retried with backoff (100ms doubling to 5s); a 410 Gone (resourceVersion too old)
// starts over with a GET. Only the latest version of each object is kept: nothing queues. A
// deleted object is reported (EventError, the last good configuration keeps running) and
// looked for again with backoff until it is back.
package kubesource

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// Options say where the rendered outputs are and how to reach the API server.
type Options struct {
	// Config is the API server and identity. Nil: the kubeconfig (Kubeconfig, else $KUBECONFIG,
	// else ~/.kube/config), or in a pod its ServiceAccount (rest.InClusterConfig).
	Config *rest.Config
	// Kubeconfig is the kubeconfig file to use when Config is nil.
	Kubeconfig string
	// Namespace of the RedisConnection. Empty: the kubeconfig context's namespace, or in a pod
	// its own.
	Namespace string
	// Name of the RedisConnection: the ConfigMap and the Secret default to it (as the
	// controller names them unless spec.output says otherwise).
	Name string
	// ConfigMap and Secret override the object names (spec.output.configMapName, secretName).
	ConfigMap, Secret string
	// RequestTimeout bounds each GET (default 10s). Watches run until the server ends them.
	RequestTimeout time.Duration
}

// Open watches the outputs and returns a client built from them (client.OpenSource), once it
// is ready, bounded by ctx. Closing the client stops the watches.
func Open(ctx context.Context, o Options, co client.OpenOptions) (*client.Client, error) {
	src, err := NewSource(o)
	if err != nil {
		return nil, err
	}
	return co.OpenSource(ctx, src)
}

// Source is a client.Source on the API server. It starts watching at NewSource; Close stops it
// (client.OpenSource closes it with the client).
type Source struct {
	objects [2]*object // ConfigMap, Secret
	changed chan struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu     sync.Mutex
	cached *client.Snapshot
}

var _ client.Source = (*Source)(nil)

// NewSource resolves o and starts the watches.
func NewSource(o Options) (*Source, error) {
	cfg, ns, err := o.resolve()
	if err != nil {
		return nil, err
	}
	cs, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubesource: %w", err)
	}
	cm, sec := o.ConfigMap, o.Secret
	if cm == "" {
		cm = o.Name
	}
	if sec == "" {
		sec = o.Name
	}
	if cm == "" || sec == "" {
		return nil, errors.New("kubesource: Options.Name (or ConfigMap and Secret) is required")
	}
	timeout := o.RequestTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Source{changed: make(chan struct{}, 1), cancel: cancel}
	cms, secs := cs.ConfigMaps(ns), cs.Secrets(ns)
	s.objects[0] = &object{kind: "ConfigMap", ns: ns, name: cm, timeout: timeout, ready: make(chan struct{}),
		get:   func(ctx context.Context) (runtime.Object, error) { return cms.Get(ctx, cm, metav1.GetOptions{}) },
		watch: func(ctx context.Context, lo metav1.ListOptions) (watch.Interface, error) { return cms.Watch(ctx, lo) }}
	s.objects[1] = &object{kind: "Secret", ns: ns, name: sec, timeout: timeout, ready: make(chan struct{}),
		get:   func(ctx context.Context) (runtime.Object, error) { return secs.Get(ctx, sec, metav1.GetOptions{}) },
		watch: func(ctx context.Context, lo metav1.ListOptions) (watch.Interface, error) { return secs.Watch(ctx, lo) }}
	for _, obj := range s.objects {
		obj.notify = s.notify
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			obj.run(ctx)
		}()
	}
	return s, nil
}

func (o Options) resolve() (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.Kubeconfig
	kc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg := o.Config
	if cfg == nil {
		var err error
		if cfg, err = kc.ClientConfig(); err != nil {
			return nil, "", fmt.Errorf("kubesource: no API server configuration (neither in a pod nor a kubeconfig): %w", err)
		}
	}
	ns := o.Namespace
	if ns == "" {
		var err error
		if ns, _, err = kc.Namespace(); err != nil {
			return nil, "", fmt.Errorf("kubesource: Options.Namespace is required (none from the kubeconfig or the pod): %w", err)
		}
		if ns == "" {
			return nil, "", errors.New("kubesource: Options.Namespace is required (none from the kubeconfig or the pod)")
		}
	}
	cfg = rest.CopyConfig(cfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = "rconn-kubesource"
	}
	return cfg, ns, nil
}

// Close stops the watches.
func (s *Source) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

// Changed implements client.Source.
func (s *Source) Changed() <-chan struct{} { return s.changed }

func (s *Source) notify() {
	select {
	case s.changed <- struct{}{}:
	default: // one pending signal covers any number of changes
	}
}

// Snapshot implements client.Source: the latest version of both objects, once each was read
// (or failed to be) at least once.
func (s *Source) Snapshot(ctx context.Context) (*client.Snapshot, error) {
	for _, o := range s.objects {
		select {
		case <-o.ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("kubesource: reading %s %s/%s: %w", o.kind, o.ns, o.name, ctx.Err())
		}
	}
	cmObj, cmVer, err := s.objects[0].current()
	if err != nil {
		return nil, err
	}
	secObj, secVer, err := s.objects[1].current()
	if err != nil {
		return nil, err
	}
	version := cmVer + "\x00" + secVer
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cached != nil && s.cached.Version == version {
		return s.cached, nil
	}
	cm, sec := cmObj.(*corev1.ConfigMap), secObj.(*corev1.Secret)
	config := []byte(cm.Data[client.ConfigFileName])
	if b, ok := cm.BinaryData[client.ConfigFileName]; ok && len(config) == 0 {
		config = b
	}
	s.cached = &client.Snapshot{Version: version, Config: config, Secret: maps.Clone(sec.Data)}
	if s.cached.Secret == nil {
		s.cached.Secret = map[string][]byte{}
	}
	return s.cached, nil
}

// object keeps the latest version of one watched object.
type object struct {
	kind, ns, name string
	timeout        time.Duration
	get            func(context.Context) (runtime.Object, error)
	watch          func(context.Context, metav1.ListOptions) (watch.Interface, error)
	notify         func()
	ready          chan struct{}
	readyOnce      sync.Once

	mu  sync.Mutex
	obj runtime.Object // nil: not there
	err error          // why obj is not usable now
}

func (o *object) current() (runtime.Object, string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return nil, "", o.err
	}
	if o.obj == nil {
		return nil, "", fmt.Errorf("kubesource: %s %s/%s not read yet", o.kind, o.ns, o.name)
	}
	m, _ := o.obj.(metav1.Object)
	return o.obj, string(m.GetUID()) + "/" + m.GetResourceVersion(), nil
}

// set records what was read: a version of the object, or why there is none to use (NotFound
// drops the object; other errors keep it, but Snapshot reports them until the next read).
func (o *object) set(obj runtime.Object, err error) {
	o.mu.Lock()
	switch {
	case obj != nil:
		o.obj, o.err = obj, nil
	case apierrors.IsNotFound(err):
		o.obj, o.err = nil, err
	default:
		o.err = err
	}
	o.mu.Unlock()
	o.readyOnce.Do(func() { close(o.ready) })
	o.notify()
}

func (o *object) fail(what string, err error) {
	o.set(nil, fmt.Errorf("kubesource: %s %s %s/%s: %w", what, o.kind, o.ns, o.name, err))
}

// recovered clears an error that did not drop the object (a watch works again).
func (o *object) recovered() {
	o.mu.Lock()
	cleared := o.err != nil && o.obj != nil
	if cleared {
		o.err = nil
	}
	o.mu.Unlock()
	if cleared {
		o.notify()
	}
}

func newBackoff() wait.Backoff {
	return wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Jitter: 0.2, Steps: 1 << 30, Cap: 5 * time.Second}
}

// sleep waits for d, or less if ctx ends first.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// run gets the object, watches it from its resourceVersion, and starts over on 410 Gone.
func (o *object) run(ctx context.Context) {
	b := newBackoff()
	for ctx.Err() == nil {
		gctx, cancel := context.WithTimeout(ctx, o.timeout)
		obj, err := o.get(gctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			o.fail("reading", err)
			sleep(ctx, b.Step())
			continue
		}
		b = newBackoff()
		o.set(obj, nil)
		o.watchFrom(ctx, obj.(metav1.Object).GetResourceVersion(), &b)
	}
}

// watchFrom watches the object from rv until the watch cannot resume (410 Gone) or ctx ends.
func (o *object) watchFrom(ctx context.Context, rv string, b *wait.Backoff) {
	sel := fields.OneTermEqualSelector("metadata.name", o.name).String()
	for ctx.Err() == nil {
		w, err := o.watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			if ctx.Err() != nil || apierrors.IsGone(err) || apierrors.IsResourceExpired(err) {
				return
			}
			if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
				o.fail("watching", err)
			}
			sleep(ctx, b.Step())
			continue
		}
		o.recovered()
		next, events, gone := o.consume(ctx, w, rv)
		w.Stop()
		if gone {
			return
		}
		rv = next
		if events == 0 {
			sleep(ctx, b.Step()) // a watch that ends at once must not spin
		} else {
			*b = newBackoff()
		}
	}
}

// consume applies the events of one watch and returns the last resourceVersion seen, how many
// events came, and whether the watch reported 410 Gone.
func (o *object) consume(ctx context.Context, w watch.Interface, rv string) (string, int, bool) {
	events := 0
	for {
		select {
		case <-ctx.Done():
			return rv, events, false
		case ev, ok := <-w.ResultChan():
			if !ok {
				return rv, events, false
			}
			events++
			switch ev.Type {
			case watch.Added, watch.Modified:
				o.set(ev.Object, nil)
			case watch.Deleted:
				o.fail("watching", apierrors.NewNotFound(corev1.Resource(kindResource(o.kind)), o.name))
			case watch.Bookmark:
			case watch.Error:
				err := apierrors.FromObject(ev.Object)
				if apierrors.IsGone(err) || apierrors.IsResourceExpired(err) {
					return rv, events, true
				}
				return rv, events, false
			}
			if m, ok := ev.Object.(metav1.Object); ok && ev.Type != watch.Error {
				rv = m.GetResourceVersion()
			}
		}
	}
}

func kindResource(kind string) string {
	if kind == "Secret" {
		return "secrets"
	}
	return "configmaps"
}
