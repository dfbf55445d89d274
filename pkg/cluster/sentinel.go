package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel mode: a master with replicas, watched by Redis Sentinel. The sentinels hand out
// the master, the replicas and their peers by announced addresses (pod IPs, headless-Service
// names), exactly as cluster nodes do, so everything here goes through the same mapping
// Dialer, address policy, Limits (with per-command caps for the SENTINEL commands, see
// commands.go), ReplyBudget and Classify as the cluster Inspector: a hostile sentinel is
// treated like a hostile cluster node.

// SentinelReason says how far Discover got in trusting a master. Values are CamelCase, usable
// verbatim as Kubernetes condition reasons (docs/api.md lists them).
type SentinelReason string

// Reasons of a SentinelTopology.
const (
	// SentinelMasterConfirmed: a majority of the sentinels that answered name the same master,
	// and that master, asked through the node address map, says ROLE master.
	SentinelMasterConfirmed SentinelReason = "MasterConfirmed"
	// SentinelNoQuorum: sentinels answered, but no master address is named by more than half
	// of them (a split, or lying or stale sentinels as numerous as honest ones).
	SentinelNoQuorum SentinelReason = "NoQuorum"
	// SentinelMasterNotConfirmed: a majority agree, but the master they name could not be
	// reached through the map, or its ROLE is not master (a failover in progress, a stale
	// majority).
	SentinelMasterNotConfirmed SentinelReason = "MasterNotConfirmed"
	// SentinelMasterUnknown: sentinels answered, but none monitors a master by that name.
	SentinelMasterUnknown SentinelReason = "MasterUnknown"
)

// SentinelReasons lists every SentinelReason (for docs and exhaustive switches).
var SentinelReasons = []SentinelReason{SentinelMasterConfirmed, SentinelNoQuorum, SentinelMasterNotConfirmed, SentinelMasterUnknown}

// Errors of Sentinel discovery, to tell apart with errors.Is.
var (
	// ErrNoSentinelAnswered: no root or known sentinel could be asked. The error joins one
	// NodeError per sentinel, so Classify names the most specific failure (Unreachable,
	// AuthenticationFailed, ReplyTooLarge, AddressDenied, ...).
	ErrNoSentinelAnswered = errors.New("no sentinel answered")
	// ErrNotMaster: the node the sentinels name as master says (ROLE) it is not one.
	ErrNotMaster = errors.New("the node the sentinels name as master does not report ROLE master")
)

// RoleSentinel is the role a sentinel reports (ROLE).
const RoleSentinel Role = "sentinel"

// SentinelNode is a data node (the master or a replica) as the sentinels describe it.
type SentinelNode struct {
	// Announced is "host:port" as the sentinels name it; Mapped is where it is dialed after
	// the node address map ("" when the map has no entry and it is dialed as announced).
	Announced, Mapped string
	Role              Role
	// Flags as the sentinel reports them ("slave", "slave,s_down", "master"...).
	Flags string
	// MasterLinkStatus of a replica ("ok" or "err").
	MasterLinkStatus string
	// ReplicationOffset: the master's own offset (from ROLE), or a replica's as its sentinel
	// reports it.
	ReplicationOffset int64
	// Lag is the master's offset minus this replica's, in bytes (-1 when either is unknown).
	Lag int64
	// MasterLinkDownTime is how long a replica's link to the master has been down.
	MasterLinkDownTime time.Duration
}

// SentinelPeer is one sentinel Discover knows of: a root node, or a peer another sentinel
// listed (SENTINEL SENTINELS).
type SentinelPeer struct {
	Announced, Mapped string
	// Root: from SentinelOptions.RootNodes.
	Root bool
	// Asked: Discover asked it (at most MaxTopologyNodes sentinels are asked).
	Asked bool
	// Answered: it answered GET-MASTER-ADDR-BY-NAME.
	Answered bool
	// Master is the announced address it names as master ("" when none or not answered).
	Master string
	// Err is why it did not answer (a *NodeError; Classify it).
	Err error
}

