package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/tb"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
)

// TB is internal/tb's: the one interface every local-world helper takes.
type TB = tb.TB

// UserKubeconfig adds user u to the envtest control plane and writes its kubeconfig to a
// temporary file, returning the file's path.
func UserKubeconfig(t TB, env *envtest.Environment, u envtest.User) string {
	t.Helper()
	au, err := env.AddUser(u, nil)
	if err != nil {
		t.Fatalf("adding user %s: %v", u.Name, err)
	}
	b, err := au.KubeConfig()
	if err != nil {
		t.Fatalf("%v", err)
	}
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatalf("%v", err)
	}
	return p
}

// Poll calls f every 200 ms until it returns nil, failing t with f's last error (and log(),
// when log is set) after within or when ctx ends.
func Poll(t TB, ctx context.Context, within time.Duration, what string, log func() string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			msg := ""
			if log != nil {
				msg = "\nmanager log:\n" + log()
			}
			t.Fatalf("%s: not within %s: %v%s", what, within, err, msg)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// WaitReady waits (90 s) until RedisConnection ns/name is Ready.
func WaitReady(t TB, ctx context.Context, c client.Client, ns, name string, log func() string) {
	t.Helper()
	Poll(t, ctx, 90*time.Second, "RedisConnection "+ns+"/"+name+" Ready", log, func() error {
		rc := &rconnv1.RedisConnection{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, rc); err != nil {
			return err
		}
		if cond := meta.FindStatusCondition(rc.Status.Conditions, rconnv1.ConditionReady); cond == nil || cond.Status != metav1.ConditionTrue {
			return fmt.Errorf("condition Ready is %+v", cond)
		}
		return nil
	})
}

// DecodeObjects splits a multi-document YAML stream into objects (empty documents skipped).
func DecodeObjects(t TB, b []byte) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("decoding manifests: %v", err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// FromUnstructured converts u into a typed object.
func FromUnstructured(t TB, u *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
}

// SplitRuleByScope splits a generated rule into its namespaced and its cluster-scoped
// resources, as the API server's discovery says (a subresource has its resource's scope).
func SplitRuleByScope(t TB, mapper meta.RESTMapper, r rbacv1.PolicyRule) (namespaced, cluster []rbacv1.PolicyRule) {
	t.Helper()
	if len(r.NonResourceURLs) > 0 || len(r.ResourceNames) > 0 {
		t.Fatalf("unexpected rule in the generated ClusterRole: %+v", r)
	}
	for _, g := range r.APIGroups {
		for _, res := range r.Resources {
			base, _, _ := strings.Cut(res, "/")
			gvk, err := mapper.KindFor(schema.GroupVersionResource{Group: g, Resource: base})
			if err != nil {
				t.Fatalf("resource %s in group %q: %v", base, g, err)
			}
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				t.Fatalf("%v", err)
			}
			one := rbacv1.PolicyRule{APIGroups: []string{g}, Resources: []string{res}, Verbs: r.Verbs}
			if m.Scope.Name() == meta.RESTScopeNameNamespace {
				namespaced = append(namespaced, one)
			} else {
				cluster = append(cluster, one)
			}
		}
	}
	return namespaced, cluster
}

// NormalizeRules renders rules as sorted "group/resource:verb,verb" lines, one per resource, so
// the same grants written as differently grouped rules compare equal.
func NormalizeRules(rules []rbacv1.PolicyRule) string {
	var lines []string
	for _, r := range rules {
		verbs := slices.Clone(r.Verbs)
		sort.Strings(verbs)
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				lines = append(lines, g+"/"+res+":"+strings.Join(verbs, ","))
			}
		}
		for _, u := range r.NonResourceURLs {
			lines = append(lines, "url "+u+":"+strings.Join(verbs, ","))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, " ")
}
