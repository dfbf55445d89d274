package v1_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
)

// admissionManifests reads the ValidatingAdmissionPolicy and its binding from config/admission,
// strictly, so a typo in the shipped YAML fails here instead of being dropped.
func admissionManifests() (*admissionregistrationv1.ValidatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
	root, err := kubetest.RepoRoot()
	Expect(err).NotTo(HaveOccurred())
	files, err := filepath.Glob(filepath.Join(root, "config", "admission", "*.yaml"))
	Expect(err).NotTo(HaveOccurred())
	var policy *admissionregistrationv1.ValidatingAdmissionPolicy
	var binding *admissionregistrationv1.ValidatingAdmissionPolicyBinding
	for _, f := range files {
		raw, err := os.ReadFile(f)
		Expect(err).NotTo(HaveOccurred())
		for _, doc := range bytes.Split(raw, []byte("\n---")) {
			var tm metav1.TypeMeta
			Expect(yaml.Unmarshal(doc, &tm)).To(Succeed(), f)
			switch tm.Kind {
			case "ValidatingAdmissionPolicy":
				Expect(policy).To(BeNil(), "a second policy in %s", f)
				policy = &admissionregistrationv1.ValidatingAdmissionPolicy{}
				Expect(yaml.UnmarshalStrict(doc, policy)).To(Succeed(), f)
			case "ValidatingAdmissionPolicyBinding":
				Expect(binding).To(BeNil(), "a second binding in %s", f)
				binding = &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}
				Expect(yaml.UnmarshalStrict(doc, binding)).To(Succeed(), f)
			}
		}
	}
	Expect(policy).NotTo(BeNil(), "no ValidatingAdmissionPolicy in config/admission")
	Expect(binding).NotTo(BeNil(), "no ValidatingAdmissionPolicyBinding in config/admission")
	return policy, binding
}

// installAdmissionPolicy creates the shipped policy and binding, and waits until the API server
// enforces them: a policy is compiled and picked up asynchronously after it is created.
func installAdmissionPolicy() {
	policy, binding := admissionManifests()
	Expect(k8sClient.Create(ctx, policy)).To(Succeed())
	Expect(k8sClient.Create(ctx, binding)).To(Succeed())

	ns := createNamespace("admission-probe")
	grant(ns, "probe", rbacv1.PolicyRule{APIGroups: []string{"rconn.dev"}, Resources: []string{"redisconnections"}, Verbs: []string{"create"}})
	probe := impersonating("probe")
	Eventually(func() string {
		rc := newRC()
		rc.Namespace = ns
		rc.Spec.Defaults = &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "unreadable"}}}
		err := probe.Create(ctx, rc)
		if err == nil {
			Expect(k8sClient.Delete(ctx, rc)).To(Succeed())
			return "admitted"
		}
		return err.Error()
	}, 30*time.Second, 200*time.Millisecond).Should(ContainSubstring("may not get Secret unreadable"))
}

func createNamespace(prefix string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// grant gives user the rules in namespace ns through a Role and RoleBinding of the user's name.
func grant(ns, user string, rules ...rbacv1.PolicyRule) {
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: ns}, Rules: rules}
	Expect(k8sClient.Create(ctx, role)).To(Succeed())
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	Expect(k8sClient.Create(ctx, rb)).To(Succeed())
}

