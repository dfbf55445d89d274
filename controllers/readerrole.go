package controllers

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
				TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "Role"},
				ObjectMeta: ownedMeta(rc, want, hash),
				Rules:      rules,
			}
			if err := r.writeOwned(ctx, rc, "Role", role, apierrors.IsNotFound(err)); err != nil {
				return err
			}
		default:
			return err
		}
	}
	return r.pruneOwned(ctx, rc, rbacv1.SchemeGroupVersion.WithKind("Role"), want, fmt.Sprintf("spec.output.readerRoleName now names %q", want))
}
