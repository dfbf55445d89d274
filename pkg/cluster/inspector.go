package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// SlotCount is the number of hash slots in a Redis Cluster.
const SlotCount = 16384

// Role of a node.
type Role string

// The roles a node can have.
const (
	RoleMaster  Role = "master"
	RoleReplica Role = "replica"
)

// SlotRange is an inclusive range of hash slots.
type SlotRange struct {
	Start, End int
}

func (r SlotRange) String() string {
	if r.Start == r.End {
		return strconv.Itoa(r.Start)
	}
	return fmt.Sprintf("%d-%d", r.Start, r.End)
}

// Node is one node as the topology describes it.
type Node struct {
	// ID is the cluster node id ("" for a standalone server).
	ID string
	// Announced is the address the node hands to clients ("host:port").
	Announced string
	// Mapped is the address dialed for it after the node address map.
	Mapped string
	// IP and Hostname as the cluster knows them (CLUSTER SHARDS).
	IP, Hostname string
	Role         Role
	// MasterID is the master a replica follows.
	MasterID string
	// Health as the cluster reports it: online, failed or loading ("" when unknown).
	Health string
	// ReplicationOffset as reported.
	ReplicationOffset int64
}

// Shard is a master, its replicas and its slots.
type Shard struct {
	Slots    []SlotRange
	Master   *Node
	Replicas []*Node
}

// Topology is what discovery found.
type Topology struct {
	// Standalone is true for a standalone server (one shard, one node, no slots).
	Standalone bool
	// Shards ordered by first slot (shards without slots last, by master address).
	Shards []Shard
	// Nodes ordered by announced address.
	Nodes []*Node
	// SlotsCovered counts the slots some master serves.
	SlotsCovered int
	// Source is the address that answered and the command used (CLUSTER SHARDS or SLOTS).
	Source, Command string
}

// FullCoverage reports whether all 16384 slots are served (always true when Standalone).
func (t *Topology) FullCoverage() bool { return t.Standalone || t.SlotsCovered == SlotCount }

// Errors discovery returns, to tell apart with errors.Is.
var (
	// ErrNoNodeAnswered: no root or known node could be asked.
	ErrNoNodeAnswered = errors.New("no root or known node answered")
	// ErrNotCluster: the server runs with cluster support disabled.
	ErrNotCluster = errors.New("server is not a Redis Cluster node (cluster support disabled)")
	// ErrClusterModeServer: Standalone was asked of a Redis Cluster node.
	ErrClusterModeServer = errors.New("server is a Redis Cluster node, not a standalone server")
)

// Inspector discovers topology and checks node health through the node address map. It keeps
// one small connection pool per node across calls (no per-call connection churn) and drops
// pools of nodes that left. Safe for concurrent use.
type Inspector struct {
	o      *resolved
	dialer *Dialer
	// budget is this Inspector's part of Options.ReplyBudget (nil: none).
	budget *budgetAccount

	mu      sync.Mutex
	clients map[string]*redis.Client
	known   []string
	closed  bool
}

// NewInspector validates the options and returns an Inspector; it connects lazily.
func NewInspector(o Options) (*Inspector, error) {
	r, err := resolve(o)
	if err != nil {
		return nil, err
	}
	return newInspector(r, r.newDialer()), nil
}

func newInspector(r *resolved, d *Dialer) *Inspector {
	return &Inspector{o: r, dialer: d, budget: r.ReplyBudget.account(), clients: map[string]*redis.Client{}}
}

// Dialer returns the mapping dialer.
func (in *Inspector) Dialer() *Dialer { return in.dialer }

// SetNodeAddressMap atomically replaces the node address map (see Dialer.SetMap).
func (in *Inspector) SetNodeAddressMap(m NodeAddressMap) { in.dialer.SetMap(m) }

