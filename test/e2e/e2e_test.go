// Package e2e drives rconn the way a user does: the real manager binary as a separate process
// (with only its generated ClusterRole), kubectl apply of the demo sample, kubectl get/wait on
// what users read (printer columns, conditions, rendered keys), and the real example app on
// kubelet-style mounts, following a moved node. The world (control plane, Redis Cluster,
// Services, EndpointSlices) is the one `make demo` uses: internal/demo.
package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/rconn-dev/redis-connection-operator/internal/demo"
	"github.com/rconn-dev/redis-connection-operator/internal/tb"
	"github.com/rconn-dev/redis-connection-operator/internal/testing/npmtest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/managertest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

func TestMain(m *testing.M) {
	tb.SkipPackage("the rig, kube-apiserver and redis-server")
	ctrllog.SetLogger(logr.Discard())
	nettest.RunWithoutDNS(m)
}

const sample = "config/samples/rconn_v1_redisconnection_demo_loadbalancer.yaml"

func TestEndToEnd(t *testing.T) { //nolint:gocyclo,funlen // ordered steps on one world, counted with their t.Run bodies; split by #15 item 8
	t.Parallel() // its own control plane, processes and addresses: overlaps the other e2e tests' waits
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	within := func(d time.Duration) context.Context {
		c, cancel := context.WithTimeout(ctx, d)
		t.Cleanup(cancel)
		return c
	}
	dir := t.TempDir()
	w := demo.Start(t, demo.Options{Dir: dir})
	manager, app, err := demo.Build(w.Root, filepath.Join(dir, "bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Publish(within(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := w.InstallCRD(within(90 * time.Second)); err != nil {
		t.Fatal(err)
	}
	mgr := w.StartManager(t, manager)
	// After every step: the manager needed nothing beyond its ClusterRole.
	t.Cleanup(func() {
		for _, l := range strings.Split(mgr.Log(), "\n") {
			if strings.Contains(l, "forbidden") || strings.Contains(l, "panic") {
				t.Errorf("manager log: %s", l)
			}
		}
	})
	metricsURL := "http://" + mgr.MetricsAddr + "/metrics"
	// waitMetric scrapes the manager's /metrics until every want line is present and no
	// gone substring is (bounded by 60s).
	waitMetric := func(want []string, gone []string) {
		t.Helper()
		ctx := within(60 * time.Second)
		var text string
		for {
			if resp, err := http.Get(metricsURL); err == nil {
				b, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				text = string(b)
				ok := true
				for _, w := range want {
					ok = ok && strings.Contains(text, w+"\n")
				}
				for _, g := range gone {
					ok = ok && !strings.Contains(text, g)
				}
				if ok {
					return
				}
			}
			select {
			case <-ctx.Done():
				var rconn []string
				for _, l := range strings.Split(text, "\n") {
					if strings.HasPrefix(l, "rconn_") {
						rconn = append(rconn, l)
					}
				}
				t.Fatalf("metrics never had %q without %q; rconn series:\n%s", want, gone, strings.Join(rconn, "\n"))
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	kubectl := func(args ...string) string {
		t.Helper()
		out, err := w.Kubectl(within(2*time.Minute), args...)
		if err != nil {
			t.Fatalf("%v\nmanager log (%s):\n%s", err, mgr.LogPath, tail(strings.Split(mgr.Log(), "\n"), 30))
		}
		return out
	}
	ns := []string{"-n", demo.Namespace}

	t.Run("a RedisConnection whose Secret is missing says so, and recovers when it appears", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(w.Root, sample))
		if err != nil {
			t.Fatal(err)
		}
		broken := strings.NewReplacer("name: demo\n", "name: late-secret\n", demo.ACLSecret, "late-acl").Replace(string(b))
		p := filepath.Join(dir, "late.yaml")
		if err := os.WriteFile(p, []byte(broken), 0o644); err != nil {
			t.Fatal(err)
		}
		kubectl(append(ns, "apply", "-f", p)...)
		kubectl(append(ns, "wait", "--for=jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}=SecretNotFound", "--timeout=60s", "rconn/late-secret")...)
		got := kubectl(append(ns, "get", "rconn", "late-secret")...)
		if !regexp.MustCompile(`late-secret\s+False\s+SecretNotFound`).MatchString(got) {
			t.Fatalf("kubectl get shows:\n%s", got)
		}
		msg := kubectl(append(ns, "get", "rconn", "late-secret", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].message}`)...)
		if !strings.Contains(msg, "late-acl") {
			t.Fatalf("the message should name the missing Secret: %q", msg)
		}
		kubectl(append(ns, "create", "secret", "generic", "late-acl", "--from-literal=username="+demo.AppUser, "--from-literal=password="+w.Password)...)
		kubectl(append(ns, "wait", "--for=condition=Ready", "--timeout=60s", "rconn/late-secret")...)
		kubectl(append(ns, "delete", "rconn", "late-secret", "--wait=true", "--timeout=60s")...)
	})

	kubectl(append(ns, "apply", "-f", sample)...)
	kubectl(append(ns, "wait", "--for=condition=Ready", "--timeout=90s", "rconn/demo")...)

	t.Run("printer columns", func(t *testing.T) {
		got := kubectl(append(ns, "get", "rconn", "demo")...)
		if !regexp.MustCompile(`(?m)^NAME\s+READY\s+REASON\s+SHARDS\s+NODES\s+AGE\s*$`).MatchString(got) ||
			!regexp.MustCompile(`(?m)^demo\s+True\s+Ready\s+3\s+6\s+\S+\s*$`).MatchString(got) {
			t.Errorf("kubectl get rconn:\n%s", got)
		}
		got = kubectl(append(ns, "get", "rconn", "demo", "-o", "wide")...)
		if !regexp.MustCompile(`(?m)^demo\s+True\s+Ready\s+3\s+6\s+6\s+Cluster\s+\S+\s*$`).MatchString(got) {
			t.Errorf("kubectl get rconn -o wide:\n%s", got)
		}
	})

	t.Run("conditions", func(t *testing.T) {
		got := kubectl(append(ns, "get", "rconn", "demo", "-o", `jsonpath={range .status.conditions[*]}{.type}={.status}/{.reason};{end}`)...)
		for _, want := range []string{"Ready=True/Ready", "CredentialsResolved=True/Resolved", "AddressMapResolved=True/Resolved",
			"TopologyDiscovered=True/Discovered", "NodesHealthy=True/AllHealthy", "ConfigRendered=True/Rendered"} {
			if !strings.Contains(got, want+";") {
				t.Errorf("conditions %q lack %s", got, want)
			}
		}
	})

	nodeSeries := func(metric, announced string) string {
		return metric + `{name="demo",namespace="` + demo.Namespace + `",node="` + announced + `"}`
	}
	t.Run("metrics", func(_ *testing.T) {
		want := []string{`rconn_ready{name="demo",namespace="` + demo.Namespace + `"} 1`, `rconn_slots_covered{name="demo",namespace="` + demo.Namespace + `"} 16384`}
		for _, n := range w.Redis.Nodes {
			want = append(want, nodeSeries("rconn_node_up", n.Announced)+" 1")
		}
		waitMetric(want, nil)
	})

	t.Run("rendered ConfigMap and Secret", func(t *testing.T) {
		raw := kubectl(append(ns, "get", "configmap", "demo", "-o", `jsonpath={.data.config\.json}`)...)
		cfg, err := client.LoadConfig([]byte(raw))
		if err != nil {
			t.Fatalf("config.json does not load: %v\n%s", err, raw)
		}
		if len(cfg.NodeAddressMap) != 6 {
			t.Errorf("nodeAddressMap has %d entries, want 6: %v", len(cfg.NodeAddressMap), cfg.NodeAddressMap)
		}
		for i, n := range w.Redis.Nodes {
			if got, want := cfg.NodeAddressMap[n.Announced], (client.MappedAddress{Host: demo.LoadBalancerIP(i), Port: 6379}); got != want {
				t.Errorf("nodeAddressMap[%s] = %v, want %v", n.Announced, got, want)
			}
		}
		if strings.Contains(raw, w.Password) {
			t.Error("config.json contains the password")
		}
		var sec struct {
			Type string            `json:"type"`
			Data map[string]string `json:"data"`
		}
		if err := json.Unmarshal([]byte(kubectl(append(ns, "get", "secret", "demo", "-o", "json")...)), &sec); err != nil {
			t.Fatal(err)
		}
		var keys []string
		for k := range sec.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if want := []string{"client-name", "cluster.max-redirects", "cluster.nodes", "config.sha256", "host", "password", "port", "provider", "rconn-token", "type", "username"}; !slices.Equal(keys, want) || sec.Type != "servicebinding.io/redis" {
			t.Errorf("Secret type %s keys %v, want servicebinding.io/redis %v", sec.Type, keys, want)
		}
	})

	t.Run("the example app serves every shard through the map and follows a moved node", func(t *testing.T) {
		m := w.Mount(t, within(30*time.Second), "demo")
		appProc := w.StartApp(t, app, m.ConfigDir, m.SecretDir, nil)
		good := func(l string) bool {
			return strings.Contains(l, "msg=round") && strings.Contains(l, `ok="3/3 shards"`)
		}
		if _, err := appProc.WaitLine(within(60*time.Second), 0, "a round on all shards", good); err != nil {
			t.Fatal(err)
		}
		for _, l := range appProc.Lines() {
			if good(l) {
				for i := range 3 {
					if !strings.Contains(l, w.Redis.Nodes[i].Announced+"->"+demo.LoadBalancerIP(i)+":6379") {
						t.Errorf("master %d not served through its load balancer: %s", i, l)
					}
				}
				break
			}
		}

		mark := len(appProc.Lines())
		oldAddr, newAddr, err := w.MoveNode(within(60*time.Second), 1)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-m.Updates():
		case <-within(60 * time.Second).Done():
			t.Fatal("the ConfigMap was not re-rendered after the move")
		}
		raw := kubectl(append(ns, "get", "configmap", "demo", "-o", `jsonpath={.data.config\.json}`)...)
		if !strings.Contains(raw, newAddr) {
			t.Fatalf("config.json lacks %s:\n%s", newAddr, raw)
		}
		if _, err := appProc.WaitLine(within(60*time.Second), mark, "a round through the moved node's new address", func(l string) bool {
			return good(l) && strings.Contains(l, newAddr+"->"+demo.LoadBalancerIP(1)+":6379")
		}); err != nil {
			t.Fatal(err)
		}
		if appProc.Exited() {
			t.Fatal("the app exited")
		}
		// The moved node is health-checked under its new address; the old series is gone.
		waitMetric([]string{nodeSeries("rconn_node_up", newAddr) + " 1"}, []string{nodeSeries("rconn_node_up", oldAddr)})
	})

	t.Run("node-redis createCluster on config.json, as docs/consuming.md shows", func(t *testing.T) {
		dir, err := npmtest.InstallClients(within(5 * time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		snippet, err := npmtest.DocsSnippet(w.Root, nodeRedisHeading)
		if err != nil {
			t.Fatal(err)
		}
		script, err := npmtest.WriteScript(dir, t.TempDir(), "e2e-app.mjs", snippet+nodeHarness)
		if err != nil {
			t.Fatal(err)
		}
		m := w.Mount(t, within(30*time.Second), "demo")
		var keys []string
		for _, slot := range []int{0, 8000, 16000} { // one per shard
			keys = append(keys, cluster.KeyForSlot(slot))
		}
		cmd := exec.CommandContext(within(time.Minute), "node", append([]string{script}, keys...)...)
		cmd.Env = append(os.Environ(), "RCONN_CONFIG_DIR="+m.ConfigDir, "RCONN_SECRET_DIR="+m.SecretDir)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "node-redis ok 3") {
			t.Fatalf("node %s: %v\n%s", script, err, out)
		}
		// The values are in the cluster (read through the Go client, on the masters' real ports).
		for _, k := range keys {
			master := w.Redis.Nodes[0]
			for _, n := range w.Redis.Masters() {
				c := n.Client()
				if got, _ := c.Do(within(10*time.Second), "CLUSTER", "COUNTKEYSINSLOT", cluster.Slot(k)).Int(); got > 0 {
					master = n
				}
				_ = c.Close()
			}
			c := master.Client()
			v, err := c.Get(within(10*time.Second), k).Result()
			_ = c.Close()
			if err != nil || v != "from-node-redis" {
				t.Errorf("%s = %q, %v", k, v, err)
			}
		}
	})

}

func tail(lines []string, n int) string {
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestDeployManifests applies what `make deploy` applies to its own control plane (undeploy
// removes the CRD, and every RedisConnection with it, so it shares no world with TestEndToEnd).
func TestDeployManifests(t *testing.T) {
	t.Parallel() // its own control plane, processes and addresses: overlaps the other e2e tests' waits
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	within := func(d time.Duration) context.Context {
		c, cancel := context.WithTimeout(ctx, d)
		t.Cleanup(cancel)
		return c
	}
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	env, err := kubetest.NewEnvironment()
	if err != nil {
		t.Fatal(err)
	}
	env.CRDDirectoryPaths = nil // deploy installs it
	if _, err := env.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kubeconfig := managertest.Kubeconfig(t, env)
	kubectlBin := filepath.Join(env.BinaryAssetsDirectory, "kubectl")
	kubectlErr := func(ctx context.Context, args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, kubectlBin, append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
		return string(out), err
	}
	kubectl := func(args ...string) string {
		t.Helper()
		out, err := kubectlErr(within(2*time.Minute), args...)
		if err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
		return out
	}
	img := "registry.example.com/rconn:v0.0.0-e2e"
	deploy := func(action string) {
		cmd := exec.CommandContext(within(2*time.Minute), filepath.Join(root, "hack", "deploy.sh"), action)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "KUBECTL="+kubectlBin, "IMG="+img, "WAIT=false")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("hack/deploy.sh %s: %v\n%s", action, err, out)
		}
	}
	deploy("deploy")
	var d appsv1.Deployment
	if err := json.Unmarshal([]byte(kubectl("get", "deployment", "-n", "rconn-system", "rconn-controller-manager", "-o", "json")), &d); err != nil {
		t.Fatal(err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	sc := c.SecurityContext
	switch {
	case c.Image != img:
		t.Errorf("image %s, want %s", c.Image, img)
	case !slices.Contains(c.Args, "--leader-elect"):
		t.Errorf("args %v lack --leader-elect", c.Args)
	case sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("container securityContext %+v: want non-root and a read-only root filesystem", sc)
	case c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero():
		t.Errorf("resources %+v: want requests and limits", c.Resources)
	case c.LivenessProbe == nil || c.ReadinessProbe == nil:
		t.Error("probes missing")
	}
	if d.Spec.Template.Spec.ServiceAccountName != "rconn-controller-manager" {
		t.Errorf("service account %q", d.Spec.Template.Spec.ServiceAccountName)
	}
	// The ServiceAccount may do what the manager does: the bound ClusterRole is the generated one.
	can := kubectl("auth", "can-i", "patch", "redisconnections.rconn.dev", "--subresource=status", "--as=system:serviceaccount:rconn-system:rconn-controller-manager", "-A")
	if strings.TrimSpace(can) != "yes" {
		t.Errorf("the deployed ServiceAccount cannot patch RedisConnection status: %s", can)
	}
	deploy("undeploy")
	if out, err := kubectlErr(within(time.Minute), "get", "crd", "redisconnections.rconn.dev"); err == nil || !strings.Contains(out, "NotFound") {
		// The CRD's own finalizer runs in kube-apiserver: give it a moment.
		if _, err := kubectlErr(within(time.Minute), "wait", "--for=delete", "--timeout=50s", "crd/redisconnections.rconn.dev"); err != nil {
			t.Errorf("undeploy left the CRD: %v", err)
		}
	}
}
