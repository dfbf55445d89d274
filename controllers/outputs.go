package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// Writing the rendered outputs: server-side apply of what changed, conflicts with objects that are
// not ours, pruning of outputs under names the spec no longer uses.

// errOutputConflict: an object with the output name exists and is not ours.
type errOutputConflict struct{ kind, name string }

func (e *errOutputConflict) Error() string {
	return fmt.Sprintf("%s %s exists and is not controlled by this RedisConnection; choose another name in spec.output", e.kind, e.name)
}

// maxConfigBytes bounds config.json: a ConfigMap holds at most 1 MiB, metadata included.
const maxConfigBytes = 1000 * 1024

// errConfigTooLarge: config.json would not fit in a ConfigMap.
type errConfigTooLarge struct{ size int }

func (e *errConfigTooLarge) Error() string {
	return fmt.Sprintf("config.json would be %d bytes, more than the %d a ConfigMap can hold: reduce the node address map, the number of nodes, or spec.scripts and spec.functionLibraries", e.size, maxConfigBytes)
}

// writeOutput creates an output that did not exist (Create: an object of that name that appears
// meanwhile, made by someone else, fails with AlreadyExists and is never taken over), or applies
// the new content to one this RedisConnection controls (server-side apply, our field owner).
func (r *RedisConnectionReconciler) writeOutput(ctx context.Context, obj client.Object, create bool) error {
	if create {
		return r.Create(ctx, obj, client.FieldOwner(FieldOwner))
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: m}
	if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return err
	}
	obj.SetResourceVersion(u.GetResourceVersion())
	return nil
}

// outputWriteError turns AlreadyExists (someone created the name between our read and our
// Create) into the conflict it is.
func outputWriteError(kind, name string, err error) error {
	if apierrors.IsAlreadyExists(err) {
		return &errOutputConflict{kind, name}
	}
	return fmt.Errorf("writing %s %s: %w", kind, name, err)
}

// ownedMeta is the metadata of an object rendered for rc: our labels and its content hash.
func ownedMeta(rc *rconnv1.RedisConnection, name, hash string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: name, Namespace: rc.Namespace,
		Labels:      map[string]string{LabelManagedBy: managedBy, LabelConnection: rc.Name},
		Annotations: map[string]string{AnnotationContentHash: hash},
	}
}

// writeOwned makes rc the controller of obj and writes it (writeOutput).
func (r *RedisConnectionReconciler) writeOwned(ctx context.Context, rc *rconnv1.RedisConnection, kind string, obj client.Object, create bool) error {
	if err := controllerutil.SetControllerReference(rc, obj, r.Scheme); err != nil {
		return err
	}
	if err := r.writeOutput(ctx, obj, create); err != nil {
		return outputWriteError(kind, obj.GetName(), err)
	}
	return nil
}

// readOutput reads an output from the API server: nil when it does not exist, an
// errOutputConflict when it exists and rc does not control it.
func readOutput[T client.Object](ctx context.Context, c client.Reader, rc *rconnv1.RedisConnection, kind, name string, obj T) (T, error) {
	var none T
	err := c.Get(ctx, client.ObjectKey{Namespace: rc.Namespace, Name: name}, obj)
	switch {
	case apierrors.IsNotFound(err):
		return none, nil
	case err != nil:
		return none, err
	case !metav1.IsControlledBy(obj, rc):
		return none, &errOutputConflict{kind, name}
	}
	return obj, nil
}

