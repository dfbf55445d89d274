package helm

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
)

func TestChartLint(t *testing.T) {
	for _, values := range []string{"", "ci/namespaced-values.yaml"} {
		args := []string{"lint", "--strict", chartDir}
		if values != "" {
			args = append(args, "-f", filepath.Join(chartDir, values))
		}
		if out, err := run(context.Background(), t, nil, helmBin(t), args...); err != nil {
			t.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func renderedDeployment(t *testing.T, args ...string) (*appsv1.Deployment, []string) {
	t.Helper()
	objs := helmTemplate(t, args...)
	u := find(objs, "Deployment", "rconn-system", "rconn-controller-manager")
	if u == nil {
		t.Fatal("no Deployment rconn-system/rconn-controller-manager rendered")
	}
	var d appsv1.Deployment
	kubetest.FromUnstructured(t, u, &d)
	return &d, d.Spec.Template.Spec.Containers[0].Args
}

// The default values: a cluster-wide, hardened manager with leader election, the CRD as
// controller-gen generated it (kept on uninstall), and a metrics Service that selects it.
func TestChartTemplateDefault(t *testing.T) {
	objs := helmTemplate(t)
	d, args := renderedDeployment(t)
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != "ghcr.io/rconn-dev/rconn-manager:dev" {
		t.Errorf("image %q, want the repository with the chart's appVersion", c.Image)
	}
	if !slices.Contains(args, "--leader-elect") || slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--watch-namespaces") }) {
		t.Errorf("args %v: want --leader-elect and no --watch-namespaces", args)
	}
	// Loopback stays denied unless asked for (it reaches the manager's own pod).
	if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--allow-loopback") }) {
		t.Errorf("args %v: --allow-loopback by default", args)
	}
	if _, on := renderedDeployment(t, "--set", "manager.allowLoopback=true"); !slices.Contains(on, "--allow-loopback") {
		t.Errorf("manager.allowLoopback=true: args %v, want --allow-loopback", on)
	}
	ps, sc := d.Spec.Template.Spec.SecurityContext, c.SecurityContext
	if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v: want runAsNonRoot and seccomp RuntimeDefault", ps)
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container securityContext %+v: want a read-only root filesystem, no privilege escalation, all capabilities dropped", sc)
	}
	if c.Resources.Limits.Memory().String() != "256Mi" {
		t.Errorf("memory limit %s", c.Resources.Limits.Memory())
	}

	crd := find(objs, "CustomResourceDefinition", "", "redisconnections.rconn.dev")
	if crd == nil {
		t.Fatal("no CRD rendered")
	}
	if crd.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
		t.Errorf("CRD annotations %v: want helm.sh/resource-policy: keep", crd.GetAnnotations())
	}
	gen := kubetest.DecodeObjects(t, readFile(t, "config/crd/bases/rconn.dev_redisconnections.yaml"))
	if !reflect.DeepEqual(crd.Object["spec"], gen[0].Object["spec"]) {
		t.Error("the chart's CRD spec differs from config/crd/bases (run make manifests)")
	}

	svc := find(objs, "Service", "rconn-system", "rconn-controller-manager-metrics-service")
	if svc == nil {
		t.Fatal("no metrics Service")
	}
	var s corev1.Service
	kubetest.FromUnstructured(t, svc, &s)
	if !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) || s.Spec.Ports[0].Port != 8443 {
		t.Errorf("Service selector %v / port %d does not reach the pod labels %v on 8443", s.Spec.Selector, s.Spec.Ports[0].Port, d.Spec.Template.Labels)
	}
	for _, kind := range []string{"PodDisruptionBudget", "ServiceMonitor", "PrometheusRule", "ConfigMap"} {
		for _, u := range objs {
			if u.GetKind() == kind {
				t.Errorf("%s %s rendered by default", kind, u.GetName())
			}
		}
	}
}

