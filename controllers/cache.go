package controllers

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	toolscache "k8s.io/client-go/tools/cache"
)

// lastAppliedAnnotation is kubectl's client-side apply record: on a Secret created with
// `kubectl apply` it holds the Secret's data, base64 and all.
const lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// CacheTransform strips what the controller never reads from every object before the informer
// caches store it: managedFields (often larger than the object) and kubectl's
// last-applied-configuration annotation (a full copy of the object, Secret data included for
// Secrets created by `kubectl apply`, which would otherwise sit in the manager's memory even
// though it caches Secrets as metadata only). Nodes keep only their name and addresses
// (stripNode): NodePort mappings read nothing else, and a Node's status is kilobytes. The
// manager sets it as the cache's DefaultTransform.
func CacheTransform() toolscache.TransformFunc {
	return func(in any) (any, error) {
		if n, ok := in.(*corev1.Node); ok {
			return stripNode(n), nil
		}
		obj, err := meta.Accessor(in)
		if err != nil {
			return in, nil
		}
		if obj.GetManagedFields() != nil {
			obj.SetManagedFields(nil)
		}
		if a := obj.GetAnnotations(); a != nil {
			if _, ok := a[lastAppliedAnnotation]; ok {
				b := make(map[string]string, len(a)-1)
				for k, v := range a {
					if k != lastAppliedAnnotation {
						b[k] = v
					}
				}
				if len(b) == 0 {
					b = nil
				}
				obj.SetAnnotations(b)
			}
		}
		return in, nil
	}
}
