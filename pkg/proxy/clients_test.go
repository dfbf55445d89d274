package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// cli runs redis-cli with args (plus stdin) and returns its output.
func cli(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("redis-cli", args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func hostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// redirected matches a redirection as redis-cli prints it without -c (not on a terminal).
var redirected = regexp.MustCompile(`(?:MOVED|ASK) \d+ (\S+)`)

// TestRedisCLIThroughProxy drives Debian's redis-cli -c (no address map possible) through the
// proxy against a cluster announcing unreachable names, plaintext and TLS.
func TestRedisCLIThroughProxy(t *testing.T) {
	t.Parallel() // its own cluster and proxy: overlaps the other tests' waits
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatal("redis-cli is not on PATH: run make deps (Debian redis-tools)")
	}
	for _, tc := range []struct {
		name string
		o    envOptions
	}{{"plaintext", envOptions{}}, {"tls", envOptions{tls: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, tc.o)
			h, p := hostPort(t, e.p.SeedAddr())
			seed := []string{"-c", "-h", h, "-p", p}
			// SET/GET on every shard, following MOVED from the seed.
			moved := 0
			for _, k := range shardKeys() {
				// Without -c redis-cli shows the redirection the seed's node sends.
				if m := redirected.FindStringSubmatch(cli(t, "", append(seed[1:], "GET", k)...)); m != nil {
					moved++
					if !slices.Contains(e.listeners(), m[1]) {
						t.Fatalf("the seed redirected redis-cli to %s, not a proxy listener (%v)", m[1], e.listeners())
					}
				}
				out := cli(t, "", append(seed, "SET", k, "cli-"+k)...)
				if !strings.Contains(out, "OK") {
					t.Fatalf("SET %s: %s", k, out)
				}
				if out := cli(t, "", append(seed, "GET", k)...); !strings.Contains(out, "cli-"+k) {
					t.Fatalf("GET %s: %s", k, out)
				}
			}
			if moved < 2 {
				t.Fatalf("%d of 3 shards redirected from the seed, want 2", moved)
			}
			// CLUSTER SLOTS / NODES as redis-cli prints them name only listeners.
			for _, sub := range []string{"SLOTS", "NODES", "SHARDS"} {
				out := cli(t, "", append(seed, "CLUSTER", sub)...)
				if strings.Contains(out, ".invalid") && sub != "SHARDS" {
					t.Fatalf("CLUSTER %s still names announced hosts:\n%s", sub, out)
				}
			}
			if out := cli(t, "", append(seed, "CLUSTER", "NODES")...); strings.Count(out, e.p.SeedAddr()[:strings.LastIndex(e.p.SeedAddr(), ":")]) < 3 {
				t.Fatalf("CLUSTER NODES: %s", out)
			}
			// MULTI/EXEC and a pipeline (stdin), on the node that owns the hash tag.
			owner := e.listenerOf(t, e.ownerOf("{cli}"))
			oh, op := hostPort(t, owner)
			out := cli(t, "MULTI\nSET {cli}a 1\nINCR {cli}a\nEXEC\n", "-h", oh, "-p", op)
			if !strings.Contains(out, "QUEUED") || !strings.HasSuffix(strings.TrimSpace(out), "2") {
				t.Fatalf("MULTI/EXEC: %q", out)
			}
			var pipe strings.Builder
			for i := 0; i < 200; i++ {
				fmt.Fprintf(&pipe, "*3\r\n$5\r\nRPUSH\r\n$9\r\n{cli}list\r\n$%d\r\n%d\r\n", len(fmt.Sprint(i)), i)
			}
			if out := cli(t, pipe.String(), "-h", oh, "-p", op, "--pipe"); !strings.Contains(out, "errors: 0, replies: 200") {
				t.Fatalf("redis-cli --pipe: %s", out)
			}
			if out := cli(t, "", "-h", oh, "-p", op, "LLEN", "{cli}list"); strings.TrimSpace(out) != "200" {
				t.Fatalf("LLEN after --pipe: %s", out)
			}
			// SUBSCRIBE / PUBLISH and SSUBSCRIBE / SPUBLISH: a subscriber process, a publisher.
			for _, kind := range []string{"SUBSCRIBE", "SSUBSCRIBE"} {
				sub := startCLI(t, append(seed, kind, "cli-news")...)
				sub.waitLine(t, "cli-news")
				pub := "PUBLISH"
				if kind == "SSUBSCRIBE" {
					pub = "SPUBLISH"
				}
				waitFor(t, "the message to reach the "+kind+" subscriber", func() error {
					cli(t, "", append(seed, pub, "cli-news", "hello-"+kind)...)
					if sub.has("hello-" + kind) {
						return nil
					}
					return fmt.Errorf("output so far: %q", sub.output())
				})
				sub.stop()
			}
			// BLPOP from one redis-cli, RPUSH from another.
			bl := startCLI(t, append(seed, "BLPOP", "cli-queue", "20")...)
			waitFor(t, "BLPOP to block", func() error { return blocked(ctx(t), e, "cli-queue") })
			cli(t, "", append(seed, "RPUSH", "cli-queue", "job-1")...)
			bl.waitLine(t, "job-1")
			bl.stop()
			// MOVED after resharding: the slot of the first key moves to another master.
			k := shardKeys()[0]
			src, dst := e.ownerOf(k), e.rc.Masters()[2]
			if err := e.rc.MigrateSlot(ctx(t), src, dst, slotOf(k), nil, nil); err != nil {
				t.Fatal(err)
			}
			sh, sp := hostPort(t, e.listenerOf(t, src))
			out = cli(t, "", "-h", sh, "-p", sp, "GET", k)
			if m := redirected.FindStringSubmatch(out); m == nil || m[1] != e.listenerOf(t, dst) {
				t.Fatalf("GET %s at the old owner after resharding: want a redirect to %s: %s", k, e.listenerOf(t, dst), out)
			}
			if out := cli(t, "", "-c", "-h", sh, "-p", sp, "GET", k); strings.TrimSpace(out) != "cli-"+k {
				t.Fatalf("redis-cli -c GET %s at the old owner after resharding: %s", k, out)
			}
			e.dial.AssertOnlyDialed(t, e.rc.AddressMap())
		})
	}
}

