package main_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/rconn-dev/redis-connection-operator/internal/testing/npmtest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubeletmount"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// Drill timing: every client writes every drillInterval; the master is killed once every
// client has written drillWarm times; the clients run on for drillAfter.
const (
	drillInterval = 20 * time.Millisecond
	drillWarm     = 20
	drillAfter    = 25 * time.Second
	// drillTail: a client "keeps writing after the failover" when it wrote in the last
	// drillTail of the run.
	drillTail = 3 * time.Second
)

// event is one write as a drill client reports it.
type event struct {
	at  time.Time
	ok  bool
	msg string
}

// drillClient is one client process (or goroutine) writing in a loop.
type drillClient struct {
	name   string
	direct bool
	mu     sync.Mutex
	events []event
	out    []string // lines that are no event (the client's own warnings)
	stop   func()
}

func (d *drillClient) add(e event) {
	d.mu.Lock()
	d.events = append(d.events, e)
	d.mu.Unlock()
}

func (d *drillClient) oks() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, e := range d.events {
		if e.ok {
			n++
		}
	}
	return n
}

var eventRe = regexp.MustCompile(`^(OK|ERR) (\d+)(?: (.*))?$`)

// feed reads "OK <ms>" / "ERR <ms> <error>" lines.
func (d *drillClient) feed(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := eventRe.FindStringSubmatch(sc.Text())
		if m == nil {
			d.mu.Lock()
			d.out = append(d.out, sc.Text())
			d.mu.Unlock()
			continue
		}
		ms, _ := strconv.ParseInt(m[2], 10, 64)
		d.add(event{at: time.UnixMilli(ms), ok: m[1] == "OK", msg: m[3]})
	}
}

// result is what the drill reports per client.
type result struct {
	failed     int
	stall      time.Duration // longest time without a successful write, from the kill on
	tail       int           // writes in the last drillTail
	firstErr   string
	errClasses []string
}

func (d *drillClient) result(kill, end time.Time) result {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := result{}
	last := kill
	classes := map[string]bool{}
	for _, e := range d.events {
		if e.at.Before(kill) {
			if !e.ok {
				r.failed++
			}
			continue
		}
		if e.ok {
			r.stall = max(r.stall, e.at.Sub(last))
			last = e.at
			if e.at.After(end.Add(-drillTail)) {
				r.tail++
			}
			continue
		}
		r.failed++
		if r.firstErr == "" {
			r.firstErr = e.msg
		}
		c := e.msg
		if i := strings.IndexAny(c, ":("); i > 0 {
			c = c[:i]
		}
		classes[strings.TrimSpace(c)] = true
	}
	r.stall = max(r.stall, end.Sub(last)) // no write since: a stall to the end
	for c := range classes {
		r.errClasses = append(r.errClasses, c)
	}
	sort.Strings(r.errClasses)
	return r
}

