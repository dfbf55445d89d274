package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
	"github.com/rconn-dev/redis-connection-operator/pkg/proxy"
)

// TestProxyOverForwards is port-forward without the API server: the proxy of port-forward
// over local listeners that stand in for client-go's forwards (one per node, keyed by the
// announced address as podTargets keys them), a cluster whose nodes announce names nobody
// resolves, and a config.json whose root node is an unreachable Service name. Every shard
// must answer SET/GET through the seed, and every node only through its forward.
func TestProxyOverForwards(t *testing.T) {
	t.Parallel() // its own servers: overlaps the other tests' waits
	c := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname})
	secret := map[string][]byte{}
	raw, err := client.BindSecret(&client.Config{RootNodes: []client.RootNodeConfig{{URL: "redis://redis.shop.svc.cluster.invalid:6379"}}}, secret, "t1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := resolve(ctx, raw, secret)
	if err != nil {
		t.Fatal(err)
	}
	fw := &forwards{byAddr: map[string]*forward{}}
	var targets []podTarget
	tunnels := map[string]*nettest.Proxy{}
	for _, n := range c.Nodes {
		tunnels[n.Announced] = nettest.StartProxy(t, n.Addr())
		f := &forward{pod: n.Announced}
		l := tunnels[n.Announced].Addr()
		f.addr.Store(&l)
		fw.byAddr[n.Announced] = f
		targets = append(targets, podTarget{announced: n.Announced})
	}
	p, err := proxy.Start(ctx, throughForwards(r, rootsThrough(targets)), proxy.Options{Dial: fw.dial})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	rc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{p.SeedAddr()}, Dialer: nettest.NewRecorder(nil).Dial,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
	defer func() { _ = rc.Close() }()
	for _, slot := range []int{0, 8000, 16383} {
		key := cluster.KeyForSlot(slot)
		if err := rc.Set(ctx, key, key, 0).Err(); err != nil {
			t.Fatalf("SET %s (slot %d) through the seed: %v", key, slot, err)
		}
		if v, err := rc.Get(ctx, key).Result(); err != nil || v != key {
			t.Fatalf("GET %s = %q, %v", key, v, err)
		}
	}
	for _, n := range c.Nodes {
		if tunnels[n.Announced].Accepted.Load() == 0 {
			t.Errorf("no connection went through the forward of %s", n.Announced)
		}
	}
	if _, err := fw.dial(ctx, "tcp", "10.0.0.1:6379"); err == nil {
		t.Errorf("the forward table dialed an address it has no forward for")
	}
}

// forwarder is port-forward's proxy as the command starts it (proxyOptions, a session, the
// Secret's credentials) over local stand-ins for client-go's forwards.
type forwarder struct {
	p    *proxy.Proxy
	sess *session
}

func startForwarder(t *testing.T, ctx context.Context, c *redistest.Cluster, secret map[string][]byte, sessionBase string) *forwarder {
	t.Helper()
	raw, err := client.BindSecret(&client.Config{RootNodes: []client.RootNodeConfig{{URL: "redis://redis.shop.svc.cluster.invalid:6379"}}}, secret, "t1")
	if err != nil {
		t.Fatal(err)
	}
	r, err := resolve(ctx, raw, secret)
	if err != nil {
		t.Fatal(err)
	}
	fw := &forwards{byAddr: map[string]*forward{}}
	var targets []podTarget
	for _, n := range c.Nodes {
		f := &forward{pod: n.Announced}
		l := nettest.StartProxy(t, n.Addr()).Addr()
		f.addr.Store(&l)
		fw.byAddr[n.Announced] = f
		targets = append(targets, podTarget{announced: n.Announced})
	}
	sess, err := newSession(sessionBase)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sess.remove)
	sess.setCredentials(r.Credentials())
	a := &App{Out: io.Discard, Err: io.Discard}
	p, err := proxy.Start(ctx, throughForwards(r, rootsThrough(targets)), proxyOptions(a, portForwardFlags{address: "127.0.0.1"}, fw.dial, sess))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return &forwarder{p: p, sess: sess}
}

