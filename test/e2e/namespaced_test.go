package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/managertest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
)

// TestNamespacedInstall renders config/namespaced (kubectl kustomize, as a user does), checks
// that its Roles are the generated ClusterRole minus its cluster-scoped rules, applies it to a
// real API server, and runs the manager binary as the rendered ServiceAccount with only the
// rendered bindings and the rendered --watch-namespaces: RedisConnections in the watched
// namespaces become Ready with their outputs, one elsewhere is ignored, the credentials cannot
// read Secrets outside the watched namespaces, and the manager never hits a forbidden request.
// It also checks docs/operating.md's egress NetworkPolicy against the same API server.
func TestNamespacedInstall(t *testing.T) { //nolint:gocyclo,funlen // ordered steps of one install, counted with their t.Run bodies; to split with #15 item 8
	t.Parallel() // its own control plane, processes and addresses: overlaps the other e2e tests' waits
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root, env, admin := ownControlPlane(t)
	kubectl := filepath.Join(env.BinaryAssetsDirectory, "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		kubectl = "kubectl"
	}

	rendered := renderKustomization(t, ctx, kubectl, root, "config/namespaced")
	generated := readObjects(t, filepath.Join(root, "config", "rbac", "role.yaml"))
	if len(generated) != 1 || generated[0].GetKind() != "ClusterRole" {
		t.Fatalf("config/rbac/role.yaml should hold one ClusterRole, has %d objects", len(generated))
	}
	var generatedRole rbacv1.ClusterRole
	kubetest.FromUnstructured(t, generated[0], &generatedRole)

	var deploy appsv1.Deployment
	for _, u := range rendered {
		if u.GetKind() == "Deployment" {
			kubetest.FromUnstructured(t, u, &deploy)
		}
	}
	if deploy.Name == "" {
		t.Fatal("config/namespaced renders no Deployment")
	}
	var watched []string
	for _, a := range deploy.Spec.Template.Spec.Containers[0].Args {
		if v, ok := strings.CutPrefix(a, "--watch-namespaces="); ok {
			watched = strings.Split(v, ",")
		}
	}
	if len(watched) < 2 {
		t.Fatalf("the rendered manager args %v should set --watch-namespaces to at least two namespaces", deploy.Spec.Template.Spec.Containers[0].Args)
	}
	sort.Strings(watched)
	saNamespace, saName := deploy.Namespace, deploy.Spec.Template.Spec.ServiceAccountName
	unwatched := "rconn-unwatched"

	t.Run("the rendered RBAC: Roles derived from the generated ClusterRole, nothing cluster-wide on Secrets", func(t *testing.T) {
		mapper := admin.RESTMapper()
		var namespacedRules, clusterRules []rbacv1.PolicyRule
		for _, r := range generatedRole.Rules {
			ns, cl := kubetest.SplitRuleByScope(t, mapper, r)
			namespacedRules = append(namespacedRules, ns...)
			clusterRules = append(clusterRules, cl...)
		}
		if len(clusterRules) == 0 || len(namespacedRules) == 0 {
			t.Fatalf("the generated ClusterRole should have namespaced and cluster-scoped rules: %+v", generatedRole.Rules)
		}
		roleNamespaces := map[string]string{} // namespace -> Role name
		for _, u := range rendered {
			switch u.GetKind() {
			case "Role":
				var r rbacv1.Role
				kubetest.FromUnstructured(t, u, &r)
				if r.Namespace == saNamespace {
					continue // leader election
				}
				if got, want := kubetest.NormalizeRules(r.Rules), kubetest.NormalizeRules(namespacedRules); got != want {
					t.Errorf("Role %s/%s rules differ from the generated ClusterRole's namespaced rules:\n got %s\nwant %s", r.Namespace, r.Name, got, want)
				}
				roleNamespaces[r.Namespace] = r.Name
			case "ClusterRole":
				var r rbacv1.ClusterRole
				kubetest.FromUnstructured(t, u, &r)
				for _, rule := range r.Rules {
					for _, res := range rule.Resources {
						if res == "*" || slices.Contains(rule.APIGroups, "*") || (slices.Contains(rule.APIGroups, "") && (res == "secrets" || res == "configmaps")) ||
							(slices.Contains(rule.APIGroups, rconnv1.GroupVersion.Group) && r.Name != "rconn-redisconnection-editor-role" && r.Name != "rconn-redisconnection-viewer-role") {
							t.Errorf("ClusterRole %s grants %v on %v/%s", r.Name, rule.Verbs, rule.APIGroups, res)
						}
					}
				}
			case "ClusterRoleBinding":
				var b rbacv1.ClusterRoleBinding
				kubetest.FromUnstructured(t, u, &b)
				if b.RoleRef.Name != "rconn-metrics-auth-role" && b.RoleRef.Name != "rconn-manager-admission-role" {
					t.Errorf("ClusterRoleBinding %s binds %s %s: the namespaced install binds only the metrics auth and admission roles cluster-wide", b.Name, b.RoleRef.Kind, b.RoleRef.Name)
				}
			case "RoleBinding":
				var b rbacv1.RoleBinding
				kubetest.FromUnstructured(t, u, &b)
				if b.Namespace == saNamespace {
					continue
				}
				if b.RoleRef.Kind != "Role" || b.RoleRef.Name != "rconn-manager-role" || len(b.Subjects) != 1 ||
					b.Subjects[0].Kind != rbacv1.ServiceAccountKind || b.Subjects[0].Name != saName || b.Subjects[0].Namespace != saNamespace {
					t.Errorf("RoleBinding %s/%s: roleRef %+v subjects %+v, want Role rconn-manager-role for ServiceAccount %s/%s", b.Namespace, b.Name, b.RoleRef, b.Subjects, saNamespace, saName)
				}
			}
		}
		var got []string
		for ns := range roleNamespaces {
			got = append(got, ns)
		}
		sort.Strings(got)
		if !slices.Equal(got, watched) {
			t.Errorf("manager Roles in %v, --watch-namespaces %v: they should be the same namespaces", got, watched)
		}

		// The optional NodePort ClusterRole and the admission ClusterRole (always rendered) hold
		// exactly the generated cluster-scoped rules, split by API group.
		var nodeRules, admissionRules []rbacv1.PolicyRule
		for _, r := range clusterRules {
			if slices.Contains(r.APIGroups, "admissionregistration.k8s.io") {
				admissionRules = append(admissionRules, r)
			} else {
				nodeRules = append(nodeRules, r)
			}
		}
		for _, c := range []struct {
			objs []*unstructured.Unstructured
			name string
			want []rbacv1.PolicyRule
		}{
			{renderKustomization(t, ctx, kubectl, root, "config/namespaced/nodeport"), "rconn-manager-nodes-role", nodeRules},
			{rendered, "rconn-manager-admission-role", admissionRules},
		} {
			var role *rbacv1.ClusterRole
			for _, u := range c.objs {
				if u.GetKind() == "ClusterRole" && u.GetName() == c.name {
					role = &rbacv1.ClusterRole{}
					kubetest.FromUnstructured(t, u, role)
				}
			}
			if role == nil || len(c.want) == 0 {
				t.Fatalf("ClusterRole %s rendered: %v; generated rules for it: %d", c.name, role != nil, len(c.want))
			}
			if got, want := kubetest.NormalizeRules(role.Rules), kubetest.NormalizeRules(c.want); got != want {
				t.Errorf("ClusterRole %s rules differ from the generated cluster-scoped rules:\n got %s\nwant %s", c.name, got, want)
			}
		}
	})

	// Apply the whole rendered install (server-side, as hack/deploy.sh does) into namespaces
	// that exist, as the docs require. The CRD is already there (kubetest installs it).
	for _, ns := range append(slices.Clone(watched), unwatched) {
		if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	var manifest bytes.Buffer
	for _, u := range rendered {
		b, err := yaml.Marshal(u.Object)
		if err != nil {
			t.Fatal(err)
		}
		manifest.WriteString("---\n")
		manifest.Write(b)
	}
	adminKC := kubetest.UserKubeconfig(t, env, envtest.User{Name: "rconn-test-admin", Groups: []string{"system:masters"}})
	apply := exec.CommandContext(ctx, kubectl, "--kubeconfig", adminKC, "apply", "--server-side", "--force-conflicts", "--field-manager=rconn-deploy", "-f", "-")
	apply.Stdin = &manifest
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply of config/namespaced: %v\n%s", err, out)
	}

	// The manager authenticates as the rendered ServiceAccount (a client certificate with the
	// ServiceAccount's user name and groups: RBAC matches ServiceAccount subjects by that name).
	saUser := envtest.User{
		Name:   "system:serviceaccount:" + saNamespace + ":" + saName,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + saNamespace},
	}
	managerKC := kubetest.UserKubeconfig(t, env, saUser)
	saAuth, err := env.AddUser(saUser, nil)
	if err != nil {
		t.Fatal(err)
	}
	asManager, err := client.New(saAuth.Config(), client.Options{Scheme: kubetest.Scheme()})
	if err != nil {
		t.Fatal(err)
	}

	password := "ns-app-password"
	redis := redistest.StartServer(t, redistest.ServerOptions{Users: []redistest.User{{Name: "app", Password: password}}})
	connection := func(ns, name string) *rconnv1.RedisConnection {
		return &rconnv1.RedisConnection{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: rconnv1.RedisConnectionSpec{
				Mode:      rconnv1.ModeStandalone,
				RootNodes: []rconnv1.RootNode{{URL: rconnv1.RedisURL("redis://" + redis.Addr())}},
				Defaults: &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{
					SecretRef: rconnv1.LocalSecretReference{Name: "redis-acl"}, UsernameKey: "username"}},
			},
		}
	}
	for _, ns := range append(slices.Clone(watched), unwatched) {
		if err := admin.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "redis-acl", Namespace: ns},
			StringData: map[string]string{"username": "app", "password": password}}); err != nil {
			t.Fatal(err)
		}
	}
	// The unwatched one first: by the time the watched ones are Ready it had every chance.
	if err := admin.Create(ctx, connection(unwatched, "cache")); err != nil {
		t.Fatal(err)
	}

	mgr := managertest.StartBinary(t, managertest.Build(t), managerKC, nil, "--no-dns", "--watch-namespaces="+strings.Join(watched, ","))
	managerLog := func() string { return tail(strings.Split(mgr.Log(), "\n"), 40) }

	t.Run("RedisConnections in the watched namespaces become Ready with their outputs", func(t *testing.T) {
		for _, ns := range watched {
			if err := admin.Create(ctx, connection(ns, "cache")); err != nil {
				t.Fatal(err)
			}
		}
		for _, ns := range watched {
			kubetest.WaitReady(t, ctx, admin, ns, "cache", managerLog)
			cm := &corev1.ConfigMap{}
			if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cache"}, cm); err != nil || !strings.Contains(cm.Data["config.json"], redis.Addr()) {
				t.Errorf("%s: ConfigMap cache: %v, config.json %q should name %s", ns, err, cm.Data["config.json"], redis.Addr())
			}
			sec := &corev1.Secret{}
			if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cache"}, sec); err != nil || string(sec.Data["password"]) != password || string(sec.Data["username"]) != "app" {
				t.Errorf("%s: Secret cache: %v, keys %v: want the app's username and password", ns, err, keys(sec.Data))
			}
		}
	})

	t.Run("renaming the outputs creates the new ones and deletes the old ones, with an Event", func(t *testing.T) {
		ns := watched[0]
		rc := &rconnv1.RedisConnection{}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cache"}, rc); err != nil {
			t.Fatal(err)
		}
		before := rc.DeepCopy()
		rc.Spec.Output = &rconnv1.Output{ConfigMapName: "cache-v2", SecretName: "cache-v2"}
		if err := admin.Patch(ctx, rc, client.MergeFrom(before)); err != nil {
			t.Fatal(err)
		}
		kubetest.Poll(t, ctx, 60*time.Second, "the old outputs deleted and the new ones created", managerLog, func() error {
			for _, obj := range []client.Object{&corev1.ConfigMap{}, &corev1.Secret{}} {
				if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cache-v2"}, obj); err != nil {
					return err
				}
				if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cache"}, obj); !apierrors.IsNotFound(err) {
					return fmt.Errorf("old %T still there (%v)", obj, err) //nolint:errorlint // err is nil while the object is still there
				}
			}
			return nil
		})
		kubetest.Poll(t, ctx, 30*time.Second, "an events.k8s.io Event OutputRenamed", managerLog, func() error {
			var evs eventsv1.EventList
			if err := admin.List(ctx, &evs, client.InNamespace(ns)); err != nil {
				return err
			}
			for _, e := range evs.Items {
				if e.Reason == "OutputRenamed" && e.Regarding.Name == "cache" {
					return nil
				}
			}
			return fmt.Errorf("%d events, none OutputRenamed", len(evs.Items))
		})
	})

	t.Run("a RedisConnection in an unwatched namespace is ignored", func(t *testing.T) {
		time.Sleep(2 * time.Second) // a reconcile would have happened long ago; give stragglers a moment
		rc := &rconnv1.RedisConnection{}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: unwatched, Name: "cache"}, rc); err != nil {
			t.Fatal(err)
		}
		if len(rc.Status.Conditions) != 0 || rc.Status.ObservedGeneration != 0 {
			t.Errorf("the RedisConnection in %s has a status: %+v", unwatched, rc.Status)
		}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: unwatched, Name: "cache"}, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
			t.Errorf("ConfigMap %s/cache: %v, want NotFound", unwatched, err)
		}
	})

	t.Run("the manager's credentials cannot read Secrets outside the watched namespaces", func(t *testing.T) {
		if err := asManager.Get(ctx, client.ObjectKey{Namespace: watched[0], Name: "redis-acl"}, &corev1.Secret{}); err != nil {
			t.Errorf("get Secret %s/redis-acl as the manager: %v, want allowed", watched[0], err)
		}
		for what, err := range map[string]error{
			"get Secret " + unwatched + "/redis-acl": asManager.Get(ctx, client.ObjectKey{Namespace: unwatched, Name: "redis-acl"}, &corev1.Secret{}),
			"list Secrets in " + unwatched:           asManager.List(ctx, &corev1.SecretList{}, client.InNamespace(unwatched)),
			"list Secrets cluster-wide":              asManager.List(ctx, &corev1.SecretList{}),
			"list ConfigMaps cluster-wide":           asManager.List(ctx, &corev1.ConfigMapList{}),
			"get ConfigMap " + unwatched + "/cache":  asManager.Get(ctx, client.ObjectKey{Namespace: unwatched, Name: "cache"}, &corev1.ConfigMap{}),
			"list RedisConnections cluster-wide":     asManager.List(ctx, &rconnv1.RedisConnectionList{}),
			"get Node (no nodeport ClusterRole)":     asManager.Get(ctx, client.ObjectKey{Name: "any"}, &corev1.Node{}),
		} {
			if !apierrors.IsForbidden(err) {
				t.Errorf("%s as the manager: %v, want Forbidden", what, err)
			}
		}
		// What kubectl auth can-i says for the ServiceAccount. The status is a subresource:
		// "redisconnections.rconn.dev/status" would ask about an object named "status".
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"patch", "redisconnections.rconn.dev", "--subresource=status", "-n", watched[0]}, "yes"},
			{[]string{"patch", "redisconnections.rconn.dev", "--subresource=status", "-n", unwatched}, "no"},
			{[]string{"patch", "redisconnections.rconn.dev", "-n", watched[0]}, "no"},
			{[]string{"update", "secrets", "-n", watched[0]}, "no"},
			{[]string{"delete", "secrets", "-n", watched[0]}, "yes"},
			{[]string{"get", "secrets", "-A"}, "no"},
		} {
			args := append([]string{"--kubeconfig", adminKC, "auth", "can-i", "--as=" + saUser.Name, "--as-group=system:serviceaccounts"}, c.args...)
			out, _ := exec.CommandContext(ctx, kubectl, args...).CombinedOutput()
			if got := strings.TrimSpace(string(out)); got != c.want {
				t.Errorf("kubectl auth can-i %s: %q, want %s", strings.Join(c.args, " "), got, c.want)
			}
		}
	})

	t.Run("docs/operating.md's egress NetworkPolicy is accepted by the API server and selects the manager's pods", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(root, "docs", "operating.md"))
		if err != nil {
			t.Fatal(err)
		}
		_, section, ok := strings.Cut(string(b), "\n## Egress NetworkPolicy\n")
		m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindStringSubmatch(section)
		if !ok || m == nil {
			t.Fatal("docs/operating.md has no ```yaml block under ## Egress NetworkPolicy")
		}
		var np networkingv1.NetworkPolicy
		if err := yaml.UnmarshalStrict([]byte(m[1]), &np); err != nil {
			t.Fatalf("the NetworkPolicy does not parse strictly: %v", err)
		}
		if np.APIVersion != "networking.k8s.io/v1" || np.Kind != "NetworkPolicy" {
			t.Fatalf("apiVersion/kind %s/%s", np.APIVersion, np.Kind)
		}
		if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}) || len(np.Spec.Egress) == 0 {
			t.Errorf("policyTypes %v with %d egress rules: want an Egress policy", np.Spec.PolicyTypes, len(np.Spec.Egress))
		}
		if np.Namespace != deploy.Namespace {
			t.Errorf("the policy is in namespace %q, the manager in %q", np.Namespace, deploy.Namespace)
		}
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(deploy.Spec.Template.Labels)) {
			t.Errorf("podSelector %v (%v) does not select the manager's pod labels %v", np.Spec.PodSelector, err, deploy.Spec.Template.Labels)
		}
		for _, r := range np.Spec.Egress {
			for _, p := range r.To {
				if p.IPBlock != nil && p.IPBlock.CIDR == "0.0.0.0/0" && !slices.Contains(p.IPBlock.Except, "169.254.0.0/16") {
					t.Errorf("ipBlock %v allows the metadata endpoint", p.IPBlock)
				}
			}
		}
		// Server-side validation, without creating it.
		if err := admin.Create(ctx, &np, client.DryRunAll); err != nil {
			t.Errorf("the API server rejects the NetworkPolicy: %v", err)
		}
	})

	t.Run("the manager needed nothing beyond the namespaced Roles", func(t *testing.T) {
		if mgr.Exited() {
			t.Errorf("the manager exited:\n%s", managerLog())
		}
		for _, l := range strings.Split(mgr.Log(), "\n") {
			if strings.Contains(strings.ToLower(l), "forbidden") || strings.Contains(l, "panic") || strings.Contains(l, "unknown namespace") {
				t.Errorf("manager log: %s", l)
			}
		}
	})
}

// renderKustomization runs kubectl kustomize on a directory of the repository.
func renderKustomization(t *testing.T, ctx context.Context, kubectl, root, dir string) []*unstructured.Unstructured {
	t.Helper()
	cmd := exec.CommandContext(ctx, kubectl, "kustomize", dir)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
	}
	return kubetest.DecodeObjects(t, out)
}

func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return kubetest.DecodeObjects(t, b)
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
