package cluster_test

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// BenchmarkCommands compares GET/SET through our client (mapping dialer, every node mapped)
// with a plain go-redis ClusterClient on the same 3-master cluster in one run:
//
//	go test ./pkg/cluster -run '^$' -bench Commands -benchmem
func BenchmarkCommands(b *testing.B) {
	ctx := context.Background()
	rc := redistest.StartCluster(b, redistest.ClusterOptions{Masters: 3})
	identity, err := cluster.StaticMap(rc.AddressMap())
	if err != nil {
		b.Fatal(err)
	}
	ours, err := cluster.NewClient(cluster.Options{RootNodes: rootURLs(rc, 1, "redis"), NodeAddressMap: identity})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = ours.Close() }()
	if _, err := ours.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	plain := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{rc.Nodes[0].Addr()},
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
	defer func() { _ = plain.Close() }()

	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "bench:" + strconv.Itoa(i)
		if err := plain.Set(ctx, keys[i], "value-"+strconv.Itoa(i), 0).Err(); err != nil {
			b.Fatal(err)
		}
	}
	clients := []struct {
		name string
		c    redis.UniversalClient
	}{{"go-redis", plain}, {"rconn", ours}}
	for _, op := range []string{"GET", "SET"} {
		for _, par := range []int{1, 64} {
			for _, cl := range clients {
				b.Run(op+"/par"+strconv.Itoa(par)+"/"+cl.name, func(b *testing.B) {
					do := func(k string) {
						var err error
						if op == "GET" {
							err = cl.c.Get(ctx, k).Err()
						} else {
							err = cl.c.Set(ctx, k, "v", 0).Err()
						}
						if err != nil {
							b.Fatal(err)
						}
					}
					b.ReportAllocs()
					b.ResetTimer()
					if par == 1 {
						// One goroutine, as an app doing one command at a time.
						for i := 0; i < b.N; i++ {
							do(keys[i%len(keys)])
						}
						return
					}
					var next atomic.Uint64
					b.SetParallelism(max(1, par/runtime.GOMAXPROCS(0)))
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							do(keys[next.Add(1)%uint64(len(keys))])
						}
					})
				})
			}
		}
	}
}

// BenchmarkDiscoverAndHealth measures one discovery plus one health check of every node of a
// 3-master/3-replica cluster announcing hostnames, through the map (pools reused across runs).
func BenchmarkDiscoverAndHealth(b *testing.B) {
	ctx := context.Background()
	rc := redistest.StartCluster(b, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1, Announce: redistest.AnnounceHostname})
	m, _ := cluster.StaticMap(rc.AddressMap())
	in, err := cluster.NewInspector(cluster.Options{RootNodes: rootURLs(rc, 1, "redis"), NodeAddressMap: m})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = in.Close() }()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t, err := in.Discover(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for _, h := range in.CheckHealth(ctx, t, 2*time.Second) {
			if !h.Healthy() {
				b.Fatal(h.Err)
			}
		}
	}
}