// password reads the session password from its file, as a user of port-forward does.
func (f *forwarder) password(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(f.sess.file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestPortForwardSession: port-forward's listeners serve only connections that authenticate
// with the session password, and those as the Secret's ACL user. A real 3-master cluster with
// ACL user app; the proxy as port-forward configures it. go-redis (HELLO 3 AUTH) and redis-cli
// -c (AUTH, following MOVED to node listeners) with the session password work, and the
// connection is user app although the client never had app's password; a client without a
// password, or with app's real password, gets nothing; another local user (uid 65534, root
// only) can neither read the password file (0600 in a 0700 directory) nor run a command.
func TestPortForwardSession(t *testing.T) {
	t.Parallel() // its own servers: overlaps the other tests' waits
	c := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname,
		Server: redistest.ServerOptions{Password: "admin-pw", Users: []redistest.User{{Name: "app", Password: "app-pw"}}}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	secret := map[string][]byte{client.SecretKeyUsername: []byte("app"), client.SecretKeyPassword: []byte("app-pw")}
	// The temp directory, world-traversable (/tmp): only the session directory's mode keeps others out.
	f := startForwarder(t, ctx, c, secret, os.TempDir())
	seed := f.p.SeedAddr()
	host, port, _ := net.SplitHostPort(seed)
	key := cluster.KeyForSlot(8000)

	t.Run("owner", func(t *testing.T) {
		rc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{seed}, Password: f.password(t), Dialer: nettest.NewRecorder(nil).Dial,
			MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
		defer func() { _ = rc.Close() }()
		for _, slot := range []int{0, 8000, 16383} {
			k := cluster.KeyForSlot(slot)
			if err := rc.Set(ctx, k, "v-"+k, 0).Err(); err != nil {
				t.Fatalf("SET %s (slot %d) with the session password: %v", k, slot, err)
			}
		}
		who, err := rc.Do(ctx, "ACL", "WHOAMI").Text()
		if err != nil || who != "app" {
			t.Errorf("ACL WHOAMI through the session = %q, %v; want the Secret's user app", who, err)
		}
		cmd := exec.CommandContext(ctx, "redis-cli", "-c", "-h", host, "-p", port, "GET", key)
		cmd.Env = append(os.Environ(), "REDISCLI_AUTH="+f.password(t))
		if got, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(got)) != "v-"+key {
			t.Errorf("redis-cli -c GET %s with the session password = %q, %v", key, got, err)
		}
	})

	t.Run("no or the real password", func(t *testing.T) {
		for _, o := range []*redis.ClusterOptions{{}, {Username: "app", Password: "app-pw"}, {Password: "admin-pw"}} {
			o.Addrs, o.MaxRetries = []string{seed}, -1
			o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
			rc := redis.NewClusterClient(o)
			v, err := rc.Get(ctx, key).Result()
			_ = rc.Close()
			if err == nil || !refused(err.Error()) {
				t.Errorf("GET with user %q password %q = %q, %v; want NOAUTH or WRONGPASS", o.Username, o.Password, v, err)
			}
		}
	})

	t.Run("another local user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to run a process as uid 65534")
		}
		assertOwnerOnly(t, f.sess.dir, 0o700)
		assertOwnerOnly(t, f.sess.file, 0o600)
		out, err := asNobody(ctx, nil, "/bin/cat", f.sess.file)
		if err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("uid 65534 reading %s: %q, %v; want permission denied", f.sess.file, out, err)
		}
		for _, env := range [][]string{nil, {"REDISCLI_AUTH=app-pw"}, {"REDISCLI_AUTH=admin-pw"}} {
			out, _ := asNobody(ctx, env, "/usr/bin/redis-cli", "-c", "-h", host, "-p", port, "GET", key)
			if strings.Contains(out, "v-"+key) || !refused(out) {
				t.Errorf("uid 65534 redis-cli GET %s through the seed (env %q) = %q; want NOAUTH or WRONGPASS", key, env, out)
			}
		}
	})

	t.Run("gate", func(t *testing.T) {
		// want: the reply lines, in order (a prefix of each); none: the connection is closed
		// without a reply.
		for _, tc := range []struct {
			name, send string
			want       []string
		}{
			{"PING first", "PING\r\n", []string{"-NOAUTH Authentication required."}},
			{"HELLO without AUTH", "*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n", []string{"-NOAUTH HELLO must be called"}},
			{"inline AUTH, pipelined CLUSTER MYID", "AUTH " + f.password(t) + "\r\nCLUSTER MYID\r\n", []string{"+OK", "$40"}},
			{"wrong password, then PING", "AUTH nope\r\nPING\r\n", []string{"-WRONGPASS", "-NOAUTH"}},
			{"long command", "*2\r\n$4\r\nAUTH\r\n$5000\r\n" + strings.Repeat("x", 5000) + "\r\n", nil},
			{"nine commands", strings.Repeat("PING\r\n", 9), []string{"-NOAUTH", "-NOAUTH", "-NOAUTH", "-NOAUTH", "-NOAUTH", "-NOAUTH", "-NOAUTH", "-NOAUTH"}},
		} {
			conn, err := net.Dial("tcp", seed)
			if err != nil {
				t.Fatal(err)
			}
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := conn.Write([]byte(tc.send)); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			for _, w := range tc.want {
				if line, err := br.ReadString('\n'); !strings.HasPrefix(line, w) {
					t.Errorf("%s: got %q (%v), want %q...", tc.name, line, err, w)
				}
			}
			if tc.want == nil || strings.HasPrefix(tc.name, "nine") {
				if rest, err := br.ReadString('\n'); rest != "" || err == nil {
					t.Errorf("%s: got %q (%v), want the connection closed", tc.name, rest, err)
				}
			}
			_ = conn.Close()
		}
	})
}