// SentinelTopology is what Sentinel discovery found.
type SentinelTopology struct {
	MasterName string
	// Master is the master a majority named (nil with NoQuorum or MasterUnknown).
	Master *SentinelNode
	// MasterConfirmed: Reason is SentinelMasterConfirmed.
	MasterConfirmed bool
	Reason          SentinelReason
	// MasterErr is why the master was not confirmed (a *NodeError, or ErrNotMaster inside
	// one); nil otherwise.
	MasterErr error
	// Replicas of the master as the first agreeing sentinel lists them, by announced address.
	Replicas []*SentinelNode
	// Sentinels: roots first (in order), then peers by announced address.
	Sentinels []SentinelPeer
	// Answered sentinels, Agreeing ones (naming Master), and Votes per named address.
	Answered, Agreeing int
	Votes              map[string]int
}

// SentinelInspector discovers the master, replicas and sentinels of a Sentinel-managed group
// and checks their health, through the node address map. Data nodes are dialed with
// Options.Defaults (credentials, TLS), sentinels with SentinelOptions.Defaults. Safe for
// concurrent use.
type SentinelInspector struct {
	name string
	// data dials data nodes, sent sentinels; both share the map, base dial, policy, Limits
	// and budget account.
	data, sent *Inspector
	maxAsked   int

	mu    sync.Mutex
	peers []string // sentinels learned by the last Discover, asked next time too
}

// NewSentinelInspector validates o (o.Sentinel must be set) and returns a SentinelInspector;
// it connects lazily.
func NewSentinelInspector(o Options) (*SentinelInspector, error) {
	data, sent, err := resolveSentinel(o)
	if err != nil {
		return nil, err
	}
	si := &SentinelInspector{name: o.Sentinel.MasterName, maxAsked: data.limits.MaxTopologyNodes}
	si.data = newInspector(data, data.newDialer())
	si.sent = newInspector(sent, sent.newDialer())
	// One account for both: the Inspector's share of the ReplyBudget covers all it reads.
	si.sent.budget = si.data.budget
	return si, nil
}

// resolveSentinel validates o for Sentinel mode: the data nodes' options (no root nodes: the
// sentinels name them) and the sentinels' (their root nodes, credentials and TLS).
func resolveSentinel(o Options) (data, sent *resolved, err error) {
	so := o.Sentinel
	switch {
	case so == nil:
		return nil, nil, fmt.Errorf("%w: Sentinel options are not set", ErrInvalidOptions)
	case so.MasterName == "":
		return nil, nil, fmt.Errorf("%w: Sentinel.MasterName is empty", ErrInvalidOptions)
	case len(so.RootNodes) == 0:
		return nil, nil, fmt.Errorf("%w: no Sentinel.RootNodes", ErrInvalidOptions)
	case len(o.RootNodes) > 0 || o.Standalone || o.MinimizeConnections:
		return nil, nil, fmt.Errorf("%w: RootNodes, Standalone and MinimizeConnections do not apply in Sentinel mode (the sentinels name the data nodes)", ErrInvalidOptions)
	}
	s := o
	s.Sentinel, s.UseReplicas = nil, false
	s.Defaults = so.Defaults
	s.Defaults.DB = 0
	if s.Defaults.ConnectTimeout == 0 {
		s.Defaults.ConnectTimeout = o.Defaults.ConnectTimeout
	}
	s.RootNodes = make([]RootNode, len(so.RootNodes))
	for i, rn := range so.RootNodes {
		if s.RootNodes[i], err = withSentinelPort(rn); err != nil {
			return nil, nil, fmt.Errorf("%w: Sentinel.RootNodes[%d]: %w", ErrInvalidOptions, i, err)
		}
	}
	if sent, err = resolve(s); err != nil {
		return nil, nil, fmt.Errorf("sentinels: %w", err)
	}
	d := o
	d.Sentinel, d.UseReplicas, d.Standalone = nil, false, true
	// resolve wants a root node; the data nodes have none (the sentinels name them), so it
	// validates against a placeholder that is dropped right after.
	d.RootNodes = []RootNode{{Address: Address{Host: "sentinel-discovered.invalid", Port: DefaultPort}}}
	if data, err = resolve(d); err != nil {
		return nil, nil, fmt.Errorf("data nodes: %w", err)
	}
	data.roots, data.UseReplicas = nil, o.UseReplicas
	return data, sent, nil
}

