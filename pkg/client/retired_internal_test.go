package client

import (
	"fmt"
	"testing"

	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// Entries a map drops are kept as a fallback, at most retiredMapMax of them, and an entry of
// the new map wins.
func TestRetiredMapEntriesAreBounded(t *testing.T) {
	prev := &snapshot{cfg: &Config{NodeAddressMap: map[string]MappedAddress{}}}
	for i := 0; i < retiredMapMax+500; i++ {
		prev.cfg.NodeAddressMap[fmt.Sprintf("198.18.%d.%d:6379", i/256, i%256)] = MappedAddress{Host: "lb", Port: 6379}
	}
	next := &snapshot{cfg: &Config{NodeAddressMap: map[string]MappedAddress{"198.18.0.1:6379": {Host: "new", Port: 6379}}}}
	r := &reloader{}
	m, err := r.withRetired(prev, next)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.retired) != retiredMapMax {
		t.Fatalf("%d retired entries kept, want %d", len(r.retired), retiredMapMax)
	}
	if a, ok := m(cluster.Address{Host: "198.18.0.1", Port: 6379}); !ok || a.Host != "new" {
		t.Fatalf("the new map's entry lost: %v %t", a, ok)
	}
}
