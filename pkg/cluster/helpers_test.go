package cluster_test

import (
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/testing/nettest"
	"github.com/rconn-dev/redis-connection-operator/internal/testing/redistest"
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
		real, ok := m[a.String()]
		if !ok {
			return cluster.Address{}, false
		}
		host, port, _ := net.SplitHostPort(real)
		p, _ := strconv.Atoi(port)
		return cluster.Address{Host: host, Port: p}, true
	}
}

// proxy forwards TCP connections on loopback to a target and counts them.
type proxy struct {
	ln       net.Listener
	target   string
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.Close)
	return p
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}
