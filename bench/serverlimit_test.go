package bench

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisBenchmark is the client name of the server-bound baseline (cmd/table knows it).
const redisBenchmark = "redis-benchmark-P16"

// serverLimitPipeline is redis-benchmark's -P: 16 commands in flight per connection.
const serverLimitPipeline = 16

// rbRequests is redis-benchmark's -n per run (RCONN_BENCH_RB_REQUESTS; default 500,000, about
// 1-2.5 s here). Each run is one sample.
func rbRequests() int {
	if v, err := strconv.Atoi(os.Getenv("RCONN_BENCH_RB_REQUESTS")); err == nil && v > 0 {
		return v
	}
	return 500_000
}

// runRedisBenchmark execs redis-benchmark against addr (a standalone server, or any node with
// --cluster) and returns the requests per second it measured for test ("get" or "set"). Keys
// are key:<12 digits> over 1,024 names (-r 1024, as the Go benchmarks' 1,024 keys), values 8
// bytes. It also returns the CPU time redis-benchmark used. The process is started and waited
// for here; it is killed if ctx ends first.
func runRedisBenchmark(ctx context.Context, addr string, isCluster bool, test string, clients, pipeline, requests int) (float64, time.Duration, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, 0, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return 0, 0, fmt.Errorf("redis-benchmark: %s is not a loopback IP", addr)
	}
	args := []string{"-h", host, "-p", port, "-t", test, "-n", strconv.Itoa(requests), "-c", strconv.Itoa(clients),
		"-P", strconv.Itoa(pipeline), "-r", "1024", "-d", "8", "--csv"}
	if isCluster {
		args = append(args, "--cluster")
	}
	cmd := exec.Command("redis-benchmark", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with the test binary
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		return 0, 0, fmt.Errorf("starting redis-benchmark (Debian redis-tools; `make deps`): %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		<-done //nolint:errcheck // waits for the killed process; its error is the kill
		return 0, 0, ctx.Err()
	}
	if err != nil {
		return 0, 0, fmt.Errorf("redis-benchmark %s: %w: %s", strings.Join(args, " "), err, errOut.String())
	}
	rps, err := parseRedisBenchmarkCSV(out.Bytes(), test)
	return rps, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), err
}

// parseRedisBenchmarkCSV returns the "rps" of the row named test (case-insensitive) in
// redis-benchmark --csv output:
//
//	"test","rps","avg_latency_ms",...
//	"GET","751879.69","1.209",...
func parseRedisBenchmarkCSV(b []byte, test string) (float64, error) {
	r := csv.NewReader(bytes.NewReader(b))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return 0, fmt.Errorf("redis-benchmark CSV: %w", err)
	}
	col := -1
	for _, row := range rows {
		if len(row) == 0 {
			continue
		}
		if row[0] == "test" {
			for i, h := range row {
				if h == "rps" {
					col = i
				}
			}
			continue
		}
		if col >= 0 && col < len(row) && strings.EqualFold(row[0], test) {
			return strconv.ParseFloat(row[col], 64)
		}
	}
	return 0, fmt.Errorf("redis-benchmark CSV: no rps for %s in %q", test, b)
}

// BenchmarkClients_redisBenchmark runs redis-benchmark -P 16 (C, one event-loop thread, 16
// commands pipelined per connection) against the same servers as BenchmarkClients, as the
// server-bound limit: <topology>/<command>/par<N>/redis-benchmark-P16 with N connections, so
// cmd/table puts it in the same rows. ns/op is 1e9 / redis-benchmark's own requests per second
// (its timing, not the process start-up), one run of RCONN_BENCH_RB_REQUESTS requests per
// sample; B/op and allocs/op are the Go process's and say nothing.
func BenchmarkClients_redisBenchmark(b *testing.B) {
	if _, err := exec.LookPath("redis-benchmark"); err != nil {
		b.Skip("redis-benchmark not on PATH (Debian redis-tools)")
	}
	for _, topo := range setup(b) {
		addr := env.servers.standalone.addr()
		isCluster := topo.name == "cluster"
		if isCluster {
			addr = env.servers.cluster[0].addr()
		}
		// Write every key redis-benchmark's GETs ask for, so they are hits.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, _, err := runRedisBenchmark(ctx, addr, isCluster, "set", 4, serverLimitPipeline, 50_000)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		for _, op := range []string{"GET", "SET"} {
			for _, par := range []int{64, 512} {
				b.Run(fmt.Sprintf("%s/%s/par%d/%s", topo.name, op, par, redisBenchmark), func(b *testing.B) {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
					defer cancel()
					b.ReportAllocs()
					cpu := topo.startCPU(ctx)
					n := rbRequests()
					rps, used, err := runRedisBenchmark(ctx, addr, isCluster, strings.ToLower(op), par, serverLimitPipeline, n)
					if err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(1e9/rps, "ns/op")
					cpu.report(ctx, b, used, n)
				})
			}
		}
	}
}

// TestRedisBenchmarkBaseline checks the baseline runs on both topologies and that its GETs
// find the keys its SETs wrote (so the GET figure is of hits, like the Go clients').
func TestRedisBenchmarkBaseline(t *testing.T) {
	if _, err := exec.LookPath("redis-benchmark"); err != nil {
		t.Skip("redis-benchmark not on PATH (Debian redis-tools)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	setup(t)
	for _, tc := range []struct {
		addr      string
		isCluster bool
	}{{env.servers.standalone.addr(), false}, {env.servers.cluster[0].addr(), true}} {
		for _, test := range []string{"set", "get"} {
			rps, _, err := runRedisBenchmark(ctx, tc.addr, tc.isCluster, test, 4, serverLimitPipeline, 20_000)
			if err != nil {
				t.Fatal(err)
			}
			if rps <= 0 {
				t.Fatalf("%s cluster=%v: rps %v", test, tc.isCluster, rps)
			}
		}
	}
	// After the SET runs above, every GET key redis-benchmark uses exists.
	c := redis.NewClient(adminOptions(env.servers.standalone.addr()))
	defer func() { _ = c.Close() }()
	n, err := c.DBSize(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n < 1024 {
		t.Fatalf("standalone has %d keys after redis-benchmark SET -r 1024, want ≥ 1024", n)
	}
	if v, err := c.Get(ctx, "key:000000000000").Result(); err != nil || len(v) != 8 {
		t.Fatalf("GET key:000000000000 = %q, %v; want an 8-byte value", v, err)
	}
}

func TestParseRedisBenchmarkCSV(t *testing.T) {
	out := []byte("\"test\",\"rps\",\"avg_latency_ms\"\n\"SET\",\"563380.31\",\"1.567\"\n\"GET\",\"751879.69\",\"1.209\"\n")
	if v, err := parseRedisBenchmarkCSV(out, "get"); err != nil || v != 751879.69 {
		t.Fatalf("get = %v, %v", v, err)
	}
	if _, err := parseRedisBenchmarkCSV(out, "incr"); err == nil {
		t.Fatal("incr: want an error")
	}
}
