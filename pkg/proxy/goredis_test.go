package proxy_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

func slotOf(key string) int { return cluster.Slot(key) }

// shardKeys returns one key per master (slots 100, 6000, 12000 of the even split).
func shardKeys() []string {
	return []string{cluster.KeyForSlot(100), cluster.KeyForSlot(6000), cluster.KeyForSlot(12000)}
}

func TestGoRedisClusterThroughProxy(t *testing.T) {
	t.Parallel() // its own cluster and proxy: overlaps the other tests' waits
	for _, tc := range []struct {
		name string
		o    envOptions
	}{{"plaintext", envOptions{}}, {"tls", envOptions{tls: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, tc.o)
			rec := nettest.NewRecorder(nil)
			c := appClient(t, e.p.SeedAddr(), rec)
			runGoRedis(t, e, c)
			for _, a := range rec.Dialed() {
				if !slices.Contains(e.listeners(), a) {
					t.Errorf("the app dialed %s, which is not a proxy listener (%v)", a, e.listeners())
				}
			}
			e.dial.AssertOnlyDialed(t, e.rc.AddressMap())
		})
	}
}

func runGoRedis(t *testing.T, e *env, c *redis.ClusterClient) {
	ctx := ctx(t)
	// Topology as the app sees it: every node at a proxy listener.
	slots, err := c.ClusterSlots(ctx).Result() //nolint:staticcheck // go-redis itself routes from CLUSTER SLOTS: the view under test
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		for _, n := range s.Nodes {
			if !slices.Contains(e.listeners(), n.Addr) {
				t.Fatalf("CLUSTER SLOTS names %s, not a proxy listener (%v)", n.Addr, e.listeners())
			}
		}
	}
	shards, err := c.ClusterShards(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range shards {
		for _, n := range sh.Nodes {
			if a := fmt.Sprintf("%s:%d", n.Endpoint, n.Port); !slices.Contains(e.listeners(), a) || n.TLSPort != 0 {
				t.Fatalf("CLUSTER SHARDS names %s (tls-port %d), not a plaintext proxy listener", a, n.TLSPort)
			}
		}
	}
	for _, k := range shardKeys() {
		if err := c.Set(ctx, k, "v-"+k, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
		if v, err := c.Get(ctx, k).Result(); err != nil || v != "v-"+k {
			t.Fatalf("GET %s = %q, %v", k, v, err)
		}
	}
	// MULTI/EXEC on one slot.
	var incr *redis.IntCmd
	if _, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "{tx}a", "1", 0)
		incr = p.Incr(ctx, "{tx}a")
		return nil
	}); err != nil || incr.Val() != 2 {
		t.Fatalf("MULTI/EXEC: %v, INCR = %d", err, incr.Val())
	}
	// A pipeline across shards.
	cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := 0; i < 100; i++ {
			p.Set(ctx, fmt.Sprintf("pipe-%d", i), i, 0)
			p.Get(ctx, fmt.Sprintf("pipe-%d", i))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if v := cmds[2*i+1].(*redis.StringCmd).Val(); v != fmt.Sprint(i) {
			t.Fatalf("pipelined GET pipe-%d = %q", i, v)
		}
	}
	// SUBSCRIBE / PUBLISH and SSUBSCRIBE / SPUBLISH.
	for _, sharded := range []bool{false, true} {
		var ps *redis.PubSub
		if sharded {
			ps = c.SSubscribe(ctx, "news")
		} else {
			ps = c.Subscribe(ctx, "news")
		}
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatalf("subscribe (sharded %v): %v", sharded, err)
		}
		pub := c.Publish
		if sharded {
			pub = c.SPublish
		}
		if err := pub(ctx, "news", "hello").Err(); err != nil {
			t.Fatal(err)
		}
		m, err := ps.ReceiveMessage(ctx)
		if err != nil || m.Payload != "hello" {
			t.Fatalf("message (sharded %v): %+v, %v", sharded, m, err)
		}
		_ = ps.Close()
	}
	// BLPOP: blocks until another client pushes.
	got := make(chan []string, 1)
	go func() {
		v, err := c.BLPop(ctx, 10*time.Second, "queue").Result()
		if err != nil {
			v = []string{"error: " + err.Error()}
		}
		got <- v
	}()
	waitFor(t, "BLPOP to block", func() error { return blocked(ctx, e, "queue") })
	if err := c.RPush(ctx, "queue", "job").Err(); err != nil {
		t.Fatal(err)
	}
	if v := <-got; !slices.Equal(v, []string{"queue", "job"}) {
		t.Fatalf("BLPOP = %v", v)
	}
	// MOVED after resharding: the slot moves, the app is redirected to a proxy listener.
	key := shardKeys()[0]
	src, dst := e.ownerOf(key), e.rc.Masters()[1]
	if err := e.rc.MigrateSlot(ctx, src, dst, slotOf(key), nil, nil); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, key).Result(); err != nil || v != "v-"+key {
		t.Fatalf("GET %s after the slot moved = %q, %v", key, v, err)
	}
	if err := c.Set(ctx, key, "moved", 0).Err(); err != nil {
		t.Fatal(err)
	}
	dc := dst.Client()
	defer func() { _ = dc.Close() }()
	if v, _ := dc.Get(ctx, key).Result(); v != "moved" {
		t.Fatalf("the new owner has %s = %q", key, v)
	}
}

// blocked tells whether some client on key's owner is blocked (BLPOP).
func blocked(ctx context.Context, e *env, key string) error {
	oc := e.ownerOf(key).Client()
	defer func() { _ = oc.Close() }()
	info, err := oc.Info(ctx, "clients").Result()
	if err != nil {
		return err
	}
	if !containsLine(info, "blocked_clients:0") {
		return nil
	}
	return fmt.Errorf("no client blocked yet")
}

func containsLine(s, line string) bool {
	for _, l := range splitLines(s) {
		if l == line {
			return true
		}
	}
	return false
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			l := s[start:i]
			if len(l) > 0 && l[len(l)-1] == '\r' {
				l = l[:len(l)-1]
			}
			out = append(out, l)
			start = i + 1
		}
	}
	return append(out, s[start:])
}
