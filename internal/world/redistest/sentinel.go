package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rconn-dev/redis-connection-operator/internal/tb"
)

// A Sentinel group as Bitnami's redis chart runs it (sentinel.enabled): one pod per index i,
// named redis-<i>.<Domain>, holding a data node (the master or a replica) and a sentinel on
// two ports. Every replica announces its pod name (replica-announce-ip) and every sentinel
// announces its pod name (sentinel announce-ip) with `sentinel resolve-hostnames yes` and
// `sentinel announce-hostnames yes`: SENTINEL GET-MASTER-ADDR-BY-NAME, SENTINEL REPLICAS,
// SENTINEL SENTINELS and +switch-master all hand out names like
// redis-1.redis-headless.rconn-test.svc.cluster.local, which an app outside the pod network
// (the test process) cannot resolve: it must reach them through the node address map
// (AddressMap: name:port -> 127.0.0.1:port).
//
// How the group itself reaches those names without DNS: every redis-server of the group runs
// in its own mount namespace (`unshare --mount`, plus `--user --map-root-user` when not root)
// where a hosts file of the group (HostsFile: each pod name -> 127.0.0.1) is bind-mounted over
// /etc/hosts. The system's nsswitch reads "files" before "dns", so sentinels and replicas
// resolve the names from that file and no query ever reaches the machine's resolver; the real
// /etc/hosts is untouched and the test process (and the code under test) still cannot resolve
// any of the names. Unlike announcing 127.0.0.x aliases, this keeps "announced != reachable"
// exactly as on Kubernetes: the announced address is a DNS name only the pod network resolves.

// SentinelGroupOptions configure StartSentinelGroup. Zero value: 1 master, 2 replicas,
// 3 sentinels, no auth, no TLS.
type SentinelGroupOptions struct {
	// Replicas (default 2) and Sentinels (default 3).
	Replicas, Sentinels int
	// MasterName is the monitored master's name (default "mymaster").
	MasterName string
	// Domain is the suffix of pod names (default "redis-headless.rconn-test.svc.cluster.local").
	Domain string
	// Quorum (default a majority of Sentinels), DownAfter (default 1s) and FailoverTimeout
	// (default 6s) are the sentinels' settings for the master.
	Quorum          int
	DownAfter       time.Duration
	FailoverTimeout time.Duration
	// Data applies to every data node (TLS, Password: requirepass + masterauth, ACL users).
	Data ServerOptions
	// Sentinel applies to every sentinel (TLS; Password: the sentinels' requirepass; Users:
	// ACL users on the sentinels). Sentinel auth is separate from the data nodes' auth.
	Sentinel ServerOptions
	// AuthUser/AuthPass are `sentinel auth-user/auth-pass`: how sentinels log in to data
	// nodes (default: the data nodes' Password for the default user).
	AuthUser, AuthPass string
	// SentinelUser/SentinelPass are `sentinel sentinel-user/sentinel-pass`: how sentinels log
	// in to each other (default: the sentinels' Password for the default user).
	SentinelUser, SentinelPass string
}

// SentinelGroup is a running master + replicas + sentinels.
type SentinelGroup struct {
	// Data are the data nodes; Data[0] started as the master.
	Data []*Node
	// Sentinels are the sentinels; Node.Announced is "<pod name>:<sentinel port>".
	Sentinels []*Node
	// HostsFile is the group's private /etc/hosts (pod name -> 127.0.0.1).
	HostsFile string

	opts SentinelGroupOptions
}

// PodName is the name pod i (data node i and sentinel i) announces.
func (g *SentinelGroup) PodName(i int) string {
	return fmt.Sprintf("redis-%d.%s", i, g.opts.Domain)
}

// MasterName is the monitored master's name.
func (g *SentinelGroup) MasterName() string { return g.opts.MasterName }

// AddressMap maps every announced address (data and sentinel ports) to 127.0.0.1:<port>.
func (g *SentinelGroup) AddressMap() map[string]string {
	m := map[string]string{}
	for _, n := range append(append([]*Node(nil), g.Data...), g.Sentinels...) {
		m[n.Announced] = n.Addr()
	}
	return m
}