// withSentinelPort gives a root node without a port the sentinel port 26379.
func withSentinelPort(rn RootNode) (RootNode, error) {
	if rn.URL == "" {
		if rn.Address.Port == 0 {
			rn.Address.Port = DefaultSentinelPort
		}
		return rn, nil
	}
	u, err := url.Parse(rn.URL)
	if err != nil {
		return rn, fmt.Errorf("%s: unparseable URL", RedactURL(rn.URL)) //nolint:errorlint // url.Parse errors quote the URL, password included
	}
	if u.Port() == "" && u.Hostname() != "" {
		u.Host = net.JoinHostPort(u.Hostname(), strconv.Itoa(DefaultSentinelPort))
		rn.URL = u.String()
	}
	return rn, nil
}

// Dialer is the mapping dialer for data nodes; SentinelDialer the one for sentinels (same
// map, the sentinels' TLS).
func (si *SentinelInspector) Dialer() *Dialer { return si.data.dialer }

// SentinelDialer returns the mapping dialer for sentinels.
func (si *SentinelInspector) SentinelDialer() *Dialer { return si.sent.dialer }

// SetNodeAddressMap atomically replaces the node address map of data nodes and sentinels.
func (si *SentinelInspector) SetNodeAddressMap(m NodeAddressMap) {
	si.data.SetNodeAddressMap(m)
	si.sent.SetNodeAddressMap(m)
}

// Close closes every connection (stop subscriptions first).
func (si *SentinelInspector) Close() error {
	return errors.Join(si.data.Close(), si.sent.Close())
}

// sentinelAnswer is what one sentinel said.
type sentinelAnswer struct {
	addr     string
	master   string
	replicas []map[string]string
	peers    []string
	repErr   error
	err      error
}

// candidates are the root sentinels, then the peers the last Discover learned.
func (si *SentinelInspector) candidates() []string {
	si.mu.Lock()
	defer si.mu.Unlock()
	return dedupe(append(si.sent.o.rootAddrs(), si.peers...))
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	out := in[:0:0]
	for _, a := range in {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// Discover asks every reachable sentinel (the root nodes, the peers the last Discover learned,
// and the peers more than half of the sentinels that answered list; at most MaxTopologyNodes,
// 8 at once) for the master by name, its replicas and its peers, and trusts the master only when more than half of the sentinels
// that answered name it and its ROLE, asked through the node address map, is master. The
// returned topology says how far that got (Reason); an error means no sentinel answered
// (ErrNoSentinelAnswered, joining one NodeError per sentinel for Classify). ctx bounds the
// whole; each command is bounded by the read/write timeouts.
func (si *SentinelInspector) Discover(ctx context.Context) (*SentinelTopology, error) {
	roots := si.sent.o.rootAddrs()
	answers := map[string]*sentinelAnswer{}
	var order []string
	frontier := si.candidates()
	for len(frontier) > 0 && len(order) < si.maxAsked {
		frontier = frontier[:min(len(frontier), si.maxAsked-len(order))]
		order = append(order, frontier...)
		for _, a := range si.askAll(ctx, frontier) {
			answers[a.addr] = a
		}
		frontier = admitPeers(order, answers)
	}
	t := &SentinelTopology{MasterName: si.name, Votes: map[string]int{}}
	var errs []error
	for _, addr := range order {
		a := answers[addr]
		if a.err != nil {
			errs = append(errs, a.err)
			continue
		}
		t.Answered++
		if a.master != "" {
			t.Votes[a.master]++
		}
	}
	si.listSentinels(t, roots, order, answers)
	// Keep connection pools only for the sentinels and data nodes of this answer: addresses
	// a (lying) sentinel named once do not pile up pools.
	keep := make([]string, 0, len(t.Sentinels))
	for _, p := range t.Sentinels {
		keep = append(keep, p.Announced)
	}
	si.sent.prune(keep)
	if t.Answered == 0 {
		return t, fmt.Errorf("%w: %w", ErrNoSentinelAnswered, errors.Join(errs...))
	}
	si.decide(ctx, t, order, answers)
	keep = keep[:0]
	if t.Master != nil {
		keep = append(keep, t.Master.Announced)
	}
	for _, r := range t.Replicas {
		keep = append(keep, r.Announced)
	}
	si.data.prune(keep)
	return t, nil
}

// admitPeers returns the peers not asked yet that more than half of the sentinels that have
// answered so far list (SENTINEL SENTINELS). Why not every listed peer: a lying sentinel could
// list any number of sentinels of its own (one process on many ports or names) and outvote
// the honest ones; a peer only the liar lists is never asked, so it never votes. Honest
// sentinels list each other, so configuring every sentinel as a root node (Bitnami's headless
// Service, for instance), or one honest one, finds them all.
func admitPeers(order []string, answers map[string]*sentinelAnswer) []string {
	listed := map[string]int{}
	var seen []string
	answered := 0
	for _, addr := range order {
		a := answers[addr]
		if a == nil || a.err != nil {
			continue
		}
		answered++
		for _, p := range a.peers {
			if answers[p] == nil {
				if listed[p] == 0 {
					seen = append(seen, p)
				}
				listed[p]++
			}
		}
	}
	var next []string
	for _, p := range seen {
		if 2*listed[p] > answered {
			next = append(next, p)
		}
	}
	return next
}

// askAll asks addrs in parallel (at most discoverParallel at once).
func (si *SentinelInspector) askAll(ctx context.Context, addrs []string) []*sentinelAnswer {
	out := make([]*sentinelAnswer, len(addrs))
	sem := make(chan struct{}, discoverParallel)
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = si.ask(ctx, addr)
			if out[i].err != nil {
				out[i].err = &NodeError{Addr: addr, Err: out[i].err}
			}
		}()
	}
	wg.Wait()
	return out
}