// impersonating returns a client that acts as user (the suite's admin may impersonate anyone);
// the API server adds the group system:authenticated.
func impersonating(user string) client.Client {
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(cfg, client.Options{Scheme: kubetest.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	return c
}

var rcVerbs = []string{"create", "delete", "get", "list", "patch", "update", "watch"}

var _ = Describe("the secret-references ValidatingAdmissionPolicy (config/admission)", Ordered, func() {
	var (
		ns            string
		tenant, owner client.Client
	)

	// In namespace ns: Secrets prod-db and app-out; the user tenant may do anything to
	// RedisConnections (and write their status) but may get only the Secret app-out; the user
	// owner may also get prod-db.
	BeforeAll(func() {
		ns = createNamespace("tenancy")
		for _, name := range []string{"prod-db", "app-out"} {
			Expect(k8sClient.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
				StringData: map[string]string{"password": "secret-of-" + name},
			})).To(Succeed())
		}
		rcRule := rbacv1.PolicyRule{APIGroups: []string{"rconn.dev"}, Resources: []string{"redisconnections"}, Verbs: rcVerbs}
		statusRule := rbacv1.PolicyRule{APIGroups: []string{"rconn.dev"}, Resources: []string{"redisconnections/status"}, Verbs: []string{"get", "update", "patch"}}
		grant(ns, "tenant", rcRule, statusRule,
			rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"app-out"}, Verbs: []string{"get"}})
		grant(ns, "owner", rcRule,
			rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"prod-db", "app-out"}, Verbs: []string{"get"}})
		tenant, owner = impersonating("tenant"), impersonating("owner")
		// envtest runs kube-apiserver with --authorization-mode=RBAC: the tenant really may not
		// read prod-db, and may read app-out.
		err := tenant.Get(ctx, client.ObjectKey{Namespace: ns, Name: "prod-db"}, &corev1.Secret{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "tenant get prod-db: %v", err)
		Expect(tenant.Get(ctx, client.ObjectKey{Namespace: ns, Name: "app-out"}, &corev1.Secret{})).To(Succeed())
		Expect(owner.Get(ctx, client.ObjectKey{Namespace: ns, Name: "prod-db"}, &corev1.Secret{})).To(Succeed())
	})

	// exfiltrating is the confused-deputy attempt: credentials from prod-db, rendered into
	// app-out, which its author can read.
	exfiltrating := func() *rconnv1.RedisConnection {
		rc := newRC()
		rc.Namespace = ns
		rc.Spec.Defaults = &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "prod-db"}}}
		rc.Spec.Output = &rconnv1.Output{SecretName: "app-out"}
		return rc
	}

	It("denies a tenant who may not get prod-db a RedisConnection that reads prod-db into app-out", func() {
		err := tenant.Create(ctx, exfiltrating())
		Expect(err).To(HaveOccurred())
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "want 403 Forbidden: %v", err)
		Expect(err.Error()).To(ContainSubstring("user tenant may not get Secret prod-db (spec.defaults.acl.secretRef): a RedisConnection may only reference Secrets its author can read"))
	})

	DescribeTable("checks every Secret reference, naming the field",
		func(mutate func(*rconnv1.RedisConnection), message string) {
			rc := newRC()
			rc.Namespace = ns
			mutate(rc)
			err := tenant.Create(ctx, rc)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("spec.defaults.acl.secretRef", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Defaults = &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "prod-db"}}}
		}, "user tenant may not get Secret prod-db (spec.defaults.acl.secretRef)"),
		Entry("spec.controllerACL.secretRef", func(rc *rconnv1.RedisConnection) {
			rc.Spec.ControllerACL = &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "prod-db"}}
		}, "user tenant may not get Secret prod-db (spec.controllerACL.secretRef)"),
		Entry("spec.defaults.tls.secretRef", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "rediss://redis:6379"}}
			rc.Spec.Defaults = &rconnv1.NodeDefaults{TLS: &rconnv1.TLSConfig{Enabled: true, SecretRef: &rconnv1.LocalSecretReference{Name: "prod-db"}}}
		}, "user tenant may not get Secret prod-db (spec.defaults.tls.secretRef)"),
		Entry("spec.sentinel.acl.secretRef", func(rc *rconnv1.RedisConnection) {
			*rc = *sentinelIn(rc.Namespace)
			rc.Spec.Sentinel.ACL = &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "prod-db"}}
		}, "user tenant may not get Secret prod-db (spec.sentinel.acl.secretRef)"),
		Entry("spec.sentinel.tls.secretRef", func(rc *rconnv1.RedisConnection) {
			*rc = *sentinelIn(rc.Namespace)
			rc.Spec.Sentinel.TLS = &rconnv1.TLSConfig{Enabled: true, SecretRef: &rconnv1.LocalSecretReference{Name: "prod-db"}}
		}, "user tenant may not get Secret prod-db (spec.sentinel.tls.secretRef)"),
		Entry("a Secret that does not exist (yet): the check is by name, not by existence", func(rc *rconnv1.RedisConnection) {
			rc.Spec.ControllerACL = &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "created-later"}}
		}, "user tenant may not get Secret created-later (spec.controllerACL.secretRef)"),
		Entry("a readable reference next to an unreadable one", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Defaults = &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "app-out"}}}
			rc.Spec.ControllerACL = &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "prod-db"}}
			rc.Spec.Output = &rconnv1.Output{SecretName: "rendered"}
		}, "user tenant may not get Secret prod-db (spec.controllerACL.secretRef)"),
	)

	It("denies kubectl apply as the tenant with the same message", func() {
		manifest := fmt.Sprintf(`apiVersion: rconn.dev/v1
kind: RedisConnection
metadata: {name: kubectl-exfiltrate, namespace: %s}
spec:
  rootNodes: [{url: "redis://redis:6379"}]
  defaults: {acl: {secretRef: {name: prod-db}}}
  output: {secretName: app-out}
`, ns)
		cmd := kubectl("apply", "--as=tenant", "-f", "-")
		cmd.Stdin = strings.NewReader(manifest)
		out, err := cmd.CombinedOutput()
		Expect(err).To(HaveOccurred(), string(out))
		Expect(string(out)).To(ContainSubstring("user tenant may not get Secret prod-db (spec.defaults.acl.secretRef)"))
	})

	It("admits the same RedisConnection from an owner who may get prod-db", func() {
		Expect(owner.Create(ctx, exfiltrating())).To(Succeed())
	})

	It("admits a tenant's RedisConnection that references only app-out, which the tenant may get", func() {
		rc := newRC()
		rc.Namespace = ns
		rc.Spec.Defaults = &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "app-out"}}}
		rc.Spec.Output = &rconnv1.Output{SecretName: "tenant-rendered"}
		Expect(tenant.Create(ctx, rc)).To(Succeed())
		// No Secret references at all: nothing to check.
		Expect(tenant.Create(ctx, &rconnv1.RedisConnection{
			ObjectMeta: metav1.ObjectMeta{Name: "no-secrets", Namespace: ns},
			Spec:       rconnv1.RedisConnectionSpec{RootNodes: []rconnv1.RootNode{{Host: "redis"}}},
		})).To(Succeed())
	})

	It("denies a tenant re-pointing a RedisConnection at prod-db", func() {
		rc := newRC()
		rc.Namespace = ns
		rc.Spec.Defaults = &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "app-out"}}}
		rc.Spec.Output = &rconnv1.Output{SecretName: "shared-out"}
		Expect(owner.Create(ctx, rc)).To(Succeed())
		rc.Spec.Defaults.ACL.SecretRef.Name = "prod-db"
		err := tenant.Update(ctx, rc)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("user tenant may not get Secret prod-db (spec.defaults.acl.secretRef)"))
	})

	DescribeTable("denies a tenant any spec change to an owner's RedisConnection that references prod-db, since it would redirect prod-db's credentials",
		func(mutate func(*rconnv1.RedisConnection)) {
			rc := exfiltrating()
			rc.Spec.Output.SecretName = "owner-out"
			Expect(owner.Create(ctx, rc)).To(Succeed())
			mutate(rc)
			err := tenant.Update(ctx, rc)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring("user tenant may not get Secret prod-db (spec.defaults.acl.secretRef)"))
			// The owner may make the same change.
			Expect(k8sClient.Get(ctx, keyOf(rc), rc)).To(Succeed())
			mutate(rc)
			Expect(owner.Update(ctx, rc)).To(Succeed())
		},
		Entry("output to a Secret the tenant can read", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Output.SecretName = "app-out"
		}),
		Entry("root nodes to a host the tenant runs, which would receive prod-db's password on AUTH", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{Host: "attacker.example.com"}}
		}),
		Entry("an unrelated field", func(rc *rconnv1.RedisConnection) {
			rc.Spec.AutoPipeline = true
		}),
	)

	It("lets the tenant change only metadata, or status, of an owner's RedisConnection that references prod-db", func() {
		rc := exfiltrating()
		rc.Spec.Output.SecretName = "labelled-out"
		Expect(owner.Create(ctx, rc)).To(Succeed())
		rc.Labels = map[string]string{"team": "tenant"}
		rc.Annotations = map[string]string{"note": "metadata is not checked"}
		Expect(tenant.Update(ctx, rc)).To(Succeed())
		rc.Status.ShardCount = 3
		Expect(tenant.Status().Update(ctx, rc)).To(Succeed(), "the status subresource is not matched")
		Expect(tenant.Delete(ctx, rc)).To(Succeed(), "DELETE is not matched")
	})

	It("checks the Secret in the object's namespace: rights on prod-db elsewhere do not count", func() {
		other := createNamespace("elsewhere")
		grant(other, "tenant", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"prod-db"}, Verbs: []string{"get"}})
		err := tenant.Create(ctx, exfiltrating())
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("user tenant may not get Secret prod-db"))
	})

	It("is renamed together with its binding by config/default's namePrefix", func() {
		root, err := kubetest.RepoRoot()
		Expect(err).NotTo(HaveOccurred())
		out, err := kubectl("kustomize", filepath.Join(root, "config", "default")).Output()
		Expect(err).NotTo(HaveOccurred())
		var policyName, bindingTarget string
		var admission []string
		for _, doc := range strings.Split(string(out), "\n---\n") {
			var tm metav1.TypeMeta
			Expect(yaml.Unmarshal([]byte(doc), &tm)).To(Succeed())
			switch tm.Kind {
			case "ValidatingAdmissionPolicy":
				var p admissionregistrationv1.ValidatingAdmissionPolicy
				Expect(yaml.UnmarshalStrict([]byte(doc), &p)).To(Succeed())
				policyName = p.Name
				admission = append(admission, doc)
			case "ValidatingAdmissionPolicyBinding":
				var b admissionregistrationv1.ValidatingAdmissionPolicyBinding
				Expect(yaml.UnmarshalStrict([]byte(doc), &b)).To(Succeed())
				Expect(b.Spec.ValidationActions).To(Equal([]admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}))
				bindingTarget = b.Spec.PolicyName
				admission = append(admission, doc)
			}
		}
		Expect(policyName).To(Equal("rconn-secret-references"))
		Expect(bindingTarget).To(Equal(policyName))
		// kustomize's built-in schema predates ValidatingAdmissionPolicy, so the namespace
		// transformer gives both a metadata.namespace; the API server drops it from cluster-scoped
		// objects. Prove the rendered objects are accepted as they are.
		cmd := kubectl("apply", "--server-side", "--dry-run=server", "-f", "-")
		cmd.Stdin = strings.NewReader(strings.Join(admission, "\n---\n"))
		applied, err := cmd.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(applied))
		Expect(string(applied)).To(ContainSubstring("validatingadmissionpolicy.admissionregistration.k8s.io/rconn-secret-references serverside-applied (server dry run)"))
	})
})

// sentinelIn is a valid Sentinel-mode RedisConnection in namespace ns.
func sentinelIn(ns string) *rconnv1.RedisConnection {
	rc := newSentinelRC()
	rc.Namespace = ns
	return rc
}