// proc is a long-running client process whose output is collected.
type proc struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

func startCLI(t *testing.T, args ...string) *proc {
	return startProc(t, "redis-cli", nil, args...)
}

func startProc(t *testing.T, name string, stdin io.Reader, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd.Stdin = stdin
	r, w := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			p.out.add(sc.Text())
		}
	}()
	go func() { _ = p.cmd.Wait(); _ = w.Close(); close(p.done) }()
	t.Cleanup(p.stop)
	return p
}

// stop ends the process (by its PID) and waits for it.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) has(s string) bool {
	return slices.ContainsFunc(p.out.lines(), func(l string) bool { return strings.Contains(l, s) })
}

func (p *proc) output() string { return strings.Join(p.out.lines(), "\n") }

func (p *proc) waitLine(t *testing.T, s string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%q in the output of %s", s, p.cmd.Path), func() error {
		if p.has(s) {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited: %s", p.output())
		default:
		}
		return fmt.Errorf("output so far: %q", p.output())
	})
}

// python3 returns an interpreter that has the redis module (Debian's python3-redis).
func python3(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import redis").Run() == nil {
			return py
		}
	}
	t.Fatal("no python3 with the redis module: run make deps (Debian python3-redis)")
	return ""
}

// TestRedisPyClusterThroughProxy runs redis-py's RedisCluster (Debian python3-redis 4.3.4,
// which has no address_remap) through the proxy.
func TestRedisPyClusterThroughProxy(t *testing.T) {
	t.Parallel() // its own cluster and proxy: overlaps the other tests' waits
	py := python3(t)
	for _, tc := range []struct {
		name string
		o    envOptions
	}{{"plaintext", envOptions{}}, {"tls", envOptions{tls: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, tc.o)
			h, p := hostPort(t, e.p.SeedAddr())
			script := filepath.Join(t.TempDir(), "cluster.py")
			if err := os.WriteFile(script, []byte(redisPyScript), 0o600); err != nil {
				t.Fatal(err)
			}
			keys := shardKeys()
			stdin, feed := io.Pipe()
			defer func() { _ = feed.Close() }()
			pr := startProc(t, py, stdin, append([]string{script, h, p}, keys...)...)
			pr.waitLine(t, "READY-TO-MIGRATE")
			k := keys[0]
			if err := e.rc.MigrateSlot(ctx(t), e.ownerOf(k), e.rc.Masters()[1], slotOf(k), nil, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := fmt.Fprintln(feed, "migrated"); err != nil {
				t.Fatal(err)
			}
			pr.waitLine(t, "ALL-OK")
			for _, l := range pr.out.lines() {
				// redis-py logs the redirection it follows: it must name a listener.
				if _, moved, ok := strings.Cut(l, "MovedError: "); ok {
					if f := strings.Fields(moved); len(f) != 2 || !slices.Contains(e.listeners(), f[1]) {
						t.Fatalf("redis-py was redirected by %q, not to a proxy listener (%v)", l, e.listeners())
					}
				}
				if addr, ok := strings.CutPrefix(l, "NODE "); ok && !slices.Contains(e.listeners(), addr) {
					t.Fatalf("redis-py knows node %s, not a proxy listener (%v)", addr, e.listeners())
				}
			}
			e.dial.AssertOnlyDialed(t, e.rc.AddressMap())
		})
	}
}

