package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
)

// TestStatusConfigCheck runs status, config --for every client, and check against a real
// kube-apiserver with the controller in-process and a real 3+3 node Redis Cluster whose nodes
// announce names nobody can resolve (mapped statically to where they listen), then stops a
// replica: check must name it, and status must show the NodesHealthy advice.
func TestStatusConfigCheck(t *testing.T) {
	t.Parallel() // its own namespace and servers (the control plane is shared, started once): overlaps the other tests' waits
	controlPlane(t)
	const password = "s3cret-pw"
	c := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1, Announce: redistest.AnnounceHostname, Server: redistest.ServerOptions{Password: password}})
	ns := namespace(t)
	rc := redisConnection(t, ns, "cache", c, password)
	if len(rc.Status.Nodes) != 6 {
		t.Fatalf("status lists %d nodes, want 6", len(rc.Status.Nodes))
	}

	t.Run("status", func(t *testing.T) {
		r := kubectlRconn(t, "", nil, "status", "-n", ns, "cache")
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		for _, want := range []string{"3 shards, 6 nodes (6 healthy), 16384/16384 slots", "0-5460", "Master", "Replica", "Ready                True", "Static"} {
			if !strings.Contains(r.out, want) {
				t.Errorf("status output lacks %q", want)
			}
		}
		for _, n := range c.Nodes {
			// a node row: its announced name, then its mapped loopback address.
			if !regexp.MustCompile(regexp.QuoteMeta(n.Announced) + `\s+` + regexp.QuoteMeta(n.Addr()) + `\s+Healthy`).MatchString(r.out) {
				t.Errorf("status output has no Healthy row for %s mapped to %s", n.Announced, n.Addr())
			}
		}
		if strings.Contains(r.out, password) || strings.Contains(r.out, "what to do") {
			t.Errorf("status of a Ready connection shows a password or advice")
		}
	})

	t.Run("config", func(t *testing.T) { testConfigSnippets(t, ns, c, password) })

	t.Run("check", func(t *testing.T) {
		dial := nettest.NewRecorder(nil)
		r := kubectlRconn(t, "", dial.Dial, "check", "-n", ns, "cache", "--timeout", "2s")
		if r.code != 0 || strings.Count(r.out, "\nOK ") != 6 || !strings.Contains(r.out, "all 6 nodes OK") {
			t.Fatalf("check of a healthy cluster: exit %d, want 0 and 6 OK lines", r.code)
		}
		allowed := []string{}
		for _, n := range c.Nodes {
			allowed = append(allowed, n.Addr())
		}
		dial.AssertOnly(t, allowed...)
	})

	t.Run("check without the Secret", func(t *testing.T) {
		// A user who may read the RedisConnection and its ConfigMap, not the Secret.
		ctx := context.Background()
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "viewer"}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{rconnv1.GroupVersion.Group}, Resources: []string{"redisconnections"}, Verbs: []string{"get"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}},
		}}
		binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "viewer"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "viewer"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "viewer"}}}
		for _, o := range []ctrlclient.Object{role, binding} {
			if err := cp.k8s.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		kc := kubetest.UserKubeconfig(t, cp.env, envtest.User{Name: "viewer"})
		r := kubectlRconn(t, kc, nettest.NewRecorder(nil).Dial, "check", "-n", ns, "cache", "--timeout", "2s")
		if r.code != 1 || !strings.Contains(r.err, "you may not read Secret "+ns+"/cache") {
			t.Errorf("exit %d, want 1 and a note that the Secret is not readable", r.code)
		}
		if n := len(regexp.MustCompile(`(?m)^FAIL .*authentication failed`).FindAllString(r.out, -1)); n != 6 {
			t.Errorf("%d nodes FAIL with authentication failed, want 6", n)
		}
	})

	// Stop a replica (no failover): the controller reports NodesHealthy=False, check fails.
	var replica *redistest.Node
	for _, n := range c.Nodes {
		if n.MasterIndex >= 0 {
			replica = n
			break
		}
	}
	replica.Stop()
	waitCondition(t, ns, "cache", rconnv1.ConditionNodesHealthy, metav1.ConditionFalse)

	t.Run("check a stopped node", func(t *testing.T) {
		r := kubectlRconn(t, "", nettest.NewRecorder(nil).Dial, "check", "-n", ns, "cache", "--timeout", "2s")
		if r.code != 1 {
			t.Errorf("exit %d, want 1", r.code)
		}
		fail := regexp.MustCompile(`(?m)^FAIL\s+\S+\s+` + regexp.QuoteMeta(replica.Announced) + `\s+` + regexp.QuoteMeta(replica.Addr()) + `\s+connection refused`)
		if !fail.MatchString(r.out) {
			t.Errorf("no FAIL line naming %s (dialed %s) as refused", replica.Announced, replica.Addr())
		}
		if n := strings.Count(r.out, "\nOK "); n != 5 || !strings.Contains(r.out, "1 of 6 nodes failed") {
			t.Errorf("%d OK lines, want 5 and \"1 of 6 nodes failed\"", n)
		}
	})

	t.Run("status advice", func(t *testing.T) {
		r := kubectlRconn(t, "", nil, "status", "-n", ns, "cache")
		if !regexp.MustCompile(regexp.QuoteMeta(replica.Announced) + `\s+` + regexp.QuoteMeta(replica.Addr()) + `\s+Unreachable`).MatchString(r.out) {
			t.Errorf("status shows no Unreachable row for %s", replica.Announced)
		}
		if !strings.Contains(r.out, "NodesHealthy         False NodesUnreachable") {
			t.Errorf("status lacks the False NodesHealthy condition")
		}
		// the advice line right under the NodesHealthy condition
		adv := regexp.MustCompile(`NodesHealthy\s+False NodesUnreachable:[^\n]*\n\s+-> what to do: ` + regexp.QuoteMeta(advice[adviceKey{rconnv1.ConditionNodesHealthy, rconnv1.ReasonNodesUnreachable}]) + "\n")
		if !adv.MatchString(r.out) {
			t.Errorf("status lacks the NodesUnreachable advice under NodesHealthy")
		}
	})
}

