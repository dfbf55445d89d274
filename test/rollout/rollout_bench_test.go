package rollout

import (
	"context"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/demo"
)

// BenchmarkRolloutRestart: one `kubectl rollout restart statefulset` of 3 masters + 3 replicas
// per variant, under SET+GET at parallelism 16 over all slots, on one rig per pod shutdown
// mode: "sigterm" (the server just stops: its slots wait for failure detection and a replica's
// election) and "prestop-failover" (a preStop hook hands a master's slots to a replica first).
// Metrics: failed commands (and those of them in flight on a connection the restart closed),
// lost writes, the longest time an app goroutine went without a successful command, p99 and
// max command latency. b.N is ignored: a rollout is one sample (run with -benchtime 1x).
func BenchmarkRolloutRestart(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	for _, mode := range []struct {
		name string
		opts demo.Options
	}{{"sigterm", demo.Options{}}, {"prestop-failover", demo.Options{PreStopFailover: true}}} {
		b.Run(mode.name, func(b *testing.B) {
			w := startWorld(b, ctx, mode.opts)
			for _, v := range []variant{variantNoNodeIDs, variantNodeIDs, apiVariant} {
				b.Run(v.name, func(b *testing.B) {
					c := v.open(b, ctx, w)
					res := rolloutUnderLoad(b, ctx, w, c)[0]
					b.Logf("%s/%s: %s", mode.name, v.name, res)
					b.ReportMetric(float64(res.failed), "failed")
					b.ReportMetric(float64(res.failed-res.killed), "failed-beyond-killed")
					b.ReportMetric(float64(res.lost), "lost-writes")
					b.ReportMetric(res.longestStall.Seconds(), "s-longest-stall")
					b.ReportMetric(float64(res.p99.Microseconds())/1000, "ms-p99")
					b.ReportMetric(res.max.Seconds(), "s-max")
					b.ReportMetric(float64(res.ops)/res.took.Seconds(), "cmds/s")
					if err := w.waitReady(ctx, 2*time.Minute); err != nil {
						b.Fatal(err)
					}
				})
			}
		})
	}
}
