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
