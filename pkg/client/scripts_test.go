package client_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

const testLibrary = `#!lua name=rconntest
redis.register_function('rconn_incr', function(keys, args) return redis.call('INCRBY', keys[1], args[1]) end)
redis.register_function{function_name='rconn_get', callback=function(keys) return redis.call('GET', keys[1]) end, flags={'no-writes'}}
`

// scriptCluster is a real three-master cluster and a client declaring two scripts and one
// function library.
func scriptCluster(t *testing.T) (*client.Client, *redis.ClusterClient) {
	t.Helper()
	ctx := testCtx(t)
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname})
	m, err := cluster.StaticMap(rc.AddressMap())
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.NewCluster(ctx, client.ClusterOptions{
		RootNodes: []string{"redis://" + rc.Nodes[0].Announced}, NodeAddressMap: m, MonitorInterval: time.Hour,
		Scripts: map[string]client.Script{
			"incrby": {Source: "return redis.call('INCRBY', KEYS[1], ARGV[1])"},
			"get":    {Source: "return redis.call('GET', KEYS[1])", ReadOnly: true},
		},
		Functions: map[string]string{"rconntest": testLibrary},
	})
	if err != nil {
		t.Fatal(err)
	}
	admin := redis.NewClusterClient(rc.ClusterOptions())
	t.Cleanup(func() { _ = c.Close(); _ = admin.Close() })
	return c, admin
}

// shardKeys3 has a key on each of the three masters.
var shardKeys3 = []string{cluster.KeyForSlot(100), cluster.KeyForSlot(8000), cluster.KeyForSlot(16000)}

// Scripts by name on a real cluster: EVALSHA routed by the first key to each shard, the EVAL
// fallback after SCRIPT FLUSH on every master, the read-only variant, an unknown name.
func TestRunScriptsCluster(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	c, admin := scriptCluster(t)
	ctx := testCtx(t)
	run := func(round int) {
		for _, k := range shardKeys3 {
			if n, err := c.Run(ctx, "incrby", []string{k}, 2).Int(); err != nil || n != 2*round {
				t.Fatalf("round %d: Run incrby %s = %d, %v", round, k, n, err)
			}
			if v, err := c.Run(ctx, "get", []string{k}).Text(); err != nil || v != fmt.Sprint(2*round) {
				t.Fatalf("round %d: Run get %s = %q, %v", round, k, v, err)
			}
			// The key lives on the master of its slot: the call was routed by it.
			node, err := admin.MasterForKey(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			if v, err := node.Get(ctx, k).Int(); err != nil || v != 2*round {
				t.Fatalf("round %d: %s on its master = %d, %v", round, k, v, err)
			}
		}
	}
	run(1)
	if err := admin.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return n.ScriptFlush(ctx).Err() }); err != nil {
		t.Fatal(err)
	}
	run(2) // NOSCRIPT everywhere: EVAL, which caches the script again
	if err := c.Run(ctx, "nope", []string{"k"}).Err(); !errors.Is(err, client.ErrUnknownScript) {
		t.Fatalf("unknown script: %v", err)
	}
}

// Function libraries: loaded on every master at connect, FCALL/FCALL_RO routed by the first
// key, and loaded again after FUNCTION FLUSH (as after a node restarted without persistence).
func TestFunctionsCluster(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	c, admin := scriptCluster(t)
	ctx := testCtx(t)
	if err := admin.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		libs, err := n.FunctionList(ctx, redis.FunctionListQuery{LibraryNamePattern: "rconntest"}).Result()
		if err == nil && len(libs) != 1 {
			err = fmt.Errorf("%s has %d libraries named rconntest after connect", n.Options().Addr, len(libs))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	call := func(round int) {
		for _, k := range shardKeys3 {
			if n, err := c.FCall(ctx, "rconn_incr", []string{k}, 5).Int(); err != nil || n != 5*round {
				t.Fatalf("round %d: FCALL %s = %d, %v", round, k, n, err)
			}
			if v, err := c.FCallRO(ctx, "rconn_get", []string{k}).Text(); err != nil || v != fmt.Sprint(5*round) {
				t.Fatalf("round %d: FCALL_RO %s = %q, %v", round, k, v, err)
			}
		}
	}
	call(1)
	if err := admin.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return n.FunctionFlush(ctx).Err() }); err != nil {
		t.Fatal(err)
	}
	call(2)
}
