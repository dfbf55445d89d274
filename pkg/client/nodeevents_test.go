package client_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// nodeTypes returns the event types of one node, in order.
func nodeTypes(ev *events, announced string) []client.EventType {
	var out []client.EventType
	for _, e := range ev.list() {
		if e.Node != nil && e.Node.Announced == announced {
			out = append(out, e.Type)
		}
	}
	return out
}

// One node of a real cluster restarts: its events (and only its) say so, naming it by
// announced address, mapped address and node ID; the client's own handlers see none of them.
func TestNodeEventsRestartOneNode(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	ctx := testCtx(t)
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname})
	m, err := cluster.StaticMap(rc.AddressMap())
	if err != nil {
		t.Fatal(err)
	}
	var ev, nodeEv events
	c, err := client.NewCluster(ctx, client.ClusterOptions{
		RootNodes: []string{"redis://" + rc.Nodes[0].Announced}, NodeAddressMap: m,
		OnEvent: ev.handle, OnNodeEvent: nodeEv.handle, Dial: (&recorder{}).Dial,
		MonitorInterval: time.Hour, // only the commands below reach the nodes
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	for _, n := range rc.Nodes {
		waitFor(t, "connect, ready of "+n.Announced, func() error {
			if got := nodeTypes(&nodeEv, n.Announced); !slices.Equal(got, []client.EventType{client.EventConnect, client.EventReady}) {
				return fmt.Errorf("%w: %v", errNotYet, got)
			}
			return nil
		})
	}
	victim := rc.Nodes[1]
	key := cluster.KeyForSlot(8000) // node 1 serves the middle third
	if err := c.Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	before := len(nodeEv.list())
	victim.Kill()
	waitFor(t, "error of the killed node", func() error {
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond) // go-redis retries for ~30s
		defer cancel()
		_ = c.Set(short, key, "v", 0).Err()
		if !slices.Contains(nodeTypes(&nodeEv, victim.Announced)[2:], client.EventError) {
			return errNotYet
		}
		return nil
	})
	victim.Restart(t)
	waitFor(t, "SET on the restarted node", func() error {
		short, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return c.Set(short, key, "v", 0).Err()
	})
	waitFor(t, "ready of the restarted node", func() error {
		if got := nodeTypes(&nodeEv, victim.Announced); got[len(got)-1] != client.EventReady || len(got) < 6 {
			return fmt.Errorf("%w: %v", errNotYet, got)
		}
		return nil
	})
	// error, then attempts (reconnecting, connect, [error]) until one succeeds: ..., reconnecting, connect, ready.
	got := nodeTypes(&nodeEv, victim.Announced)[2:]
	n := len(got)
	if got[0] != client.EventError || got[n-3] != client.EventReconnecting || got[n-2] != client.EventConnect || got[n-1] != client.EventReady {
		t.Fatalf("events of the restarted node: %v", got)
	}
	for _, e := range nodeEv.list()[before:] {
		if e.Node.Announced != victim.Announced {
			t.Fatalf("event of a node that did not restart: %v", e)
		}
		if e.Node.Mapped != victim.Addr() || e.Node.ID != victim.ID {
			t.Fatalf("node of %v: want mapped %s, id %s", e, victim.Addr(), victim.ID)
		}
	}
	for _, e := range ev.list() {
		if e.Node != nil {
			t.Fatalf("OnEvent got a node event: %v", e)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	all := nodeEv.list()
	ends := 0
	for _, e := range all {
		if e.Type == client.EventEnd {
			ends++
		}
	}
	if ends != len(rc.Nodes) {
		t.Fatalf("%d node ends for %d nodes: %v", ends, len(rc.Nodes), all)
	}
	if last := ev.types(); last[len(last)-1] != client.EventEnd {
		t.Fatalf("client events end with %v", last)
	}
	t.Logf("events of the restarted node: %v", got)
}
