package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// Hop subjects (cmd/table knows them): the same servers straight, through HAProxy in TCP mode
// (the reference cost of one forwarding hop) and through rconn-proxy.
const (
	hopDirect  = "direct"
	hopHAProxy = "haproxy"
	hopRconn   = "rconn-proxy"
)

// proc is a helper process this package started (haproxy, rconn-proxy); it is stopped by PID.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	log  []string
}

func startProc(name string, args ...string) (*proc, error) {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with the test binary
	out, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			if len(p.log) < 200 { // bounded: a misbehaving run must not fill the memory
				p.log = append(p.log, sc.Text())
			}
			p.mu.Unlock()
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.log, "\n")
}

// waitLog waits for a log line matching re and returns its first submatch.
func (p *proc) waitLog(re *regexp.Regexp, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		for _, l := range p.log {
			if m := re.FindStringSubmatch(l); m != nil {
				p.mu.Unlock()
				return m[1], nil
			}
		}
		p.mu.Unlock()
		select {
		case <-p.done:
			return "", fmt.Errorf("%s exited:\n%s", p.cmd.Path, p.logs())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("%s: no %q within %s:\n%s", p.cmd.Path, re, timeout, p.logs())
}

func (p *proc) stop() {
	if p == nil {
		return
	}
	_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// cpu is the process's user+system CPU time so far (every thread), from /proc/<pid>/stat.
func (p *proc) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name (in parentheses, may hold spaces): utime is the 14th
	// field of the line, stime the 15th, in clock ticks (100 per second on Linux).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", p.cmd.Process.Pid, s)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// waitListening dials addr until it accepts.
func waitListening(addr string, p *proc) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited:\n%s", p.cmd.Path, p.logs())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not accept on %s: %w\n%s", p.cmd.Path, addr, err, p.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// haproxyPath finds Debian's haproxy (in /usr/sbin, not always on PATH).
func haproxyPath() (string, error) {
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy", nil
	}
	return "", errors.New("haproxy is not installed (Debian haproxy; `make deps`)")
}

// startHAProxy runs HAProxy in TCP mode, one frontend forwarding to target, with a config
// written here: the defaults a user would write (no splicing, threads = cores), client and
// server timeouts far above any benchmark's idle time.
func startHAProxy(dir, target string) (*proc, string, error) {
	bin, err := haproxyPath()
	if err != nil {
		return nil, "", err
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfg := fmt.Sprintf(`global
  maxconn 4000
defaults
  mode tcp
  timeout connect 5s
  timeout client 10m
  timeout server 10m
listen redis
  bind %s
  server node %s
`, addr, target)
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, "", err
	}
	p, err := startProc(bin, "-db", "-f", path)
	if err != nil {
		return nil, "", err
	}
	if err := waitListening(addr, p); err != nil {
		p.stop()
		return nil, "", err
	}
	return p, addr, nil
}

// buildRconnProxy builds cmd/rconn-proxy of this checkout (the main module, ../).
func buildRconnProxy(dir string) (string, error) {
	bin := filepath.Join(dir, "rconn-proxy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/rconn-proxy")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/rconn-proxy: %w\n%s", err, out)
	}
	return bin, nil
}

var seedLine = regexp.MustCompile(`msg="rconn proxy listening" seed=(127\.0\.0\.1:\d+)`)

// startRconnProxy runs the built rconn-proxy on a mount of config.json as the controller
// renders it (bound to its Secret), every node mapped to itself, and returns its seed.
func startRconnProxy(bin, dir, mode string, addrs []string) (*proc, string, error) {
	cfg := &client.Config{RootNodes: []client.RootNodeConfig{{URL: "redis://" + addrs[0]}}, NodeAddressMap: map[string]client.MappedAddress{}}
	cfg.Rconn.Mode = mode
	for _, a := range addrs {
		h, p, _ := net.SplitHostPort(a)
		port, _ := strconv.Atoi(p)
		cfg.NodeAddressMap[a] = client.MappedAddress{Host: h, Port: port}
	}
	files := map[string][]byte{}
	raw, err := client.BindSecret(cfg, files, "bench")
	if err != nil {
		return nil, "", err
	}
	files[client.ConfigFileName] = raw
	mount := filepath.Join(dir, "mount-"+mode)
	if err := os.MkdirAll(mount, 0o700); err != nil {
		return nil, "", err
	}
	for k, v := range files {
		if err := os.WriteFile(filepath.Join(mount, k), v, 0o600); err != nil {
			return nil, "", err
		}
	}
	p, err := startProc(bin, "--seed-port", "0", mount)
	if err != nil {
		return nil, "", err
	}
	seed, err := p.waitLog(seedLine, 30*time.Second)
	if err != nil {
		p.stop()
		return nil, "", err
	}
	return p, seed, nil
}

