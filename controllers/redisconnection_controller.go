// Package controllers holds the RedisConnection reconciler.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
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
	// APIReader reads Secrets and Nodes directly, so the manager does not cache every Secret in
	// the cluster (only their metadata, to be told about rotations).
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

	// MaxRedisTimeout caps every Redis connect timeout and health timeout a spec asks for
	// (0: 30s), so no RedisConnection can hold a probe and its sockets for longer.
	MaxRedisTimeout time.Duration
	// Limits bound what one Redis reply may make the controller read and allocate, and the
	// size of a topology (nil: cluster.DefaultLimits).
	Limits *cluster.Limits
	// AddressPolicy refuses dialing denied targets (link-local, the API server, --deny-cidrs,
	// outside --allow-cidrs); nil dials anything.
	AddressPolicy *cluster.AddressPolicy

	inspectors inspectors
	secrets    secretMemo
	outputs    outputMemo
	nodeIDs    nodeIDMemo
	events     eventLimiter
	nodes      nodeAddressCache
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
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles,verbs=get;list;watch;create;patch;delete

// Reconcile brings one RedisConnection's status and outputs in line with the cluster.
func (r *RedisConnectionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	logger := log.FromContext(ctx)
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
	before := rc.DeepCopy()
	discovering := false
	// retryAfter, when set, replaces the health cadence: a degraded probe (a node down or
	// coming back) is re-run on the retry backoff.
	var retryAfter time.Duration
	interval, timeout := healthSettings(rc)
	timeout = min(timeout, r.maxTimeout())

	defer func() {
		setReady(rc)
		initTopologyChanges(rc.Namespace, rc.Name)
		// observedGeneration moves only once the generation has been processed through to the
		// outputs (or to the condition that stops it): while the first probe through new
		// settings runs, it keeps the previous value.
		if !discovering {
			rc.Status.ObservedGeneration = rc.Generation
		}
		_, secName := outputNames(rc)
		rc.Status.Binding = &rconnv1.BindingStatus{Name: secName}
		for _, e := range transitions(&before.Status, &rc.Status) {
			if e.reason == rconnv1.EventReasonTopologyChanged || e.reason == rconnv1.EventReasonFailoverDetected {
				topologyChanges.WithLabelValues(rc.Namespace, rc.Name).Inc()
			}
			r.event(rc, e.typ, e.reason, e.message)
		}
		if !equality.Semantic.DeepEqual(before.Status, rc.Status) {
			if err := r.Status().Patch(ctx, rc, client.MergeFrom(before)); err != nil && !apierrors.IsNotFound(err) {
				retErr = errors.Join(retErr, fmt.Errorf("patching status: %w", err))
			}
		}
		r.inspectorMetrics()
		if retErr == nil && result.RequeueAfter == 0 {
			// Health cadence, with up to 10% jitter so 1,000 connections do not tick together.
			result.RequeueAfter = interval + time.Duration(rand.Int64N(int64(interval)/10+1))
			if retryAfter > 0 {
				result.RequeueAfter = retryAfter
			}
		}
	}()

	// 1. Credentials.
	refs := secretRefs(rc)
	secretKeys := make([]types.NamespacedName, 0, len(refs))
	for _, n := range refs {
		secretKeys = append(secretKeys, types.NamespacedName{Namespace: rc.Namespace, Name: n})
	}
	r.secrets.use(req.NamespacedName, secretKeys)
	creds, err := r.resolveCredentials(ctx, rc)
	if ce, ok := asCredentialError(err); ok {
		r.credentialsFailed(rc, before, ce)
		return ctrl.Result{RequeueAfter: interval}, nil
	} else if err != nil {
		return ctrl.Result{}, err
	}
	if creds.tls == nil && !creds.hasPassword && rc.Spec.ControllerACL == nil {
		setCondition(rc, rconnv1.ConditionCredentialsResolved, true, rconnv1.ReasonNoCredentials, "no ACL or TLS Secret referenced")
	} else {
		setCondition(rc, rconnv1.ConditionCredentialsResolved, true, rconnv1.ReasonCredentialsResolved, "ACL and TLS Secrets are present and valid")
	}
	recordCertificateExpiry(rc.Namespace, rc.Name, creds.expiry)
	r.warnExpiry(rc, creds)

	// 2. Node address map.
	amap, err := r.buildAddressMap(ctx, rc)
	if err != nil {
		return ctrl.Result{}, err
	}
	rc.Status.NodeAddressMap = amap.list()
	mapNote := ""
	if n := len(rc.Status.NodeAddressMap); n > maxStatusMap {
		rc.Status.NodeAddressMap = rc.Status.NodeAddressMap[:maxStatusMap]
		mapNote = fmt.Sprintf(" (status.nodeAddressMap lists the first %d of %d; the rendered config has all)", maxStatusMap, n)
	}
	mapOK := len(amap.problems) == 0
	switch {
	case !mapOK:
		msgs := make([]string, 0, len(amap.problems))
		for _, p := range amap.problems {
			msgs = append(msgs, p.message)
		}
		setCondition(rc, rconnv1.ConditionAddressMapResolved, false, amap.problems[0].reason, clipList(msgs, maxListedNodes))
	case rc.Spec.NodeAddressMap == nil:
		setCondition(rc, rconnv1.ConditionAddressMapResolved, true, rconnv1.ReasonNoAddressMap, "no nodeAddressMap: nodes are dialed as they announce themselves")
	default:
		setCondition(rc, rconnv1.ConditionAddressMapResolved, true, rconnv1.ReasonAddressMapResolved, fmt.Sprintf("%d entries", len(amap.entries))+mapNote)
	}

	// 3. Topology, through the map (the same code apps run).
	opts, fingerprint, err := r.clusterOptions(rc, creds, amap)
	if ce, ok := asCredentialError(err); ok {
		r.credentialsFailed(rc, before, ce)
		return ctrl.Result{RequeueAfter: interval}, nil
	} else if err != nil {
		r.invalidOptions(rc, err)
		return ctrl.Result{RequeueAfter: interval}, nil
	}
	connectTimeout := opts.Defaults.ConnectTimeout
	if connectTimeout <= 0 {
		connectTimeout = cluster.DefaultConnectTimeout
	}
	discoverTimeout := connectTimeout + 2*timeout + time.Second
	in, err := r.inspectors.acquire(req.NamespacedName, opts, r.sharedKey(req.NamespacedName, fingerprint, amap, timeout), discoverTimeout, timeout)
	if err != nil {
		// NewInspector only validates (it dials nothing): a failure here is a spec the API
		// server's validation let through; say so without echoing anything from Redis.
		r.invalidOptions(rc, err)
		return ctrl.Result{RequeueAfter: interval}, nil
	}
	// Discovery and the health of every node run in the background (shared with the other
	// RedisConnections on the same inspector, reused for half a health interval); this reads the
	// latest result and never waits on Redis.
	maxAge := interval / 2
	probe := in.observe(maxAge, r.notifyProbed)
	if probe == nil {
		// The first probe through these settings is running; its end enqueues this object.
		discovering = true
		if c := meta.FindStatusCondition(rc.Status.Conditions, rconnv1.ConditionTopologyDiscovered); c == nil || c.ObservedGeneration != rc.Generation {
			setCondition(rc, rconnv1.ConditionTopologyDiscovered, false, rconnv1.ReasonDiscovering, "discovering the topology through the root nodes")
			r.blockedAfter(rc, rconnv1.ConditionTopologyDiscovered)
		}
		return ctrl.Result{RequeueAfter: discoverTimeout + timeout}, nil
	}
	topo, health, err := probe.topo, probe.health, probe.err
	if err != nil {
		reason, msg := topologyFailure(rc, err)
		setCondition(rc, rconnv1.ConditionTopologyDiscovered, false, reason, msg)
		r.blockedAfter(rc, rconnv1.ConditionTopologyDiscovered)
		logger.V(1).Info("discovery failed", "reason", reason, "message", msg)
		untilStale := max(probe.staleAfter(maxAge)-time.Since(probe.at), 100*time.Millisecond)
		return ctrl.Result{RequeueAfter: untilStale}, nil
	}
	if probe.failures > 0 {
		retryAfter = max(probe.staleAfter(maxAge)-time.Since(probe.at), 100*time.Millisecond)
	}
	clipped := ""
	if note := setTopologyStatus(rc, topo, health); note != "" {
		clipped = " (" + note + ")"
	}
	switch {
	case !topo.FullCoverage():
		setCondition(rc, rconnv1.ConditionTopologyDiscovered, false, rconnv1.ReasonSlotsUncovered,
			fmt.Sprintf("%d of %d slots are served", topo.SlotsCovered, cluster.SlotCount)+clipped)
	case topo.Standalone:
		setCondition(rc, rconnv1.ConditionTopologyDiscovered, true, rconnv1.ReasonDiscovered,
			fmt.Sprintf("standalone %s via %s", topo.Nodes[0].Role, topo.Source))
	default:
		setCondition(rc, rconnv1.ConditionTopologyDiscovered, true, rconnv1.ReasonDiscovered,
			fmt.Sprintf("%d shards, %d nodes, all slots served (%s via %s)", rc.Status.ShardCount, len(topo.Nodes), topo.Command, topo.Source)+clipped)
	}

	// 4. Health of every node (checked by the probe above).
	recordPing(rc.Namespace, rc.Name, health)
	ok, reason, msg := healthCondition(health)
	setCondition(rc, rconnv1.ConditionNodesHealthy, ok, reason, msg)

	// 5. Outputs, only from a fully resolved state: the previous good output stays otherwise.
	if !mapOK || !topo.FullCoverage() {
		setCondition(rc, rconnv1.ConditionConfigRendered, false, rconnv1.ReasonPrerequisitesNotMet, "keeping the previous output until the address map and topology are resolved")
		return ctrl.Result{}, nil
	}
	cfg := renderConfig(rc, creds, amap, topo)
	cfg.Rconn.NodeIDs = stickyNodeIDs(r.nodeIDs.get(req.NamespacedName), cfg.Rconn.NodeIDs, topo)
	if err := cfg.Validate(); err != nil {
		setCondition(rc, rconnv1.ConditionConfigRendered, false, rconnv1.ReasonPrerequisitesNotMet, "rendered config is invalid: "+err.Error())
		return ctrl.Result{}, nil
	}
	changed, err := r.applyOutputs(ctx, rc, cfg, renderSecretData(rc, creds, cfg))
	var conflict *errOutputConflict
	var tooLarge *errConfigTooLarge
	switch {
	case errors.As(err, &conflict):
		setCondition(rc, rconnv1.ConditionConfigRendered, false, rconnv1.ReasonOutputConflict, err.Error())
		return ctrl.Result{}, nil
	case errors.As(err, &tooLarge):
		setCondition(rc, rconnv1.ConditionConfigRendered, false, rconnv1.ReasonConfigTooLarge, err.Error())
		return ctrl.Result{}, nil
	case err != nil:
		return ctrl.Result{}, err
	}
	r.nodeIDs.set(req.NamespacedName, cfg.Rconn.NodeIDs)
	if err := r.applyReaderRole(ctx, rc); err != nil {
		if errors.As(err, &conflict) {
			setCondition(rc, rconnv1.ConditionConfigRendered, false, rconnv1.ReasonOutputConflict, err.Error())
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	cm, sec := outputNames(rc)
	setCondition(rc, rconnv1.ConditionConfigRendered, true, rconnv1.ReasonRendered, fmt.Sprintf("ConfigMap %s and Secret %s are current", cm, sec))
	if changed {
		logger.Info("rendered outputs", "configMap", cm, "secret", sec)
	}
	return ctrl.Result{}, nil
}

// credentialsFailed reports a credential error (reading the Secrets, or building the TLS
// config from them) on CredentialsResolved, with a Warning when the condition changed.
func (r *RedisConnectionReconciler) credentialsFailed(rc, before *rconnv1.RedisConnection, ce *credentialError) {
	setCondition(rc, rconnv1.ConditionCredentialsResolved, false, ce.reason, ce.message)
	r.blockedAfter(rc, rconnv1.ConditionCredentialsResolved)
	if before.Status.ObservedGeneration == 0 || conditionChanged(before, rc, rconnv1.ConditionCredentialsResolved) {
		r.event(rc, corev1.EventTypeWarning, ce.reason, ce.message)
	}
}

// invalidOptions reports connection options pkg/cluster refuses (nothing was dialed; the
// message names only what the spec and the address map hold).
func (r *RedisConnectionReconciler) invalidOptions(rc *rconnv1.RedisConnection, err error) {
	setCondition(rc, rconnv1.ConditionTopologyDiscovered, false, rconnv1.ReasonInvalidOptions, "invalid connection settings: "+err.Error())
	r.blockedAfter(rc, rconnv1.ConditionTopologyDiscovered)
}

// blockedAfter marks the conditions after a failed one as waiting for it (so Ready names the
// root cause) without touching outputs.
func (r *RedisConnectionReconciler) blockedAfter(rc *rconnv1.RedisConnection, failed string) {
	after := false
	for _, t := range conditionOrder {
		if after && t != rconnv1.ConditionConfigRendered {
			setCondition(rc, t, false, rconnv1.ReasonPrerequisitesNotMet, "waiting for "+failed)
		}
		if t == failed {
			after = true
		}
	}
	setCondition(rc, rconnv1.ConditionConfigRendered, false, rconnv1.ReasonPrerequisitesNotMet, "keeping the previous output until "+failed+" is True")
}

func conditionChanged(before, after *rconnv1.RedisConnection, typ string) bool {
	var a, b string
	for _, c := range before.Status.Conditions {
		if c.Type == typ {
			a = string(c.Status) + c.Reason + c.Message
		}
	}
	for _, c := range after.Status.Conditions {
		if c.Type == typ {
			b = string(c.Status) + c.Reason + c.Message
		}
	}
	return a != b
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
	if v, err := strconv.ParseBool(os.Getenv("RCONN_DISABLE_TOPOLOGY_SHARING")); err == nil && v {
		r.DisableTopologySharing = true
	}
	if err := AddIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	if err := registerStateCollector(mgr.GetCache(), mgr.Elected()); err != nil {
		return fmt.Errorf("registering the RedisConnection state metrics: %w", err)
	}
	concurrent := r.MaxConcurrentReconciles
	if concurrent <= 0 {
		concurrent = 4
	}
	r.probed = make(chan event.GenericEvent, probedBuffer)
	r.stop = make(chan struct{})
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

func (r *RedisConnectionReconciler) forSecret(ctx context.Context, o client.Object) []reconcile.Request {
	var list rconnv1.RedisConnectionList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{SecretRefsField: o.GetName()}); err != nil {
		return nil
	}
	return requests(list.Items)
}

func (r *RedisConnectionReconciler) forService(ctx context.Context, o client.Object) []reconcile.Request {
	return r.selecting(ctx, o.GetNamespace(), labels.Set(o.GetLabels()))
}

func (r *RedisConnectionReconciler) forEndpointSlice(ctx context.Context, o client.Object) []reconcile.Request {
	svcName := o.GetLabels()[discoveryv1.LabelServiceName]
	if svcName == "" {
		return nil
	}
	svc := &corev1.Service{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: o.GetNamespace(), Name: svcName}, svc); err != nil {
		return nil
	}
	return r.selecting(ctx, svc.Namespace, labels.Set(svc.Labels))
}

// selecting returns the RedisConnections in ns with a fromServices selector matching lbls,
// found through the index of connections that have Service sources at all.
func (r *RedisConnectionReconciler) selecting(ctx context.Context, ns string, lbls labels.Set) []reconcile.Request {
	var list rconnv1.RedisConnectionList
	if err := r.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{ServiceSourcesField: hasServiceSources}); err != nil {
		return nil
	}
	var out []rconnv1.RedisConnection
	for _, rc := range list.Items {
		for _, sel := range serviceSelectors(&rc) {
			if sel.Matches(lbls) {
				out = append(out, rc)
				break
			}
		}
	}
	return requests(out)
}

func requests(items []rconnv1.RedisConnection) []reconcile.Request {
	out := make([]reconcile.Request, 0, len(items))
	for _, rc := range items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&rc)})
	}
	return out
}
