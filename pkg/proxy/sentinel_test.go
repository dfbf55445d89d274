package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rconn-dev/redis-connection-operator/internal/testing/hostile"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubeletmount"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/proxy"
)

// sentEnv is a real Sentinel group (1 master + 2 replicas + 3 sentinels) announcing pod names
// nobody outside it can resolve, and a proxy in Sentinel mode in front of it, configured from
// a mounted config.json as the controller renders it (sentinelRootNodes reachable,
// nodeAddressMap over data and sentinel addresses, rconn.sentinels announced).
type sentEnv struct {
	g    *redistest.SentinelGroup
	p    *proxy.Proxy
	dial *nettest.Recorder
}

// startSentEnv starts the group and the proxy; extraRoots are prepended to the sentinel root
// nodes (announced name -> reachable address, added to the map).
func startSentEnv(t *testing.T, extraRoots map[string]string) *sentEnv {
	t.Helper()
	e := &sentEnv{g: redistest.StartSentinelGroup(t, redistest.SentinelGroupOptions{})}
	cfg := &client.Config{Name: e.g.MasterName(), NodeAddressMap: map[string]client.MappedAddress{}, Rconn: client.RconnConfig{Mode: client.ModeSentinel}}
	m := e.g.AddressMap()
	roots := make([]string, 0, len(extraRoots)+len(e.g.Sentinels))
	for name, addr := range extraRoots {
		m[name] = addr
		roots = append(roots, name)
	}
	roots = append(roots, e.g.SentinelAddrs()...)
	for announced, addr := range m {
		cfg.NodeAddressMap[announced] = mapped(t, addr)
	}
	for _, r := range roots {
		cfg.SentinelRootNodes = append(cfg.SentinelRootNodes, mapped(t, m[r]))
		cfg.Rconn.Sentinels = append(cfg.Rconn.Sentinels, r)
	}
	mount := t.TempDir()
	files := map[string][]byte{}
	b, err := client.BindSecret(cfg, files, "t1")
	if err != nil {
		t.Fatal(err)
	}
	files[client.ConfigFileName] = b
	if err := kubeletmount.Write(mount, files, 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := client.NewMountSource(mount)
	if err != nil {
		t.Fatal(err)
	}
	w, err := client.Watch(ctx(t), src, client.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	e.dial = nettest.NewRecorder(nil)
	e.p, err = proxy.Start(ctx(t), w.Current(), proxy.Options{MasterPort: -1, Dial: e.dial.Dial, RefreshInterval: time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.p.Close() })
	return e
}

func mapped(t *testing.T, addr string) client.MappedAddress {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(p)
	return client.MappedAddress{Host: h, Port: port}
}

// listenerOf is the proxy's listener for data node i.
func (e *sentEnv) listenerOf(t *testing.T, i int) string {
	t.Helper()
	for _, n := range e.p.Nodes() {
		if n.Announced == e.g.Data[i].Announced {
			return n.Listen
		}
	}
	t.Fatalf("no proxy listener for data node %d (%s): %+v", i, e.g.Data[i].Announced, e.p.Nodes())
	return ""
}

func (e *sentEnv) sentinel() *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: e.p.SeedAddr(), Protocol: 2})
}