// ask sends one sentinel the three questions in one pipeline.
func (si *SentinelInspector) ask(ctx context.Context, addr string) *sentinelAnswer {
	a := &sentinelAnswer{addr: addr}
	c, err := si.sent.client(addr)
	if err != nil {
		a.err = err
		return a
	}
	// Three commands in turn on the pooled connection, not a pipeline: go-redis serves
	// pipelines from a dedicated pool whose connections carry 128 KiB buffers each way, a
	// second connection per sentinel for three small replies.
	master := c.Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", si.name)
	var reps, peers *redis.Cmd
	if err := master.Err(); err == nil || errors.Is(err, redis.Nil) {
		reps = c.Do(ctx, "SENTINEL", "REPLICAS", si.name)
		peers = c.Do(ctx, "SENTINEL", "SENTINELS", si.name)
	}
	hp, err := master.StringSlice()
	switch {
	case errors.Is(err, redis.Nil):
	case err != nil:
		a.err = fmt.Errorf("SENTINEL GET-MASTER-ADDR-BY-NAME: %w", err)
		return a
	case len(hp) != 2:
		a.err = fmt.Errorf("SENTINEL GET-MASTER-ADDR-BY-NAME: %w", ErrInvalidTopology)
		return a
	default:
		if a.master, err = announcedAddr(hp[0], hp[1]); err != nil {
			a.err = fmt.Errorf("SENTINEL GET-MASTER-ADDR-BY-NAME: %w", err)
			return a
		}
	}
	a.replicas, a.repErr = flatMaps(reps, si.maxAsked)
	ps, perr := flatMaps(peers, si.maxAsked)
	// A reply that broke the Limits, a topology too large or bytes that are not RESP make
	// the whole sentinel suspect, as a cluster node's would; an error reply (an old
	// sentinel without SENTINEL REPLICAS, an ACL denying it) only leaves that part out.
	for _, err := range []error{a.repErr, perr} {
		var re redis.Error
		if err != nil && !errors.As(err, &re) {
			a.err = err
			return a
		}
	}
	for _, p := range ps {
		if pa, err := announcedAddr(p["ip"], p["port"]); err == nil && !slices.Contains(a.peers, pa) {
			a.peers = append(a.peers, pa)
		}
	}
	return a
}

