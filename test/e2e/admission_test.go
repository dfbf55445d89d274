package e2e

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/demo"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/managertest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
)

// TestAdmissionPolicyMissingFailsClosed runs the manager binary, with only its generated
// ClusterRole, on a cluster where the secret-references admission policy is missing (a
// partial apply, a cluster older than 1.30): it says so (log line, rconn_admission_policy_present
// 0) and reads no Secret a RedisConnection references (CredentialsResolved/Ready False,
// AdmissionPolicyMissing, no output), while a RedisConnection without Secret references is
// reconciled. Once config/default's policy and binding are applied (and deny a tenant's
// confused-deputy request), the same RedisConnection is rendered; when the binding is deleted,
// the manager notices within its check interval and says so again, keeping the output it has.
func TestAdmissionPolicyMissingFailsClosed(t *testing.T) { //nolint:funlen // ordered steps of one install
	t.Parallel() // its own control plane, processes and addresses: overlaps the other e2e tests' waits
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	root, env, admin := ownControlPlane(t)
	dir := t.TempDir()
	kubectl := demo.Kubectl(env.BinaryAssetsDirectory, kubetest.UserKubeconfig(t, env, envtest.User{Name: "test-admin", Groups: []string{"system:masters"}}), root)
	run := func(args ...string) string {
		t.Helper()
		out, err := kubectl(ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// The manager's generated ClusterRole, and nothing else.
	run("apply", "-f", filepath.Join(root, "config", "rbac", "role.yaml"))
	run("create", "clusterrolebinding", "rconn-manager", "--clusterrole=manager-role", "--user="+demo.ManagerUser)

	const ns, password = "app", "admission-app-password"
	redis := redistest.StartServer(t, redistest.ServerOptions{Users: []redistest.User{{Name: "app", Password: password}}})
	run("create", "namespace", ns)
	run("-n", ns, "create", "secret", "generic", "redis-acl", "--from-literal=username=app", "--from-literal=password="+password)
	rc := func(name string, withSecret bool) *rconnv1.RedisConnection {
		c := &rconnv1.RedisConnection{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: rconnv1.RedisConnectionSpec{
				Mode:      rconnv1.ModeStandalone,
				RootNodes: []rconnv1.RootNode{{URL: rconnv1.RedisURL("redis://" + redis.Addr())}},
			},
		}
		if withSecret {
			c.Spec.Defaults = &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "redis-acl"}, UsernameKey: "username"}}
		}
		return c
	}
	for _, c := range []*rconnv1.RedisConnection{rc("cache", true), rc("open", false)} {
		if err := admin.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
	}

	mgr := managertest.StartBinary(t, managertest.Build(t), kubetest.UserKubeconfig(t, env, envtest.User{Name: demo.ManagerUser}), nil,
		"--no-dns", "--admission-check-interval=1s")
	logTail := func() string { return tail(strings.Split(mgr.Log(), "\n"), 40) }
	t.Cleanup(func() {
		for _, l := range strings.Split(mgr.Log(), "\n") {
			if strings.Contains(l, "forbidden") || strings.Contains(l, "panic") {
				t.Errorf("manager log: %s", l)
			}
		}
	})
	present := func(want float64) func() error {
		return func() error {
			mfs, err := mgr.Metrics()
			if err != nil {
				return err
			}
			if mfs["rconn_admission_policy_present"] == nil {
				return errors.New("no rconn_admission_policy_present")
			}
			if got := managertest.Sum(mfs, "rconn_admission_policy_present", nil); got != want {
				return fmt.Errorf("rconn_admission_policy_present %v, want %v", got, want)
			}
			return nil
		}
	}
	readyReason := func(name, reason, inMessage string) func() error {
		return func() error {
			got := &rconnv1.RedisConnection{}
			if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, got); err != nil {
				return err
			}
			c := meta.FindStatusCondition(got.Status.Conditions, rconnv1.ConditionReady)
			if c == nil || c.Reason != reason || !strings.Contains(c.Message, inMessage) {
				return fmt.Errorf("Ready is %+v, want reason %s with %q in the message", c, reason, inMessage)
			}
			return nil
		}
	}
	logHas := func(s string) func() error {
		return func() error {
			if !strings.Contains(mgr.Log(), s) {
				return fmt.Errorf("no %q in the manager log", s)
			}
			return nil
		}
	}
	outputPassword := func() (string, error) {
		sec := &corev1.Secret{}
		err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cache"}, sec)
		return string(sec.Data["password"]), err
	}

	t.Run("without the policy: reported, and Secrets are not read", func(t *testing.T) {
		kubetest.Poll(t, ctx, 60*time.Second, "metric 0", logTail, present(0))
		kubetest.Poll(t, ctx, 10*time.Second, "startup log line", logTail, logHas(`"msg":"admission policy NOT enforced: RedisConnections that reference Secrets are not reconciled`))
		kubetest.Poll(t, ctx, 10*time.Second, "the reason in the log", logTail, logHas("ValidatingAdmissionPolicy rconn-secret-references not found"))
		kubetest.Poll(t, ctx, 60*time.Second, "cache blocked", logTail, readyReason("cache", rconnv1.ReasonAdmissionPolicyMissing, "ValidatingAdmissionPolicy rconn-secret-references not found"))
		kubetest.WaitReady(t, ctx, admin, ns, "open", logTail)
		if _, err := outputPassword(); !apierrors.IsNotFound(err) {
			t.Errorf("the output Secret of the blocked RedisConnection: %v, want NotFound", err)
		}
	})

	t.Run("config/default's policy denies the tenant, and the manager renders", func(t *testing.T) {
		if err := demo.InstallAdmission(ctx, kubectl, root, dir); err != nil {
			t.Fatal(err)
		}
		run("create", "namespace", "tenant")
		within, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		denied, err := demo.ShowDenial(within, kubectl, "tenant", dir)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(denied, "Forbidden") || !strings.Contains(denied, "user tenant may not get Secret prod-db (spec.defaults.acl.secretRef)") {
			t.Errorf("the denial: %q", denied)
		}
		kubetest.Poll(t, ctx, 30*time.Second, "metric 1", logTail, present(1))
		kubetest.Poll(t, ctx, 10*time.Second, "log line", logTail, logHas("admission policy enforced"))
		kubetest.WaitReady(t, ctx, admin, ns, "cache", logTail)
		if got, err := outputPassword(); err != nil || got != password {
			t.Errorf("output Secret: %v, password %q", err, got)
		}
	})

	t.Run("a deleted binding is noticed within the check interval; the output stays", func(t *testing.T) {
		run("delete", "validatingadmissionpolicybinding", "rconn-secret-references")
		kubetest.Poll(t, ctx, 30*time.Second, "cache blocked again", logTail, readyReason("cache", rconnv1.ReasonAdmissionPolicyMissing, "ValidatingAdmissionPolicyBinding rconn-secret-references not found"))
		kubetest.Poll(t, ctx, 10*time.Second, "metric 0", logTail, present(0))
		kubetest.Poll(t, ctx, 10*time.Second, "log line", logTail, logHas("ValidatingAdmissionPolicyBinding rconn-secret-references not found"))
		if got, err := outputPassword(); err != nil || got != password {
			t.Errorf("output Secret: %v, password %q: the last output should stay", err, got)
		}
		kubetest.WaitReady(t, ctx, admin, ns, "open", logTail)
	})
}
