package controllers

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// RedisConnectionReconciler reconciles RedisConnection objects: credentials, node address map,
// topology, health, rendered ConfigMap + Secret, and status.
type RedisConnectionReconciler struct {
	client.Client
	// APIReader reads Secrets directly, so the manager does not cache every Secret in the
	// cluster (only their metadata, to be told about rotations).
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  recorder.EventRecorder
	// ClusterDomain is the cluster DNS domain for PodDNS addresses (cluster.local).
	ClusterDomain string
	// MaxConcurrentReconciles bounds parallel reconciles.
	MaxConcurrentReconciles int
	// Dial is the base dial function beneath the node address map (nil: net.Dialer). Tests pass
	// one that resolves only their own names.
	Dial cluster.DialFunc
	// Now returns the time (tests may fix it); nil means time.Now.
	Now func() time.Time
	// DisableTopologySharing gives every RedisConnection its own Redis connections and its own
	// background discovery + health probe, instead of sharing them between
	// RedisConnections whose connections would be identical (see inspectors). The environment
	// variable RCONN_DISABLE_TOPOLOGY_SHARING=true sets it in the manager (an escape hatch, and the
	// baseline of the scale benchmarks in test/scale).
	DisableTopologySharing bool
	// DisableSentinelSubscription leaves Sentinel-mode inspectors without their +switch-master
	// subscription: a failover is then seen by the periodic probe only. The environment
	// variable RCONN_DISABLE_SENTINEL_SUBSCRIPTION=true sets it in the manager (an escape hatch,
	// and the baseline of BenchmarkSentinelFailover in test/scale).
	DisableSentinelSubscription bool

	// MaxRedisTimeout caps every Redis connect timeout and health timeout a spec asks for
	// (0: 30s), so no RedisConnection can hold a probe and its sockets for longer.
	MaxRedisTimeout time.Duration
	// Limits bound what one Redis reply may make the controller read and allocate, and the
	// size of a topology (nil: cluster.DefaultLimits).
	Limits *cluster.Limits
	// ReplyBudget bounds what the replies being read on every RedisConnection's connections
	// hold at once (manager-wide, --max-inflight-reply-bytes); one RedisConnection's
	// connections may hold at most a quarter of it. Nil: no bound beyond Limits per reply.
	ReplyBudget *cluster.ReplyBudget
	// AddressPolicy refuses dialing denied targets (link-local, the API server, --deny-cidrs,
	// outside --allow-cidrs); nil dials anything.
	AddressPolicy *cluster.AddressPolicy
	// Admission watches over the secret-references admission policy (admissioncheck.go); with
	// its Require set, RedisConnections that reference Secrets wait for it. nil: no check.
	Admission *AdmissionCheck

	inspectors inspectors
	secrets    secretMemo
	outputs    outputMemo
	nodeIDs    nodeIDMemo
	events     eventLimiter
	// nodeCache holds Node addresses for NodePort mappings (nodes.go): the manager's cache.
	nodeCache nodeSource
	// probed carries "a background probe finished" to the controller's queue.
	probed chan event.GenericEvent
	stop   chan struct{}

	warnMu       sync.Mutex
	expiryWarned map[types.NamespacedName]time.Time
}

const (
	certWarnWithin = 14 * 24 * time.Hour
)

