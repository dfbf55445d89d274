package cluster_test

import (
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
)

// TestSentinelIdleGroupLagIsStable: on an idle group, the replicas' lag (in the whole KiB the
// controller writes to status) is the same on every discovery. The sentinels refresh a
// replica's offset only every 10 s while the master's moves with every hello and replication
// PING, so a lag computed from the sentinels' view swings by KiBs on an idle group and made the
// controller patch every Sentinel RedisConnection's status at every probe (BenchmarkSentinelScale
// api-writes). Fails when the lag is the master's offset minus the sentinel-reported one.
func TestSentinelIdleGroupLagIsStable(t *testing.T) {
	t.Parallel()
	w := startSentinelWorld(t, redistest.SentinelGroupOptions{})
	si := newSentinelInspector(t, w.options(w.g.SentinelAddrs()[0]))
	seen := map[string]map[int64]bool{}
	deadline := time.Now().Add(14 * time.Second) // more than a sentinel's 10 s INFO period
	for n := 0; time.Now().Before(deadline); n++ {
		top, err := si.Discover(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if !top.MasterConfirmed || len(top.Replicas) != 2 {
			t.Fatalf("discovery %d: master confirmed %v, %d replicas", n, top.MasterConfirmed, len(top.Replicas))
		}
		for _, r := range top.Replicas {
			if r.Lag < 0 {
				t.Fatalf("discovery %d: replica %s lag unknown", n, r.Announced)
			}
			if seen[r.Announced] == nil {
				seen[r.Announced] = map[int64]bool{}
			}
			seen[r.Announced][r.Lag/1024] = true
		}
		time.Sleep(500 * time.Millisecond)
	}
	for r, kib := range seen {
		if len(kib) != 1 {
			t.Errorf("replica %s of an idle group reported lags (KiB) %v across discoveries: status would change at every probe", r, kib)
		}
	}
}
