package cluster_test

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// A node that comes back under a new announced address the map does not know yet (a restarted
// pod's new IP, before the app's mounted map follows) is reached through its node ID: the
// client asks the cluster which node announces the address and dials that ID's address.
// Without the node ID map the same client cannot reach it (the announced name is unreachable).
func TestRenamedNodeIsFoundByNodeID(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	for _, withIDs := range []bool{true, false} {
		t.Run(map[bool]string{true: "node ID map", false: "address map only"}[withIDs], func(t *testing.T) {
			ctx := testCtx(t)
			rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname})
			sm, err := cluster.StaticMap(rc.AddressMap())
			if err != nil {
				t.Fatal(err)
			}
			var ids cluster.NodeIDMap
			if withIDs {
				ids = cluster.NodeIDMap{}
				for _, n := range rc.Nodes {
					ids[n.ID] = cluster.Address{Host: "127.0.0.1", Port: n.Port}
				}
			}
			rec := newRecorder(nil)
			c, err := cluster.NewClient(cluster.Options{RootNodes: rootURLs(rc, 1, "redis"), NodeAddressMap: sm, NodeIDMap: ids, Dial: rec.Dial})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = c.Close() }()
			if _, err := c.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			key := cluster.KeyForSlot(8000)
			host, _, _ := net.SplitHostPort(rc.Nodes[1].Announced)
			renamed, err := rc.Reannounce(ctx, 1, "node-1-restarted."+strings.SplitN(host, ".", 2)[1])
			if err != nil {
				t.Fatal(err)
			}
			// The map is NOT updated. go-redis picks the new name up with its next state reload.
			c.ReloadState(ctx)
			var lastErr error
			var master string
			for try := 0; try < 40; try++ {
				m, err := c.SlotMaster(ctx, 8000)
				if err == nil {
					master = m.Options().Addr
				}
				lastErr = c.Set(ctx, key, "v", 0).Err()
				var de *cluster.DialError
				if master == renamed && (lastErr == nil || !withIDs && errors.As(lastErr, &de) && de.Announced == renamed) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if master != renamed {
				t.Fatalf("slot 8000 still on %s, want the renamed %s", master, renamed)
			}
			if withIDs {
				if lastErr != nil {
					t.Fatalf("SET on the renamed node, found by its ID: %v", lastErr)
				}
				return
			}
			var de *cluster.DialError
			if lastErr == nil || !errors.As(lastErr, &de) || de.Announced != renamed {
				t.Fatalf("without a node ID map, SET on the renamed node = %v, want a DialError for %s", lastErr, renamed)
			}
		})
	}
}

// A node ID entry that points nowhere names the node ID in the error, and bad IDs are refused.
func TestNodeIDMapErrorsAndValidation(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	if err := cluster.ValidateNodeIDMap(cluster.NodeIDMap{"not-an-id": {Host: "a", Port: 1}}); err == nil {
		t.Fatal("a non-hex node ID was accepted")
	}
	if err := cluster.ValidateNodeIDMap(cluster.NodeIDMap{strings.Repeat("a", 40): {Host: "", Port: 1}}); err == nil {
		t.Fatal("an empty host was accepted")
	}
	if _, err := cluster.NewClient(cluster.Options{RootNodes: []cluster.RootNode{{URL: "redis://127.0.0.1:1"}}, NodeIDMap: cluster.NodeIDMap{"zz": {Host: "127.0.0.1", Port: 1}}}); !errors.Is(err, cluster.ErrInvalidOptions) {
		t.Fatalf("NewClient with a bad node ID map: %v, want ErrInvalidOptions", err)
	}

	ctx := testCtx(t)
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname})
	sm, err := cluster.StaticMap(rc.AddressMap())
	if err != nil {
		t.Fatal(err)
	}
	dead := nettestFreePort(t)
	ids := cluster.NodeIDMap{rc.Nodes[1].ID: {Host: "127.0.0.1", Port: dead}}
	// No retries: each SET reports its one dial at once. With the default 16 retries a SET to
	// the dead port spends ~15-30 s of backoff before it returns the same DialError.
	c, err := cluster.NewClient(cluster.Options{RootNodes: rootURLs(rc, 1, "redis"), NodeAddressMap: sm, NodeIDMap: ids, Dial: newRecorder(nil).Dial, MaxCommandRedirections: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if _, err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	host, _, _ := net.SplitHostPort(rc.Nodes[1].Announced)
	renamed, err := rc.Reannounce(ctx, 1, "node-1-moved."+strings.SplitN(host, ".", 2)[1])
	if err != nil {
		t.Fatal(err)
	}
	c.ReloadState(ctx)
	var de *cluster.DialError
	// Until go-redis's state reload hands out the new name (bounded: 30 s).
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		err = c.Set(ctx, cluster.KeyForSlot(8000), "v", 0).Err()
		if errors.As(err, &de) && de.Announced == renamed && de.NodeID != "" {
			break
		}
	}
	if de == nil || de.NodeID != rc.Nodes[1].ID || de.Dialed != "127.0.0.1:"+strconv.Itoa(dead) {
		t.Fatalf("error = %v, want a DialError naming node %s mapped to port %d", err, rc.Nodes[1].ID, dead)
	}
	if !strings.Contains(de.Error(), rc.Nodes[1].ID) {
		t.Fatalf("error %q does not name the node ID", de.Error())
	}
}

func nettestFreePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}