// TestFailoverDrill is issue 25's drill: a 3 masters + 3 replicas cluster announcing
// unresolvable names, the controller's config.json, rconn-proxy (the binary) in front; the
// master of slot 0 is killed while redis-cli -c, redis-py, redis-rb, phpredis, ioredis,
// node-redis and go-redis write to its slots through the proxy. Every client must keep writing
// after the failover. The same clients run at the same time straight against a second
// cluster that announces reachable addresses (its master killed at the same moment), for
// comparison; the table (failed writes, longest stall) goes to docs/consuming.md.
func TestFailoverDrill(t *testing.T) {
	// Before t.Parallel, so that no go-redis client of either test reads the logger meanwhile
	// (TestBinary, which runs after this file's tests, had it quiet already).
	redis.SetLogger(quiet{}) // the direct go-redis client logs every dial to the dead master
	t.Parallel()             // its own clusters and proxy: overlaps TestBinary
	bin := build(t)
	for _, dep := range [][]string{{"/usr/bin/python3", "-c", "import redis"}, {"ruby", "-e", "require 'redis'"}, {"php", "-r", "exit(class_exists('RedisCluster') ? 0 : 1);"}, {"redis-cli", "--version"}, {"stdbuf", "--version"}} {
		if out, err := exec.Command(dep[0], dep[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v (hack/install-deps.sh installs it)\n%s", dep, err, out)
		}
	}
	c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	nodeDir, err := npmtest.InstallClients(c)
	if err != nil {
		t.Fatal(err)
	}

	viaProxy := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1, Announce: redistest.AnnounceHostname})
	direct := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1, Announce: redistest.AnnounceIP})
	seed, proxyLog := startProxy(t, bin, viaProxy)
	tag := cluster.KeyForSlot(0)

	work := t.TempDir()
	var clients []*drillClient
	for _, side := range []struct {
		direct bool
		addr   string
	}{{false, seed}, {true, direct.Nodes[1].Addr()}} { // direct: a seed that survives (Nodes[0] is killed)
		h, p, _ := net.SplitHostPort(side.addr)
		sub := filepath.Join(work, strconv.FormatBool(side.direct))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		clients = append(clients,
			startScript(t, "redis-py", side.direct, "/usr/bin/python3", filepath.Join("testdata", "drill", "redis-py.py"), h, p, tag),
			startScript(t, "redis-rb", side.direct, "ruby", filepath.Join("testdata", "drill", "redis-rb.rb"), h, p, tag),
			startScript(t, "phpredis", side.direct, "php", filepath.Join("testdata", "drill", "phpredis.php"), h, p, tag),
			startNode(t, nodeDir, sub, "ioredis", side.direct, "ioredis.cjs", h, p, tag),
			startNode(t, nodeDir, sub, "node-redis", side.direct, "node-redis.mjs", h, p, tag),
			startRedisCLI(t, side.direct, h, p, tag),
			startGoRedis(t, side.direct, side.addr, tag),
		)
	}
	nettest.WaitFor(t, 90*time.Second, "every client writing", func() error {
		for _, d := range clients {
			if n := d.oks(); n < drillWarm {
				d.mu.Lock()
				defer d.mu.Unlock()
				return fmt.Errorf("%s (direct %v): %d writes; %v %v", d.name, d.direct, n, d.events[max(0, len(d.events)-3):], d.out)
			}
		}
		return nil
	})
	kill := time.Now()
	for _, rc := range []*redistest.Cluster{viaProxy, direct} {
		for _, n := range rc.Masters() {
			if ownsSlot0(n, rc) {
				n.Kill()
			}
		}
	}
	time.Sleep(drillAfter)
	end := time.Now()
	for _, d := range clients {
		d.stop()
	}
	var table strings.Builder
	fmt.Fprintf(&table, "| client | through rconn-proxy: failed writes / longest stall | direct: failed writes / longest stall | errors through the proxy | errors direct |\n|---|---|---|---|---|\n")
	byName := map[string][2]result{}
	var names []string
	for _, d := range clients {
		r := d.result(kill, end)
		v, seen := byName[d.name]
		if !seen {
			names = append(names, d.name)
		}
		if d.direct {
			v[1] = r
		} else {
			v[0] = r
			if r.tail == 0 {
				d.mu.Lock()
				t.Errorf("%s through the proxy did not write in the last %s of the drill (failed %d, first error %q); output: %v", d.name, drillTail, r.failed, r.firstErr, d.out)
				d.mu.Unlock()
			}
		}
		byName[d.name] = v
	}
	for _, n := range names {
		v := byName[n]
		fmt.Fprintf(&table, "| %s | %d / %.1f s | %d / %.1f s | %s | %s |\n", n, v[0].failed, v[0].stall.Seconds(), v[1].failed, v[1].stall.Seconds(),
			strings.Join(v[0].errClasses, ", "), strings.Join(v[1].errClasses, ", "))
	}
	t.Logf("failover drill (master of slot 0 killed, %s after):\n%s", drillAfter, table.String())
	for _, n := range names {
		t.Logf("%s first error through the proxy: %q; direct: %q", n, byName[n][0].firstErr, byName[n][1].firstErr)
	}
	if t.Failed() {
		t.Logf("proxy log:\n%s", proxyLog())
	}
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// ownsSlot0 tells whether n serves slot 0 in rc (as formed).
func ownsSlot0(n *redistest.Node, rc *redistest.Cluster) bool { return rc.Masters()[0] == n }

// startProxy runs rconn-proxy on the controller-style mount of rc's config.json; it returns
// the seed address and the proxy's log.
func startProxy(t *testing.T, bin string, rc *redistest.Cluster) (string, func() string) {
	t.Helper()
	cfg := &client.Config{RootNodes: []client.RootNodeConfig{{URL: "redis://" + rc.Nodes[0].Announced}}, NodeAddressMap: map[string]client.MappedAddress{}}
	for announced, addr := range rc.AddressMap() {
		h, p, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(p)
		cfg.NodeAddressMap[announced] = client.MappedAddress{Host: h, Port: port}
	}
	files := map[string][]byte{}
	raw, err := client.BindSecret(cfg, files, "t1")
	if err != nil {
		t.Fatal(err)
	}
	files[client.ConfigFileName] = raw
	mount := t.TempDir()
	if err := kubeletmount.Write(mount, files, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--seed-port", "0", "--allow-loopback", mount)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var logs []string
	seedAt := make(chan string, 1)
	done := make(chan struct{})
	seedRe := regexp.MustCompile(`msg="rconn proxy listening" seed=(127\.0\.0\.1:\d+)`)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			logs = append(logs, sc.Text())
			mu.Unlock()
			if m := seedRe.FindStringSubmatch(sc.Text()); m != nil {
				seedAt <- m[1]
			}
		}
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done }) // by PID: the process this test started
	log := func() string { mu.Lock(); defer mu.Unlock(); return strings.Join(logs, "\n") }
	select {
	case s := <-seedAt:
		return s, log
	case <-done:
		t.Fatalf("rconn-proxy exited:\n%s", log())
	case <-time.After(30 * time.Second):
		t.Fatalf("rconn-proxy did not listen within 30s:\n%s", log())
	}
	return "", nil
}

