package scale_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/internal/testing/hostile"
	"github.com/rconn-dev/redis-connection-operator/internal/world/managertest"
)

// BenchmarkHostileReplies: the manager's peak RSS under issue 23's first attack, the real
// manager binary against envtest and hostile servers in this process. One RedisConnection
// names 8 root nodes (connectTimeout 30s, health timeout 30s) that answer CLUSTER SHARDS with
// 15 shards of 65,536 empty node entries each (983,000 elements, 3.9 MB: inside every generic
// cap) and hold back the last byte for RCONN_SCALE_HOLD (default 25s) so the reads overlap;
// RCONN_SCALE_HOSTILE_RCS (default 1) such RedisConnections, each with its own 8 servers. With
// RCONN_SCALE_ROLE_NODES (default 64) > 0, one more RedisConnection's topology lists that many
// nodes answering ROLE with 65,536 replica entries of 14 integers (the health-check variant).
// The healthy "react" RedisConnection is Ready first; after the hold it must still react to a
// Secret rotation. Reports:
//
//	MiB-rss-before     VmRSS once the healthy RedisConnection is Ready
//	MiB-peak-rss       VmHWM after the hold (the attack's peak)
//	survived           1 when the manager is still running at the end, 0 when it died
//	ms-max-react-secret  slowest of 5 Secret rotations -> output after the hold
//
// Variants: manager=<rev> with RCONN_SCALE_BASELINE_REV (the code before), then manager=new;
// with RCONN_SCALE_MEMORY_MAX=256M (bytes, or with a K/M/G suffix) each also runs inside a
// memory cgroup of that limit (v2 memory.max, or v1 memory.limit_in_bytes; created under this
// process's own cgroup and removed after) with GOMEMLIMIT=230MiB, what the shipped chart runs.
// Skipped when the cgroup cannot be created.
//
//	RCONN_SCALE_BASELINE_REV=main RCONN_SCALE_MEMORY_MAX=256M \
//	  go test ./test/scale -run '^$' -bench HostileReplies -benchtime 1x
func BenchmarkHostileReplies(b *testing.B) {
	type variant struct{ name, rev, memMax string }
	var revs []string
	if rev := os.Getenv("RCONN_SCALE_BASELINE_REV"); rev != "" {
		revs = append(revs, rev)
	}
	revs = append(revs, "")
	var variants []variant
	for _, rev := range revs {
		name := "manager=new"
		if rev != "" {
			name = "manager=" + rev
		}
		variants = append(variants, variant{name: name, rev: rev})
		if mm := os.Getenv("RCONN_SCALE_MEMORY_MAX"); mm != "" {
			variants = append(variants, variant{name: name + ",memory.max=" + mm, rev: rev, memMax: mm})
		}
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			f := setup(b)
			bin := managertest.Build(fixtureTB{b})
			if v.rev != "" {
				bin = managertest.BuildRevision(fixtureTB{b}, v.rev)
			}
			var env []string
			if v.memMax != "" {
				limit, err := parseBytes(v.memMax)
				must(b, err)
				bin = inCgroup(b, bin, limit)
				env = append(env, "GOMEMLIMIT="+strconv.FormatInt(limit*9/10, 10))
			}
			for i := 0; i < b.N; i++ {
				runs++
				f.hostileRepliesRun(b, fmt.Sprintf("hr%d", runs), bin, env)
			}
		})
	}
}

