package redistest

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/tb"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"

	"github.com/redis/go-redis/v9"
)

// Announce says what addresses cluster nodes hand to clients (CLUSTER SHARDS/SLOTS, MOVED, ASK).
type Announce int

const (
	// AnnounceIP means that nodes announce 127.0.0.1:<port>, which clients reach directly.
	AnnounceIP Announce = iota
	// AnnounceHostname means that nodes announce <NodeName(i)>:<port> under a .invalid domain that
	// never resolves, as pod IPs are to an app outside the pod network. Nodes still reach each
	// other over 127.0.0.1, so the bus and replication work (replicas allowed).
	AnnounceHostname
	// AnnounceTranslatedPort means that nodes announce 127.0.0.1:<another port> where nothing listens,
	// as behind NodePorts or NAT. Masters only: replicas would follow the announced port.
	AnnounceTranslatedPort
)

// ClusterOptions configure StartCluster.
type ClusterOptions struct {
	// Masters (default 3) and ReplicasPerMaster (default 0).
	Masters           int
	ReplicasPerMaster int
	// Announce chooses what nodes announce (default AnnounceIP).
	Announce Announce
	// Domain is the suffix of announced hostnames (default "rconn-test.invalid"). Node i
	// announces "node-<i>.<Domain>".
	Domain string
	// NodeTimeout is cluster-node-timeout (default 2s; lower makes failover faster).
	NodeTimeout time.Duration
	// Server options apply to every node (TLS, password, ACL users, extra config).
	Server ServerOptions
}

// Node is one cluster node.
type Node struct {
	*Server
	// Index is the node's position in Cluster.Nodes.
	Index int
	// ID is the cluster node id.
	ID string
	// Announced is "host:port" as the node announces itself.
	Announced string
	// MasterIndex is the index of the master of a replica, -1 for masters (at formation).
	MasterIndex int
}

// Cluster is a running Redis Cluster.
type Cluster struct {
	Nodes []*Node
	opts  ClusterOptions
}

// Masters returns the nodes formed as masters (failovers are not tracked).
func (c *Cluster) Masters() []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n.MasterIndex < 0 {
			out = append(out, n)
		}
	}
	return out
}

// AddressMap maps every announced address to the address that really listens.
func (c *Cluster) AddressMap() map[string]string {
	m := make(map[string]string, len(c.Nodes))
	for _, n := range c.Nodes {
		m[n.Announced] = n.Addr()
	}
	return m
}

// ClusterOptions returns go-redis cluster options that reach the cluster as the admin through
// the address map (so they work whatever the nodes announce). For tests' own bookkeeping, not
// for code under test.
func (c *Cluster) ClusterOptions() *redis.ClusterOptions {
	m := c.AddressMap()
	o := c.Nodes[0].Options()
	d := &net.Dialer{Timeout: 2 * time.Second}
	return &redis.ClusterOptions{
		Addrs:    []string{c.Nodes[0].Announced},
		Password: o.Password,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dialed, ok := m[addr]
			if !ok {
				return nil, fmt.Errorf("redistest: %s is not a node of this cluster", addr)
			}
			conn, err := d.DialContext(ctx, network, dialed)
			if err != nil || o.TLSConfig == nil {
				return conn, err
			}
			tc := tlsClient(conn, o.TLSConfig)
			if err := tc.HandshakeContext(ctx); err != nil {
				_ = conn.Close()
				return nil, err
			}
			return tc, nil
		},
		MaxRetries:      -1,
		DisableIdentity: true,

		MaintNotificationsConfig: cluster.NoMaintNotifications(),
	}
}

// NodeName is the hostname node i announces with AnnounceHostname.
func (c *Cluster) NodeName(i int) string { return fmt.Sprintf("node-%d.%s", i, c.opts.Domain) }