// refused says whether a reply is the gate's (or Redis's) refusal to authenticate.
func refused(reply string) bool {
	return strings.Contains(reply, "NOAUTH") || strings.Contains(reply, "WRONGPASS")
}

func assertOwnerOnly(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if st.Mode().Perm() != mode || !ok || int(sys.Uid) != os.Getuid() {
		t.Errorf("%s: mode %v uid %v, want %v owned by uid %d", path, st.Mode().Perm(), sys.Uid, mode, os.Getuid())
	}
}

// asNobody runs a program as uid/gid 65534 (another local user) and returns its output.
func asNobody(ctx context.Context, env []string, prog string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Dir = "/"
	cmd.Env = append([]string{"HOME=/nonexistent", "PATH=/usr/bin:/bin"}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestPortForwardWarnsOnNonLoopbackAddress: an --address other hosts can reach is warned about
// on stderr before anything else happens (here the kubeconfig is missing); loopback is not.
func TestPortForwardWarnsOnNonLoopbackAddress(t *testing.T) {
	for addr, warn := range map[string]bool{"0.0.0.0": true, "192.0.2.7": true, "::": true, "laptop.example": true, "127.0.0.1": false, "127.0.0.2": false, "::1": false, "localhost": false} {
		var out, errb bytes.Buffer
		code := runApp(context.Background(), &App{Out: &out, Err: &errb}, []string{"--kubeconfig", filepath.Join(t.TempDir(), "none"), "port-forward", "cache", "--address", addr})
		if code == 0 {
			t.Errorf("--address %s: exit 0 without a kubeconfig", addr)
		}
		got := strings.Contains(errb.String(), "warning: --address "+addr+" is not a loopback address")
		if got != warn {
			t.Errorf("--address %s: warned %v, want %v; stderr:\n%s", addr, got, warn, errb.String())
		}
	}
}

// TestPortForwardSessionDialsNothingBeforeAuth: no node is dialed for a connection until it
// authenticates with the session password (standalone mode, where the proxy reads no
// topology, so every dial is a client connection's); then one, authenticated upstream with
// the Secret's password (the server's requirepass), which the client never sent.
func TestPortForwardSessionDialsNothingBeforeAuth(t *testing.T) {
	s := redistest.StartServer(t, redistest.ServerOptions{Password: "real-pw"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := &client.Config{RootNodes: []client.RootNodeConfig{{URL: "redis://" + s.Addr()}}}
	cfg.Rconn.Mode = client.ModeStandalone
	secret := map[string][]byte{client.SecretKeyPassword: []byte("real-pw")}
	raw, err := client.BindSecret(cfg, secret, "t1")
	if err != nil {
		t.Fatal(err)
	}
	r, err := resolve(ctx, raw, secret)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := newSession(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sess.setCredentials(r.Credentials())
	var dials atomic.Int64
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	p, err := proxy.Start(ctx, r, proxyOptions(&App{Out: io.Discard, Err: io.Discard}, portForwardFlags{address: "127.0.0.1"}, dial, sess))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	before := dials.Load()
	send := func(cmds string, replies int) []string {
		conn, err := net.Dial("tcp", p.SeedAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = conn.Close() }()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte(cmds)); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		var out []string
		for range replies {
			line, _ := br.ReadString('\n')
			out = append(out, strings.TrimSpace(line))
		}
		return out
	}
	got := send("PING\r\nAUTH real-pw\r\nAUTH default real-pw\r\nHELLO 3 AUTH default real-pw\r\n", 4)
	all := true
	for _, g := range got {
		all = all && refused(g)
	}
	if n := dials.Load() - before; n != 0 || !all {
		t.Errorf("before authenticating: replies %q, %d dials to the node; want refusals and none", got, n)
	}
	got = send("AUTH "+sess.password+"\r\nPING\r\n", 2)
	if n := dials.Load() - before; n != 1 || got[0] != "+OK" || got[1] != "+PONG" {
		t.Errorf("with the session password: replies %q, %d dials; want +OK +PONG and one", got, n)
	}
}