func (f *fixture) hostileRepliesRun(b *testing.B, run, bin string, env []string) {
	ctx := context.Background()
	hold := envDuration("RCONN_SCALE_HOLD", 25*time.Second)
	hostileRCs := envInt("RCONN_SCALE_HOSTILE_RCS", 1)
	roleNodes := envInt("RCONN_SCALE_ROLE_NODES", 64)
	react, attack := run+"-react", run+"-attack"
	for _, ns := range []string{react, attack} {
		must(b, f.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	}
	f.reactFixtures(b, react)
	b.Cleanup(func() { f.deleteRunObjects([]string{react, attack}) })

	// Servers before the manager: their Close (b.Cleanup) runs after the manager's Stop.
	held := func(cmd string, reply []byte) *hostile.Server {
		return hostile.MustStart(b, hostile.Config{Handler: hostile.Answer(cmd, reply), HoldLastByte: hold, HoldCommand: cmd})
	}
	shards := hostile.EmptyNodeShards(15, 65536)
	var attackRCs []*rconnv1.RedisConnection
	var all []*hostile.Server
	for r := 0; r < hostileRCs; r++ {
		var roots []*hostile.Server
		for range 8 {
			roots = append(roots, held("CLUSTER SHARDS", shards))
		}
		all = append(all, roots...)
		attackRCs = append(attackRCs, attackConnection(attack, fmt.Sprintf("shards-%d", r), roots))
	}
	if roleNodes > 0 {
		role := hostile.RoleReplicas(65536, 14)
		var nodes []*hostile.Server
		for range roleNodes {
			nodes = append(nodes, held("ROLE", role))
		}
		all = append(all, nodes...)
		root := hostile.Slow(b, 0, hostile.Answer("CLUSTER SHARDS", shardsListing(nodes)))
		attackRCs = append(attackRCs, attackConnection(attack, "role", []*hostile.Server{root}))
	}

	m := managertest.StartBinary(b, bin, f.kubecfg, env, strings.Fields(os.Getenv("RCONN_SCALE_MANAGER_ARGS"))...)
	b.Logf("manager pid %d, log %s", m.Pid(), m.LogPath)
	roots := []rconnv1.RootNode{}
	for _, mn := range f.cluster.Masters() {
		roots = append(roots, rconnv1.RootNode{URL: rconnv1.RedisURL("redis://" + mn.Addr())})
	}
	rc := reactConnection(react, roots, 5*time.Second)
	rc.Labels = map[string]string{"rconn-bench": run}
	must(b, f.k8s.Create(ctx, rc))
	start := time.Now()
	if _, err := f.waitAllReady(ctx, run, 1, start, start.Add(2*time.Minute)); err != nil {
		b.Fatalf("%v (manager log tail: %s)", err, tail(m.Log(), 3000))
	}
	rss, err := m.RSS()
	must(b, err)
	b.ReportMetric(float64(rss)/(1<<20), "MiB-rss-before")

	for _, h := range attackRCs {
		must(b, f.k8s.Create(ctx, h))
	}
	// The attack: wait the hold out (the servers answer every probe again after it).
	time.Sleep(hold + 5*time.Second)
	holding := 0
	for _, s := range all {
		holding += s.Holding()
	}
	b.Logf("%d answers still held at the end of the hold", holding)
	survived := !m.Exited()
	if survived {
		if peak, err := m.PeakRSS(); err == nil {
			b.ReportMetric(float64(peak)/(1<<20), "MiB-peak-rss")
		}
		sec := f.reactSecrets(b, react, 5)
		b.ReportMetric(ms(percentile(sec, 1)), "ms-max-react-secret")
		survived = !m.Exited()
	}
	b.ReportMetric(boolMetric(survived), "survived")
	if !survived {
		b.Logf("the manager died during the attack; log tail:\n%s", tail(m.Log(), 2000))
	}
}

func boolMetric(v bool) float64 {
	if v {
		return 1
	}
	return 0
}

// attackConnection is a Cluster-mode RedisConnection naming these root nodes with issue 23's
// timeouts (connectTimeout 30s, health timeout 30s).
func attackConnection(ns, name string, roots []*hostile.Server) *rconnv1.RedisConnection {
	rc := &rconnv1.RedisConnection{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: rconnv1.RedisConnectionSpec{
			Mode:        rconnv1.ModeCluster,
			Defaults:    &rconnv1.NodeDefaults{ConnectTimeout: &metav1.Duration{Duration: 30 * time.Second}},
			HealthCheck: &rconnv1.HealthCheck{Interval: &metav1.Duration{Duration: time.Minute}, Timeout: &metav1.Duration{Duration: 30 * time.Second}},
		},
	}
	for _, s := range roots {
		rc.Spec.RootNodes = append(rc.Spec.RootNodes, rconnv1.RootNode{URL: rconnv1.RedisURL("redis://" + s.Addr())})
	}
	return rc
}

// shardsListing is a CLUSTER SHARDS reply of one one-node shard (no slots) per server.
func shardsListing(srvs []*hostile.Server) []byte {
	var b strings.Builder
	b.WriteString("*" + strconv.Itoa(len(srvs)) + "\r\n")
	for i, s := range srvs {
		port := s.Addr()[strings.LastIndexByte(s.Addr(), ':')+1:]
		b.WriteString("*4\r\n$5\r\nslots\r\n*0\r\n$5\r\nnodes\r\n*1\r\n*8\r\n$2\r\nid\r\n$40\r\n" + fmt.Sprintf("%040x", i+1) +
			"\r\n$4\r\nport\r\n:" + port + "\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n")
	}
	return []byte(b.String())
}

// parseBytes reads "268435456", "256M", "256Mi", "1G".
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	t := strings.TrimSuffix(s, "i")
	switch {
	case strings.HasSuffix(t, "K"):
		mult, t = 1<<10, strings.TrimSuffix(t, "K")
	case strings.HasSuffix(t, "M"):
		mult, t = 1<<20, strings.TrimSuffix(t, "M")
	case strings.HasSuffix(t, "G"):
		mult, t = 1<<30, strings.TrimSuffix(t, "G")
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("memory size %q: %w", s, err)
	}
	return n * mult, nil
}