func startProcess(t *testing.T, d *drillClient, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { d.feed(out); _ = cmd.Wait(); close(done) }()
	d.stop = func() { _ = cmd.Process.Kill(); <-done } // by PID
	t.Cleanup(d.stop)
}

func loopArgs() []string {
	return []string{strconv.Itoa(int((10 * time.Minute).Milliseconds())), strconv.Itoa(int(drillInterval.Milliseconds()))}
}

func startScript(t *testing.T, name string, isDirect bool, interp, script, h, p, tag string) *drillClient {
	d := &drillClient{name: name, direct: isDirect}
	startProcess(t, d, interp, append([]string{script, h, p, tag}, loopArgs()...)...)
	return d
}

func startNode(t *testing.T, nodeDir, work, name string, isDirect bool, script, h, p, tag string) *drillClient {
	src, err := os.ReadFile(filepath.Join("testdata", "drill", script))
	if err != nil {
		t.Fatal(err)
	}
	path, err := npmtest.WriteScript(nodeDir, work, script, string(src))
	if err != nil {
		t.Fatal(err)
	}
	guard, err := npmtest.NoDNSArgs(work)
	if err != nil {
		t.Fatal(err)
	}
	d := &drillClient{name: name, direct: isDirect}
	startProcess(t, d, "node", append(append(guard, path, h, p, tag), loopArgs()...)...)
	return d
}

// startRedisCLI runs `redis-cli -c -r ... -i ... SET` in a loop, as a shell script would
// (redis-cli exits at the first connection error): every "OK" line is a write, every other
// line an error, every exit of redis-cli a failed write before it is started again.
func startRedisCLI(t *testing.T, isDirect bool, h, p, tag string) *drillClient {
	d := &drillClient{name: "redis-cli -c", direct: isDirect}
	quit := make(chan struct{})
	done := make(chan struct{})
	var mu sync.Mutex
	var cur *exec.Cmd
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			default:
			}
			cmd := exec.Command("stdbuf", "-oL", "redis-cli", "-c", "-h", h, "-p", p, "-r", "1000000", "-i", fmt.Sprintf("%.3f", drillInterval.Seconds()), "SET", "drill:{"+tag+"}:cli", "v")
			out, err := cmd.StdoutPipe()
			if err != nil {
				return
			}
			cmd.Stderr = cmd.Stdout
			mu.Lock()
			if err := cmd.Start(); err != nil {
				mu.Unlock()
				return
			}
			cur = cmd
			mu.Unlock()
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				if line == "" {
					continue
				}
				d.add(event{at: time.Now(), ok: line == "OK", msg: line})
			}
			err = cmd.Wait()
			d.add(event{at: time.Now(), msg: fmt.Sprintf("redis-cli exited (%v)", err)})
			select {
			case <-quit:
				return
			case <-time.After(drillInterval):
			}
		}
	}()
	d.stop = func() {
		select {
		case <-quit:
		default:
			close(quit)
		}
		mu.Lock()
		if cur != nil {
			_ = cur.Process.Kill() // by PID
		}
		mu.Unlock()
		<-done
	}
	t.Cleanup(d.stop)
	return d
}

// startGoRedis writes with go-redis's ClusterClient (1s timeouts), in this process.
func startGoRedis(t *testing.T, isDirect bool, seed, tag string) *drillClient {
	d := &drillClient{name: "go-redis", direct: isDirect}
	c := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: []string{seed}, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
		Dialer:                   nettest.NewRecorder(nil).Dial,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-quit:
				return
			case <-time.After(drillInterval):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := c.Set(ctx, fmt.Sprintf("drill:{%s}:%d", tag, i%100), i, 0).Err()
			cancel()
			if err != nil {
				d.add(event{at: time.Now(), msg: err.Error()})
				continue
			}
			d.add(event{at: time.Now(), ok: true})
		}
	}()
	d.stop = func() {
		select {
		case <-quit:
		default:
			close(quit)
			<-done
			_ = c.Close()
		}
	}
	t.Cleanup(d.stop)
	return d
}