// The namespaced values (charts/rconn/ci/namespaced-values.yaml): Roles in the watched
// namespaces only, the flag that matches them, spread, PDB and GOMEMLIMIT as asked.
func TestChartTemplateNamespaced(t *testing.T) {
	values := []string{"-f", filepath.Join(chartDir, "ci/namespaced-values.yaml")}
	objs := helmTemplate(t, values...)
	d, args := renderedDeployment(t, values...)
	if !slices.Contains(args, "--watch-namespaces=team-a,team-b") {
		t.Errorf("args %v: want --watch-namespaces=team-a,team-b", args)
	}
	if find(objs, "ClusterRole", "", "rconn-manager-role") != nil || find(objs, "ClusterRoleBinding", "", "rconn-manager-rolebinding") != nil {
		t.Error("namespaced mode renders the cluster-wide manager role")
	}
	for _, ns := range []string{"team-a", "team-b"} {
		if find(objs, "Role", ns, "rconn-manager-role") == nil || find(objs, "RoleBinding", ns, "rconn-manager-rolebinding") == nil {
			t.Errorf("no manager Role/RoleBinding in %s", ns)
		}
	}
	if *d.Spec.Replicas != 2 {
		t.Errorf("replicas %d", *d.Spec.Replicas)
	}
	pod := labels.Set(d.Spec.Template.Labels)
	tsc := d.Spec.Template.Spec.TopologySpreadConstraints
	if len(tsc) != 1 || tsc[0].LabelSelector == nil {
		t.Fatalf("topologySpreadConstraints %+v: want one, with the pod's labelSelector added", tsc)
	}
	if sel, err := metav1.LabelSelectorAsSelector(tsc[0].LabelSelector); err != nil || !sel.Matches(pod) {
		t.Errorf("spread labelSelector %v does not select the pods (%v)", tsc[0].LabelSelector, err)
	}
	pdb := find(objs, "PodDisruptionBudget", "rconn-system", "rconn-controller-manager")
	if pdb == nil {
		t.Fatal("no PodDisruptionBudget")
	}
	if v, _ := unstructuredInt(pdb.Object, "spec", "minAvailable"); v != 1 {
		t.Errorf("PDB minAvailable %v", pdb.Object["spec"])
	}
	env := d.Spec.Template.Spec.Containers[0].Env
	if !slices.Contains(env, corev1.EnvVar{Name: "GOMEMLIMIT", Value: "230MiB"}) {
		t.Errorf("env %v: want GOMEMLIMIT=230MiB", env)
	}
}

func unstructuredInt(obj map[string]any, path ...string) (int64, bool) {
	cur := any(obj)
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return 0, false
		}
		cur = m[p]
	}
	switch v := cur.(type) {
	case int64:
		return v, true
	case float64:
		return int64(v), true
	}
	return 0, false
}

