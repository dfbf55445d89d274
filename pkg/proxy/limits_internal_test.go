package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
)

// TestReservationsAreBounded: ports kept for departed node IDs are at most NodePorts (the
// oldest departed one is forgotten first; live nodes keep theirs), and no more than NodePorts
// node listeners are opened, also on ephemeral ports (SeedPort 0).
func TestReservationsAreBounded(t *testing.T) {
	p := &Proxy{o: Options{NodePorts: 3, ListenHost: "127.0.0.1", AdvertiseHost: "127.0.0.1"}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		byID: map[string]*listener{}, byAddr: map[string]*listener{}, all: map[*listener]bool{}, reserved: map[string]int{}, used: map[int]bool{}}
	p.life, p.stop = context.WithCancel(context.Background())
	t.Cleanup(func() {
		p.stop()
		for l := range p.all {
			_ = l.ln.Close()
		}
		p.wg.Wait()
	})
	live := &listener{id: "live"}
	p.byID["live"] = live
	p.reserveLocked("live", 1)
	for i := 0; i < 100; i++ {
		p.reserveLocked(fmt.Sprintf("gone-%d", i), 100+i)
	}
	if len(p.reserved) != 3 || p.reserved["live"] != 1 || p.reserved["gone-99"] != 199 || p.reserved["gone-98"] != 198 {
		t.Errorf("reservations after 100 departed IDs: %v; want live plus the two newest", p.reserved)
	}
	if len(p.order) != len(p.reserved) {
		t.Errorf("order has %d IDs for %d reservations", len(p.order), len(p.reserved))
	}
	delete(p.byID, "live")
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; i < 3; i++ {
		if _, err := p.ensureLocked(fmt.Sprintf("n%d", i), fmt.Sprintf("node-%d.invalid:6379", i)); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	if _, err := p.ensureLocked("n3", "node-3.invalid:6379"); err == nil {
		t.Errorf("a fourth node listener opened with NodePorts 3 and ephemeral ports")
	}
}

// TestForgedTopologyOpensNoListener: a CLUSTER SLOTS, SHARDS or NODES reply a hostile node
// forges, naming a node (with its ID) no topology read found, opens no listener and keeps its
// addresses; it only asks for a topology read.
func TestForgedTopologyOpensNoListener(t *testing.T) {
	p := &Proxy{o: Options{NodePorts: 3, ListenHost: "127.0.0.1", AdvertiseHost: "127.0.0.1"}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		byID: map[string]*listener{}, byAddr: map[string]*listener{}, all: map[*listener]bool{}, reserved: map[string]int{}, used: map[int]bool{},
		kick: make(chan struct{}, 1), refreshed: make(chan struct{})}
	for _, tc := range []struct {
		kind  uint8
		frame string
	}{
		{kindSlots, "*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:9\r\n$6\r\nforged\r\n"},
		{kindNodes, "$62\r\nforged 127.0.0.1:9@19 myself,master - 0 0 1 connected 0-16383\n"},
		{kindShards, "*1\r\n*4\r\n$5\r\nslots\r\n*0\r\n$5\r\nnodes\r\n*1\r\n*6\r\n$2\r\nid\r\n$6\r\nforged\r\n$4\r\nport\r\n:9\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n"},
	} {
		if got := string(rewrite(tc.kind, []byte(tc.frame), p)); got != tc.frame {
			t.Errorf("kind %d: rewritten to %q, want it unchanged", tc.kind, got)
		}
	}
	if len(p.all) != 0 || len(p.reserved) != 0 {
		t.Errorf("forged topology opened %d listeners, reserved %v", len(p.all), p.reserved)
	}
	select {
	case <-p.kick:
	default:
		t.Errorf("no topology read asked for")
	}
}