func testConfigSnippets(t *testing.T, ns string, c *redistest.Cluster, password string) {
	secretDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(secretDir, "password"), []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	snippet := func(t *testing.T, client string) string {
		r := kubectlRconn(t, "", nil, "config", "-n", ns, "cache", "--for", client)
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		if strings.Contains(r.out, password) {
			t.Fatalf("the snippet holds the password")
		}
		return r.out
	}
	root := c.Nodes[0].Addr()

	t.Run("unknown client", func(t *testing.T) {
		r := kubectlRconn(t, "", nil, "config", "-n", ns, "cache", "--for", "phpredis")
		if r.code != 2 || !strings.Contains(r.err, `unknown --for "phpredis": choose one of node-redis, ioredis, go, redis-py, lettuce, jedis`) {
			t.Errorf("exit %d, want 2 and the list of choices", r.code)
		}
	})

	t.Run("node-redis", func(t *testing.T) {
		var got struct {
			Kind    string `json:"kind"`
			Options struct {
				RootNodes      []struct{ URL string } `json:"rootNodes"`
				NodeAddressMap map[string]struct {
					Host string
					Port int
				} `json:"nodeAddressMap"`
				Defaults struct {
					Password string
					Socket   struct {
						Reconnect any `json:"reconnect"`
					}
				} `json:"defaults"`
				Rconn any `json:"rconn"`
			} `json:"options"`
		}
		runStubbed(t, "node", snippet(t, "node-redis"), "app.mjs", secretDir, nil, nodeStubs, &got)
		if got.Kind != "cluster" || len(got.Options.RootNodes) != 1 || got.Options.RootNodes[0].URL != "redis://"+root {
			t.Errorf("createCluster got kind %q root nodes %+v, want cluster with redis://%s", got.Kind, got.Options.RootNodes, root)
		}
		assertMap(t, c, func(announced string) (string, bool) {
			m, ok := got.Options.NodeAddressMap[announced]
			return fmt.Sprintf("%s:%d", m.Host, m.Port), ok
		})
		if got.Options.Defaults.Password != password {
			t.Errorf("defaults.password %q, want the Secret file's", got.Options.Defaults.Password)
		}
		if got.Options.Rconn != nil {
			t.Errorf("the options passed on carry the rconn section")
		}
		if _, ok := got.Options.Defaults.Socket.Reconnect.(float64); !ok {
			t.Errorf("socket.reconnectStrategy(3) = %v, want a delay", got.Options.Defaults.Socket.Reconnect)
		}
	})

	t.Run("ioredis", func(t *testing.T) {
		var got struct {
			Nodes []struct {
				Host string
				Port int
			}
			Opts struct {
				NatMap map[string]struct {
					Host string
					Port int
				} `json:"natMap"`
				MaxRedirections int                       `json:"maxRedirections"`
				RedisOptions    struct{ Password string } `json:"redisOptions"`
			}
		}
		runStubbed(t, "node", snippet(t, "ioredis"), "app.mjs", secretDir, nil, nodeStubs, &got)
		if len(got.Nodes) != 1 || fmt.Sprintf("%s:%d", got.Nodes[0].Host, got.Nodes[0].Port) != root || got.Opts.MaxRedirections != 16 || got.Opts.RedisOptions.Password != password {
			t.Errorf("Redis.Cluster(%+v, maxRedirections %d, password %q)", got.Nodes, got.Opts.MaxRedirections, got.Opts.RedisOptions.Password)
		}
		assertMap(t, c, func(announced string) (string, bool) {
			m, ok := got.Opts.NatMap[announced]
			return fmt.Sprintf("%s:%d", m.Host, m.Port), ok
		})
	})

	t.Run("redis-py", func(t *testing.T) {
		var got struct {
			Kwargs   map[string]any    `json:"kwargs"`
			Remapped map[string]string `json:"remapped"`
		}
		runStubbed(t, "python3", snippet(t, "redis-py"), "app.py", secretDir, announcedOf(c), pyStubs, &got)
		if got.Kwargs["host"] != "127.0.0.1" || fmt.Sprint(got.Kwargs["port"]) != strings.TrimPrefix(root, "127.0.0.1:") || got.Kwargs["password"] != password {
			t.Errorf("RedisCluster(%v), want the root node and the Secret's password", got.Kwargs)
		}
		assertMap(t, c, func(announced string) (string, bool) {
			to, ok := got.Remapped[announced]
			return to, ok && to != announced
		})
		if got.Remapped["elsewhere.invalid:1"] != "elsewhere.invalid:1" {
			t.Errorf("remap of an unmapped address = %q, want it unchanged", got.Remapped["elsewhere.invalid:1"])
		}
	})

	t.Run("go", func(t *testing.T) {
		s := snippet(t, "go")
		if _, err := parser.ParseFile(token.NewFileSet(), "main.go", s, 0); err != nil {
			t.Fatalf("the Go snippet does not parse: %v", err)
		}
		for _, want := range []string{`Namespace: "` + ns + `"`, `Name:      "cache"`, `ConfigMap: "cache"`, `Secret:    "cache"`, "kubesource.Open(", `client.Open(openCtx, "/etc/rconn/config", "/etc/rconn/secret")`} {
			if !strings.Contains(s, want) {
				t.Errorf("the Go snippet lacks %q", want)
			}
		}
	})

	for _, java := range []struct{ client, hp, want string }{
		{"lettuce", "HostAndPort.of", "MappingSocketAddressResolver.create(DnsResolvers.UNRESOLVED"},
		{"jedis", "new HostAndPort", ".hostAndPortMapper(hp -> map.getOrDefault(hp, hp))"},
	} {
		t.Run(java.client, func(t *testing.T) {
			s := snippet(t, java.client)
			if !strings.Contains(s, java.want) || !strings.Contains(s, `secret("password")`) || !strings.Contains(s, "--for "+java.client+"`") {
				t.Errorf("the %s snippet lacks %q or the password from the Secret", java.client, java.want)
			}
			if strings.Count(s, "{") != strings.Count(s, "}") || strings.Count(s, "(") != strings.Count(s, ")") {
				t.Errorf("the %s snippet has unbalanced braces or parentheses", java.client)
			}
			for _, n := range c.Nodes {
				h, p, _ := strings.Cut(n.Announced, ":")
				_, rp, _ := strings.Cut(n.Addr(), ":")
				entry := fmt.Sprintf(`Map.entry(%s("%s", %s), %s("127.0.0.1", %s))`, java.hp, h, p, java.hp, rp)
				if !strings.Contains(s, entry) {
					t.Errorf("the %s snippet lacks %s", java.client, entry)
				}
			}
		})
	}
}

