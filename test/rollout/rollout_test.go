package rollout

import (
	"context"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/demo"
	"github.com/rconn-dev/redis-connection-operator/internal/tb"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// TestRolloutRestartDrill: while `kubectl rollout restart statefulset` restarts all 6 pods
// (every master fails over to a replica that came back under a new pod IP; the pods' preStop
// hands a master's slots over first, as a chart hook does), two apps outside the pod network
// keep working — one whose mounted config lags 60-90 s (node IDs carry it), one reading the
// config through the API: no command fails except those in flight on a connection the restart
// closed, and no write is lost. (Without the preStop handover the same holds — see
// BenchmarkRolloutRestart/sigterm — but each master's slots wait for Redis's own failover.)
func TestRolloutRestartDrill(t *testing.T) {
	tb.Integration(t, "the rig")
	ctx, cancel := context.WithTimeout(context.Background(), 14*time.Minute)
	defer cancel()
	w := startWorld(t, ctx, demo.Options{PreStopFailover: true})
	variants := []variant{variantNodeIDs, apiVariant}
	var clients []*pkgclient.Client
	for _, v := range variants {
		c := v.open(t, ctx, w)
		clients = append(clients, c)
		t.Logf("%s: config map %v node IDs %d; pods %s", v.name, c.Config().NodeAddressMap, len(c.Config().Rconn.NodeIDs), w.podIPs(ctx))
	}
	for i, res := range rolloutUnderLoad(t, ctx, w, clients...) {
		name := variants[i].name
		t.Logf("%s: %s", name, res)
		if res.ops == 0 {
			t.Errorf("%s: the app ran no command", name)
		}
		if res.lost > 0 {
			t.Errorf("%s: %d writes were lost: %s", name, res.lost, res)
		}
		if res.failed > res.killed {
			t.Errorf("%s: %d commands failed beyond the %d in flight on killed connections: %s", name, res.failed-res.killed, res.killed, res)
		}
	}
}