// announcedAddr joins a host and port a sentinel sent, refusing what no node can be at.
func announcedAddr(host, port string) (string, error) {
	addr := net.JoinHostPort(host, port)
	a, err := ParseAddress(addr)
	if err != nil || a.Host == "" || a.Port <= 0 {
		return "", ErrInvalidTopology
	}
	return a.String(), nil
}

// flatMaps reads a SENTINEL REPLICAS/SENTINELS reply: an array of flat [k, v, ...] arrays.
func flatMaps(cmd *redis.Cmd, maxN int) ([]map[string]string, error) {
	v, err := cmd.Slice()
	if err != nil {
		return nil, err
	}
	if len(v) > maxN {
		return nil, ErrTopologyTooLarge
	}
	out := make([]map[string]string, 0, len(v))
	for _, e := range v {
		l, ok := e.([]interface{})
		if !ok {
			return nil, ErrInvalidTopology
		}
		m := make(map[string]string, len(l)/2)
		for i := 0; i+1 < len(l); i += 2 {
			k, _ := l[i].(string)
			s, _ := l[i+1].(string)
			m[k] = s
		}
		out = append(out, m)
	}
	return out, nil
}

// listSentinels fills t.Sentinels and remembers the peers for the next Discover.
func (si *SentinelInspector) listSentinels(t *SentinelTopology, roots, order []string, answers map[string]*sentinelAnswer) {
	known := append([]string(nil), order...)
	for _, addr := range order {
		if a := answers[addr]; a != nil {
			known = append(known, a.peers...)
		}
	}
	known = dedupe(known)
	var peers []string
	for _, addr := range known {
		p := SentinelPeer{Announced: addr, Root: slices.Contains(roots, addr)}
		p.Mapped, _ = si.sent.dialer.Resolve(addr)
		if a := answers[addr]; a != nil {
			p.Asked, p.Answered, p.Master, p.Err = true, a.err == nil, a.master, a.err
			if a.err == nil && !p.Root {
				peers = append(peers, addr)
			}
		}
		t.Sentinels = append(t.Sentinels, p)
	}
	sort.SliceStable(t.Sentinels, func(i, j int) bool {
		a, b := t.Sentinels[i], t.Sentinels[j]
		if a.Root != b.Root {
			return a.Root
		}
		return !a.Root && a.Announced < b.Announced
	})
	si.mu.Lock()
	si.peers = peers[:min(len(peers), si.maxAsked)]
	si.mu.Unlock()
}

// decide picks the master by majority, confirms it by ROLE and lists its replicas.
func (si *SentinelInspector) decide(ctx context.Context, t *SentinelTopology, order []string, answers map[string]*sentinelAnswer) {
	best, n, tie := "", 0, false
	for addr, v := range t.Votes {
		switch {
		case v > n:
			best, n, tie = addr, v, false
		case v == n:
			tie = true
		}
	}
	switch {
	case n == 0:
		t.Reason = SentinelMasterUnknown
		return
	case tie || 2*n <= t.Answered:
		t.Reason = SentinelNoQuorum
		return
	}
	t.Agreeing = n
	m := &SentinelNode{Announced: best, Role: RoleMaster, Lag: -1}
	m.Mapped, _ = si.data.dialer.Resolve(best)
	t.Master = m
	offset, err := si.confirm(ctx, best)
	if err != nil {
		t.Reason, t.MasterErr = SentinelMasterNotConfirmed, &NodeError{Addr: best, Err: err}
	} else {
		t.Reason, t.MasterConfirmed, m.ReplicationOffset, m.Lag = SentinelMasterConfirmed, true, offset, 0
	}
	for _, addr := range order {
		a := answers[addr]
		if a.err == nil && a.master == best && a.repErr == nil {
			t.Replicas = si.replicas(ctx, a.replicas, t.MasterConfirmed, m.ReplicationOffset)
			break
		}
	}
}

// confirm asks the node at addr (through the map) for ROLE and returns its offset when it
// says master.
func (si *SentinelInspector) confirm(ctx context.Context, addr string) (int64, error) {
	role, err := si.role(ctx, addr)
	if err != nil {
		return 0, err
	}
	if len(role) < 2 || role[0] != "master" {
		return 0, ErrNotMaster
	}
	off, _ := role[1].(int64)
	return off, nil
}