func (r *RedisConnectionReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// +kubebuilder:rbac:groups=rconn.dev,resources=redisconnections,verbs=get;list;watch
// +kubebuilder:rbac:groups=rconn.dev,resources=redisconnections/status,verbs=patch
// +kubebuilder:rbac:groups=rconn.dev,resources=redisconnections/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles,verbs=get;list;watch;create;patch;delete

// Reconcile brings one RedisConnection's status and outputs in line with the cluster: load it,
// build the request's scope, run the phases (phases.go), and end with one status step
// (reconcile_status.go) whatever happened.
func (r *RedisConnectionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, err error) {
	rc := &rconnv1.RedisConnection{}
	if err := r.Get(ctx, req.NamespacedName, rc); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !rc.DeletionTimestamp.IsZero() {
		r.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	s := newScope(req.NamespacedName, rc, r.maxTimeout())
	defer func() { result, err = r.finish(ctx, s, result, err) }()
	return r.runPhases(ctx, s)
}

// warnExpiry emits a Warning when a certificate expires within 14 days, at most once a day per
// RedisConnection (an Event per reconcile would be a write at steady state).
func (r *RedisConnectionReconciler) warnExpiry(rc *rconnv1.RedisConnection, creds *credentials) {
	if creds.expiry.IsZero() || creds.expiry.Sub(r.now()) > certWarnWithin {
		return
	}
	key := client.ObjectKeyFromObject(rc)
	r.warnMu.Lock()
	defer r.warnMu.Unlock()
	if r.expiryWarned == nil {
		r.expiryWarned = map[types.NamespacedName]time.Time{}
	}
	if last, ok := r.expiryWarned[key]; ok && r.now().Sub(last) < 24*time.Hour {
		return
	}
	r.expiryWarned[key] = r.now()
	r.event(rc, corev1.EventTypeWarning, rconnv1.EventReasonCertificateExpiringSoon, fmt.Sprintf("a TLS certificate expires at %s (in %s)", creds.expiry.UTC().Format(time.RFC3339), creds.expiry.Sub(r.now()).Round(time.Hour)))
}

func (r *RedisConnectionReconciler) event(rc *rconnv1.RedisConnection, typ, reason, msg string) {
	if r.Recorder == nil {
		return
	}
	ok, dropped := r.events.allow(client.ObjectKeyFromObject(rc), r.now())
	if !ok {
		return
	}
	if dropped > 0 {
		msg = fmt.Sprintf("%s (%d earlier Events of this RedisConnection were dropped by the rate limit)", msg, dropped)
	}
	r.Recorder.Eventf(rc, nil, typ, reason, "Reconcile", "%s", truncate(msg, 1000))
}

// forget closes a deleted RedisConnection's connections and drops its metrics.
func (r *RedisConnectionReconciler) forget(key types.NamespacedName) {
	r.inspectors.close(key)
	r.outputs.drop(key)
	r.nodeIDs.drop(key)
	r.events.forget(key)
	r.secrets.release(key)
	r.warnMu.Lock()
	delete(r.expiryWarned, key)
	r.warnMu.Unlock()
	forgetMetrics(key.Namespace, key.Name)
	r.inspectorMetrics()
}

func (r *RedisConnectionReconciler) inspectorMetrics() {
	openInspectors.Set(float64(r.inspectors.count()))
	inspectorReferences.Set(float64(r.inspectors.references()))
}

// SetupWithManager registers the reconciler, its indexes and watches.
func (r *RedisConnectionReconciler) SetupWithManager(mgr ctrl.Manager) error {
	ctx := context.Background()
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	r.nodeCache = mgr.GetCache()
	if v, err := strconv.ParseBool(os.Getenv("RCONN_DISABLE_TOPOLOGY_SHARING")); err == nil && v {
		r.DisableTopologySharing = true
	}
	if v, err := strconv.ParseBool(os.Getenv("RCONN_DISABLE_SENTINEL_SUBSCRIPTION")); err == nil && v {
		r.DisableSentinelSubscription = true
	}
	r.inspectors.noSubscription = r.DisableSentinelSubscription
	if err := AddIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	if err := registerStateCollector(mgr.GetCache(), mgr.Elected()); err != nil {
		return fmt.Errorf("registering the RedisConnection state metrics: %w", err)
	}
	if r.ReplyBudget != nil {
		replyBudget.Store(r.ReplyBudget)
	}
	concurrent := r.MaxConcurrentReconciles
	if concurrent <= 0 {
		concurrent = 4
	}
	r.probed = make(chan event.GenericEvent, probedBuffer)
	r.stop = make(chan struct{})
	if err := r.setupAdmission(mgr); err != nil {
		return err
	}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		<-ctx.Done()
		close(r.stop)
		r.inspectors.closeAll()
		return nil
	})); err != nil {
		return err
	}
	// Resyncs of the informers (same resourceVersion) carry nothing new.
	changed := builder.WithPredicates(predicate.ResourceVersionChangedPredicate{})
	return ctrl.NewControllerManagedBy(mgr).
		// Only spec changes (and creates and deletes) of a RedisConnection enqueue it: the
		// controller reads none of its labels or annotations, and a status-only update (its own
		// status patch above all) changes nothing a reconcile reads.
		For(&rconnv1.RedisConnection{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&corev1.ConfigMap{}, builder.OnlyMetadata, changed).
		// Secrets: metadata only, for owned outputs and referenced inputs alike; content is read
		// from the API server when needed, so no Secret data sits in the cache.
		Owns(&corev1.Secret{}, builder.OnlyMetadata, changed).
		Owns(&rbacv1.Role{}, builder.OnlyMetadata, changed).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.forSecret), changed).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(r.forService), changed).
		Watches(&discoveryv1.EndpointSlice{}, handler.EnqueueRequestsFromMapFunc(r.forEndpointSlice), changed).
		// A background probe finished: its RedisConnections read the new result.
		WatchesRawSource(source.Channel(r.probed, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: concurrent,
			RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](500*time.Millisecond, time.Minute),
		}).
		Complete(r)
}

// probedBuffer is how many "probe finished" notifications may wait for the queue; a probe
// goroutine blocks (never a reconcile worker) while it is full.
const probedBuffer = 1024

// notifyProbed enqueues a RedisConnection whose inspector's background probe finished.
func (r *RedisConnectionReconciler) notifyProbed(key types.NamespacedName) {
	if r.probed == nil {
		return
	}
	ev := event.GenericEvent{Object: &rconnv1.RedisConnection{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}}
	select {
	case r.probed <- ev:
	case <-r.stop:
	}
}

// maxTimeout is the manager-wide cap on Redis timeouts.
func (r *RedisConnectionReconciler) maxTimeout() time.Duration {
	if r.MaxRedisTimeout > 0 {
		return r.MaxRedisTimeout
	}
	return DefaultMaxRedisTimeout
}

// DefaultMaxRedisTimeout is --max-redis-timeout's default.
const DefaultMaxRedisTimeout = 30 * time.Second
