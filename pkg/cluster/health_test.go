package cluster_test

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// blackhole accepts connections and never answers, like a node whose process hangs.
type blackhole struct {
	ln            net.Listener
	mu            sync.Mutex
	open, maxOpen int
}

func startBlackhole(t *testing.T) *blackhole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.open++
			b.maxOpen = max(b.maxOpen, b.open)
			b.mu.Unlock()
			go func() {
				buf := make([]byte, 512)
				for {
					if _, err := c.Read(buf); err != nil {
						break
					}
				}
				_ = c.Close()
				b.mu.Lock()
				b.open--
				b.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return b
}

// TestHealthOfManyNodesRunsInParallel: 100 hung nodes and 3 live ones. The checks run up to
// HealthConcurrency at once (so the whole takes about ceil(hung/concurrency) timeouts, not 100),
// the bound holds, every hung node is reported, and live nodes are healthy.
func TestHealthOfManyNodesRunsInParallel(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	ctx := testCtx(t)
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname})
	bh := startBlackhole(t)
	live := rc.AddressMap()
	topo := &cluster.Topology{}
	for announced := range live {
		topo.Nodes = append(topo.Nodes, &cluster.Node{Announced: announced})
	}
	for i := 0; i < 100; i++ {
		topo.Nodes = append(topo.Nodes, &cluster.Node{Announced: fmt.Sprintf("hung-%d.rconn-test.invalid:6379", i)})
	}
	nm := func(a cluster.Address) (cluster.Address, bool) {
		if r, ok := live[a.String()]; ok {
			ra, _ := cluster.ParseAddress(r)
			return ra, true
		}
		ra, _ := cluster.ParseAddress(bh.ln.Addr().String())
		return ra, true
	}
	const concurrency = 40
	in, err := cluster.NewInspector(cluster.Options{RootNodes: rootURLs(rc, 1, "redis"), NodeAddressMap: nm, Dial: newRecorder(nil).Dial, HealthConcurrency: concurrency})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = in.Close() }()
	health := in.CheckHealth(ctx, topo, 500*time.Millisecond)
	healthy, hung := 0, 0
	for i, h := range health {
		if h.Announced != topo.Nodes[i].Announced {
			t.Fatalf("result %d is for %s, want %s (results follow the topology's order)", i, h.Announced, topo.Nodes[i].Announced)
		}
		if h.Healthy() {
			healthy++
		} else if h.Err != nil && !h.Reachable {
			hung++
		}
	}
	if healthy != 3 || hung != 100 {
		t.Fatalf("%d healthy, %d hung; want 3 and 100", healthy, hung)
	}
	bh.mu.Lock()
	defer bh.mu.Unlock()
	// A closed check's connection is counted down a moment after the next one connects, so
	// the count may pass the bound by a few; unbounded, it would reach 100.
	if bh.maxOpen < concurrency || bh.maxOpen >= 2*concurrency {
		t.Fatalf("%d hung checks were open at once; want the bound %d (parallel, and bounded)", bh.maxOpen, concurrency)
	}
}

// TestHealthSeesANodeBackAtOnce: a node that was down and is back answers the very next health
// check. go-redis's pool, after PoolSize failed dials, fails every Get with its last dial error
// until a background redial (once a second) succeeds: a check in that window reported a node
// that was serving again as unreachable, and with probes driven by Sentinel events (-sdown is
// sent as soon as the node answers) the status stayed so until the next event.
func TestHealthSeesANodeBackAtOnce(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	in, err := cluster.NewInspector(cluster.Options{RootNodes: []cluster.RootNode{{URL: "redis://" + srv.Addr()}}, Standalone: true, Dial: newRecorder(nil).Dial})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = in.Close() }()
	topo := &cluster.Topology{Standalone: true, Nodes: []*cluster.Node{{Announced: srv.Addr()}}}
	check := func() cluster.NodeHealth { return in.CheckHealth(ctx, topo, time.Second)[0] }
	for round := range 3 {
		if h := check(); !h.Healthy() {
			t.Fatalf("round %d: a running node is not healthy: %v", round, h.Err)
		}
		srv.Kill()
		for range 3 {
			if h := check(); h.Reachable {
				t.Fatalf("round %d: a killed node is reachable", round)
			}
		}
		srv.Restart(t)
		if h := check(); !h.Healthy() {
			t.Fatalf("round %d: the node is back, but the first check after its restart says: %v", round, h.Err)
		}
	}
}
