package main

import (
	"strings"
	"testing"
)

const sample = `goos: linux
pkg: github.com/rconn-dev/redis-connection-operator/pkg/client
BenchmarkRemount/live/interval=1s-2   	       1	 455122226 ns/op	       546.6 ms-p50	       720.9 ms-p99	        12.00 samples
BenchmarkRemount/live/interval=1s-2   	       1	 455122226 ns/op	       500.0 ms-p50	       700.0 ms-p99	        12.00 samples
BenchmarkRemount/restart/open-2       	     151	   7320082 ns/op	         6.029 ms-p50	        30.43 ms-p99	       151.0 samples
pkg: github.com/rconn-dev/redis-connection-operator/pkg/cluster
BenchmarkCommands/GET/par1/go-redis-2 	   20000	     50000 ns/op	     200 B/op	       7 allocs/op
BenchmarkCommands/GET/par1/rconn-2    	   20000	     40000 ns/op	     200 B/op	       7 allocs/op
BenchmarkDiscoverAndHealth-2          	     700	   1585187 ns/op	   19133 B/op	     387 allocs/op
PASS
pkg: github.com/rconn-dev/redis-connection-operator/bench
BenchmarkClients/cluster/GET/par64/go-redis-2            	  100000	     10000 ns/op	     200 B/op	       7 allocs/op
BenchmarkClients/cluster/GET/par64/rconn-autopipeline-2  	  100000	      5000 ns/op	         3.055 client-us/cmd	         0.8103 server-us/cmd	     200 B/op	       6 allocs/op
BenchmarkClients/cluster/PIPE100/par1/go-redis-2         	    3000	    400000 ns/op	     200 B/op	     459 allocs/op
BenchmarkClients_redisBenchmark/cluster/GET/par64/redis-benchmark-P16-2  	1	 2500 ns/op	  291712 B/op	    5938 allocs/op
BenchmarkProxyHop/standalone/redis-benchmark/GET/par64/P1/direct-2  	1	 10000 ns/op	  291712 B/op	    5938 allocs/op
BenchmarkProxyHop/standalone/redis-benchmark/GET/par64/P1/haproxy-2  	1	 20000 ns/op	  5.0 hop-us/cmd	  291712 B/op	    5938 allocs/op
BenchmarkProxyHop/standalone/redis-benchmark/GET/par64/P1/rconn-proxy-2  	1	 25000 ns/op	  6.5 hop-us/cmd	  291712 B/op	    5938 allocs/op
BenchmarkProxyHop/cluster/redis-benchmark/GET/par64/P1/direct-2  	1	 5000 ns/op	  291712 B/op	    5938 allocs/op
BenchmarkProxyHop/cluster/redis-benchmark/GET/par64/P1/rconn-proxy-2  	1	 20000 ns/op	  7.25 hop-us/cmd	  291712 B/op	    5938 allocs/op
--- FAIL: BenchmarkSomething
pkg: github.com/rconn-dev/redis-connection-operator/test/scale
BenchmarkControllerScale/connections=1000-2  	1	 90000000000 ns/op	  42.5 s-to-ready	 812.3 MiB-peak-rss	 12.5 ms-p99-reconcile	 250 ms-p99-react
`

func TestTable(t *testing.T) {
	var out strings.Builder
	if err := run(strings.NewReader(sample), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	t.Log("\n" + got)
	lines := strings.Split(strings.TrimSpace(got), "\n")
	for _, want := range []string{
		// one table: header, delimiter, then bold section headers inside it
		"| bench Clients — ops/s (× go-redis), median of 1",
		"| cluster GET par64",
		"| 100,000 ",
		"| 200,000 (2.00)",
		"| 400,000 ",
		"| 0.50 ", // rconn-autopipeline × redis-benchmark-P16 = 200k / 400k
		"| 7 / 6 / – ",
		"client CPU µs/cmd (go-redis / rconn-ap / rb-P16)", "| – / 3.06 / – ", "| – / 0.81 / – ",
		"| cluster PIPE100 par1 ", "| 250,000 ", // 100 commands per op
		"**pkg/cluster Commands — ops/s (× go-redis), median of 1**",
		// ProxyHop: × haproxy where it ran, × direct where it did not; rconn-proxy × direct; hop CPU
		"**bench ProxyHop — ops/s (× haproxy; without it × direct), median of 1**", "**rconn-proxy × direct**",
		"| standalone redis-benchmark GET par64 P1 ", "| 100,000 (2.00) ", "| 50,000 ", "| 40,000 (0.80) ", "| 0.40 ",
		"| cluster redis-benchmark GET par64 P1 ", "| 200,000 ", "| 50,000 (0.25) ", "| 0.25 ",
		"**hop CPU µs/cmd (direct / haproxy / rconn-proxy)**", "| – / 5.00 / 6.50 ", "| – / – / 7.25 ",
		"| GET par1 ", "25,000 (1.25)",
		"**pkg/client Remount — median of 2**", "**ms-p50**", "**samples**", "**ns/op**",
		"| live/interval=1s ", "| 523 ", "| 710 ",
		"**pkg/cluster DiscoverAndHealth — median of 1**",
		"**test/scale ControllerScale — median of 1**", "**s-to-ready**", "**MiB-peak-rss**", "**ms-p99-reconcile**", "**ms-p99-react**",
		"| connections=1000 ", "| 42.5 ", "| 812 ", "| 12.5 ", "| 250 ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q", want)
		}
	}
	if !strings.HasPrefix(lines[1], "| ---") {
		t.Errorf("line 2 is not the delimiter: %q", lines[1])
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, "|") || !strings.HasSuffix(l, "|") || strings.Count(l, " |") != strings.Count(lines[0], " |") {
			t.Errorf("line %d is not a row of the one table: %q", i+1, l)
		}
	}
}

func TestTableEmpty(t *testing.T) {
	if err := run(strings.NewReader("PASS\n"), &strings.Builder{}); err == nil {
		t.Fatal("want an error for input without benchmarks")
	}
}
