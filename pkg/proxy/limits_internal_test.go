package proxy

import (
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
		byID: map[string]*listener{}, byAddr: map[string]*listener{}, all: map[*listener]bool{}, reserved: map[string]int{}, used: map[int]bool{},
		quit: make(chan struct{})}
	t.Cleanup(func() {
		close(p.quit)
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