// TestSentinelProxyAnswers: what the proxy's sentinel listener says names only the proxy's
// listeners, each of which reaches the node it stands for; only mapped addresses are dialed.
func TestSentinelProxyAnswers(t *testing.T) {
	t.Parallel() // its own sentinel group and proxy: overlaps the other tests' waits
	e := startSentEnv(t, nil)
	c := ctx(t)
	sc := e.sentinel()
	defer func() { _ = sc.Close() }()
	hp, err := sc.GetMasterAddrByName(c, e.g.MasterName()).Result()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := net.JoinHostPort(hp[0], hp[1]), e.listenerOf(t, 0); got != want {
		t.Fatalf("GET-MASTER-ADDR-BY-NAME %s, want the master's listener %s", got, want)
	}
	if role := roleAt(t, net.JoinHostPort(hp[0], hp[1])); role != "master" {
		t.Fatalf("ROLE through the master's listener: %s", role)
	}
	if _, err := sc.GetMasterAddrByName(c, "other").Result(); err != redis.Nil { //nolint:errorlint // redis.Nil is a value
		t.Fatalf("an unknown master name: %v, want nil", err)
	}
	master, err := sc.Master(c, e.g.MasterName()).Result()
	if err != nil || master["flags"] != "master" || net.JoinHostPort(master["ip"], master["port"]) != e.listenerOf(t, 0) || master["num-slaves"] != "2" {
		t.Fatalf("SENTINEL MASTER: %v %v", master, err)
	}
	reps, err := sc.Replicas(c, e.g.MasterName()).Result()
	if err != nil || len(reps) != 2 {
		t.Fatalf("SENTINEL REPLICAS: %v %v", reps, err)
	}
	for _, r := range reps {
		a := net.JoinHostPort(r["ip"], r["port"])
		if a != e.listenerOf(t, 1) && a != e.listenerOf(t, 2) {
			t.Fatalf("replica %s is no replica's listener", a)
		}
		if role := roleAt(t, a); role != "slave" {
			t.Fatalf("ROLE through replica listener %s: %s", a, role)
		}
		if net.JoinHostPort(r["master-host"], r["master-port"]) != e.listenerOf(t, 0) {
			t.Fatalf("replica's master %s:%s", r["master-host"], r["master-port"])
		}
	}
	if mc := roleAt(t, e.p.MasterAddr()); mc != "master" {
		t.Fatalf("ROLE through the master-port listener: %s", mc)
	}
	for _, a := range e.dial.Dialed() {
		if !strings.HasPrefix(a, "127.0.0.1:") {
			t.Fatalf("the proxy dialed %s, not a mapped address", a)
		}
	}
	// The sentinel listener's bounds: an argument over 4 KiB, or more than 64 subscriptions,
	// closes the connection (with an error reply); an inline command is answered as Redis would.
	for name, tc := range map[string]struct{ send, want string }{
		"inline":        {"SENTINEL get-master-addr-by-name " + e.g.MasterName() + "\r\n", "*2\r\n"},
		"long argument": {"*2\r\n$4\r\nPING\r\n$5000\r\n" + strings.Repeat("x", 5000) + "\r\n", "-ERR Protocol error"},
		"subscriptions": {"SUBSCRIBE" + subscribeArgs("a", 40) + "\r\nSUBSCRIBE" + subscribeArgs("b", 40) + "\r\n", "more than 64 subscriptions"},
	} {
		conn, err := net.Dial("tcp", e.p.SeedAddr())
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte(tc.send)); err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(conn) // the listener closes these connections, or the deadline does
		_ = conn.Close()
		if !strings.Contains(string(got), tc.want) {
			t.Fatalf("%s: got %.200q, want %q", name, got, tc.want)
		}
		if name == "inline" && !strings.Contains(string(got), strconv.Itoa(portOf(e.listenerOf(t, 0)))) {
			t.Fatalf("inline GET-MASTER-ADDR-BY-NAME: %q", got)
		}
	}
}

func subscribeArgs(prefix string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, " %s%d", prefix, i)
	}
	return b.String()
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

func roleAt(t *testing.T, addr string) string {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
	defer func() { _ = c.Close() }()
	v, err := c.Do(ctx(t), "ROLE").Slice()
	if err != nil || len(v) == 0 {
		t.Fatalf("ROLE at %s: %v %v", addr, v, err)
	}
	s, _ := v[0].(string)
	return s
}

// TestSentinelProxyHostileSentinel: a lying sentinel behind the proxy (the first root node,
// naming a server of its own that does say ROLE master, and replicas of its own) cannot make
// the proxy listen for, answer with, or dial what it names: the honest majority decides.
func TestSentinelProxyHostileSentinel(t *testing.T) {
	t.Parallel() // its own sentinel group and proxy: overlaps the other tests' waits
	evil := redistest.StartServer(t, redistest.ServerOptions{})
	evilReplica := redistest.StartServer(t, redistest.ServerOptions{})
	replicas := "*1\r\n*4\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$4\r\nport\r\n$" + strconv.Itoa(len(strconv.Itoa(evilReplica.Port))) + "\r\n" + strconv.Itoa(evilReplica.Port) + "\r\n"
	liar := hostile.MustStart(t, hostile.Config{Handler: hostile.Sentinel(evil.Addr(), []byte(replicas), nil)})
	e := startSentEnv(t, map[string]string{"liar.rconn-test.svc.cluster.local:26379": liar.Addr()})
	sc := e.sentinel()
	defer func() { _ = sc.Close() }()
	for range 3 { // several reads: the liar answers each
		e.p.Refresh()
		time.Sleep(300 * time.Millisecond)
	}
	hp, err := sc.GetMasterAddrByName(ctx(t), e.g.MasterName()).Result()
	if err != nil || net.JoinHostPort(hp[0], hp[1]) != e.listenerOf(t, 0) {
		t.Fatalf("GET-MASTER-ADDR-BY-NAME %v %v, want the honest master's listener %s", hp, err, e.listenerOf(t, 0))
	}
	if liar.Commands() == 0 {
		t.Fatal("the liar was never asked: the test proves nothing")
	}
	for _, n := range e.p.Nodes() {
		if n.Announced == evil.Addr() || n.Announced == evilReplica.Addr() {
			t.Fatalf("the proxy listens for %s, which only the liar names", n.Announced)
		}
	}
	if len(e.p.Nodes()) != 3 {
		t.Fatalf("listeners %+v, want the 3 honest data nodes", e.p.Nodes())
	}
	if e.dial.Has(evil.Addr()) || e.dial.Has(evilReplica.Addr()) {
		t.Fatalf("the proxy dialed what only the liar names: %v", e.dial.Dialed())
	}
}

