package helm

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/world/certs"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/managertest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
)

// TestHelmInstall installs the chart with helm into a real API server (namespaced mode), checks
// the installed Roles against the generated ClusterRole through the API server's discovery, and
// runs the manager binary the way the installed Deployment says (its ServiceAccount, its args,
// its environment): RedisConnections in the watched namespaces become Ready (a Redis Cluster
// and a TLS server), one elsewhere is ignored, and every metric the alerts and the dashboard use
// is in what that manager exports. Then helm upgrade to cluster-wide mode (the manager restarted
// from the upgraded Deployment reconciles the other namespace too) and helm uninstall (the CRD
// and the RedisConnections stay).
func TestHelmInstall(t *testing.T) { //nolint:gocyclo // install, upgrade, uninstall in order, counted with their t.Run bodies; to split with #15 item 8
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	env, err := kubetest.NewEnvironment()
	if err != nil {
		t.Fatal(err)
	}
	env.CRDDirectoryPaths, env.ErrorIfCRDPathMissing = nil, false // helm installs the CRD
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting the control plane: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	admin, err := client.New(cfg, client.Options{Scheme: kubetest.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(admin.Scheme()); err != nil {
		t.Fatal(err)
	}
	adminKC := kubetest.UserKubeconfig(t, env, envtest.User{Name: "rconn-helm-admin", Groups: []string{"system:masters"}})
	const system, unwatched = "rconn-system", "other"
	watched := []string{"team-a", "team-b"}
	for _, ns := range append([]string{system, unwatched}, watched...) {
		if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	helm := func(args ...string) string {
		t.Helper()
		out, err := run(ctx, t, nil, helmBin(t), append(args, "--kubeconfig", adminKC)...)
		if err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	// The test's Redis servers listen on loopback, which the manager denies by default.
	helm("install", "rconn", chartDir, "-n", system, "--set", "watchNamespaces={"+strings.Join(watched, ",")+"}", "--set", "manager.allowLoopback=true")

	crd := &apiextensionsv1.CustomResourceDefinition{}
	kubetest.Poll(t, ctx, 30*time.Second, "the CRD established", nil, func() error {
		if err := admin.Get(ctx, client.ObjectKey{Name: "redisconnections.rconn.dev"}, crd); err != nil {
			return err
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("conditions %v", crd.Status.Conditions)
	})

	t.Run("the installed Roles are the generated ClusterRole's namespaced rules", func(t *testing.T) {
		gen := kubetest.DecodeObjects(t, readFile(t, "config/rbac/role.yaml"))
		var role rbacv1.ClusterRole
		kubetest.FromUnstructured(t, gen[0], &role)
		mapper := admin.RESTMapper()
		var nsRules, clusterRules []rbacv1.PolicyRule
		for _, r := range role.Rules {
			n, c := kubetest.SplitRuleByScope(t, mapper, r)
			nsRules, clusterRules = append(nsRules, n...), append(clusterRules, c...)
		}
		for _, ns := range watched {
			var r rbacv1.Role
			if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "rconn-manager-role"}, &r); err != nil {
				t.Fatal(err)
			}
			if got, want := kubetest.NormalizeRules(r.Rules), kubetest.NormalizeRules(nsRules); got != want {
				t.Errorf("Role %s/rconn-manager-role:\n got %s\nwant %s", ns, got, want)
			}
		}
		if len(clusterRules) == 0 {
			t.Error("the generated ClusterRole has no cluster-scoped rule: the chart's split (nodes) is stale")
		}
		var crs rbacv1.ClusterRoleList
		if err := admin.List(ctx, &crs); err != nil {
			t.Fatal(err)
		}
		for _, cr := range crs.Items {
			for _, rule := range cr.Rules {
				if strings.HasPrefix(cr.Name, "rconn-") && slices.Contains(rule.APIGroups, "") && (slices.Contains(rule.Resources, "secrets") || slices.Contains(rule.Resources, "configmaps")) {
					t.Errorf("namespaced install: ClusterRole %s grants %v on %v", cr.Name, rule.Verbs, rule.Resources)
				}
			}
		}
	})

	// Redis for the RedisConnections: a 3-master cluster, and a TLS server (certificate metrics).
	cluster := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3})
	tlsM := redistest.NewTLS(t, redistest.TLSOptions{})
	tlsServer := redistest.StartServer(t, redistest.ServerOptions{TLS: tlsM})
	clientCert, err := tlsM.CA.Issue(certs.Request{CommonName: "app", Client: true, NotAfter: time.Now().Add(30 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	create := func(ns string) {
		t.Helper()
		objs := []client.Object{
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "redis-tls", Namespace: ns}, Type: corev1.SecretTypeTLS,
				Data: map[string][]byte{"ca.crt": tlsM.CA.CertPEM, "tls.crt": clientCert.CertPEM, "tls.key": clientCert.KeyPEM}},
			&rconnv1.RedisConnection{ObjectMeta: metav1.ObjectMeta{Name: "cache", Namespace: ns}, Spec: rconnv1.RedisConnectionSpec{
				RootNodes: []rconnv1.RootNode{{URL: rconnv1.RedisURL("redis://" + cluster.Nodes[0].Addr())}}}},
			&rconnv1.RedisConnection{ObjectMeta: metav1.ObjectMeta{Name: "tls", Namespace: ns}, Spec: rconnv1.RedisConnectionSpec{
				Mode:      rconnv1.ModeStandalone,
				RootNodes: []rconnv1.RootNode{{URL: rconnv1.RedisURL("rediss://" + tlsServer.Addr())}},
				Defaults:  &rconnv1.NodeDefaults{TLS: &rconnv1.TLSConfig{Enabled: true, SecretRef: &rconnv1.LocalSecretReference{Name: "redis-tls"}}}}},
		}
		for _, o := range objs {
			if err := admin.Create(ctx, o); err != nil {
				t.Fatalf("creating %T %s/%s: %v", o, ns, o.GetName(), err)
			}
		}
	}
	create(unwatched)
	create(watched[0])

	mgr := startInstalledManager(t, ctx, env, admin, system)
	log := func() string { return tail(mgr.Log(), 3000) }
	kubetest.WaitReady(t, ctx, admin, watched[0], "cache", log)
	kubetest.WaitReady(t, ctx, admin, watched[0], "tls", log)

	t.Run("the outputs carry the Service Binding keys", func(t *testing.T) {
		var sec corev1.Secret
		if err := admin.Get(ctx, client.ObjectKey{Namespace: watched[0], Name: "cache"}, &sec); err != nil {
			t.Fatal(err)
		}
		// The nodes announce reachable addresses here, so nothing is mapped: the seed is the root node.
		if got := string(sec.Data["cluster.nodes"]); got != cluster.Nodes[0].Addr() {
			t.Errorf("cluster.nodes %q, want the root node %s", got, cluster.Nodes[0].Addr())
		}
		if sec.Type != "servicebinding.io/redis" || string(sec.Data["type"]) != "redis" {
			t.Errorf("binding Secret type %q / %q", sec.Type, sec.Data["type"])
		}
	})

	t.Run("a RedisConnection outside the watched namespaces is ignored", func(t *testing.T) {
		rc := &rconnv1.RedisConnection{}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: unwatched, Name: "cache"}, rc); err != nil {
			t.Fatal(err)
		}
		if len(rc.Status.Conditions) != 0 {
			t.Errorf("it has a status: %+v", rc.Status.Conditions)
		}
	})

	t.Run("every metric the alerts and the dashboard use is exported by the manager", func(t *testing.T) {
		mfs := scrapeUntil(t, ctx, mgr, "rconn_certificate_expiry_timestamp_seconds", "rconn_slots_covered", "rconn_node_ping_seconds",
			"controller_runtime_reconcile_time_seconds", "workqueue_depth")
		exported := map[string]bool{}
		for name, mf := range mfs {
			exported[name] = true
			if mf.GetType() == dto.MetricType_HISTOGRAM || mf.GetType() == dto.MetricType_SUMMARY {
				exported[name+"_bucket"], exported[name+"_count"], exported[name+"_sum"] = true, true, true
			}
		}
		for _, q := range queries(t) {
			for _, n := range metricNames(t, q) {
				if !exported[n] {
					t.Errorf("%s uses %s, which the manager does not export", q.where, n)
				}
			}
		}
		bi := mfs["rconn_build_info"]
		if bi == nil || len(bi.GetMetric()) != 1 || label(bi.GetMetric()[0], "version") != "dev" {
			t.Errorf("rconn_build_info %v: want one series with version=\"dev\" (a build without -ldflags)", bi)
		}
		if wq := mfs["workqueue_depth"]; wq == nil || !slices.ContainsFunc(wq.GetMetric(), func(m *dto.Metric) bool { return label(m, "name") == "redisconnection" }) {
			t.Errorf("workqueue_depth has no name=\"redisconnection\" series (the dashboard selects it): %v", wq)
		}
		if re := mfs["controller_runtime_reconcile_total"]; re == nil || !slices.ContainsFunc(re.GetMetric(), func(m *dto.Metric) bool { return label(m, "controller") == "redisconnection" }) {
			t.Errorf("controller_runtime_reconcile_total has no controller=\"redisconnection\" series (the alerts select it)")
		}
	})
	mgr.Stop()
	if t.Failed() {
		t.Logf("manager log:\n%s", log())
	}

	t.Run("helm upgrade to cluster-wide: the manager reconciles every namespace", func(t *testing.T) {
		helm("upgrade", "rconn", chartDir, "-n", system, "--reset-values", "--set", "manager.allowLoopback=true") // the default values (all namespaces; without a value helm upgrade reuses the old ones), and loopback for the test's Redis
		if err := admin.Get(ctx, client.ObjectKey{Name: "rconn-manager-role"}, &rbacv1.ClusterRole{}); err != nil {
			t.Errorf("ClusterRole rconn-manager-role after the upgrade: %v", err)
		}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: watched[0], Name: "rconn-manager-role"}, &rbacv1.Role{}); !apierrors.IsNotFound(err) {
			t.Errorf("Role %s/rconn-manager-role after the upgrade: %v, want NotFound", watched[0], err)
		}
		mgr := startInstalledManager(t, ctx, env, admin, system)
		kubetest.WaitReady(t, ctx, admin, unwatched, "cache", func() string { return tail(mgr.Log(), 3000) })
		mgr.Stop()
	})

	t.Run("helm uninstall keeps the CRD and the RedisConnections", func(t *testing.T) {
		helm("uninstall", "rconn", "-n", system)
		if err := admin.Get(ctx, client.ObjectKey{Namespace: system, Name: "rconn-controller-manager"}, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
			t.Errorf("Deployment after uninstall: %v, want NotFound", err)
		}
		if err := admin.Get(ctx, client.ObjectKey{Name: "redisconnections.rconn.dev"}, crd); err != nil || !crd.DeletionTimestamp.IsZero() {
			t.Errorf("CRD after uninstall: %v (deleting: %v), want kept", err, !crd.DeletionTimestamp.IsZero())
		}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: watched[0], Name: "cache"}, &rconnv1.RedisConnection{}); err != nil {
			t.Errorf("RedisConnection after uninstall: %v", err)
		}
	})
}

