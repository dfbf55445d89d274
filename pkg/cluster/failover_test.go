package cluster_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// A master that stops (a pod's SIGTERM) costs the app no failed command: the client reloads the
// slot map when the node is unreachable and keeps retrying (MaxCommandRedirections attempts with
// backoff) until its replica has taken over. go-redis alone keeps sending the retries to the
// dead master until its periodic state reload, and the commands fail.
func TestMasterStopUnderLoadFailsNoCommand(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	ctx := testCtx(t)
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1})
	c, err := cluster.NewClient(cluster.Options{RootNodes: rootURLs(rc, 2, "redis"), Dial: cluster.IPOnlyDial})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if _, err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok, failed, maxNs atomic.Int64
	var mu sync.Mutex
	var firstErr error
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("{%s}:%d", cluster.KeyForSlot((g*1031+i*131)%cluster.SlotCount), g)
				start := time.Now()
				err := c.Set(ctx, key, i, 0).Err()
				if d := int64(time.Since(start)); d > maxNs.Load() {
					maxNs.Store(d) // racy max: a log figure only
				}
				if err != nil {
					failed.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				ok.Add(1)
			}
		}()
	}
	// The load is running once commands succeed.
	for deadline := time.Now().Add(30 * time.Second); ok.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	master := rc.Masters()[1]
	stopped := time.Now()
	master.Stop()
	t.Logf("master exited after %v", time.Since(stopped))
	// Bounded: until some replica serves the dead master's slots as a master, then 2 s more of
	// load through the new topology.
	waitFor := time.Now().Add(30 * time.Second)
	promoted := false
	for !promoted && time.Now().Before(waitFor) {
		for _, n := range rc.Nodes {
			if n == master {
				continue
			}
			nc := n.Client()
			role, err := nc.Do(ctx, "ROLE").Slice()
			_ = nc.Close()
			if err == nil && len(role) > 0 && role[0] == "master" && n.MasterIndex == master.Index {
				promoted = true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("replica promoted %v after the stop", time.Since(stopped))
	if !promoted {
		close(stop)
		wg.Wait()
		t.Fatal("no replica took over the stopped master")
	}
	// Commands succeed again through the new topology: wait (bounded) for 100 more successes.
	before := ok.Load()
	for deadline := time.Now().Add(30 * time.Second); ok.Load() < before+100 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("longest SET: %v", time.Duration(maxNs.Load()))
	if ok.Load() < before+100 {
		t.Fatalf("%d commands succeeded in the 30 s after the failover, want 100", ok.Load()-before)
	}
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d commands failed across the failover; first: %v", n, n+ok.Load(), firstErr)
	}
}
