package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/netip"
	"time"

	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// An app that mounts the ConfigMap and Secret a RedisConnection renders needs three lines; the
// Client follows new address maps, passwords and certificates the controller renders, live.
// (Compiled, not run: it needs the mounts and a Redis server.)
func ExampleOpen() {
	ctx := context.Background()

	c, err := client.Open(ctx, "/etc/rconn") // the projected ConfigMap + Secret volume
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = c.Close() }()

	if err := c.Set(ctx, "greeting", "hello", 0).Err(); err != nil { // c is a redis.UniversalClient
		log.Print(err)
	}
}

// The ConfigMap and the Secret may be mounted in separate directories; config.json is taken
// only from the ConfigMap's.
func ExampleOpenOptions_OpenMounts() {
	ctx := context.Background()
	c, err := client.OpenOptions{}.OpenMounts(ctx, client.Mounts{Config: "/etc/rconn/config", Secret: "/etc/rconn/secret"})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = c.Close() }()
}

// NewCluster with node-redis's nodeAddressMap as a function: the cluster announces pod IPs
// (198.18.0.0/15 here) on port 6379, and the app reaches each node through a port-forward on
// localhost: node 198.18.0.7 at 16007, and so on. The function is asked for every announced
// address, also for the targets of MOVED and ASK; answering false dials the announced address
// itself. (Compiled, not run: it needs a cluster.)
func ExampleNewCluster_nodeAddressMapFunction() {
	ctx := context.Background()
	podNetwork := netip.MustParsePrefix("198.18.0.0/15")
	forwarded := func(announced cluster.Address) (cluster.Address, bool) {
		ip, err := netip.ParseAddr(announced.Host)
		if err != nil || !podNetwork.Contains(ip) || announced.Port != 6379 {
			return cluster.Address{}, false
		}
		return cluster.Address{Host: "127.0.0.1", Port: 16000 + int(ip.As4()[3])}, true
	}
	c, err := client.NewCluster(ctx, client.ClusterOptions{
		RootNodes:      []string{"redis://127.0.0.1:16007"},
		Defaults:       client.Options{Username: "app", Password: "s3cret"},
		NodeAddressMap: forwarded,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	fmt.Println(c.IsReady())
}

// NewCluster with nodeAddressMap as an object (node-redis: a plain object of
// "host:port" -> {host, port}).
func ExampleNewCluster_staticNodeAddressMap() {
	ctx := context.Background()
	m, err := cluster.StaticMap(map[string]string{
		"198.18.0.7:6379": "127.0.0.1:16007",
		"198.18.0.8:6379": "127.0.0.1:16008",
		"198.18.0.9:6379": "127.0.0.1:16009",
	})
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.NewCluster(ctx, client.ClusterOptions{RootNodes: []string{"redis://127.0.0.1:16007"}, NodeAddressMap: m})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = c.Close() }()
}

// The default strategy: exponential backoff from 50ms, capped at 2s, plus up to 200ms of jitter
// (here without jitter, so the delays are the same on every run).
func ExampleExponentialBackoff() {
	s := client.ExponentialBackoff(client.DefaultReconnectBase, client.DefaultReconnectCap, 0)
	for retries := range 8 {
		d, _ := s(retries, nil)
		fmt.Print(d, " ")
	}
	fmt.Println()
	// Output: 50ms 100ms 200ms 400ms 800ms 1.6s 2s 2s
}

// node-redis reconnectStrategy: a number.
func ExampleFixedDelay() {
	s := client.FixedDelay(500 * time.Millisecond)
	d, err := s(7, errors.New("connection reset"))
	fmt.Println(d, err)
	// Output: 500ms <nil>
}

// node-redis reconnectStrategy: false. The client emits "end" with ErrReconnectDisabled and
// closes after the first lost connection.
func ExampleNoReconnect() {
	_, err := client.NoReconnect(0, errors.New("connection reset"))
	fmt.Println(errors.Is(err, client.ErrReconnectDisabled))
	// Output: true
}

// A strategy of one's own (node-redis reconnectStrategy: a function): one second between
// attempts, and give up after five, reporting why.
func ExampleReconnectStrategy() {
	var s client.ReconnectStrategy = func(retries int, cause error) (time.Duration, error) {
		if retries >= 5 {
			return 0, fmt.Errorf("giving up after %d attempts: %w", retries, cause)
		}
		return time.Second, nil
	}
	d, err := s(2, errors.New("connection refused"))
	fmt.Println(d, err)
	_, err = s(5, errors.New("connection refused"))
	fmt.Println(err)
	// Output:
	// 1s <nil>
	// giving up after 5 attempts: connection refused
}

// Options.ReconnectStrategy takes any of them; nil means DefaultReconnect. (Compiled, not run.)
func ExampleOptions_reconnectStrategy() {
	ctx := context.Background()
	c, err := client.NewClient(ctx, client.Options{
		URL:               "redis://127.0.0.1:6379",
		ReconnectStrategy: client.FixedDelay(time.Second),
		OnEvent:           func(e client.Event) { log.Println(e) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = c.Close() }()
}