// Close closes every connection.
func (in *Inspector) Close() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.closed = true
	var errs []error
	for k, c := range in.clients {
		errs = append(errs, c.Close())
		delete(in.clients, k)
	}
	return errors.Join(errs...)
}

// client returns the pooled admin client for a node address.
func (in *Inspector) client(addr string) (*redis.Client, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return nil, errors.New("inspector closed")
	}
	if c := in.clients[addr]; c != nil {
		return c, nil
	}
	user, pass := in.o.Defaults.Username, in.o.Defaults.Password
	for _, rt := range in.o.roots {
		if rt.addr == addr && rt.hasCreds {
			user, pass = rt.username, rt.password
		}
	}
	limits := &in.o.limits
	var c *redis.Client
	opts := &redis.Options{
		Addr: addr,
		// Every byte a node sends passes the RESP limits (and the reply budget) before
		// go-redis's reader sees it.
		Dialer: func(ctx context.Context, network, dialed string) (net.Conn, error) {
			conn, err := in.dialer.DialContext(ctx, network, dialed)
			if err != nil {
				in.forget(addr, c)
				return nil, err
			}
			return limitConn(conn, limits, in.budget), nil
		},
		// One dial per use: a dead node costs one refused (or timed out) dial, not five
		// with 100 ms between them; callers have their own cadence (health checks, discovery
		// candidates, reconciles).
		DialerRetries:         1,
		Username:              user,
		Password:              pass,
		DB:                    in.o.Defaults.DB,
		ClientName:            in.o.Defaults.ClientName,
		DialTimeout:           in.o.Defaults.ConnectTimeout,
		ReadTimeout:           in.o.inspectorTimeout(in.o.ReadTimeout),
		WriteTimeout:          in.o.inspectorTimeout(in.o.WriteTimeout),
		PoolTimeout:           in.o.inspectorTimeout(in.o.ReadTimeout),
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		PoolSize:              2,
		// Small buffers: an idle pooled connection keeps both, and go-redis's default
		// 32 KiB each way made a SentinelInspector after one Discover cost 294 KB (65 KB
		// with 4 KiB; BenchmarkSentinelSubscription). Longer replies still read whole:
		// go-redis reads lines past the buffer and bulk strings with io.ReadFull.
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		MaxIdleConns:    1,
		DisableIdentity: true,
		Protocol:        2,
		// go-redis resolves hostnames through DNS to pick a maintenance-notification endpoint type;
		// announced names are exactly what must never be resolved here.
		MaintNotificationsConfig: NoMaintNotifications(),
	}
	if in.o.Defaults.CredentialsProvider != nil {
		opts.CredentialsProvider = in.o.Defaults.CredentialsProvider
	}
	c = redis.NewClient(opts)
	in.clients[addr] = c
	return c, nil
}

// forget drops c, addr's client, after a dial through it failed, so the next use of addr
// builds a fresh one. go-redis's pool, once PoolSize dials have failed, fails every use with
// the last dial error until a background redial (once a second) succeeds: a node that was
// back would still be reported unreachable by the next health check, and with checks driven
// by Sentinel events (-sdown comes as soon as it answers) status stayed so until the next
// event (TestHealthSeesANodeBackAtOnce). Closing happens apart from the dial that failed,
// which runs inside c's pool.
func (in *Inspector) forget(addr string, c *redis.Client) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if c == nil || in.clients[addr] != c {
		return
	}
	delete(in.clients, addr)
	go func() { _ = c.Close() }()
}

// prune closes pools of addresses that are neither root nor known nodes.
func (in *Inspector) prune(keep []string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	want := map[string]bool{}
	for _, a := range in.o.rootAddrs() {
		want[a] = true
	}
	for _, a := range keep {
		want[a] = true
	}
	for a, c := range in.clients {
		if !want[a] {
			_ = c.Close()
			delete(in.clients, a)
		}
	}
	in.known = keep
}