// hopEnv is the proxies of BenchmarkProxyHop, started on first use, stopped by TestMain.
var hopEnv struct {
	once                sync.Once
	err                 error
	dir                 string
	haproxy             *proc // nil: not installed (outside CI)
	haproxyAddr         string
	haproxyErr          error
	standalone, cluster *proc
	standaloneSeed      string
	clusterSeed         string
	clients             map[string]redis.UniversalClient
}

func setupHop(tb testing.TB) {
	tb.Helper()
	setup(tb)
	hopEnv.once.Do(func() {
		hopEnv.clients = map[string]redis.UniversalClient{}
		if hopEnv.dir, hopEnv.err = os.MkdirTemp("", "rconn-hop-"); hopEnv.err != nil {
			return
		}
		bin, err := buildRconnProxy(hopEnv.dir)
		if err != nil {
			hopEnv.err = err
			return
		}
		s := env.servers
		if hopEnv.standalone, hopEnv.standaloneSeed, err = startRconnProxy(bin, hopEnv.dir, client.ModeStandalone, []string{s.standalone.addr()}); err != nil {
			hopEnv.err = fmt.Errorf("rconn-proxy (standalone): %w", err)
			return
		}
		if hopEnv.cluster, hopEnv.clusterSeed, err = startRconnProxy(bin, hopEnv.dir, client.ModeCluster, s.clusterAddrs()); err != nil {
			hopEnv.err = fmt.Errorf("rconn-proxy (cluster): %w", err)
			return
		}
		hopEnv.haproxy, hopEnv.haproxyAddr, hopEnv.haproxyErr = startHAProxy(hopEnv.dir, s.standalone.addr())
		if hopEnv.haproxyErr != nil && os.Getenv("CI") != "" {
			hopEnv.err = fmt.Errorf("haproxy (required in CI): %w", hopEnv.haproxyErr)
		}
	})
	if hopEnv.err != nil {
		tb.Fatal(hopEnv.err)
	}
}

func stopHop() {
	for _, c := range hopEnv.clients {
		_ = c.Close()
	}
	for _, p := range []*proc{hopEnv.haproxy, hopEnv.standalone, hopEnv.cluster} {
		p.stop()
	}
	if hopEnv.dir != "" {
		_ = os.RemoveAll(hopEnv.dir)
	}
}

// hopTarget is one subject of one topology: where a client connects and the hop process.
type hopTarget struct {
	subject string
	addr    string
	hop     *proc // nil: direct
	skip    error // the subject cannot run here (HAProxy not installed)
}

func hopTargets(topo string) []hopTarget {
	if topo == "cluster" {
		// HAProxy has no cluster mode (it cannot rewrite CLUSTER SLOTS/NODES or -MOVED): the
		// cluster's reference is the nodes straight.
		return []hopTarget{
			{subject: hopDirect, addr: env.servers.cluster[0].addr()},
			{subject: hopRconn, addr: hopEnv.clusterSeed, hop: hopEnv.cluster},
		}
	}
	return []hopTarget{
		{subject: hopDirect, addr: env.servers.standalone.addr()},
		{subject: hopHAProxy, addr: hopEnv.haproxyAddr, hop: hopEnv.haproxy, skip: hopEnv.haproxyErr},
		{subject: hopRconn, addr: hopEnv.standaloneSeed, hop: hopEnv.standalone},
	}
}

// hopRequests is redis-benchmark's -n per sample (RCONN_BENCH_HOP_REQUESTS, default 200,000
// with -P 16; a quarter of it without pipelining, a twentieth at one connection), about 1-3 s
// per sample here.
func hopRequests(par, pipeline int) int {
	n := 200_000
	if v, err := strconv.Atoi(os.Getenv("RCONN_BENCH_HOP_REQUESTS")); err == nil && v > 0 {
		n = v
	}
	switch {
	case pipeline > 1:
	case par == 1:
		n /= 20
	default:
		n /= 4
	}
	return max(n, 1000)
}

// hopCPU reports the hop process's CPU per command (hop-us/cmd) since mark.
func hopCPU(b *testing.B, t hopTarget, mark time.Duration, cmds int) {
	if t.hop == nil || cmds <= 0 {
		return
	}
	now, err := t.hop.cpu()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(now-mark)/float64(time.Microsecond)/float64(cmds), "hop-us/cmd")
}

