package demo

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/rconn-dev/redis-connection-operator/internal/world/rig"
)

const (
	// SentinelName is the Sentinel act's StatefulSet: Bitnami's redis chart with
	// sentinel.enabled (pods redis-sentinel-0..2, each a redis-server and a sentinel).
	SentinelName = "redis-sentinel"
	// SentinelMaster is the name its sentinels monitor the master under.
	SentinelMaster = "mymaster"
	// SentinelConnection is the act's RedisConnection (config/samples/..._demo_sentinel.yaml).
	SentinelConnection = "demo-sentinel"
)

// StartSentinel creates the Sentinel act's StatefulSet next to the Redis Cluster one and waits
// until its group is whole. Its replicas and sentinels announce pod IPs (the chart's
// useHostnames: false), so every SENTINEL reply names an address that changes whenever a pod
// is recreated: what the PodDNS map with ports [6379, 26379] exists for. The data nodes have
// the Cluster act's users (AppUser with w.Password, in ACLSecret); the sentinels need no AUTH.
func (w *RigWorld) StartSentinel(ctx context.Context) error {
	admin := w.admin
	rs, err := w.Rig.RedisSentinel(ctx, rig.RedisSentinelOptions{
		Namespace: Namespace, Name: SentinelName,
		Sentinel: rig.SentinelPods{
			MasterName:  SentinelMaster,
			AnnounceIPs: true,
			// The sentinels AUTH to the data nodes as their default user, as the chart's do.
			SentinelConfig: []string{fmt.Sprintf("sentinel auth-pass %s %s", SentinelMaster, admin)},
		},
		Runner: rig.RunnerOptions{
			ExtraConfig: []string{
				"requirepass " + admin,
				"masterauth " + admin,
				fmt.Sprintf("user %s on >%s ~* &* +@all", AppUser, w.Password),
			},
			ClientOptions: func(addr string) *redis.Options { return &redis.Options{Addr: addr, Password: admin} },
		},
	})
	if err != nil {
		return fmt.Errorf("the Sentinel StatefulSet: %w", err)
	}
	w.Sentinel = rs
	return nil
}