// StartCluster starts Masters*(1+ReplicasPerMaster) nodes, assigns the 16384 slots evenly to
// the masters, attaches the replicas, and waits until every node reports cluster_state:ok,
// every replica's link is up and every node's CLUSTER SHARDS shows every node as announced.
func StartCluster(t TB, o ClusterOptions) *Cluster {
	tb.Integration(t, "redis-server")
	t.Helper()
	if o.Masters == 0 {
		o.Masters = 3
	}
	if o.Domain == "" {
		o.Domain = "rconn-test.invalid"
	}
	if o.NodeTimeout == 0 {
		o.NodeTimeout = 2 * time.Second
	}
	if o.Announce == AnnounceTranslatedPort && o.ReplicasPerMaster > 0 {
		t.Fatalf("redistest: AnnounceTranslatedPort works only without replicas: replicas dial announced ports")
	}
	c := &Cluster{opts: o}
	total := o.Masters * (1 + o.ReplicasPerMaster)
	for i := 0; i < total; i++ {
		cc := &clusterConf{lines: []string{
			"cluster-enabled yes",
			"cluster-config-file nodes.conf",
			"cluster-node-timeout " + strconv.FormatInt(o.NodeTimeout.Milliseconds(), 10),
			"cluster-replica-validity-factor 0",
		}}
		var announcedPort int
		switch o.Announce {
		case AnnounceHostname:
			cc.lines = append(cc.lines, "cluster-announce-hostname "+c.NodeName(i), "cluster-preferred-endpoint-type hostname")
		case AnnounceTranslatedPort:
			p, err := FreePort()
			if err != nil {
				t.Fatalf("redistest: %v", err)
			}
			announcedPort = p
			key := "cluster-announce-port "
			if o.Server.TLS != nil {
				key = "cluster-announce-tls-port "
			}
			cc.lines = append(cc.lines, key+strconv.Itoa(p))
		}
		s, err := startServer(t, o.Server, cc)
		if err != nil {
			t.Fatalf("redistest: node %d: %v", i, err)
		}
		n := &Node{Server: s, Index: i, MasterIndex: -1}
		switch o.Announce {
		case AnnounceHostname:
			n.Announced = net.JoinHostPort(c.NodeName(i), strconv.Itoa(s.Port))
		case AnnounceTranslatedPort:
			n.Announced = net.JoinHostPort("127.0.0.1", strconv.Itoa(announcedPort))
		default:
			n.Announced = s.Addr()
		}
		if i >= o.Masters {
			n.MasterIndex = (i - o.Masters) % o.Masters
		}
		c.Nodes = append(c.Nodes, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.form(ctx); err != nil {
		for _, n := range c.Nodes {
			t.Logf("redistest: node %d log:\n%s", n.Index, n.logTail())
		}
		t.Fatalf("redistest: forming cluster: %v", err)
	}
	return c
}

func (c *Cluster) form(ctx context.Context) error {
	clients := make([]*redis.Client, len(c.Nodes))
	for i, n := range c.Nodes {
		clients[i] = n.Client()
		defer func() { _ = clients[i].Close() }()
		id, err := clients[i].Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			return fmt.Errorf("node %d: CLUSTER MYID: %w", i, err)
		}
		n.ID = id
		// Distinct epochs before meeting avoid the epoch-collision dance.
		if err := clients[i].Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return fmt.Errorf("node %d: CLUSTER SET-CONFIG-EPOCH: %w", i, err)
		}
	}
	masters := c.opts.Masters
	for i := 0; i < masters; i++ {
		lo, hi := i*16384/masters, (i+1)*16384/masters-1
		if err := clients[i].Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			return fmt.Errorf("node %d: CLUSTER ADDSLOTSRANGE %d %d: %w", i, lo, hi, err)
		}
	}
	for i := 1; i < len(c.Nodes); i++ {
		n := c.Nodes[i]
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", n.Port, n.BusPort).Err(); err != nil {
			return fmt.Errorf("CLUSTER MEET node %d: %w", i, err)
		}
	}
	// Every node must know every other before a replica can name its master.
	if err := poll(ctx, "every node to know every other", func() error {
		for i, cl := range clients {
			nodes, err := cl.ClusterNodes(ctx).Result()
			if err != nil {
				return err
			}
			if got := len(strings.Split(strings.TrimSpace(nodes), "\n")); got != len(c.Nodes) {
				return fmt.Errorf("node %d knows %d of %d nodes", i, got, len(c.Nodes))
			}
			if strings.Contains(nodes, "handshake") || strings.Contains(nodes, "noaddr") {
				return fmt.Errorf("node %d is still in handshake", i)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	for i, n := range c.Nodes {
		if n.MasterIndex < 0 {
			continue
		}
		if err := clients[i].Do(ctx, "CLUSTER", "REPLICATE", c.Nodes[n.MasterIndex].ID).Err(); err != nil {
			return fmt.Errorf("node %d: CLUSTER REPLICATE: %w", i, err)
		}
	}
	return c.WaitHealthy(ctx)
}

// WaitHealthy waits until every running node reports cluster_state:ok with all slots, every
// running replica's master link is up, and every running node's CLUSTER SHARDS lists every
// running node online under its announced endpoint.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	var running []*Node
	for _, n := range c.Nodes {
		if n.Running() {
			running = append(running, n)
		}
	}
	want := make([]string, 0, len(running))
	for _, n := range running {
		want = append(want, n.Announced)
	}
	sort.Strings(want)
	return poll(ctx, "the cluster to be healthy", func() error {
		for _, n := range running {
			if err := c.checkNode(ctx, n, want); err != nil {
				return fmt.Errorf("node %d (%s): %w", n.Index, n.Addr(), err)
			}
		}
		return nil
	})
}

func (c *Cluster) checkNode(ctx context.Context, n *Node, want []string) error {
	cl := n.Client()
	defer func() { _ = cl.Close() }()
	info, err := cl.ClusterInfo(ctx).Result()
	if err != nil {
		return err
	}
	if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
		return fmt.Errorf("cluster_state not ok")
	}
	repl, err := Info(ctx, cl, "replication")
	if err != nil {
		return err
	}
	if repl["role"] == "slave" && repl["master_link_status"] != "up" {
		return fmt.Errorf("replica link is %s", repl["master_link_status"])
	}
	shards, err := cl.ClusterShards(ctx).Result()
	if err != nil {
		return err
	}
	var got []string
	for _, sh := range shards {
		for _, sn := range sh.Nodes {
			if sn.Health != "online" {
				continue
			}
			host := sn.IP
			if c.opts.Announce == AnnounceHostname {
				host = sn.Hostname
			}
			port := sn.Port
			if port == 0 {
				port = sn.TLSPort
			}
			got = append(got, net.JoinHostPort(host, strconv.FormatInt(port, 10)))
		}
	}
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		return fmt.Errorf("CLUSTER SHARDS shows %v, want %v", got, want)
	}
	return nil
}