func hopMark(b *testing.B, t hopTarget) time.Duration {
	if t.hop == nil {
		return 0
	}
	c, err := t.hop.cpu()
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkProxyHop measures what one forwarding hop costs, side by side in one run against
// the same servers: <topology>/<tool>/<command>/par<N>/P<pipeline>/<subject>, subject direct,
// haproxy (TCP mode; standalone only) or rconn-proxy (the built binary, another process like
// HAProxy). Tools: redis-benchmark (--cluster through the seed for the cluster), and go-redis
// (a Client, or a ClusterClient seeded with the proxy's seed) with par goroutines and a pool of
// par connections, P16 being pipelines of 16 GETs. ns/op is per command; hop-us/cmd is the
// hop process's CPU per command (user+system, all threads).
func BenchmarkProxyHop(b *testing.B) {
	setupHop(b)
	if _, err := exec.LookPath("redis-benchmark"); err != nil {
		b.Skip("redis-benchmark not on PATH (Debian redis-tools)")
	}
	for _, topo := range []string{"standalone", "cluster"} {
		isCluster := topo == "cluster"
		// Write every key redis-benchmark's GETs ask for, so they are hits.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, _, err := runRedisBenchmark(ctx, hopTargets(topo)[0].addr, isCluster, "set", 4, serverLimitPipeline, 50_000)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		for _, par := range []int{1, 64, 512} {
			for _, pipeline := range []int{1, 16} {
				for _, op := range []string{"GET", "SET"} {
					for _, t := range hopTargets(topo) {
						b.Run(fmt.Sprintf("%s/redis-benchmark/%s/par%d/P%d/%s", topo, op, par, pipeline, t.subject), func(b *testing.B) {
							hopRedisBenchmark(b, t, isCluster, op, par, pipeline)
						})
					}
				}
				for _, t := range hopTargets(topo) {
					b.Run(fmt.Sprintf("%s/go-redis/GET/par%d/P%d/%s", topo, par, pipeline, t.subject), func(b *testing.B) {
						hopGoRedis(b, t, isCluster, par, pipeline)
					})
				}
			}
		}
	}
}

func hopRedisBenchmark(b *testing.B, t hopTarget, isCluster bool, op string, par, pipeline int) {
	if t.skip != nil {
		b.Skip(t.skip)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n := hopRequests(par, pipeline)
	mark := hopMark(b, t)
	rps, _, err := runRedisBenchmark(ctx, t.addr, isCluster, strings.ToLower(op), par, pipeline, n)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(1e9/rps, "ns/op")
	hopCPU(b, t, mark, n)
}

// hopClient is the go-redis client of a subject at par connections, kept for the run (so its
// dials are not measured).
func hopClient(t hopTarget, isCluster bool, par int) redis.UniversalClient {
	key := fmt.Sprintf("%s|%v|%d", t.addr, isCluster, par)
	if c := hopEnv.clients[key]; c != nil {
		return c
	}
	var c redis.UniversalClient
	if isCluster {
		addrs := []string{t.addr}
		if t.hop == nil {
			addrs = env.servers.clusterAddrs()
		}
		c = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, PoolSize: par, MaintNotificationsConfig: noMaint, DisableIdentity: true})
	} else {
		c = redis.NewClient(&redis.Options{Addr: t.addr, PoolSize: par, MaintNotificationsConfig: noMaint, DisableIdentity: true})
	}
	hopEnv.clients[key] = c
	return c
}

func hopGoRedis(b *testing.B, t hopTarget, isCluster bool, par, pipeline int) {
	if t.skip != nil {
		b.Skip(t.skip)
	}
	ctx := context.Background()
	c := hopClient(t, isCluster, par)
	do := func(i uint64) error { return c.Get(ctx, benchKeys[i%uint64(len(benchKeys))]).Err() }
	if pipeline > 1 {
		do = func(i uint64) error {
			cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for k := range uint64(pipeline) {
					p.Get(ctx, benchKeys[(i*uint64(pipeline)+k)%uint64(len(benchKeys))])
				}
				return nil
			})
			_ = cmds
			return err
		}
	}
	mark := hopMark(b, t)
	run(b, par, do)
	b.StopTimer()
	cmds := b.N * pipeline
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(cmds), "ns/op")
	hopCPU(b, t, mark, cmds)
}

// TestProxyHopSubjects checks every hop subject answers (and rewrites topology) before anyone
// trusts a figure: a GET and a pipeline through each, with go-redis and redis-benchmark.
func TestProxyHopSubjects(t *testing.T) {
	setupHop(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, topo := range []string{"standalone", "cluster"} {
		for _, ht := range hopTargets(topo) {
			if ht.skip != nil {
				t.Logf("%s/%s skipped: %v", topo, ht.subject, ht.skip)
				continue
			}
			c := hopClient(ht, topo == "cluster", 4)
			if err := c.Set(ctx, benchKeys[0], "v", 0).Err(); err != nil {
				t.Errorf("%s/%s SET: %v", topo, ht.subject, err)
			}
			if _, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range benchKeys[:64] {
					p.Get(ctx, k)
				}
				return nil
			}); err != nil && !errors.Is(err, redis.Nil) {
				t.Errorf("%s/%s pipeline: %v", topo, ht.subject, err)
			}
			if rps, _, err := runRedisBenchmark(ctx, ht.addr, topo == "cluster", "get", 4, 16, 2000); err != nil || rps <= 0 {
				t.Errorf("%s/%s redis-benchmark: %v, %v", topo, ht.subject, rps, err)
			}
		}
	}
	if hopEnv.haproxy == nil && os.Getenv("CI") == "" {
		t.Log("haproxy not installed: BenchmarkProxyHop runs without its haproxy column")
	}
}
