package cluster_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

type recorder = nettest.Recorder

func newRecorder(names map[string]string) *recorder { return nettest.NewRecorder(names) }

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rootURLs returns redis:// URLs of the first n announced addresses.
func rootURLs(c *redistest.Cluster, n int, scheme string) []cluster.RootNode {
	var out []cluster.RootNode
	for _, node := range c.Nodes[:n] {
		out = append(out, cluster.RootNode{URL: scheme + "://" + node.Announced})
	}
	return out
}

// funcMap is a function map (node-redis nodeAddressMap as a function) derived from the
// cluster's names: node-<i>.<domain>:<port> -> 127.0.0.1:<port>, translated ports via table.
func funcMap(c *redistest.Cluster) cluster.NodeAddressMap {
	m := c.AddressMap()
	return func(a cluster.Address) (cluster.Address, bool) {
		if !strings.HasSuffix(a.Host, ".invalid") && a.Host != "127.0.0.1" {
			return cluster.Address{}, false
		}
		dialed, ok := m[a.String()]
		if !ok {
			return cluster.Address{}, false
		}
		host, port, _ := net.SplitHostPort(dialed)
		p, _ := strconv.Atoi(port)
		return cluster.Address{Host: host, Port: p}, true
	}
}

type proxy = nettest.Proxy

func startProxy(t *testing.T, target string) *proxy { return nettest.StartProxy(t, target) }