// writeStats are a writer's results through a failover.
type writeStats struct {
	OK      int            `json:"ok"`
	Failed  int            `json:"failed"`
	StallMS int            `json:"stall_ms"`
	Errors  map[string]int `json:"errors"`
}

// redisPySentinel writes INCR py:n through redis-py's Sentinel pointed at the proxy's
// sentinel listener until the stop file exists, then prints its stats.
const redisPySentinel = `
import sys, time, json, os
from redis.sentinel import Sentinel
host, port, name, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = Sentinel([(host, port)], socket_timeout=1.0, socket_connect_timeout=1.0)
m = s.master_for(name, socket_timeout=1.0, socket_connect_timeout=1.0)
ok = failed = 0; last = None; stall = 0.0; errs = {}
while not os.path.exists(stop):
    try:
        m.incr("py:n")
        now = time.monotonic()
        if last is not None: stall = max(stall, now - last)
        last = now; ok += 1
    except Exception as e:
        failed += 1; errs[type(e).__name__] = errs.get(type(e).__name__, 0) + 1
        time.sleep(0.05)
    time.sleep(0.01)
print(json.dumps({"ok": ok, "failed": failed, "stall_ms": int(stall * 1000), "errors": errs}))
`

// cliWriter runs redis-cli -p <master-port> INCR cli:n, one process per write (a client
// without Sentinel support), until stop.
func cliWriter(addr string, stop <-chan struct{}) *writeStats {
	h, p, _ := net.SplitHostPort(addr)
	st := &writeStats{Errors: map[string]int{}}
	var last time.Time
	for {
		select {
		case <-stop:
			return st
		default:
		}
		out, err := exec.Command("redis-cli", "-h", h, "-p", p, "INCR", "cli:n").CombinedOutput()
		if _, perr := strconv.Atoi(strings.TrimSpace(string(out))); err != nil || perr != nil {
			st.Failed++
			st.Errors[strings.Fields(string(out) + " ?")[0]]++
			time.Sleep(50 * time.Millisecond)
			continue
		}
		now := time.Now()
		if !last.IsZero() {
			st.StallMS = max(st.StallMS, int(now.Sub(last).Milliseconds()))
		}
		last = now
		st.OK++
		time.Sleep(10 * time.Millisecond)
	}
}

