package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
)

// readerRoleRules grant reading exactly the two outputs: get for the first read and watch (with a
// metadata.name field selector, which RBAC matches against resourceNames) to follow them; what
// pkg/client/kubesource needs, and nothing more.
func readerRoleRules(cmName, secName string) []rbacv1.PolicyRule {
	verbs := []string{"get", "watch"}
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{cmName}, Verbs: verbs},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{secName}, Verbs: verbs},
	}
}

// applyReaderRole renders spec.output.readerRoleName's Role (only when its content differs from
// the cached one) and deletes Roles of this RedisConnection under other names. The manager can
// create such a Role because it holds these verbs on ConfigMaps and Secrets itself (RBAC's
// escalation check); it cannot bind it to anyone: that RoleBinding is the namespace owner's.
func (r *RedisConnectionReconciler) applyReaderRole(ctx context.Context, rc *rconnv1.RedisConnection) error {
	want := ""
	if rc.Spec.Output != nil {
		want = rc.Spec.Output.ReaderRoleName
	}
	if want != "" {
		cmName, secName := outputNames(rc)
		rules := readerRoleRules(cmName, secName)
		hash := hashData(map[string]string{"rules": fmt.Sprint(rules)}, nil)
		have := &metav1.PartialObjectMetadata{}
		have.SetGroupVersionKind(rbacv1.SchemeGroupVersion.WithKind("Role"))
		err := r.Get(ctx, client.ObjectKey{Namespace: rc.Namespace, Name: want}, have)
		switch {
		case err == nil && !metav1.IsControlledBy(have, rc):
			return &errOutputConflict{"Role", want}
		case err == nil && have.Annotations[AnnotationContentHash] == hash:
		case err == nil || apierrors.IsNotFound(err):
			role := &rbacv1.Role{
				TypeMeta: metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "Role"},
				ObjectMeta: metav1.ObjectMeta{Name: want, Namespace: rc.Namespace,
					Labels:      map[string]string{LabelManagedBy: managedBy, LabelConnection: rc.Name},
					Annotations: map[string]string{AnnotationContentHash: hash}},
				Rules: rules,
			}
			if err := controllerutil.SetControllerReference(rc, role, r.Scheme); err != nil {
				return err
			}
			if err := r.writeOutput(ctx, role, apierrors.IsNotFound(err)); err != nil {
				return outputWriteError("Role", want, err)
			}
		default:
			return err
		}
	}
	var list metav1.PartialObjectMetadataList
	list.SetGroupVersionKind(rbacv1.SchemeGroupVersion.WithKind("RoleList"))
	if err := r.List(ctx, &list, client.InNamespace(rc.Namespace), client.MatchingLabels{LabelManagedBy: managedBy, LabelConnection: rc.Name}); err != nil {
		return fmt.Errorf("listing reader Roles: %w", err)
	}
	for _, item := range list.Items {
		if item.Name == want || !metav1.IsControlledBy(&item, rc) {
			continue
		}
		uid := item.UID
		if err := r.Delete(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: item.Name, Namespace: rc.Namespace}}, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting the previous reader Role %s: %w", item.Name, err)
		}
		r.event(rc, corev1.EventTypeNormal, rconnv1.EventReasonOutputRenamed, fmt.Sprintf("deleted Role %s: spec.output.readerRoleName now names %q", item.Name, want))
	}
	return nil
}
