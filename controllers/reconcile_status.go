package controllers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
)

// runPhases runs the phases in order until one fails or stops the request. The shortest
// requeue wins.
func (r *RedisConnectionReconciler) runPhases(ctx context.Context, s *scope) (ctrl.Result, error) {
	var result ctrl.Result
	for _, p := range r.phases() {
		res, err := p(ctx, s)
		result = lowestNonZeroResult(result, res)
		if err != nil {
			return result, err
		}
		if s.stop {
			break
		}
	}
	return result, nil
}

// finish is the one status step of a request: status fields and conditions from the scope,
// Ready from the conditions, Events from what changed, one patch, and the requeue.
func (r *RedisConnectionReconciler) finish(ctx context.Context, s *scope, result ctrl.Result, err error) (ctrl.Result, error) {
	err = errors.Join(err, r.updateStatus(ctx, s))
	r.inspectorMetrics()
	if err != nil {
		return ctrl.Result{}, err
	}
	return s.requeue(result), nil
}

func (r *RedisConnectionReconciler) updateStatus(ctx context.Context, s *scope) error {
	rc := s.rc
	setStatusData(s)
	advisory := map[string]bool{}
	for _, c := range desiredConditions(s) {
		setCondition(rc, &c)
		if c.advisory {
			advisory[c.typ] = true
		}
	}
	setCondition(rc, readyCondition(rc.Status.Conditions, advisory))
	// observedGeneration moves only once the generation has been processed through to the
	// outputs (or to the condition that stops it): while the first probe through new settings
	// runs, it keeps the previous value.
	if !s.discovering {
		rc.Status.ObservedGeneration = rc.Generation
	}
	_, secName := outputNames(rc)
	rc.Status.Binding = &rconnv1.BindingStatus{Name: secName}
	initTopologyChanges(rc.Namespace, rc.Name)
	for _, e := range transitions(&s.before.Status, &rc.Status) {
		if e.reason == rconnv1.EventReasonTopologyChanged || e.reason == rconnv1.EventReasonFailoverDetected {
			topologyChanges.WithLabelValues(rc.Namespace, rc.Name).Inc()
		}
		r.event(rc, e.typ, e.reason, e.message)
	}
	if equality.Semantic.DeepEqual(s.before.Status, rc.Status) {
		return nil
	}
	if err := r.Status().Patch(ctx, rc, client.MergeFrom(s.before)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("patching status: %w", err)
	}
	return nil
}

// requeue is the phases' requeue, or else the health cadence (the retry backoff while the probe
// is degraded), with up to 10% jitter so 1,000 connections do not tick together.
func (s *scope) requeue(result ctrl.Result) ctrl.Result {
	if result.RequeueAfter > 0 {
		return result
	}
	if s.retryAfter > 0 {
		return ctrl.Result{RequeueAfter: s.retryAfter}
	}
	return ctrl.Result{RequeueAfter: s.interval + time.Duration(rand.Int64N(int64(s.interval)/10+1))}
}

// lowestNonZeroResult returns the result that requeues soonest (Cluster API's
// util.LowestNonZeroResult).
func lowestNonZeroResult(a, b ctrl.Result) ctrl.Result {
	switch {
	case a.IsZero():
		return b
	case b.IsZero():
		return a
	case a.RequeueAfter > 0 && (b.RequeueAfter == 0 || a.RequeueAfter < b.RequeueAfter):
		return a
	default:
		return b
	}
}
