package rig

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// podApp is an app inside the cluster as the Bitnami chart's notes tell it to connect: a
// go-redis FailoverClient whose sentinels are the pods' DNS names (stable across restarts,
// unlike their IPs), resolved through the pods' CoreDNS. It SETs a counter every 50 ms and
// counts failed writes and the longest time without a successful one: what a failover or a
// rollout costs an app when nothing but the StatefulSet's own lifecycle is at work.
type podApp struct {
	c      *redis.Client
	cancel context.CancelFunc
	done   chan struct{}
	ok     atomic.Int64

	mu       sync.Mutex
	failed   int
	lastOK   time.Time
	maxStall time.Duration
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
	ctx, cancel := context.WithCancel(context.Background())
	a := &podApp{c: c, cancel: cancel, done: make(chan struct{}), lastOK: time.Now()}
	go a.run(ctx)
	t.Cleanup(a.stop)
	return a
}

func (a *podApp) run(ctx context.Context) {
	defer close(a.done)
	for i := 0; ctx.Err() == nil; i++ {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := a.c.Set(wctx, "rig-app", i, 0).Err()
		cancel()
		now := time.Now()
		a.mu.Lock()
		if err != nil {
			a.failed++
		} else {
			a.ok.Add(1)
			a.maxStall = max(a.maxStall, now.Sub(a.lastOK))
			a.lastOK = now
		}
		a.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (a *podApp) stop() {
	a.cancel()
	<-a.done
	_ = a.c.Close()
}

// stats are the failed writes and the longest stall so far (a stall still going on counts).
func (a *podApp) stats() (int, time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.failed, max(a.maxStall, time.Since(a.lastOK))
}

// waitWrites waits for n more successful writes.
func (a *podApp) waitWrites(t *testing.T, n int64, timeout time.Duration) {
	t.Helper()
	want := a.ok.Load() + n
	deadline := time.Now().Add(timeout)
	for a.ok.Load() < want {
		if time.Now().After(deadline) {
			failed, stall := a.stats()
			t.Fatalf("the app wrote nothing for %s (%d failed writes, stall %s)", timeout, failed, stall)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