// assertMap checks that a client was given every node's announced -> listening mapping.
func assertMap(t *testing.T, c *redistest.Cluster, lookup func(announced string) (string, bool)) {
	t.Helper()
	for _, n := range c.Nodes {
		if to, ok := lookup(n.Announced); !ok || to != n.Addr() {
			t.Errorf("%s maps to %q (present %v), want %s", n.Announced, to, ok, n.Addr())
		}
	}
}

// nodeStubs are the npm packages "redis" and "ioredis" reduced to recording their options.
var nodeStubs = map[string]string{
	"node_modules/redis/package.json": `{"name": "redis", "type": "module", "main": "index.js"}`,
	"node_modules/redis/index.js": `
const record = (kind, o) => ({
  on() {},
  async connect() {
    const rs = o.defaults?.socket?.reconnectStrategy ?? o.socket?.reconnectStrategy;
    const d = o.defaults ?? {};
    d.socket = { ...d.socket, reconnect: typeof rs === 'function' ? rs(3) : rs };
    console.log(JSON.stringify({ kind, options: o }));
  },
});
export const createCluster = (o) => record('cluster', o);
export const createClient = (o) => record('client', o);
`,
	"node_modules/ioredis/package.json": `{"name": "ioredis", "type": "module", "main": "index.js"}`,
	"node_modules/ioredis/index.js": `
class Cluster { constructor(nodes, opts) { console.log(JSON.stringify({ nodes, opts })); } on() {} }
export default class Redis { constructor(o) { console.log(JSON.stringify({ opts: o })); } on() {} static Cluster = Cluster; }
`,
}

