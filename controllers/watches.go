package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
)

// The map functions of the watches SetupWithManager registers: which RedisConnections an input
// object concerns, found through the indexes of index.go.

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
