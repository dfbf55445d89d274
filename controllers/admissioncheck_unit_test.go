package controllers

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// shippedAdmission reads config/admission's policy and binding strictly, named as config/default
// names them.
func shippedAdmission(t *testing.T) (*admissionv1.ValidatingAdmissionPolicy, *admissionv1.ValidatingAdmissionPolicyBinding) {
	t.Helper()
	read := func(name string, into any) {
		b, err := os.ReadFile(filepath.Join("..", "config", "admission", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.UnmarshalStrict(b, into); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	p, b := &admissionv1.ValidatingAdmissionPolicy{}, &admissionv1.ValidatingAdmissionPolicyBinding{}
	read("policy.yaml", p)
	read("binding.yaml", b)
	p.Name, b.Name, b.Spec.PolicyName = DefaultAdmissionPolicyName, DefaultAdmissionPolicyName, DefaultAdmissionPolicyName
	return p, b
}

// TestAdmissionProblem: the shipped policy and binding count as enforced; each edit that keeps
// them from denying (or a partial one) is named.
func TestAdmissionProblem(t *testing.T) {
	p, b := shippedAdmission(t)
	if got := admissionProblem(p, b); got != "" {
		t.Fatalf("the shipped policy and binding: %q, want no problem", got)
	}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
	for _, tc := range []struct {
		name   string
		mutate func(*admissionv1.ValidatingAdmissionPolicy, *admissionv1.ValidatingAdmissionPolicyBinding)
		want   string
	}{
		{"failurePolicy Ignore", func(p *admissionv1.ValidatingAdmissionPolicy, _ *admissionv1.ValidatingAdmissionPolicyBinding) {
			p.Spec.FailurePolicy = ptr(admissionv1.Ignore)
		}, "failurePolicy Ignore"},
		{"no validations", func(p *admissionv1.ValidatingAdmissionPolicy, _ *admissionv1.ValidatingAdmissionPolicyBinding) {
			p.Spec.Validations = nil
		}, "no validations"},
		{"matches only CREATE", func(p *admissionv1.ValidatingAdmissionPolicy, _ *admissionv1.ValidatingAdmissionPolicyBinding) {
			p.Spec.MatchConstraints.ResourceRules[0].Operations = []admissionv1.OperationType{admissionv1.Create}
		}, "does not match"},
		{"matches another resource", func(p *admissionv1.ValidatingAdmissionPolicy, _ *admissionv1.ValidatingAdmissionPolicyBinding) {
			p.Spec.MatchConstraints.ResourceRules[0].Resources = []string{"configmaps"}
		}, "does not match"},
		{"policy narrowed by namespace", func(p *admissionv1.ValidatingAdmissionPolicy, _ *admissionv1.ValidatingAdmissionPolicyBinding) {
			p.Spec.MatchConstraints.NamespaceSelector = sel
		}, "matchConstraints are narrowed"},
		{"binding to another policy", func(_ *admissionv1.ValidatingAdmissionPolicy, b *admissionv1.ValidatingAdmissionPolicyBinding) {
			b.Spec.PolicyName = "secret-references"
		}, `binds policy "secret-references"`},
		{"Warn instead of Deny", func(_ *admissionv1.ValidatingAdmissionPolicy, b *admissionv1.ValidatingAdmissionPolicyBinding) {
			b.Spec.ValidationActions = []admissionv1.ValidationAction{admissionv1.Warn, admissionv1.Audit}
		}, "without Deny"},
		{"paramRef", func(_ *admissionv1.ValidatingAdmissionPolicy, b *admissionv1.ValidatingAdmissionPolicyBinding) {
			b.Spec.ParamRef = &admissionv1.ParamRef{Name: "x"}
		}, "paramRef"},
		{"binding narrowed by object labels", func(_ *admissionv1.ValidatingAdmissionPolicy, b *admissionv1.ValidatingAdmissionPolicyBinding) {
			b.Spec.MatchResources = &admissionv1.MatchResources{ObjectSelector: sel}
		}, "matchResources are narrowed"},
		{"binding excluding resources", func(_ *admissionv1.ValidatingAdmissionPolicy, b *admissionv1.ValidatingAdmissionPolicyBinding) {
			b.Spec.MatchResources = &admissionv1.MatchResources{ExcludeResourceRules: []admissionv1.NamedRuleWithOperations{{ResourceNames: []string{"x"}}}}
		}, "matchResources are narrowed"},
		{"binding being deleted", func(_ *admissionv1.ValidatingAdmissionPolicy, b *admissionv1.ValidatingAdmissionPolicyBinding) {
			b.DeletionTimestamp = &metav1.Time{}
		}, "being deleted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, b := shippedAdmission(t)
			tc.mutate(p, b)
			if got := admissionProblem(p, b); !strings.Contains(got, tc.want) {
				t.Errorf("problem %q, want it to say %q", got, tc.want)
			}
		})
	}
	// Empty selectors (what the API server defaults) select everything: not narrowed.
	p, b = shippedAdmission(t)
	b.Spec.MatchResources = &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{}, ObjectSelector: &metav1.LabelSelector{}}
	if got := admissionProblem(p, b); got != "" {
		t.Errorf("empty selectors: %q, want no problem", got)
	}
}

func TestAdmissionReadProblem(t *testing.T) {
	gr := schema.GroupResource{Group: "admissionregistration.k8s.io", Resource: "validatingadmissionpolicybindings"}
	for _, tc := range []struct {
		err      error
		want     string
		answered bool
	}{
		{apierrors.NewNotFound(gr, "b"), "ValidatingAdmissionPolicyBinding b not found", true},
		{apierrors.NewForbidden(gr, "b", errors.New("no")), "may not get ValidatingAdmissionPolicyBinding b", true},
		{&meta.NoKindMatchError{GroupKind: schema.GroupKind{Group: gr.Group, Kind: "ValidatingAdmissionPolicyBinding"}}, "does not serve", true},
		{errors.New("connection refused"), "reading ValidatingAdmissionPolicyBinding b: connection refused", false},
		{apierrors.NewServiceUnavailable("etcd"), "reading ValidatingAdmissionPolicyBinding b", false},
	} {
		got, answered := readProblem("ValidatingAdmissionPolicyBinding", "b", tc.err)
		if !strings.Contains(got, tc.want) || answered != tc.answered {
			t.Errorf("%v: %q (answered %v), want %q (answered %v)", tc.err, got, answered, tc.want, tc.answered)
		}
	}
}

// scriptedReader answers Gets of the policy and binding from the test's current objects or
// error (the check's state machine is pure logic; envtest covers the API in test/e2e).
type scriptedReader struct {
	policy  *admissionv1.ValidatingAdmissionPolicy
	binding *admissionv1.ValidatingAdmissionPolicyBinding
	err     error
}

func (r *scriptedReader) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	if r.err != nil {
		return r.err
	}
	switch o := obj.(type) {
	case *admissionv1.ValidatingAdmissionPolicy:
		if r.policy == nil {
			return apierrors.NewNotFound(schema.GroupResource{Resource: "validatingadmissionpolicies"}, key.Name)
		}
		*o = *r.policy.DeepCopy()
	case *admissionv1.ValidatingAdmissionPolicyBinding:
		if r.binding == nil {
			return apierrors.NewNotFound(schema.GroupResource{Resource: "validatingadmissionpolicybindings"}, key.Name)
		}
		*o = *r.binding.DeepCopy()
	}
	return nil
}