// startInstalledManager runs the manager binary as the installed Deployment describes it: as its
// ServiceAccount (a client certificate with the ServiceAccount's user name and groups: RBAC
// matches ServiceAccount subjects by that name), with its args and environment. managertest
// replaces the listen addresses with loopback ports and turns leader election off (outside a pod
// controller-runtime cannot find the Lease's namespace); --no-dns keeps the test hermetic.
func startInstalledManager(t *testing.T, ctx context.Context, env *envtest.Environment, admin client.Client, ns string) *managertest.Manager {
	t.Helper()
	var d appsv1.Deployment
	if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "rconn-controller-manager"}, &d); err != nil {
		t.Fatal(err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	var args []string
	for _, a := range c.Args {
		name, _, _ := strings.Cut(a, "=")
		switch name {
		case "--leader-elect", "--metrics-bind-address", "--metrics-secure", "--health-probe-bind-address":
		default:
			args = append(args, a)
		}
	}
	var vars []string
	for _, e := range c.Env {
		vars = append(vars, e.Name+"="+e.Value)
	}
	sa := d.Spec.Template.Spec.ServiceAccountName
	kc := kubetest.UserKubeconfig(t, env, envtest.User{Name: "system:serviceaccount:" + ns + ":" + sa,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns}})
	return managertest.StartBinary(t, managertest.Build(t), kc, vars, append(args, "--no-dns")...)
}

// scrapeUntil scrapes the manager until every named family is present (the TLS and cluster
// RedisConnections produce them after their first probes).
func scrapeUntil(t *testing.T, ctx context.Context, m *managertest.Manager, names ...string) map[string]*dto.MetricFamily {
	t.Helper()
	var mfs map[string]*dto.MetricFamily
	kubetest.Poll(t, ctx, 60*time.Second, "metric families "+strings.Join(names, ", "), func() string { return tail(m.Log(), 3000) }, func() error {
		var err error
		if mfs, err = m.Metrics(); err != nil {
			return err
		}
		var missing []string
		for _, n := range names {
			if mfs[n] == nil {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("missing %v", missing)
		}
		return nil
	})
	return mfs
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