const redisPyScript = `
import sys, threading, time
from redis.cluster import RedisCluster
host, port, keys = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rc = RedisCluster(host=host, port=port)
for n in rc.get_nodes():
    print("NODE %s:%d" % (n.host, n.port), flush=True)
for k in keys:
    rc.set(k, "py-" + k)
    assert rc.get(k) == ("py-" + k).encode(), k
print("SET/GET ok", flush=True)

p = rc.pipeline()
for i in range(50):
    p.set("py-pipe-%d" % i, i)
    p.get("py-pipe-%d" % i)
res = p.execute()
assert [res[2*i+1] for i in range(50)] == [str(i).encode() for i in range(50)], res
print("pipeline ok", flush=True)

node = rc.get_node_from_key("{py}")
r = node.redis_connection
tx = r.pipeline(transaction=True)
tx.set("{py}a", 1)
tx.incr("{py}a")
assert tx.execute() == [True, 2]
print("MULTI/EXEC ok", flush=True)

ps = rc.pubsub()
ps.subscribe("py-news")
assert ps.get_message(timeout=5)["type"] == "subscribe"
deadline = time.time() + 10
msg = None
while msg is None and time.time() < deadline:
    rc.publish("py-news", "hello")
    msg = ps.get_message(timeout=0.5)
assert msg and msg["data"] == b"hello", msg
ps.close()
print("SUBSCRIBE ok", flush=True)

# Sharded pub/sub: redis-py 4.3 has no ssubscribe helper; send it on a connection of the
# shard's node (a proxy listener).
snode = rc.get_node_from_key("py-snews")
conn = snode.redis_connection.connection_pool.get_connection("ssubscribe")
conn.send_command("SSUBSCRIBE", "py-snews")
assert conn.read_response()[0] == b"ssubscribe"
deadline = time.time() + 10
got = None
while got is None and time.time() < deadline:
    rc.execute_command("SPUBLISH", "py-snews", "hi", target_nodes=snode)
    if conn.can_read(timeout=0.5):
        got = conn.read_response()
assert got and got[0] == b"smessage" and got[2] == b"hi", got
conn.disconnect()
print("SSUBSCRIBE ok", flush=True)

owner = rc.get_node_from_key("py-queue").redis_connection
def push():
    while not any(c.get("cmd") == "blpop" for c in owner.client_list()):
        time.sleep(0.02)
    rc.rpush("py-queue", "job")
threading.Thread(target=push).start()
assert rc.blpop("py-queue", timeout=20) == (b"py-queue", b"job")
print("BLPOP ok", flush=True)

print("READY-TO-MIGRATE", flush=True)
sys.stdin.readline()
assert rc.get(keys[0]) == ("py-" + keys[0]).encode()
rc.set(keys[0], "after")
assert rc.get(keys[0]) == b"after"
for n in rc.get_nodes():
    print("NODE %s:%d" % (n.host, n.port), flush=True)
print("ALL-OK", flush=True)
`