// applyOutputs writes the ConfigMap and Secret with server-side apply, but only when their
// content differs from what is there (compared by content hash), so a steady state writes
// nothing. A hand edit changes the content and is overwritten; a deleted object is re-created.
func (r *RedisConnectionReconciler) applyOutputs(ctx context.Context, rc *rconnv1.RedisConnection, cfg *pkgclient.Config, secretData map[string][]byte) (changed bool, err error) {
	cmName, secName := outputNames(rc)
	raw, err := r.bindOutputs(ctx, rc, secName, cfg, secretData)
	if err != nil {
		return false, err
	}
	if len(raw) > maxConfigBytes {
		return false, &errConfigTooLarge{size: len(raw)}
	}
	cmData := map[string]string{pkgclient.ConfigFileName: string(raw)}
	cmHash, secHash := hashData(cmData, nil), hashData(nil, secretData)
	rcKey := client.ObjectKeyFromObject(rc)
	want := outputState{uid: string(rc.UID), cmName: cmName, secName: secName, cmHash: cmHash, secHash: secHash}
	if r.outputs.current(ctx, r.Client, rcKey, rc.Namespace, want) {
		return false, nil
	}

	existingCM, err := readOutput(ctx, r.APIReader, rc, "ConfigMap", cmName, &corev1.ConfigMap{})
	if err != nil {
		return false, err
	}
	existingSec, err := readOutput(ctx, r.APIReader, rc, "Secret", secName, &corev1.Secret{})
	if err != nil {
		return false, err
	}
	if existingCM != nil {
		want.cmRV = existingCM.ResourceVersion
	}
	if existingSec != nil {
		want.secRV = existingSec.ResourceVersion
	}
	if existingCM == nil || !sameStrings(existingCM.Data, cmData) || existingCM.Annotations[AnnotationContentHash] != cmHash {
		cm := &corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: ownedMeta(rc, cmName, cmHash),
			Data:       cmData,
		}
		if err := r.writeOwned(ctx, rc, "ConfigMap", cm, existingCM == nil); err != nil {
			r.outputs.drop(rcKey)
			return false, err
		}
		want.cmRV, changed = cm.ResourceVersion, true
	}
	if existingSec == nil || !sameBytes(existingSec.Data, secretData) || existingSec.Annotations[AnnotationContentHash] != secHash {
		sec := &corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: ownedMeta(rc, secName, secHash),
			Type:       corev1.SecretType("servicebinding.io/redis"),
			Data:       secretData,
		}
		if err := r.writeOwned(ctx, rc, "Secret", sec, existingSec == nil); err != nil {
			r.outputs.drop(rcKey)
			return false, err
		}
		want.secRV, changed = sec.ResourceVersion, true
	}
	// Outputs under names spec.output no longer uses go, so no stale ConfigMap/Secret lingers
	// until the RedisConnection is deleted. This runs only when the outputs were just verified
	// or applied, not at steady state.
	for _, o := range []struct{ kind, keep string }{{"ConfigMap", cmName}, {"Secret", secName}} {
		if err := r.pruneOwned(ctx, rc, corev1.SchemeGroupVersion.WithKind(o.kind), o.keep, "spec.output now names "+o.keep); err != nil {
			r.outputs.drop(rcKey)
			return changed, err
		}
	}
	r.outputs.set(rcKey, want)
	return changed, nil
}

// pruneOwned deletes the objects of a kind that rc controls and labels as its own, except keep
// (each with a Normal OutputRenamed Event saying why).
func (r *RedisConnectionReconciler) pruneOwned(ctx context.Context, rc *rconnv1.RedisConnection, gvk schema.GroupVersionKind, keep, why string) error {
	var list metav1.PartialObjectMetadataList
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err := r.List(ctx, &list, client.InNamespace(rc.Namespace), client.MatchingLabels{LabelManagedBy: managedBy, LabelConnection: rc.Name}); err != nil {
		return fmt.Errorf("listing %ss: %w", gvk.Kind, err)
	}
	for i := range list.Items {
		item := &list.Items[i]
		if item.Name == keep || !metav1.IsControlledBy(item, rc) {
			continue
		}
		obj := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: item.Name, Namespace: rc.Namespace}}
		obj.SetGroupVersionKind(gvk)
		uid := item.UID
		if err := r.Delete(ctx, obj, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting the previous %s %s: %w", gvk.Kind, item.Name, err)
		}
		r.event(rc, corev1.EventTypeNormal, rconnv1.EventReasonOutputRenamed, fmt.Sprintf("deleted %s %s: %s", gvk.Kind, item.Name, why))
	}
	return nil
}
