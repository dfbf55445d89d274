package controllers

import (
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
)

// An API error while writing the outputs leaves the controller not knowing whether they are
// current: ConfigRendered must not stay True from an earlier reconcile (Unknown), and Ready
// is False with that reason.
func TestConfigRenderedUnknownOnAPIError(t *testing.T) {
	s := resolvedScope()
	s.rc.Status.Conditions = []metav1.Condition{{Type: rconnv1.ConditionConfigRendered, Status: metav1.ConditionTrue, Reason: rconnv1.ReasonRendered}}
	s.outputErr = apierrors.NewServerTimeout(schema.GroupResource{Resource: "configmaps"}, "patch", 1)
	for _, c := range desiredConditions(s) {
		setCondition(s.rc, &c)
	}
	setCondition(s.rc, readyCondition(s.rc.Status.Conditions, nil))
	got := meta.FindStatusCondition(s.rc.Status.Conditions, rconnv1.ConditionConfigRendered)
	if got == nil || got.Status != metav1.ConditionUnknown || got.Reason != rconnv1.ReasonOutputWriteFailed {
		t.Fatalf("ConfigRendered = %+v, want Unknown/%s", got, rconnv1.ReasonOutputWriteFailed)
	}
	if r := meta.FindStatusCondition(s.rc.Status.Conditions, rconnv1.ConditionReady); r == nil || r.Status != metav1.ConditionFalse || r.Reason != rconnv1.ReasonOutputWriteFailed {
		t.Fatalf("Ready = %+v, want False/%s", r, rconnv1.ReasonOutputWriteFailed)
	}
	// The next successful write makes it True again.
	s.outputErr = nil
	for _, c := range desiredConditions(s) {
		setCondition(s.rc, &c)
	}
	if got := meta.FindStatusCondition(s.rc.Status.Conditions, rconnv1.ConditionConfigRendered); got.Status != metav1.ConditionTrue {
		t.Fatalf("after a good write ConfigRendered = %+v", got)
	}
}
