// Package controllers holds the RedisConnection reconciler.
package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
)

// RedisConnectionReconciler reconciles RedisConnection objects.
//
// The reconcile phases (credentials, address map, topology, health, rendered output, status)
// are specified in the controller issue; this type fixes the wiring main.go and the RBAC
// markers depend on.
type RedisConnectionReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder recorder.EventRecorder
	// ClusterDomain is the cluster DNS domain for PodDNS addresses (cluster.local).
	ClusterDomain string
	// MaxConcurrentReconciles bounds parallel reconciles.
	MaxConcurrentReconciles int
}

// +kubebuilder:rbac:groups=rconn.dev,resources=redisconnections,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=rconn.dev,resources=redisconnections/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=rconn.dev,resources=redisconnections/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile loads the RedisConnection named in req.
func (r *RedisConnectionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rc := &rconnv1.RedisConnection{}
	if err := r.Get(ctx, req.NamespacedName, rc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	return ctrl.Result{}, nil
}

// SetupWithManager registers the reconciler.
func (r *RedisConnectionReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&rconnv1.RedisConnection{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles}).
		Complete(r)
}
