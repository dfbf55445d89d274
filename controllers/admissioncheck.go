package controllers

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
)

// The secret-references ValidatingAdmissionPolicy (config/admission) is what keeps a
// RedisConnection from naming a Secret its author may not read: the controller reads Secrets with
// its own rights and renders them into the output Secret, and sends passwords to root nodes on
// AUTH. When the policy or its binding is missing (a cluster older than 1.30, a partial apply, a
// deleted binding), nothing else stops that confused deputy. AdmissionCheck looks, at start and
// every Interval, whether both are there and would deny such a request; while they are not it
// says so (a log line on every change, rconn_admission_policy_present 0), and with Require the
// controller reads no referenced Secret at all (CredentialsResolved=False, reason
// AdmissionPolicyMissing): it fails closed.

// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingadmissionpolicies;validatingadmissionpolicybindings,verbs=get

// DefaultAdmissionPolicyName is the name config/default (namePrefix rconn-) gives the policy and
// its binding.
const DefaultAdmissionPolicyName = "rconn-secret-references"

// DefaultAdmissionCheckInterval is how often the policy and binding are read again.
const DefaultAdmissionCheckInterval = time.Minute

// admissionCheckTimeout bounds one check (two GETs).
const admissionCheckTimeout = 10 * time.Second

var admissionPolicyPresent = prometheus.NewGauge(prometheus.GaugeOpts{
	Name: "rconn_admission_policy_present",
	Help: "1 when the secret-references ValidatingAdmissionPolicy and its binding exist and deny (failurePolicy Fail, validationActions Deny, not narrowed), else 0 (the manager log says why). While 0, RedisConnections that reference Secrets are not reconciled (reason AdmissionPolicyMissing) unless --require-admission-policy=false.",
})

func init() { metrics.Registry.MustRegister(admissionPolicyPresent) }

// AdmissionCheck watches over the admission policy. Its zero value is not usable: make one with
// NewAdmissionCheck, set Reader, and add it to the manager (RedisConnectionReconciler does, when
// its Admission field is set).
type AdmissionCheck struct {
	// Reader reads the policy and binding from the API server (the manager's APIReader: nothing
	// is cached, two GETs per Interval).
	Reader client.Reader
	// PolicyName and BindingName are the names of the ValidatingAdmissionPolicy and its binding.
	PolicyName, BindingName string
	// Interval is how often both are read again.
	Interval time.Duration
	// Require makes the controller refuse to read Secrets a RedisConnection references while
	// the policy is not enforced.
	Require bool
	// Log receives a line at the first check and whenever what it finds changes.
	Log logr.Logger

	mu      sync.Mutex
	problem string // "" when enforced
	checks  int
	// lastUnanswered: the last check got no answer from the API server (retried sooner).
	lastUnanswered bool
	checked        chan struct{} // closed by the first check
	onChange       func()
}

// NewAdmissionCheck returns a check with the defaults of the manager's flags.
func NewAdmissionCheck() *AdmissionCheck {
	return &AdmissionCheck{
		PolicyName: DefaultAdmissionPolicyName, BindingName: DefaultAdmissionPolicyName,
		Interval: DefaultAdmissionCheckInterval, Require: true,
		checked: make(chan struct{}),
	}
}

// BindFlags registers the manager flags that set the check.
func (a *AdmissionCheck) BindFlags(fs *flag.FlagSet) {
	fs.BoolVar(&a.Require, "require-admission-policy", a.Require, "Reconcile RedisConnections that reference Secrets only while the secret-references ValidatingAdmissionPolicy and its binding are in place (else CredentialsResolved=False, reason AdmissionPolicyMissing): without them anyone who may write a RedisConnection can read every Secret of its namespace through the output. false reconciles anyway, and only reports (log, rconn_admission_policy_present).")
	fs.StringVar(&a.PolicyName, "admission-policy-name", a.PolicyName, "Name of the secret-references ValidatingAdmissionPolicy (config/default and the Helm chart's default: rconn-secret-references).")
	fs.StringVar(&a.BindingName, "admission-policy-binding-name", a.BindingName, "Name of its ValidatingAdmissionPolicyBinding.")
	fs.DurationVar(&a.Interval, "admission-check-interval", a.Interval, "How often the manager reads the admission policy and its binding again (it also does at start).")
}

// NeedLeaderElection is false: every replica reports (and gates) on its own.
func (a *AdmissionCheck) NeedLeaderElection() bool { return false }