// SentinelAddrs are the sentinels' announced addresses.
func (g *SentinelGroup) SentinelAddrs() []string {
	out := make([]string, len(g.Sentinels))
	for i, s := range g.Sentinels {
		out[i] = s.Announced
	}
	return out
}

// launcher returns the wrapper that runs redis-server with the group's hosts file as
// /etc/hosts in a private mount namespace.
func launcher(hosts string) []string {
	args := []string{"unshare", "--mount", "--propagation", "private"}
	if os.Geteuid() != 0 {
		args = []string{"unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"}
	}
	return append(args, "sh", "-c", `mount --bind "$0" /etc/hosts && exec "$@"`, hosts)
}

func (o *SentinelGroupOptions) defaults() {
	if o.Replicas == 0 {
		o.Replicas = 2
	}
	if o.Sentinels == 0 {
		o.Sentinels = 3
	}
	if o.MasterName == "" {
		o.MasterName = "mymaster"
	}
	if o.Domain == "" {
		o.Domain = "redis-headless.rconn-test.svc.cluster.local"
	}
	if o.Quorum == 0 {
		o.Quorum = o.Sentinels/2 + 1
	}
	if o.DownAfter == 0 {
		o.DownAfter = time.Second
	}
	if o.FailoverTimeout == 0 {
		o.FailoverTimeout = 6 * time.Second
	}
	if o.AuthPass == "" && o.AuthUser == "" {
		o.AuthPass = o.Data.Password
	}
	if o.SentinelPass == "" && o.SentinelUser == "" {
		o.SentinelPass = o.Sentinel.Password
	}
}

