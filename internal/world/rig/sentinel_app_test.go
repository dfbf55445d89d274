package rig

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rconn-dev/redis-connection-operator/internal/testing/writeloop"
)

// podApp is an app inside the cluster as the Bitnami chart's notes tell it to connect: a
// go-redis FailoverClient whose sentinels are the pods' DNS names (stable across restarts,
// unlike their IPs), resolved through the pods' CoreDNS. It SETs a counter every 50 ms and
// counts failed writes and the longest time without a successful one: what a failover or a
// rollout costs an app when nothing but the StatefulSet's own lifecycle is at work.
type podApp struct {
	*writeloop.Loop
	c *redis.Client
}

func startPodApp(t *testing.T, rs *RedisSentinel) *podApp {
	t.Helper()
	resolver := rs.DNS.Resolver()
	// Names are looked up here, through the pods' DNS only, and the dial goes to the IP: a
	// net.Dialer with a name would fall back to the host's resolver, which the package's DNS
	// guard refuses.
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if net.ParseIP(host) == nil {
			addrs, err := resolver.LookupHost(ctx, host+".")
			if err != nil {
				return nil, err
			}
			host = addrs[0]
		}
		d := net.Dialer{Timeout: 2 * time.Second}
		return d.DialContext(ctx, network, net.JoinHostPort(host, port))
	}
	var sentinels []string
	for i := range rs.Pods {
		sentinels = append(sentinels, net.JoinHostPort(rs.Runner.podHost(fmt.Sprintf("%s-%d", rs.Name, i)), strconv.Itoa(SentinelPort)))
	}
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: rs.MasterName, SentinelAddrs: sentinels, Dialer: dial})
	a := &podApp{c: c}
	a.Loop = writeloop.Start(context.Background(), func(ctx context.Context, i int) error { return c.Set(ctx, "rig-app", i, 0).Err() })
	t.Cleanup(a.stop)
	return a
}

func (a *podApp) stop() {
	a.Stop()
	_ = a.c.Close()
}
