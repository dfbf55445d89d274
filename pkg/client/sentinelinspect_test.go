package client_test

import (
	"testing"

	"github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// A sentinel root node the map reaches under an announced name (rconn.sentinels) is asked by
// that name: the sentinels list each other by announced address, and one sentinel known by
// two names would be asked, and counted in the majority, twice.
func TestSentinelInspectorOptionsRootsByAnnouncedName(t *testing.T) {
	cfg := &client.Config{Name: "mymaster", Rconn: client.RconnConfig{Mode: client.ModeSentinel,
		Sentinels: []string{"redis-0.redis-headless.ns.svc:26379", "redis-1.redis-headless.ns.svc:26379"}},
		SentinelRootNodes: []client.MappedAddress{{Host: "127.0.0.1", Port: 26001}, {Host: "127.0.0.1", Port: 26002}, {Host: "127.0.0.1", Port: 26003}},
		NodeAddressMap: map[string]client.MappedAddress{
			"redis-0.redis-headless.ns.svc:26379": {Host: "127.0.0.1", Port: 26001},
			"redis-1.redis-headless.ns.svc:26379": {Host: "127.0.0.1", Port: 26002},
		}}
	b, err := client.Render(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := client.ResolveWithoutSecret(b)
	if err != nil {
		t.Fatal(err)
	}
	o, err := r.SentinelInspectorOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rn := range o.Sentinel.RootNodes {
		got = append(got, rn.Address.String())
	}
	want := []string{"redis-0.redis-headless.ns.svc:26379", "redis-1.redis-headless.ns.svc:26379", "127.0.0.1:26003"}
	if len(got) != len(want) {
		t.Fatalf("roots %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("roots %v, want %v", got, want)
		}
	}
	if o.Sentinel.MasterName != "mymaster" || o.NodeAddressMap == nil {
		t.Fatalf("master %q, map %v", o.Sentinel.MasterName, o.NodeAddressMap)
	}
}