// waitAdvance waits until every key grows on data node i (the master).
func (e *sentEnv) waitAdvance(t *testing.T, i int, keys ...string) {
	t.Helper()
	c := e.g.Data[i].Client()
	defer func() { _ = c.Close() }()
	cx := ctx(t)
	for _, k := range keys {
		v0, _ := c.Get(cx, k).Int()
		deadline := time.Now().Add(30 * time.Second)
		for {
			v, _ := c.Get(cx, k).Int()
			if v > v0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not grow on the new master %d (stuck at %d)", k, i, v)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// failoverTwice forces a failover (SENTINEL FAILOVER), then kills the new master, waiting
// each time until the sentinels agree on a new one and every key grows on it.
func (e *sentEnv) failoverTwice(t *testing.T, keys ...string) {
	t.Helper()
	cx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	old, err := e.g.Failover(cx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.g.WaitNewMaster(cx, old)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SENTINEL FAILOVER: %d -> %d", old, m)
	e.waitAdvance(t, m, keys...)
	if err := e.g.WaitSettled(cx, m); err != nil {
		t.Fatal(err)
	}
	killed, err := e.g.KillMaster(cx)
	if err != nil {
		t.Fatal(err)
	}
	if m, err = e.g.WaitNewMaster(cx, killed); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed master %d -> %d", killed, m)
	e.waitAdvance(t, m, keys...)
}

// TestSentinelProxyRedisPyAndCLIFailover: redis-py's Sentinel (through the sentinel
// listener) and redis-cli (through the master-port listener) keep writing through SENTINEL
// FAILOVER and a killed master.
func TestSentinelProxyRedisPyAndCLIFailover(t *testing.T) {
	t.Parallel() // its own sentinel group and proxy: overlaps the other tests' waits
	e := startSentEnv(t, nil)
	dir := t.TempDir()
	stopFile := filepath.Join(dir, "stop")
	h, p, _ := net.SplitHostPort(e.p.SeedAddr())
	py := exec.Command("/usr/bin/python3", "-c", redisPySentinel, h, p, e.g.MasterName(), stopFile)
	var pyOut, pyErr strings.Builder
	py.Stdout, py.Stderr = &pyOut, &pyErr
	if err := py.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = py.Process.Kill(); _ = py.Wait() }) // our own PID only
	stop := make(chan struct{})
	var cli *writeStats
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); cli = cliWriter(e.p.MasterAddr(), stop) }()
	stopAll := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopAll)
	e.waitAdvance(t, 0, "py:n", "cli:n")
	e.failoverTwice(t, "py:n", "cli:n")
	if err := os.WriteFile(stopFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	stopAll()
	if err := py.Wait(); err != nil {
		t.Fatalf("redis-py: %v\n%s", err, pyErr.String())
	}
	var ps writeStats
	if err := json.Unmarshal([]byte(pyOut.String()), &ps); err != nil {
		t.Fatalf("redis-py output %q: %v", pyOut.String(), err)
	}
	t.Logf("redis-py Sentinel via the proxy: %d writes, %d failed %v, longest stall %d ms", ps.OK, ps.Failed, ps.Errors, ps.StallMS)
	t.Logf("redis-cli via --master-port: %d writes, %d failed %v, longest stall %d ms", cli.OK, cli.Failed, cli.Errors, cli.StallMS)
}

// TestSentinelProxyGoRedisFailover: go-redis's FailoverClient pointed at the proxy's
// sentinel listener keeps writing through SENTINEL FAILOVER and a killed master, and a
// subscriber to +switch-master hears of both, naming the proxy's listeners.
func TestSentinelProxyGoRedisFailover(t *testing.T) {
	t.Parallel() // its own sentinel group and proxy: overlaps the other tests' waits
	e := startSentEnv(t, nil)
	fc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: e.g.MasterName(), SentinelAddrs: []string{e.p.SeedAddr()},
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: -1})
	defer func() { _ = fc.Close() }()
	sc := e.sentinel()
	defer func() { _ = sc.Close() }()
	sub := sc.Subscribe(ctx(t), "+switch-master")
	defer func() { _ = sub.Close() }()
	if _, err := sub.Receive(ctx(t)); err != nil {
		t.Fatal(err)
	}
	var switches []string
	var smu sync.Mutex
	go func() {
		for msg := range sub.Channel() {
			smu.Lock()
			switches = append(switches, msg.Payload)
			smu.Unlock()
		}
	}()
	var ok, failed atomic.Int64
	var stallMS atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		last := time.Now()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := fc.Incr(context.Background(), "go:n").Err(); err != nil {
				failed.Add(1)
				time.Sleep(50 * time.Millisecond)
				continue
			}
			now := time.Now()
			stallMS.Store(max(stallMS.Load(), now.Sub(last).Milliseconds()))
			last = now
			ok.Add(1)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	e.waitAdvance(t, 0, "go:n")
	e.failoverTwice(t, "go:n")
	close(stop)
	<-done
	t.Logf("go-redis FailoverClient via the proxy: %d writes, %d failed, longest stall %d ms", ok.Load(), failed.Load(), stallMS.Load())
	smu.Lock()
	defer smu.Unlock()
	if len(switches) < 2 {
		t.Fatalf("+switch-master messages %q, want one per failover", switches)
	}
	listeners := map[string]bool{}
	for _, n := range e.p.Nodes() {
		listeners[n.Listen] = true
	}
	for _, s := range switches {
		f := strings.Fields(s)
		if len(f) != 5 || f[0] != e.g.MasterName() || !listeners[net.JoinHostPort(f[1], f[2])] || !listeners[net.JoinHostPort(f[3], f[4])] {
			t.Fatalf("+switch-master %q does not name two proxy listeners (%v)", s, listeners)
		}
	}
}