// StartSentinelGroup starts the data nodes and sentinels and waits until every sentinel
// monitors the master with every replica (link up) and every other sentinel, all under their
// announced names. Everything is stopped at Cleanup.
func StartSentinelGroup(t TB, o SentinelGroupOptions) *SentinelGroup {
	t.Helper()
	tb.Integration(t, "redis-server")
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("redistest: unshare (util-linux) is needed to give the group its own /etc/hosts: %v", err)
	}
	o.defaults()
	g := &SentinelGroup{opts: o}
	dir, err := os.MkdirTemp("", "redistest-sentinel-")
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	g.HostsFile = filepath.Join(dir, "hosts")
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1 localhost\n")
	for i := 0; i < max(o.Replicas+1, o.Sentinels); i++ {
		fmt.Fprintf(&hosts, "127.0.0.1 %s\n", g.PodName(i))
	}
	if err := os.WriteFile(g.HostsFile, []byte(hosts.String()), 0o644); err != nil { //nolint:gosec // read by redis-server as /etc/hosts
		t.Fatalf("redistest: %v", err)
	}
	launch := launcher(g.HostsFile)
	for i := 0; i <= o.Replicas; i++ {
		lines := []string{"replica-announce-ip " + g.PodName(i)}
		if i > 0 {
			lines = append(lines, fmt.Sprintf("replicaof %s %d", g.PodName(0), g.Data[0].Port))
		}
		s, err := startServer(t, o.Data, &clusterConf{noBus: true, launch: launch, lines: lines})
		if err != nil {
			t.Fatalf("redistest: data node %d: %v", i, err)
		}
		g.Data = append(g.Data, &Node{Server: s, Index: i, MasterIndex: min(i, 1) - 1, Announced: net.JoinHostPort(g.PodName(i), strconv.Itoa(s.Port))})
	}
	for i := 0; i < o.Sentinels; i++ {
		s, err := startServer(t, o.Sentinel, &clusterConf{noBus: true, sentinel: true, launch: launch, lines: g.sentinelConf(i)})
		if err != nil {
			t.Fatalf("redistest: sentinel %d: %v", i, err)
		}
		g.Sentinels = append(g.Sentinels, &Node{Server: s, Index: i, MasterIndex: -1, Announced: net.JoinHostPort(g.PodName(i), strconv.Itoa(s.Port))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := g.WaitSettled(ctx, 0); err != nil {
		for _, n := range append(append([]*Node(nil), g.Data...), g.Sentinels...) {
			t.Logf("redistest: %s log:\n%s", n.Announced, n.logTail())
		}
		t.Fatalf("redistest: forming sentinel group: %v", err)
	}
	return g
}

// sentinelConf is sentinel i's configuration. resolve-hostnames must come before monitor.
func (g *SentinelGroup) sentinelConf(i int) []string {
	o, name := g.opts, g.opts.MasterName
	lines := []string{
		"sentinel resolve-hostnames yes",
		"sentinel announce-hostnames yes",
		"sentinel announce-ip " + g.PodName(i),
		fmt.Sprintf("sentinel monitor %s %s %d %d", name, g.PodName(0), g.Data[0].Port, o.Quorum),
		fmt.Sprintf("sentinel down-after-milliseconds %s %d", name, o.DownAfter.Milliseconds()),
		fmt.Sprintf("sentinel failover-timeout %s %d", name, o.FailoverTimeout.Milliseconds()),
		fmt.Sprintf("sentinel parallel-syncs %s 1", name),
	}
	if o.AuthUser != "" {
		lines = append(lines, fmt.Sprintf("sentinel auth-user %s %s", name, o.AuthUser))
	}
	if o.AuthPass != "" {
		lines = append(lines, fmt.Sprintf("sentinel auth-pass %s %s", name, o.AuthPass))
	}
	if o.SentinelUser != "" {
		lines = append(lines, "sentinel sentinel-user "+o.SentinelUser)
	}
	if o.SentinelPass != "" {
		lines = append(lines, "sentinel sentinel-pass "+o.SentinelPass)
	}
	return lines
}

// DataIndex returns the index of the data node announced at addr ("host:port"), or -1.
func (g *SentinelGroup) DataIndex(addr string) int {
	for i, n := range g.Data {
		if n.Announced == addr {
			return i
		}
	}
	return -1
}

// MasterBy returns the master's announced address as sentinel i names it ("" when unknown).
func (g *SentinelGroup) MasterBy(ctx context.Context, i int) (string, error) {
	c := g.Sentinels[i].Client()
	defer func() { _ = c.Close() }()
	v, err := c.Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", g.opts.MasterName).StringSlice()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if len(v) != 2 {
		return "", fmt.Errorf("GET-MASTER-ADDR-BY-NAME: %d fields", len(v))
	}
	return net.JoinHostPort(v[0], v[1]), nil
}

// Master returns the index of the data node every running sentinel names as master, once
// they agree and that node's ROLE says master.
func (g *SentinelGroup) Master(ctx context.Context) (int, error) {
	idx := -1
	for i, s := range g.Sentinels {
		if !s.Running() {
			continue
		}
		a, err := g.MasterBy(ctx, i)
		if err != nil {
			return -1, fmt.Errorf("sentinel %d: %w", i, err)
		}
		j := g.DataIndex(a)
		if j < 0 {
			return -1, fmt.Errorf("sentinel %d names %q, not a data node of the group", i, a)
		}
		if idx >= 0 && j != idx {
			return -1, fmt.Errorf("sentinels disagree: data node %d and %d", idx, j)
		}
		idx = j
	}
	if idx < 0 {
		return -1, errors.New("no sentinel running")
	}
	c := g.Data[idx].Client()
	defer func() { _ = c.Close() }()
	role, err := c.Do(ctx, "ROLE").Slice()
	if err != nil {
		return -1, fmt.Errorf("data node %d: ROLE: %w", idx, err)
	}
	if len(role) == 0 || role[0] != "master" {
		return -1, fmt.Errorf("data node %d is not (yet) a master: %v", idx, role)
	}
	return idx, nil
}

// WaitSettled waits until every running sentinel names data node master (-1: any) as
// master, lists every other running data node as a replica (by its announced name) with its
// link up and no s_down flag, and knows every other running sentinel; and every running
// replica's own master link is up.
func (g *SentinelGroup) WaitSettled(ctx context.Context, master int) error {
	return poll(ctx, "the sentinel group to settle", func() error {
		m, err := g.Master(ctx)
		if err != nil {
			return err
		}
		if master >= 0 && m != master {
			return fmt.Errorf("master is data node %d, want %d", m, master)
		}
		return g.checkSettled(ctx, m)
	})
}

func (g *SentinelGroup) checkSettled(ctx context.Context, m int) error {
	running := 0
	for _, s := range g.Sentinels {
		if s.Running() {
			running++
		}
	}
	for i, s := range g.Sentinels {
		if !s.Running() {
			continue
		}
		c := s.Client()
		reps, err := c.Do(ctx, "SENTINEL", "REPLICAS", g.opts.MasterName).Slice()
		if err == nil {
			err = g.checkReplicas(reps, m)
		}
		if err == nil {
			var peers []interface{}
			peers, err = c.Do(ctx, "SENTINEL", "SENTINELS", g.opts.MasterName).Slice()
			if err == nil && len(peers) != running-1 {
				err = fmt.Errorf("knows %d other sentinels, want %d", len(peers), running-1)
			}
		}
		_ = c.Close()
		if err != nil {
			return fmt.Errorf("sentinel %d: %w", i, err)
		}
	}
	for i, n := range g.Data {
		if i == m || !n.Running() {
			continue
		}
		c := n.Client()
		info, err := Info(ctx, c, "replication")
		_ = c.Close()
		if err != nil {
			return fmt.Errorf("data node %d: %w", i, err)
		}
		if info["master_link_status"] != "up" {
			return fmt.Errorf("data node %d: master_link_status %q", i, info["master_link_status"])
		}
	}
	return nil
}

// checkReplicas checks a SENTINEL REPLICAS reply: every running data node but m, by name,
// link ok, not down.
func (g *SentinelGroup) checkReplicas(reps []interface{}, m int) error {
	seen := map[int]bool{}
	for _, r := range reps {
		f := pairs(r)
		a := net.JoinHostPort(f["ip"], f["port"])
		j := g.DataIndex(a)
		if j < 0 {
			return fmt.Errorf("lists replica %q, not a data node announced name", a)
		}
		if !g.Data[j].Running() {
			continue
		}
		if strings.Contains(f["flags"], "s_down") || f["master-link-status"] != "ok" {
			return fmt.Errorf("replica %s: flags %q, master-link-status %q", a, f["flags"], f["master-link-status"])
		}
		seen[j] = true
	}
	for j, n := range g.Data {
		if j != m && n.Running() && !seen[j] {
			return fmt.Errorf("does not list data node %d as a replica", j)
		}
	}
	return nil
}

// pairs turns a flat [k1, v1, k2, v2...] reply (RESP2) or a map (RESP3) into a map.
func pairs(v interface{}) map[string]string {
	out := map[string]string{}
	if m, ok := v.(map[interface{}]interface{}); ok {
		for k, x := range m {
			ks, _ := k.(string)
			xs, _ := x.(string)
			out[ks] = xs
		}
		return out
	}
	l, _ := v.([]interface{})
	for i := 0; i+1 < len(l); i += 2 {
		k, _ := l[i].(string)
		s, _ := l[i+1].(string)
		out[k] = s
	}
	return out
}

// Failover sends SENTINEL FAILOVER to the first running sentinel (a forced failover that
// needs no agreement) and returns the index of the master it replaces. Wait for the new one
// with WaitSettled or Master.
func (g *SentinelGroup) Failover(ctx context.Context) (int, error) {
	old, err := g.Master(ctx)
	if err != nil {
		return -1, err
	}
	for _, s := range g.Sentinels {
		if !s.Running() {
			continue
		}
		c := s.Client()
		err := c.Do(ctx, "SENTINEL", "FAILOVER", g.opts.MasterName).Err()
		_ = c.Close()
		return old, err
	}
	return -1, errors.New("no sentinel running")
}

// KillMaster kills (SIGKILL) the current master's process and returns its index.
func (g *SentinelGroup) KillMaster(ctx context.Context) (int, error) {
	m, err := g.Master(ctx)
	if err != nil {
		return -1, err
	}
	g.Data[m].Kill()
	return m, nil
}

// WaitNewMaster waits until the sentinels agree on a master other than old whose ROLE says
// master, and returns its index.
func (g *SentinelGroup) WaitNewMaster(ctx context.Context, old int) (int, error) {
	m := -1
	err := poll(ctx, "a new master", func() error {
		var err error
		if m, err = g.Master(ctx); err != nil {
			return err
		}
		if m == old {
			return fmt.Errorf("data node %d is still the master", m)
		}
		return nil
	})
	return m, err
}
