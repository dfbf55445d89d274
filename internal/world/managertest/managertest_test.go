package managertest_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/tb"
	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/managertest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	managertest.RemoveBuild()
	os.Exit(code)
}

const sample = `# HELP h A histogram.
# TYPE h histogram
h_bucket{c="a",le="0.1"} 50
h_bucket{c="a",le="1"} 90
h_bucket{c="a",le="+Inf"} 100
h_sum{c="a"} 30
h_count{c="a"} 100
h_bucket{c="b",le="0.1"} 0
h_bucket{c="b",le="1"} 0
h_bucket{c="b",le="+Inf"} 100
h_sum{c="b"} 500
h_count{c="b"} 100
# TYPE g gauge
g{x="1"} 2
g{x="2"} 3
`

func TestParseSumAndQuantile(t *testing.T) {
	mfs, err := managertest.Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if got := managertest.Sum(mfs, "g", nil); got != 5 {
		t.Errorf("Sum(g) = %v, want 5", got)
	}
	if got := managertest.Sum(mfs, "g", map[string]string{"x": "2"}); got != 3 {
		t.Errorf("Sum(g{x=2}) = %v, want 3", got)
	}
	h, err := managertest.MergedHistogram(mfs, "h", map[string]string{"c": "a"})
	if err != nil {
		t.Fatal(err)
	}
	// rank 50 of 100 sits at the top of the first bucket; rank 70 is half way through (0.1, 1].
	for q, want := range map[float64]float64{0.5: 0.1, 0.7: 0.55, 0.99: 1} {
		got, err := h.Quantile(q)
		if err != nil || math.Abs(got-want) > 1e-9 {
			t.Errorf("Quantile(%v) = %v, %v; want %v", q, got, err, want)
		}
	}
	all, _ := managertest.MergedHistogram(mfs, "h", nil)
	if all.Count != 200 {
		t.Errorf("merged count = %d, want 200", all.Count)
	}
	// Everything of series b is in +Inf: the estimate is the highest finite bound.
	if got, _ := all.Quantile(0.99); got != 1 {
		t.Errorf("merged p99 = %v, want 1", got)
	}
	d := all.Sub(h)
	if d.Count != 100 || d.Counts[0] != 0 || d.Counts[1] != 0 {
		t.Errorf("Sub = %+v, want series b only", d)
	}
}

// TestManagerProcess runs the real manager binary against envtest: it becomes ready, serves
// controller-runtime's and rconn's metrics, has a peak RSS, and stops on SIGTERM.
func TestManagerProcess(t *testing.T) {
	tb.Integration(t, "kube-apiserver (envtest) and the manager binary")
	env, err := kubetest.NewEnvironment()
	if err != nil {
		t.Skipf("no envtest control plane: %v", err)
	}
	if _, err := env.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kc := managertest.Kubeconfig(t, env)
	m := managertest.Start(t, kc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mfs, err := m.WaitForMetric(ctx, "controller_runtime_active_workers")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"controller_runtime_max_concurrent_reconciles", "rconn_inspectors_open", "go_goroutines"} {
		if _, ok := mfs[name]; !ok {
			t.Errorf("no %s in the manager's metrics", name)
		}
	}
	if g := managertest.Sum(mfs, "go_goroutines", nil); g < 1 {
		t.Errorf("go_goroutines = %v", g)
	}
	rss, err := m.PeakRSS()
	if err != nil || rss < 1<<20 {
		t.Errorf("PeakRSS = %d, %v; want a few MiB at least", rss, err)
	}
	if m.Pid() <= 0 {
		t.Errorf("Pid = %d", m.Pid())
	}
	m.Stop()
	if !m.Exited() {
		t.Error("the manager still runs after Stop")
	}
	if !strings.Contains(m.Log(), "starting manager") {
		t.Errorf("log lacks the start line:\n%s", m.Log())
	}
	if _, err := os.Stat(filepath.Dir(managertest.Build(t))); err != nil {
		t.Errorf("build dir: %v", err)
	}
}