// inCgroup creates a memory cgroup with the given limit under this process's own (v2
// memory.max, or v1 memory.limit_in_bytes), and returns a wrapper that moves itself into it and
// execs bin: the manager's every byte is charged there from its first instruction, with the
// same pid. The cgroup is removed after the benchmark (once the manager has stopped). Skips
// the benchmark when no cgroup can be made here.
func inCgroup(b *testing.B, bin string, limit int64) string {
	b.Helper()
	dir, limitFile, err := ownMemoryCgroup()
	if err != nil {
		b.Skipf("no memory cgroup to run the manager in: %v", err)
	}
	cg := filepath.Join(dir, fmt.Sprintf("rconn-bench-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		b.Skipf("cannot create a memory cgroup under %s: %v", dir, err)
	}
	// Registered before the manager's Stop, so it runs after it.
	b.Cleanup(func() {
		for range 50 {
			if err := os.Remove(cg); err == nil || os.IsNotExist(err) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		b.Logf("could not remove cgroup %s", cg)
	})
	if err := os.WriteFile(filepath.Join(cg, limitFile), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
		b.Fatalf("setting %s: %v", limitFile, err)
	}
	if limitFile == "memory.limit_in_bytes" {
		// v1 with swap accounting: no swap either (the node has none; this keeps it so).
		_ = os.WriteFile(filepath.Join(cg, "memory.memsw.limit_in_bytes"), []byte(strconv.FormatInt(limit, 10)), 0o644)
	}
	wrapper := filepath.Join(b.TempDir(), "manager-in-cgroup")
	script := "#!/bin/sh\necho $$ > " + filepath.Join(cg, "cgroup.procs") + " || exit 1\nexec " + bin + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil { //nolint:gosec // an executable wrapper script in the benchmark's temp dir
		b.Fatal(err)
	}
	b.Logf("manager runs in cgroup %s (%s=%d)", cg, limitFile, limit)
	return wrapper
}

// ownMemoryCgroup is the directory of this process's memory cgroup and the name of its limit
// file.
func ownMemoryCgroup() (dir, limitFile string, err error) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", "", err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			d := filepath.Join("/sys/fs/cgroup", parts[2])
			if _, err := os.Stat(filepath.Join(d, "memory.max")); err == nil {
				return d, "memory.max", nil
			}
		case parts[1] == "memory" || strings.Contains(parts[1], "memory,") || strings.HasSuffix(parts[1], ",memory"):
			d := filepath.Join("/sys/fs/cgroup/memory", parts[2])
			if _, err := os.Stat(filepath.Join(d, "memory.limit_in_bytes")); err == nil {
				return d, "memory.limit_in_bytes", nil
			}
		}
	}
	return "", "", fmt.Errorf("no writable memory cgroup in /proc/self/cgroup")
}