// NodeError is a failure at one node: Addr is the address it was asked at (a root node's
// address from the options, or a node's announced address), so a status can name it.
type NodeError struct {
	Addr string
	Err  error
}

func (e *NodeError) Error() string { return e.Addr + ": " + e.Err.Error() }
func (e *NodeError) Unwrap() error { return e.Err }

// discoverParallel bounds how many candidates Discover asks at once.
const discoverParallel = 8

// discoverStagger is how long Discover waits for a candidate before also asking the next one.
const discoverStagger = 300 * time.Millisecond

// Discover reads the topology from the root nodes, then from nodes found before. Candidates
// are asked in parallel (at most 8 at once, in order); the first answer wins and the others
// are abandoned, so a silent or dead root costs nothing while another answers. When several
// have answered by then, the earliest candidate's topology is returned. Cluster: CLUSTER
// SHARDS, or CLUSTER SLOTS on servers that lack it (or deny it by ACL). Standalone: INFO. ctx
// bounds the whole; each command is bounded by the read/write timeouts.
func (in *Inspector) Discover(ctx context.Context) (*Topology, error) {
	in.mu.Lock()
	all := append(in.o.rootAddrs(), in.known...)
	in.mu.Unlock()
	seen := map[string]bool{}
	var candidates []string
	for _, a := range all {
		if !seen[a] {
			seen[a] = true
			candidates = append(candidates, a)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		i   int
		t   *Topology
		err error
	}
	results := make(chan result, len(candidates))
	sem := make(chan struct{}, discoverParallel)
	// Candidates start in order, each one discoverStagger after the previous or as soon as an
	// earlier one failed (Happy Eyeballs, RFC 8305): a healthy first root answers alone, so the
	// topology's Source (and the status that names it) stays the same from probe to probe,
	// while a silent root costs the others only the stagger.
	failed := make(chan struct{}, len(candidates))
	go func() {
		for i, addr := range candidates {
			if i > 0 {
				t := time.NewTimer(discoverStagger)
				select {
				case <-t.C:
				case <-failed:
				case <-ctx.Done():
				}
				t.Stop()
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				for j := i; j < len(candidates); j++ {
					results <- result{i: j, err: ctx.Err()}
				}
				return
			}
			go func() {
				defer func() { <-sem }()
				var t *Topology
				var err error
				if in.o.Standalone {
					t, err = in.discoverStandalone(ctx, addr)
				} else {
					t, err = in.discoverCluster(ctx, addr)
				}
				if err != nil {
					failed <- struct{}{}
				}
				results <- result{i: i, t: t, err: err}
			}()
		}
	}()
	errs := make([]error, len(candidates))
	var final error
	for range candidates {
		r := <-results
		if r.err == nil {
			// Prefer an earlier candidate that has answered too.
		drain:
			for {
				select {
				case o := <-results:
					if o.err == nil && o.i < r.i {
						r = o
					}
				default:
					break drain
				}
			}
			keep := make([]string, 0, len(r.t.Nodes))
			for _, n := range r.t.Nodes {
				keep = append(keep, n.Announced)
			}
			in.prune(keep)
			return r.t, nil
		}
		if errors.Is(r.err, ErrNotCluster) || errors.Is(r.err, ErrClusterModeServer) {
			final = &NodeError{Addr: candidates[r.i], Err: r.err}
		}
		errs[r.i] = &NodeError{Addr: candidates[r.i], Err: r.err}
	}
	if final != nil {
		return nil, final
	}
	return nil, fmt.Errorf("%w: %w", ErrNoNodeAnswered, errors.Join(errs...))
}

func isUnknownOrDenied(err error) bool {
	s := err.Error()
	return strings.Contains(s, "unknown subcommand") || strings.Contains(s, "unknown command") || redis.IsPermissionError(err)
}

func (in *Inspector) discoverCluster(ctx context.Context, addr string) (*Topology, error) {
	c, err := in.client(addr)
	if err != nil {
		return nil, err
	}
	shards, err := c.ClusterShards(ctx).Result()
	if err == nil {
		t, err := in.fromShards(shards)
		if err != nil {
			return nil, err
		}
		if err := checkTopology(t); err != nil {
			return nil, err
		}
		t.Source, t.Command = addr, "CLUSTER SHARDS"
		return t, nil
	}
	if strings.Contains(err.Error(), "cluster support disabled") {
		return nil, ErrNotCluster
	}
	if !isUnknownOrDenied(err) {
		return nil, err
	}
	slots, err2 := c.ClusterSlots(ctx).Result() //nolint:staticcheck // fallback for servers without CLUSTER SHARDS (Redis < 7)
	if err2 != nil {
		if strings.Contains(err2.Error(), "cluster support disabled") {
			return nil, ErrNotCluster
		}
		return nil, fmt.Errorf("CLUSTER SHARDS: %v; CLUSTER SLOTS: %w", err, err2) //nolint:errorlint // the CLUSTER SLOTS fallback's error is the cause; SHARDS' (unknown or denied) is context only
	}
	t, err := in.fromSlots(slots)
	if err != nil {
		return nil, err
	}
	if err := checkTopology(t); err != nil {
		return nil, err
	}
	t.Source, t.Command = addr, "CLUSTER SLOTS"
	return t, nil
}

func (in *Inspector) announced(host string, port int64) string {
	return net.JoinHostPort(host, strconv.FormatInt(port, 10))
}

// checkSize rejects a topology larger than the limits allow.
func (in *Inspector) checkSize(shards, nodes int) error {
	if shards > in.o.limits.MaxTopologyShards || nodes > in.o.limits.MaxTopologyNodes {
		return ErrTopologyTooLarge
	}
	return nil
}

func (in *Inspector) fromShards(shards []redis.ClusterShard) (*Topology, error) {
	nodes, ranges := 0, 0
	for _, sh := range shards {
		nodes += len(sh.Nodes)
		ranges += len(sh.Slots)
	}
	if err := in.checkSize(len(shards), nodes); err != nil {
		return nil, err
	}
	// Slot ranges of a real cluster are disjoint: at most SlotCount of them. More (each
	// claiming every slot) would cost SlotCount steps each when coverage is counted.
	if ranges > SlotCount {
		return nil, ErrTopologyTooLarge
	}
	t := &Topology{}
	for _, sh := range shards {
		var s Shard
		for _, r := range sh.Slots {
			s.Slots = append(s.Slots, SlotRange{Start: int(r.Start), End: int(r.End)})
		}
		for _, rn := range sh.Nodes {
			port := rn.Port
			if ((in.o.tls != nil || in.o.Defaults.TLSConfigFor != nil) && rn.TLSPort > 0) || port == 0 {
				port = rn.TLSPort
			}
			n := &Node{
				ID: rn.ID, IP: rn.IP, Hostname: rn.Hostname, Health: rn.Health,
				ReplicationOffset: rn.ReplicationOffset,
				Announced:         in.announced(rn.Endpoint, port),
			}
			n.Mapped, _ = in.dialer.Resolve(n.Announced)
			if rn.Role == "master" {
				n.Role = RoleMaster
				s.Master = n
			} else {
				n.Role = RoleReplica
				s.Replicas = append(s.Replicas, n)
			}
		}
		if s.Master == nil {
			// A shard whose master failed and no replica took over yet: keep the nodes visible.
			if len(s.Replicas) == 0 {
				continue
			}
		}
		t.Shards = append(t.Shards, s)
	}
	in.finish(t)
	return t, nil
}

func (in *Inspector) fromSlots(slots []redis.ClusterSlot) (*Topology, error) {
	if len(slots) > SlotCount {
		return nil, ErrTopologyTooLarge // ranges are disjoint: at most SlotCount
	}
	t := &Topology{}
	byMaster := map[string]int{}
	nodes := 0
	for _, cs := range slots {
		if len(cs.Nodes) == 0 {
			continue
		}
		m := cs.Nodes[0]
		i, ok := byMaster[m.ID]
		if !ok {
			i = len(t.Shards)
			byMaster[m.ID] = i
			master := &Node{ID: m.ID, Announced: m.Addr, Role: RoleMaster}
			var reps []*Node
			for _, r := range cs.Nodes[1:] {
				reps = append(reps, &Node{ID: r.ID, Announced: r.Addr, Role: RoleReplica})
			}
			t.Shards = append(t.Shards, Shard{Master: master, Replicas: reps})
			nodes += 1 + len(reps)
			if err := in.checkSize(len(t.Shards), nodes); err != nil {
				return nil, err
			}
		}
		t.Shards[i].Slots = append(t.Shards[i].Slots, SlotRange{Start: int(cs.Start), End: int(cs.End)})
	}
	for _, s := range t.Shards {
		for _, n := range append([]*Node{s.Master}, s.Replicas...) {
			n.Mapped, _ = in.dialer.Resolve(n.Announced)
		}
	}
	in.finish(t)
	return t, nil
}

// finish links replicas to masters, sorts, and counts covered slots.
func (in *Inspector) finish(t *Topology) {
	var covered [SlotCount]bool
	for si := range t.Shards {
		s := &t.Shards[si]
		sort.Slice(s.Slots, func(a, b int) bool { return s.Slots[a].Start < s.Slots[b].Start })
		sort.Slice(s.Replicas, func(a, b int) bool { return s.Replicas[a].Announced < s.Replicas[b].Announced })
		if s.Master != nil {
			t.Nodes = append(t.Nodes, s.Master)
			for _, r := range s.Slots {
				for i := max(r.Start, 0); i <= r.End && i < SlotCount; i++ {
					covered[i] = true
				}
			}
		}
		for _, r := range s.Replicas {
			if s.Master != nil {
				r.MasterID = s.Master.ID
			}
			t.Nodes = append(t.Nodes, r)
		}
	}
	for _, c := range covered {
		if c {
			t.SlotsCovered++
		}
	}
	sort.SliceStable(t.Shards, func(a, b int) bool {
		sa, sb := t.Shards[a], t.Shards[b]
		if len(sa.Slots) == 0 || len(sb.Slots) == 0 {
			return len(sa.Slots) > len(sb.Slots)
		}
		return sa.Slots[0].Start < sb.Slots[0].Start
	})
	sort.Slice(t.Nodes, func(a, b int) bool { return t.Nodes[a].Announced < t.Nodes[b].Announced })
}

func (in *Inspector) discoverStandalone(ctx context.Context, addr string) (*Topology, error) {
	c, err := in.client(addr)
	if err != nil {
		return nil, err
	}
	info, err := infoMap(ctx, c, "server", "replication")
	if err != nil {
		return nil, err
	}
	if info["redis_mode"] == "cluster" {
		return nil, ErrClusterModeServer
	}
	n := &Node{Announced: addr, Role: RoleMaster, Health: "online"}
	n.Mapped, _ = in.dialer.Resolve(addr)
	if info["role"] == "slave" {
		n.Role = RoleReplica
	}
	if off, err := strconv.ParseInt(info["master_repl_offset"], 10, 64); err == nil {
		n.ReplicationOffset = off
	}
	t := &Topology{Standalone: true, Shards: []Shard{{Master: n}}, Nodes: []*Node{n}, Source: addr, Command: "INFO"}
	if n.Role == RoleReplica {
		t.Shards = []Shard{{Replicas: []*Node{n}}}
	}
	return t, nil
}

func infoMap(ctx context.Context, c *redis.Client, sections ...string) (map[string]string, error) {
	s, err := c.Info(ctx, sections...).Result()
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m, nil
}

// NodeHealth is one node's check result.
type NodeHealth struct {
	Announced string
	Dialed    string
	// Reachable: a connection was made and PING answered.
	Reachable bool
	// Role as the node itself reports it (ROLE).
	Role Role
	// ClusterState from CLUSTER INFO ("ok" or "fail"; "" for standalone).
	ClusterState string
	// Latency of PING.
	Latency time.Duration
	// Err is why the node is unreachable or unhealthy.
	Err error
}

// Healthy reports whether the node is reachable, without error, and (in a cluster) cluster_state:ok.
// It is the one place a check result decides "this node has failed": the controller's
// conditions, its re-probe backoff and the status all ask it.
func (h NodeHealth) Healthy() bool {
	return h.Reachable && h.Err == nil && (h.ClusterState == "" || h.ClusterState == "ok")
}

// ClusterStateNotOK reports whether the node answered but its CLUSTER INFO cluster_state was
// not ok (the reason Healthy is false for a reachable node that returned no other error).
func (h NodeHealth) ClusterStateNotOK() bool {
	return h.Reachable && h.ClusterState != "" && h.ClusterState != "ok"
}

// Failed reports whether the cluster itself marks the node as failed (CLUSTER SHARDS health
// "fail", as Redis 7.0 reports it, or "failed", as its documentation spells it): the topology's
// view, where Healthy is this process's own check.
func (n *Node) Failed() bool { return n.Health == "fail" || n.Health == "failed" }

// CheckHealth checks every node of t through its mapped address, in parallel (at most
// HealthConcurrency at once), each bounded by timeout (clipped to MaxTimeout; zero or
// negative: the read timeout). Results follow t.Nodes' order.
func (in *Inspector) CheckHealth(ctx context.Context, t *Topology, timeout time.Duration) []NodeHealth {
	if timeout <= 0 {
		timeout = in.o.inspectorTimeout(in.o.ReadTimeout)
	}
	timeout = in.o.clip(timeout)
	out := make([]NodeHealth, len(t.Nodes))
	sem := make(chan struct{}, in.o.HealthConcurrency)
	var wg sync.WaitGroup
	for i, n := range t.Nodes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			nctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			out[i] = in.checkNode(nctx, n.Announced, !t.Standalone)
			if out[i].Err != nil {
				out[i].Err = &NodeError{Addr: n.Announced, Err: out[i].Err}
			}
		}()
	}
	wg.Wait()
	return out
}