// The chart's RBAC is config/rbac's: its copies under files/ are byte-identical to the sources
// (make manifests refreshes them), and the rendered Roles, ClusterRoles and bindings equal what
// kustomize renders for the same install, cluster-wide (config/default) and namespaced
// (config/namespaced with nodeport). TestHelmInstall checks the namespaced Roles against the
// generated ClusterRole through the API server's discovery, as test/e2e does for kustomize.
func TestChartRBACIsTheGeneratedRBAC(t *testing.T) {
	copies := map[string]string{
		"files/crd.yaml":              "config/crd/bases/rconn.dev_redisconnections.yaml",
		"files/admission-policy.yaml": "config/admission/policy.yaml",
	}
	rbacCopies, err := filepath.Glob(filepath.Join(repoRoot(t), chartDir, "files", "rbac", "*.yaml"))
	if err != nil || len(rbacCopies) < 6 {
		t.Fatalf("charts/rconn/files/rbac holds %d files (%v): run make manifests", len(rbacCopies), err)
	}
	for _, p := range rbacCopies {
		copies["files/rbac/"+filepath.Base(p)] = "config/rbac/" + filepath.Base(p)
	}
	for cp, src := range copies {
		if !bytes.Equal(readFile(t, filepath.Join(chartDir, cp)), readFile(t, src)) {
			t.Errorf("%s/%s differs from %s: run make manifests (hack/chart-sync.sh) and commit", chartDir, cp, src)
		}
	}

	compare := func(what string, chart, kust map[string]string) {
		t.Helper()
		for k, v := range kust {
			if got, ok := chart[k]; !ok {
				t.Errorf("%s: the chart has no %s (kustomize has it)", what, k)
			} else if got != v {
				t.Errorf("%s: %s differs:\n chart     %s\n kustomize %s", what, k, got, v)
			}
		}
		for k := range chart {
			if _, ok := kust[k]; !ok {
				t.Errorf("%s: the chart renders %s, kustomize does not", what, k)
			}
		}
	}
	def, kDef := helmTemplate(t), kustomize(t, "config/default")
	compare("cluster-wide roles", rbacObjects(t, def), rbacObjects(t, kDef))
	compare("cluster-wide bindings", bindings(t, def), bindings(t, kDef))

	ns := helmTemplate(t, "--set", "watchNamespaces={team-a,team-b}", "--set", "rbac.nodes=true")
	kNS := append(kustomize(t, "config/namespaced"), kustomize(t, "config/namespaced/nodeport")...)
	compare("namespaced roles", rbacObjects(t, ns), rbacObjects(t, kNS))
	compare("namespaced bindings", bindings(t, ns), bindings(t, kNS))

	for _, name := range []string{"rconn-redisconnection-editor-role", "rconn-redisconnection-viewer-role"} {
		c, k := find(def, "ClusterRole", "", name), find(kDef, "ClusterRole", "", name)
		if c == nil || k == nil {
			t.Fatalf("ClusterRole %s: chart %v, kustomize %v", name, c != nil, k != nil)
		}
		for key, v := range k.GetLabels() {
			if strings.HasPrefix(key, "rbac.authorization.k8s.io/aggregate-to-") && c.GetLabels()[key] != v {
				t.Errorf("ClusterRole %s: label %s=%q, kustomize has %q", name, key, c.GetLabels()[key], v)
			}
		}
	}
}

// Bad values fail before anything reaches the cluster, saying which value and why.
func TestChartBadValues(t *testing.T) {
	for _, c := range []struct {
		set  []string
		want string
	}{
		{[]string{"replicas=0"}, "at '/replicas': minimum: got 0, want 1"},
		{[]string{"replica=2"}, "additional properties 'replica' not allowed"},
		{[]string{"watchNamespaces={Team_A}"}, "at '/watchNamespaces/0': 'Team_A' does not match pattern"},
		{[]string{"manager.logLevel=loud"}, "at '/manager/logLevel': value must be one of 'debug', 'info', 'error'"},
		{[]string{"manager.maxRedisTimeout=soon"}, "at '/manager/maxRedisTimeout': 'soon' does not match pattern"},
		{[]string{"image.digest=latest"}, "at '/image/digest'"},
		{[]string{"metrics.port=70000"}, "at '/metrics/port': maximum: got 70,000, want 65,535"},
		{[]string{"replicas=2", "leaderElection.enabled=false"}, "replicas > 1 needs leaderElection.enabled=true"},
		{[]string{"podDisruptionBudget.enabled=true", "podDisruptionBudget.maxUnavailable=1"}, "set only one of minAvailable and maxUnavailable"},
		{[]string{"serviceAccount.create=false"}, "serviceAccount.name is required when serviceAccount.create is false"},
		{[]string{"prometheusRule.enabled=true"}, "the cluster has no monitoring.coreos.com/v1 PrometheusRule"},
	} {
		args := []string{"template", "rconn", chartDir}
		for _, s := range c.set {
			args = append(args, "--set", s)
		}
		out, err := run(context.Background(), t, nil, helmBin(t), args...)
		if err == nil {
			t.Errorf("--set %v: rendered %d bytes, want an error saying %q", c.set, len(out), c.want)
		} else if !strings.Contains(err.Error(), c.want) {
			t.Errorf("--set %v: error %q, want it to say %q", c.set, err, c.want)
		}
	}
}

func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