// poll retries f every 50ms until it returns nil or ctx ends.
func poll(ctx context.Context, what string, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %w)", what, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Reannounce makes node i announce host from now on (CONFIG SET cluster-announce-hostname), as a
// restarted pod comes back with a new address, and waits until every node hands the new name out
// in CLUSTER SHARDS. The node's Announced follows; the new announced address is returned.
func (c *Cluster) Reannounce(ctx context.Context, i int, host string) (string, error) {
	n := c.Nodes[i]
	nc := n.Client()
	defer func() { _ = nc.Close() }()
	if err := nc.ConfigSet(ctx, "cluster-announce-hostname", host).Err(); err != nil {
		return "", fmt.Errorf("node %d: CONFIG SET cluster-announce-hostname: %w", i, err)
	}
	for _, other := range c.Nodes {
		oc := other.Client()
		err := poll(ctx, fmt.Sprintf("node %d to hand out %s", other.Index, host), func() error {
			shards, err := oc.ClusterShards(ctx).Result()
			if err != nil {
				return err
			}
			for _, s := range shards {
				for _, sn := range s.Nodes {
					if sn.Hostname == host {
						return nil
					}
				}
			}
			return fmt.Errorf("not yet")
		})
		_ = oc.Close()
		if err != nil {
			return "", err
		}
	}
	n.Announced = net.JoinHostPort(host, strconv.Itoa(n.Port))
	return n.Announced, nil
}

// MigrateSlot moves slot and every key in it from src to dst with the live-resharding protocol:
// CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE per key (first the keys in first, in order, then
// the rest), then SETSLOT NODE on every master. afterKey, when set, runs after each key moved
// while the slot still belongs to src: clients get ASK for moved keys then, and MOVED after.
func (c *Cluster) MigrateSlot(ctx context.Context, src, dst *Node, slot int, first []string, afterKey func(key string)) error {
	s, d := src.Client(), dst.Client()
	defer func() { _ = s.Close() }()
	defer func() { _ = d.Close() }()
	if err := d.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", src.ID).Err(); err != nil {
		return fmt.Errorf("SETSLOT IMPORTING: %w", err)
	}
	if err := s.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst.ID).Err(); err != nil {
		return fmt.Errorf("SETSLOT MIGRATING: %w", err)
	}
	move := func(k string) error {
		if err := s.Migrate(ctx, "127.0.0.1", strconv.Itoa(dst.Port), k, 0, 5*time.Second).Err(); err != nil {
			return fmt.Errorf("MIGRATE %s: %w", k, err)
		}
		if afterKey != nil {
			afterKey(k)
		}
		return nil
	}
	for _, k := range first {
		if err := move(k); err != nil {
			return err
		}
	}
	for {
		keys, err := s.ClusterGetKeysInSlot(ctx, slot, 10).Result()
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			break
		}
		for _, k := range keys {
			if err := move(k); err != nil {
				return err
			}
		}
	}
	for _, m := range c.Masters() {
		mc := m.Client()
		err := mc.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dst.ID).Err()
		_ = mc.Close()
		if err != nil {
			return fmt.Errorf("SETSLOT NODE on node %d: %w", m.Index, err)
		}
	}
	return nil
}
