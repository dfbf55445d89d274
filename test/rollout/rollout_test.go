package rollout

import (
	"context"
	"testing"
	"time"
)

// TestRolloutRestartDrill: while `kubectl rollout restart statefulset` restarts all 6 pods
// (every master fails over to a replica that came back under a new pod IP), an app outside the
// pod network whose mounted config lags 60-90 s keeps working: no command fails except those in
// flight on a connection the restart closed, and no write is lost.
func TestRolloutRestartDrill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 14*time.Minute)
	defer cancel()
	w := startWorld(t, ctx)
	c := variantNodeIDs.open(t, ctx, w)
	res := rolloutUnderLoad(t, ctx, w, c)
	t.Logf("%s: %s", variantNodeIDs.name, res)
	if res.ops == 0 {
		t.Fatal("the app ran no command")
	}
	if res.lost > 0 {
		t.Fatalf("%d writes were lost: %s", res.lost, res)
	}
	if res.failed > res.killed {
		t.Fatalf("%d commands failed beyond the %d in flight on killed connections: %s", res.failed-res.killed, res.killed, res)
	}
}