// pyStubs are redis-py's RedisCluster and Redis reduced to recording their arguments and what
// address_remap makes of every announced address ($ANNOUNCED) and of one unknown address.
var pyStubs = map[string]string{
	"redis/__init__.py": `
import json
class Redis:
    def __init__(self, **kw):
        self.kw = kw
    def ping(self):
        print(json.dumps({"kwargs": self.kw}))
`,
	"redis/cluster.py": `
import json, os
class RedisCluster:
    def __init__(self, **kw):
        remap = kw.pop("address_remap")
        addrs = os.environ["ANNOUNCED"].split(",") + ["elsewhere.invalid:1"]
        self.out = {"kwargs": kw, "remapped": {}}
        for a in addrs:
            h, p = a.rsplit(":", 1)
            to = remap((h, int(p)))
            self.out["remapped"][a] = "%s:%d" % (to[0], to[1])
    def ping(self):
        print(json.dumps(self.out))
`,
}

// runStubbed runs a snippet with the interpreter, the client library replaced by stubs, the
// Secret's files in secretDir, and decodes the JSON the stub prints into got.
func runStubbed(t *testing.T, interp, snippet, file, secretDir string, announced []string, stubs map[string]string, got any) {
	t.Helper()
	if _, err := exec.LookPath(interp); err != nil {
		t.Fatalf("%s is needed to run the snippet: %v", interp, err)
	}
	dir := t.TempDir()
	for name, content := range stubs {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(snippet), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(interp, file)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RCONN_SECRET_DIR="+secretDir, "PYTHONPATH="+dir, "ANNOUNCED="+strings.Join(announced, ","))
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v\n%s\n--- snippet:\n%s", interp, file, err, stderr, snippet)
	}
	if err := json.Unmarshal(out, got); err != nil {
		t.Fatalf("stub output %q: %v", out, err)
	}
}

func announcedOf(c *redistest.Cluster) []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Announced)
	}
	return out
}
