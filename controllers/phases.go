package controllers

import (
	"context"
	"errors"
	"time"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// phase is one step of a reconcile. It reads and fills the scope; setting s.stop ends the
// request after it. Conditions are not set here: conditions.go derives them from the scope.
type phase func(ctx context.Context, s *scope) (ctrl.Result, error)

// phases are run in this order, each once per request.
func (r *RedisConnectionReconciler) phases() []phase {
	return []phase{r.reconcileCredentials, r.reconcileAddressMap, r.reconcileTopology, r.reconcileHealth, r.reconcileOutputs}
}

// reconcileCredentials reads the ACL and TLS Secrets the spec references.
func (r *RedisConnectionReconciler) reconcileCredentials(ctx context.Context, s *scope) (ctrl.Result, error) {
	refs := secretRefs(s.rc)
	keys := make([]types.NamespacedName, 0, len(refs))
	for _, n := range refs {
		keys = append(keys, types.NamespacedName{Namespace: s.rc.Namespace, Name: n})
	}
	r.secrets.use(s.key, keys)
	// Fail closed: no referenced Secret is read while nothing checks who may reference it.
	if ce, err := r.admissionBlocks(ctx, s.rc); err != nil {
		s.stop = true
		return ctrl.Result{}, err
	} else if ce != nil {
		s.credErr, s.stop = ce, true
		return ctrl.Result{RequeueAfter: s.interval}, nil
	}
	creds, err := r.resolveCredentials(ctx, s.rc)
	if ce, ok := asCredentialError(err); ok {
		s.credErr, s.stop = ce, true
		return ctrl.Result{RequeueAfter: s.interval}, nil
	} else if err != nil {
		s.stop = true
		return ctrl.Result{}, err
	}
	s.creds = creds
	recordCertificateExpiry(s.rc.Namespace, s.rc.Name, creds.expiry)
	r.warnExpiry(s.rc, creds)
	return ctrl.Result{}, nil
}

// reconcileAddressMap resolves the node address map from the spec and the Services it selects,
// against the map and nodes the last reconcile showed (a conflict never moves an entry in use).
func (r *RedisConnectionReconciler) reconcileAddressMap(ctx context.Context, s *scope) (ctrl.Result, error) {
	amap, err := r.buildAddressMap(ctx, s.rc, previousOf(s.before))
	if err != nil {
		s.stop = true
		return ctrl.Result{}, err
	}
	s.amap = amap
	return ctrl.Result{RequeueAfter: amap.retryAfter}, nil
}

// reconcileTopology reads the latest topology and node health of this RedisConnection's
// inspector, through the map (the same code apps run). Discovery and the health checks run in
// the background, shared with the other RedisConnections on the same inspector and reused for
// half a health interval: this never waits on Redis.
func (r *RedisConnectionReconciler) reconcileTopology(ctx context.Context, s *scope) (ctrl.Result, error) {
	options := r.clusterOptions
	if s.rc.Spec.Mode == rconnv1.ModeSentinel {
		options = r.sentinelOptions
	}
	opts, fingerprint, err := options(s.rc, s.creds, s.amap)
	if ce, ok := asCredentialError(err); ok {
		s.credErr, s.stop = ce, true
		return ctrl.Result{RequeueAfter: s.interval}, nil
	} else if err != nil {
		s.optionsErr, s.stop = err, true
		return ctrl.Result{RequeueAfter: s.interval}, nil
	}
	connectTimeout := opts.Defaults.ConnectTimeout
	if connectTimeout <= 0 {
		connectTimeout = cluster.DefaultConnectTimeout
	}
	discoverTimeout := connectTimeout + 2*s.timeout + time.Second
	in, err := r.inspectors.acquire(s.key, opts, r.sharedKey(s.key, fingerprint, s.amap, s.timeout), discoverTimeout, s.timeout)
	if err != nil {
		// NewInspector only validates (it dials nothing): a spec the API server's validation let
		// through.
		s.optionsErr, s.stop = err, true
		return ctrl.Result{RequeueAfter: s.interval}, nil
	}
	maxAge := s.interval / 2
	s.probe = in.observe(maxAge, r.notifyProbed)
	switch {
	case s.probe == nil:
		// The first probe through these settings is running; its end enqueues this object.
		s.discovering, s.stop = true, true
		return ctrl.Result{RequeueAfter: discoverTimeout + s.timeout}, nil
	case s.probe.err != nil:
		// Classified: never the bytes a server sent.
		reason, msg := topologyFailure(s.rc, s.probe.err)
		log.FromContext(ctx).V(1).Info("discovery failed", append([]any{"reason", reason, "message", msg}, certificateLog(s.probe.err)...)...)
		s.stop = true
		return ctrl.Result{RequeueAfter: s.probe.untilStale(maxAge)}, nil
	case s.probe.failures > 0:
		s.retryAfter = s.probe.untilStale(maxAge)
	}
	return ctrl.Result{}, nil
}

// reconcileHealth records what the probe found about every node.
func (r *RedisConnectionReconciler) reconcileHealth(_ context.Context, s *scope) (ctrl.Result, error) {
	recordPing(s.rc.Namespace, s.rc.Name, s.health())
	return ctrl.Result{}, nil
}

// errPrerequisites: the outputs wait for an address map (problems or not: each costs only its
// own entries) and a full topology.
var errPrerequisites = errors.New("keeping the previous output until the topology is resolved")

// errInvalidConfig: what would be rendered does not pass pkg/client's validation.
type errInvalidConfig struct{ err error }

func (e *errInvalidConfig) Error() string { return "rendered config is invalid: " + e.err.Error() }

// reconcileOutputs renders and applies the ConfigMap, the Secret and the reader Role once the
// topology is fully known; the previous good output stays otherwise. Address map problems do not
// hold the outputs back: the entries that resolved are rendered, and the credentials with them.
func (r *RedisConnectionReconciler) reconcileOutputs(ctx context.Context, s *scope) (ctrl.Result, error) {
	s.outputsReached = true
	s.outputErr = r.applyAll(ctx, s)
	if _, _, reported := outputOutcome(s.outputErr); !reported {
		return ctrl.Result{}, s.outputErr
	}
	return ctrl.Result{}, nil
}

// outputOutcome classifies how the outputs phase ended for ConfigRendered: reported is false for
// an API error, which is retried with backoff while the condition keeps its value.
func outputOutcome(err error) (reason string, ok, reported bool) {
	var conflict *errOutputConflict
	var tooLarge *errConfigTooLarge
	var invalid *errInvalidConfig
	switch {
	case err == nil:
		return rconnv1.ReasonRendered, true, true
	case errors.Is(err, errPrerequisites), errors.As(err, &invalid):
		return rconnv1.ReasonPrerequisitesNotMet, false, true
	case errors.As(err, &conflict):
		return rconnv1.ReasonOutputConflict, false, true
	case errors.As(err, &tooLarge):
		return rconnv1.ReasonConfigTooLarge, false, true
	}
	return "", false, false
}

// applyAll renders the outputs and writes what changed.
func (r *RedisConnectionReconciler) applyAll(ctx context.Context, s *scope) error {
	if !s.resolved() {
		return errPrerequisites
	}
	var cfg *pkgclient.Config
	var secretData map[string][]byte
	if st := s.sentinelTopology(); st != nil {
		cfg = renderSentinelConfig(s.rc, s.amap, st)
		secretData = renderSentinelSecretData(s.creds, cfg)
	} else {
		topo := s.topology()
		cfg = renderConfig(s.rc, s.amap, topo)
		cfg.Rconn.NodeIDs = stickyNodeIDs(r.nodeIDs.get(s.key), cfg.Rconn.NodeIDs, topo)
		secretData = renderSecretData(s.creds, cfg)
	}
	if err := cfg.Validate(); err != nil {
		return &errInvalidConfig{err}
	}
	changed, err := r.applyOutputs(ctx, s.rc, cfg, secretData)
	if err != nil {
		return err
	}
	r.nodeIDs.set(s.key, cfg.Rconn.NodeIDs)
	if err := r.applyReaderRole(ctx, s.rc); err != nil {
		return err
	}
	if changed {
		cm, sec := outputNames(s.rc)
		log.FromContext(ctx).Info("rendered outputs", "configMap", cm, "secret", sec)
	}
	return nil
}

// untilStale is how long until a probe result is older than maxAge (at least 100 ms).
func (p *probeResult) untilStale(maxAge time.Duration) time.Duration {
	return max(p.staleAfter(maxAge)-time.Since(p.at), 100*time.Millisecond)
}