// Start checks at once and then every Interval until ctx ends (a manager.Runnable).
func (a *AdmissionCheck) Start(ctx context.Context) error {
	interval := a.Interval
	if interval <= 0 {
		interval = DefaultAdmissionCheckInterval
	}
	for {
		a.Check(ctx)
		wait := interval
		if a.unanswered() {
			wait = min(interval, admissionRetry)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// admissionRetry is how soon a check the API server did not answer is repeated.
const admissionRetry = 5 * time.Second

func (a *AdmissionCheck) unanswered() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastUnanswered
}

// Check reads the policy and binding once, records what it found, and returns the problem (""
// when the policy is enforced).
func (a *AdmissionCheck) Check(ctx context.Context) string {
	readCtx, cancel := context.WithTimeout(ctx, admissionCheckTimeout)
	problem, answered := a.read(readCtx)
	cancel()
	a.mu.Lock()
	first := a.checks == 0
	a.lastUnanswered = !answered
	if !first && (!answered || ctx.Err() != nil) {
		// The API server did not answer (the manager cannot read Secrets either, then), or the
		// manager is stopping: keep the last finding rather than flip every RedisConnection
		// for a timeout. The first check records it: until one answers, fail closed.
		last := a.problem
		a.mu.Unlock()
		a.Log.V(1).Info("admission policy check not answered; keeping the last finding", "reason", problem)
		return last
	}
	changed := first || problem != a.problem
	a.problem = problem
	a.checks++
	onChange := a.onChange
	a.mu.Unlock()
	if problem == "" {
		admissionPolicyPresent.Set(1)
	} else {
		admissionPolicyPresent.Set(0)
	}
	if changed {
		a.report(problem)
	}
	if first {
		close(a.checked)
	}
	// The first check needs no requeue: reconciles wait for it (blocking).
	if changed && !first && onChange != nil {
		onChange()
	}
	return problem
}

func (a *AdmissionCheck) report(problem string) {
	kv := []any{"policy", a.PolicyName, "binding", a.BindingName}
	switch {
	case problem == "":
		a.Log.Info("admission policy enforced: a RedisConnection may reference only Secrets its author may read", kv...)
	case a.Require:
		a.Log.Error(errors.New(problem), "admission policy NOT enforced: RedisConnections that reference Secrets are not reconciled (CredentialsResolved=False, reason AdmissionPolicyMissing) until it is; see docs/operating.md#admission-policy", kv...)
	default:
		a.Log.Error(errors.New(problem), "admission policy NOT enforced, reconciling anyway (--require-admission-policy=false): whoever may write a RedisConnection can read every Secret of its namespace through its output Secret; see docs/operating.md#admission-policy", kv...)
	}
}

// read fetches both objects and says what keeps them from denying; answered is false when the
// API server gave no answer about them (a timeout, a connection error, a 5xx).
func (a *AdmissionCheck) read(ctx context.Context) (problem string, answered bool) {
	policy := &admissionv1.ValidatingAdmissionPolicy{}
	if err := a.Reader.Get(ctx, types.NamespacedName{Name: a.PolicyName}, policy); err != nil {
		return readProblem("ValidatingAdmissionPolicy", a.PolicyName, err)
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{}
	if err := a.Reader.Get(ctx, types.NamespacedName{Name: a.BindingName}, binding); err != nil {
		return readProblem("ValidatingAdmissionPolicyBinding", a.BindingName, err)
	}
	return admissionProblem(policy, binding), true
}

// readProblem says why an object could not be read, classified by the API's predicates, and
// whether that is the API server's answer (not found, forbidden, not served) or none.
func readProblem(kind, name string, err error) (string, bool) {
	switch {
	case meta.IsNoMatchError(err):
		return fmt.Sprintf("the API server does not serve admissionregistration.k8s.io/v1 %s (Kubernetes older than 1.30?)", kind), true
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("%s %s not found", kind, name), true
	case apierrors.IsForbidden(err):
		return fmt.Sprintf("the manager may not get %s %s (its ClusterRole needs get on %ss of admissionregistration.k8s.io)", kind, name, strings.ToLower(kind)), true
	}
	return fmt.Sprintf("reading %s %s: %v", kind, name, err), false
}

// admissionProblem says what keeps a policy and its binding from denying a RedisConnection that
// references an unreadable Secret ("" when nothing does). It checks what an edit or a partial
// apply can plausibly get wrong, not the CEL expressions themselves.
func admissionProblem(p *admissionv1.ValidatingAdmissionPolicy, b *admissionv1.ValidatingAdmissionPolicyBinding) string {
	switch {
	case p.DeletionTimestamp != nil:
		return fmt.Sprintf("ValidatingAdmissionPolicy %s is being deleted", p.Name)
	case b.DeletionTimestamp != nil:
		return fmt.Sprintf("ValidatingAdmissionPolicyBinding %s is being deleted", b.Name)
	case p.Spec.FailurePolicy != nil && *p.Spec.FailurePolicy != admissionv1.Fail:
		return fmt.Sprintf("ValidatingAdmissionPolicy %s has failurePolicy %s, not Fail", p.Name, *p.Spec.FailurePolicy)
	case len(p.Spec.Validations) == 0:
		return fmt.Sprintf("ValidatingAdmissionPolicy %s has no validations", p.Name)
	case p.Spec.MatchConstraints == nil || !coversRedisConnections(p.Spec.MatchConstraints.ResourceRules):
		return fmt.Sprintf("ValidatingAdmissionPolicy %s does not match CREATE and UPDATE of rconn.dev redisconnections", p.Name)
	case narrowed(p.Spec.MatchConstraints):
		return fmt.Sprintf("ValidatingAdmissionPolicy %s's matchConstraints are narrowed (a namespace or object selector, or excluded resources)", p.Name)
	case b.Spec.PolicyName != p.Name:
		return fmt.Sprintf("ValidatingAdmissionPolicyBinding %s binds policy %q, not %s", b.Name, b.Spec.PolicyName, p.Name)
	case !slices.Contains(b.Spec.ValidationActions, admissionv1.Deny):
		return fmt.Sprintf("ValidatingAdmissionPolicyBinding %s has validationActions %v, without Deny", b.Name, b.Spec.ValidationActions)
	case b.Spec.ParamRef != nil:
		return fmt.Sprintf("ValidatingAdmissionPolicyBinding %s has a paramRef (the policy takes no parameters)", b.Name)
	case narrowed(b.Spec.MatchResources) || (b.Spec.MatchResources != nil && len(b.Spec.MatchResources.ResourceRules) > 0):
		return fmt.Sprintf("ValidatingAdmissionPolicyBinding %s's matchResources are narrowed (resource rules, a namespace or object selector, or excluded resources)", b.Name)
	}
	return ""
}

// coversRedisConnections: some rule matches both CREATE and UPDATE of redisconnections.
func coversRedisConnections(rules []admissionv1.NamedRuleWithOperations) bool {
	has := func(list []string, v string) bool { return slices.Contains(list, v) || slices.Contains(list, "*") }
	for _, r := range rules {
		ops := make([]string, 0, len(r.Operations))
		for _, o := range r.Operations {
			ops = append(ops, string(o))
		}
		if len(r.ResourceNames) == 0 && has(r.APIGroups, rconnv1.GroupVersion.Group) && has(r.APIVersions, rconnv1.GroupVersion.Version) &&
			has(r.Resources, "redisconnections") && has(ops, "CREATE") && has(ops, "UPDATE") {
			return true
		}
	}
	return false
}

// narrowed: a selector or an exclusion keeps some RedisConnections out.
func narrowed(m *admissionv1.MatchResources) bool {
	if m == nil {
		return false
	}
	selects := func(s *metav1.LabelSelector) bool {
		return s != nil && (len(s.MatchLabels) > 0 || len(s.MatchExpressions) > 0)
	}
	return selects(m.NamespaceSelector) || selects(m.ObjectSelector) || len(m.ExcludeResourceRules) > 0
}

// blocking waits for the first check (so a manager start never flips RedisConnections to False
// for a moment) and returns the problem when Require is set and the policy is not enforced.
func (a *AdmissionCheck) blocking(ctx context.Context) (string, error) {
	if !a.Require {
		return "", nil
	}
	select {
	case <-a.checked:
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for the first admission policy check: %w", ctx.Err())
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.problem, nil
}

// admissionBlocks is the CredentialsResolved failure of a RedisConnection that references
// Secrets while the admission policy is required and not enforced (nil otherwise).
func (r *RedisConnectionReconciler) admissionBlocks(ctx context.Context, rc *rconnv1.RedisConnection) (*credentialError, error) {
	if r.Admission == nil || len(secretRefs(rc)) == 0 {
		return nil, nil
	}
	problem, err := r.Admission.blocking(ctx)
	if err != nil || problem == "" {
		return nil, err
	}
	return &credentialError{reason: rconnv1.ReasonAdmissionPolicyMissing, message: fmt.Sprintf(
		"the admission policy that checks Secret references is not enforced (%s): the referenced Secrets are not read and the outputs are kept as they are until it is (docs/operating.md#admission-policy)", problem)}, nil
}

// setupAdmission runs the check with the manager and, whenever its finding changes, enqueues the
// RedisConnections that reference Secrets, so their condition follows at once.
func (r *RedisConnectionReconciler) setupAdmission(mgr ctrl.Manager) error {
	if r.Admission == nil {
		return nil
	}
	if r.Admission.checked == nil {
		return errors.New("AdmissionCheck: make it with NewAdmissionCheck")
	}
	r.Admission.onChange = func() { r.enqueueReferencing(context.Background()) }
	return mgr.Add(r.Admission)
}

// enqueueReferencing enqueues every cached RedisConnection that references a Secret.
func (r *RedisConnectionReconciler) enqueueReferencing(ctx context.Context) {
	var list rconnv1.RedisConnectionList
	if err := r.List(ctx, &list); err != nil {
		r.Admission.Log.Error(err, "listing RedisConnections to re-check after an admission policy change")
		return
	}
	for i := range list.Items {
		if len(secretRefs(&list.Items[i])) > 0 {
			r.notifyProbed(client.ObjectKeyFromObject(&list.Items[i]))
		}
	}
}