func (r *scriptedReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("not used")
}

// TestAdmissionCheckFindings: reconciles wait for the first check; a first check the API server
// does not answer fails closed; later unanswered checks keep the last finding instead of flipping
// every RedisConnection; onChange runs on every change after the first check, only then.
func TestAdmissionCheckFindings(t *testing.T) {
	ctx := context.Background()
	p, b := shippedAdmission(t)
	reader := &scriptedReader{err: errors.New("connection refused")}
	a := NewAdmissionCheck()
	a.Reader = reader
	changes := 0
	a.onChange = func() { changes++ }

	waiting, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := a.blocking(waiting); err == nil {
		t.Fatal("blocking returned before the first check")
	}
	if got := a.Check(ctx); !strings.Contains(got, "connection refused") {
		t.Fatalf("first check unanswered: %q, want it to fail closed", got)
	}
	reader.err, reader.policy, reader.binding = nil, p, b
	if got := a.Check(ctx); got != "" {
		t.Fatalf("policy and binding in place: %q", got)
	}
	reader.err = errors.New("i/o timeout")
	if got := a.Check(ctx); got != "" || !a.unanswered() {
		t.Fatalf("an unanswered check after a good one: %q (unanswered %v), want the last finding kept", got, a.unanswered())
	}
	reader.err, reader.binding = nil, nil
	if got, err := a.blocking(ctx); err != nil || got != "" {
		t.Fatalf("before the next check: %q %v, want the last finding (enforced)", got, err)
	}
	a.Check(ctx)
	if got, _ := a.blocking(ctx); !strings.Contains(got, "ValidatingAdmissionPolicyBinding rconn-secret-references not found") {
		t.Fatalf("binding deleted: %q", got)
	}
	if changes != 2 {
		t.Errorf("onChange ran %d times, want 2 (enforced, then the binding gone)", changes)
	}
	a.Require = false
	if got, err := a.blocking(ctx); got != "" || err != nil {
		t.Errorf("--require-admission-policy=false blocks: %q %v", got, err)
	}
}