// replicas converts a SENTINEL REPLICAS answer. A replica's lag is the master's offset (just
// read by confirm) minus the offset the replica itself reports (ROLE, through the map, asked
// in parallel right after): the offset in the sentinels' answer is refreshed only every 10 s
// while the master's moves with every hello and replication PING, so a lag from it swings by
// KiBs on an idle group (and every status write with it). Lag stays -1 when the replica does
// not answer.
func (si *SentinelInspector) replicas(ctx context.Context, reps []map[string]string, haveOffset bool, masterOffset int64) []*SentinelNode {
	var out []*SentinelNode
	for _, r := range reps {
		addr, err := announcedAddr(r["ip"], r["port"])
		if err != nil {
			continue
		}
		n := &SentinelNode{Announced: addr, Role: RoleReplica, Flags: r["flags"], MasterLinkStatus: r["master-link-status"], Lag: -1}
		n.Mapped, _ = si.data.dialer.Resolve(addr)
		if off, err := strconv.ParseInt(r["slave-repl-offset"], 10, 64); err == nil {
			n.ReplicationOffset = off
		}
		if ms, err := strconv.ParseInt(r["master-link-down-time"], 10, 64); err == nil && ms > 0 {
			n.MasterLinkDownTime = time.Duration(ms) * time.Millisecond
		}
		out = append(out, n)
	}
	if haveOffset {
		var wg sync.WaitGroup
		for _, n := range out {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if off, ok := si.replicaOffset(ctx, n.Announced); ok {
					n.Lag = max(masterOffset-off, 0)
				}
			}()
		}
		wg.Wait()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Announced < out[j].Announced })
	return out
}

// role asks the data node at addr (through the map) for ROLE.
func (si *SentinelInspector) role(ctx context.Context, addr string) ([]any, error) {
	c, err := si.data.client(addr)
	if err != nil {
		return nil, err
	}
	role, err := c.Do(ctx, "ROLE").Slice()
	if err != nil {
		return nil, fmt.Errorf("ROLE: %w", err)
	}
	return role, nil
}

// replicaOffset asks the replica at addr (through the map) for ROLE and returns the offset it
// reports as a replica.
func (si *SentinelInspector) replicaOffset(ctx context.Context, addr string) (int64, bool) {
	role, err := si.role(ctx, addr)
	if err != nil || len(role) < 5 || parseRole(fmt.Sprint(role[0])) != RoleReplica {
		return 0, false
	}
	off, ok := role[4].(int64)
	return off, ok && off >= 0
}

// SentinelHealth is CheckHealth's result: Data follows master then replicas, Sentinels
// follows t.Sentinels.
type SentinelHealth struct {
	Data, Sentinels []NodeHealth
}

// CheckHealth checks every data node (the master and replicas of t: PING, ROLE) and every
// sentinel of t (PING, ROLE "sentinel") through the map, in parallel, each bounded by timeout
// (as Inspector.CheckHealth).
func (si *SentinelInspector) CheckHealth(ctx context.Context, t *SentinelTopology, timeout time.Duration) SentinelHealth {
	data := &Topology{Standalone: true}
	if t.Master != nil {
		data.Nodes = append(data.Nodes, &Node{Announced: t.Master.Announced})
	}
	for _, r := range t.Replicas {
		data.Nodes = append(data.Nodes, &Node{Announced: r.Announced})
	}
	sents := &Topology{Standalone: true}
	for _, s := range t.Sentinels {
		sents.Nodes = append(sents.Nodes, &Node{Announced: s.Announced})
	}
	var h SentinelHealth
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); h.Data = si.data.CheckHealth(ctx, data, timeout) }()
	go func() { defer wg.Done(); h.Sentinels = si.sent.CheckHealth(ctx, sents, timeout) }()
	wg.Wait()
	return h
}

// parseRole maps a ROLE reply's first element to a Role ("" when unknown).
func parseRole(s string) Role {
	switch strings.ToLower(s) {
	case "master":
		return RoleMaster
	case "slave":
		return RoleReplica
	case "sentinel":
		return RoleSentinel
	}
	return ""
}