func (in *Inspector) checkNode(ctx context.Context, addr string, cluster bool) NodeHealth {
	h := NodeHealth{Announced: addr}
	h.Dialed, _ = in.dialer.Resolve(addr)
	c, err := in.client(addr)
	if err != nil {
		h.Err = err
		return h
	}
	start := time.Now()
	if err := c.Ping(ctx).Err(); err != nil {
		h.Err = err
		return h
	}
	h.Latency = time.Since(start)
	h.Reachable = true
	role, err := c.Do(ctx, "ROLE").Slice()
	if err != nil {
		h.Err = fmt.Errorf("ROLE: %w", err)
		return h
	}
	if len(role) > 0 {
		s, _ := role[0].(string)
		h.Role = parseRole(s)
	}
	if cluster {
		info, err := c.ClusterInfo(ctx).Result()
		if err != nil {
			h.Err = fmt.Errorf("CLUSTER INFO: %w", err)
			return h
		}
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "cluster_state:"); ok {
				h.ClusterState = v
			}
		}
		if h.ClusterState != "ok" {
			h.Err = ErrClusterStateNotOK
		}
	}
	return h
}

// NoMaintNotifications turns off go-redis's maintenance notifications (Redis Enterprise/Cloud
// only), whose "auto" mode resolves every hostname-shaped node address through DNS when a
// client is built: for announced names (pod IPs' names, .invalid in tests) that is a lookup
// that cannot succeed and must not be made.
func NoMaintNotifications() *maintnotifications.Config {
	return &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
}
