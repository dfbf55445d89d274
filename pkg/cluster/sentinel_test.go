package cluster_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/testing/hostile"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// sentinelWorld is a real Sentinel group and what an inspector needs to reach it: the map
// (pod name:port -> 127.0.0.1:port, data and sentinel ports) and a recording base dialer that
// resolves no name.
type sentinelWorld struct {
	g   *redistest.SentinelGroup
	rec *recorder
	m   cluster.NodeAddressMap
}

func startSentinelWorld(t testing.TB, o redistest.SentinelGroupOptions) *sentinelWorld {
	t.Helper()
	g := redistest.StartSentinelGroup(t, o)
	m, err := cluster.StaticMap(g.AddressMap())
	if err != nil {
		t.Fatal(err)
	}
	return &sentinelWorld{g: g, rec: newRecorder(nil), m: m}
}

// options are inspector options with the given sentinel roots (announced addresses).
func (w *sentinelWorld) options(roots ...string) cluster.Options {
	var rn []cluster.RootNode
	for _, r := range roots {
		a, _ := cluster.ParseAddress(r)
		rn = append(rn, cluster.RootNode{Address: a})
	}
	return cluster.Options{
		NodeAddressMap: w.m,
		Dial:           w.rec.Dial,
		ReadTimeout:    3 * time.Second,
		Sentinel:       &cluster.SentinelOptions{MasterName: w.g.MasterName(), RootNodes: rn},
	}
}

func newSentinelInspector(t *testing.T, o cluster.Options) *cluster.SentinelInspector {
	t.Helper()
	si, err := cluster.NewSentinelInspector(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = si.Close() })
	return si
}

// TestSentinel runs the checks that leave the group as it is on one real group.
func TestSentinel(t *testing.T) {
	t.Parallel()
	w := startSentinelWorld(t, redistest.SentinelGroupOptions{})
	t.Run("DiscoverThroughMap", func(t *testing.T) { testSentinelDiscoverThroughMap(t, w) })
	t.Run("MinorityLiarDoesNotMoveMaster", func(t *testing.T) { testSentinelMinorityLiar(t, w) })
	t.Run("ReplicaNamedMasterNotConfirmed", func(t *testing.T) { testSentinelReplicaNotConfirmed(t, w) })
	t.Run("ReplyBeyondCapsRefused", func(t *testing.T) { testSentinelReplyBeyondCaps(t, w) })
}

func testSentinelDiscoverThroughMap(t *testing.T, w *sentinelWorld) {
	ctx := testCtx(t)
	w.rec.Reset()
	// Only sentinel 0 is a root: the other two are found as its peers, by announced name.
	si := newSentinelInspector(t, w.options(w.g.Sentinels[0].Announced))
	topo, err := si.Discover(ctx)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if topo.Reason != cluster.SentinelMasterConfirmed || !topo.MasterConfirmed {
		t.Fatalf("reason %s (%v), want MasterConfirmed", topo.Reason, topo.MasterErr)
	}
	if topo.Master.Announced != w.g.Data[0].Announced || topo.Master.Mapped != w.g.Data[0].Addr() {
		t.Fatalf("master %+v, want %s mapped to %s", topo.Master, w.g.Data[0].Announced, w.g.Data[0].Addr())
	}
	if topo.Answered != 3 || topo.Agreeing != 3 || len(topo.Sentinels) != 3 {
		t.Fatalf("answered %d, agreeing %d, sentinels %d; want 3, 3, 3", topo.Answered, topo.Agreeing, len(topo.Sentinels))
	}
	for _, s := range topo.Sentinels {
		if !s.Answered || s.Mapped == "" || !strings.Contains(s.Announced, ".svc.cluster.local:") {
			t.Fatalf("sentinel %+v: want answered, mapped, announced by pod name", s)
		}
	}
	if len(topo.Replicas) != 2 {
		t.Fatalf("replicas %d, want 2", len(topo.Replicas))
	}
	for _, r := range topo.Replicas {
		if w.g.DataIndex(r.Announced) < 1 || r.Mapped == "" || r.MasterLinkStatus != "ok" || r.Lag < 0 {
			t.Fatalf("replica %+v: want a mapped replica with master-link-status ok and a known lag", r)
		}
	}
	h := si.CheckHealth(ctx, topo, 0)
	for i, nh := range append(h.Data, h.Sentinels...) {
		if !nh.Healthy() {
			t.Fatalf("node %d %s unhealthy: %v", i, nh.Announced, nh.Err)
		}
	}
	if h.Data[0].Role != cluster.RoleMaster || h.Data[1].Role != cluster.RoleReplica || h.Sentinels[0].Role != cluster.RoleSentinel {
		t.Fatalf("roles %s %s %s, want master replica sentinel", h.Data[0].Role, h.Data[1].Role, h.Sentinels[0].Role)
	}
	// Only mapped addresses were ever dialed: no announced name reached the base dialer.
	allowed := map[string]bool{}
	for _, a := range w.g.AddressMap() {
		allowed[a] = true
	}
	for _, d := range w.rec.Dialed() {
		if !allowed[d] {
			t.Fatalf("dialed %s, which is not a mapped address", d)
		}
	}
}

func testSentinelMinorityLiar(t *testing.T, w *sentinelWorld) {
	ctx := testCtx(t)
	// The liar names a real, healthy standalone master (ROLE says master): only the majority
	// rule keeps it out. It is the first root, so "first answer wins" would take it. It also
	// lists five sybils of its own as peers, each telling the same lie: asked, they would
	// outvote the three honest sentinels.
	const lie = "elsewhere.redis-headless.rconn-test.svc.cluster.local:6379"
	other := redistest.StartServer(t, redistest.ServerOptions{})
	m := map[string]string{lie: other.Addr()}
	for k, v := range w.g.AddressMap() {
		m[k] = v
	}
	var peers strings.Builder
	peers.WriteString("*5\r\n")
	for i := 0; i < 5; i++ {
		host := "sybil-" + itoa(i) + ".rconn-test.svc.cluster.local"
		sybil := hostile.MustStart(t, hostile.Config{Handler: hostile.Sentinel(lie, nil, nil)})
		m[host+":26379"] = sybil.Addr()
		peers.WriteString("*4\r\n$2\r\nip\r\n$" + itoa(len(host)) + "\r\n" + host + "\r\n$4\r\nport\r\n$5\r\n26379\r\n")
	}
	liar := hostile.MustStart(t, hostile.Config{Handler: hostile.Sentinel(lie, nil, []byte(peers.String()))})
	m["liar.rconn-test.svc.cluster.local:26379"] = liar.Addr()
	o := w.options(append([]string{"liar.rconn-test.svc.cluster.local:26379"}, w.g.SentinelAddrs()...)...)
	o.NodeAddressMap, _ = cluster.StaticMap(m)
	si := newSentinelInspector(t, o)
	topo, err := si.Discover(ctx)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if !topo.MasterConfirmed || topo.Master.Announced != w.g.Data[0].Announced {
		t.Fatalf("master %+v (%s, votes %v), want the honest majority's %s", topo.Master, topo.Reason, topo.Votes, w.g.Data[0].Announced)
	}
	if topo.Answered != 4 || topo.Agreeing != 3 || topo.Votes[lie] != 1 {
		t.Fatalf("answered %d agreeing %d votes %v; want 4, 3 and one vote for the liar's master", topo.Answered, topo.Agreeing, topo.Votes)
	}
	asked := 0
	for _, p := range topo.Sentinels {
		if strings.HasPrefix(p.Announced, "sybil-") && p.Asked {
			t.Fatalf("asked %s, a peer only the liar lists", p.Announced)
		}
		if p.Asked {
			asked++
		}
	}
	if asked != 4 || len(topo.Sentinels) != 9 {
		t.Fatalf("asked %d of %d sentinels, want 4 of 9 (the sybils listed, not asked)", asked, len(topo.Sentinels))
	}
}

func testSentinelReplicaNotConfirmed(t *testing.T, w *sentinelWorld) {
	ctx := testCtx(t)
	// Three sentinels agree (a majority of all that answered) on a node whose ROLE says
	// replica: a stale majority. The master must not be trusted.
	replica := w.g.Data[1].Announced
	m := w.g.AddressMap()
	var roots []string
	for i := 0; i < 3; i++ {
		s := hostile.MustStart(t, hostile.Config{Handler: hostile.Sentinel(replica, nil, nil)})
		name := "stale-" + string(rune('0'+i)) + ".rconn-test.svc.cluster.local:26379"
		m[name] = s.Addr()
		roots = append(roots, name)
	}
	o := w.options(roots...)
	o.NodeAddressMap, _ = cluster.StaticMap(m)
	topo, err := newSentinelInspector(t, o).Discover(ctx)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if topo.Reason != cluster.SentinelMasterNotConfirmed || topo.MasterConfirmed || !errors.Is(topo.MasterErr, cluster.ErrNotMaster) {
		t.Fatalf("reason %s, err %v; want MasterNotConfirmed with ErrNotMaster", topo.Reason, topo.MasterErr)
	}
	if topo.Master == nil || topo.Master.Announced != replica || topo.Agreeing != 3 {
		t.Fatalf("master %+v agreeing %d, want the named replica %s by 3", topo.Master, topo.Agreeing, replica)
	}
}

func testSentinelReplyBeyondCaps(t *testing.T, w *sentinelWorld) {
	ctx := testCtx(t)
	// 5,000 peer entries: inside every generic cap (MaxArrayLen 65,536, a million elements,
	// 32 MiB), beyond SENTINEL SENTINELS' own cap (MaxTopologyNodes entries).
	big := hostile.SentinelEntries(5000, 2)
	for _, tc := range []struct {
		name                string
		replicas, sentinels []byte
	}{{"SENTINELS", nil, big}, {"REPLICAS", big, nil}} {
		srv := hostile.MustStart(t, hostile.Config{Handler: hostile.Sentinel(w.g.Data[0].Announced, tc.replicas, tc.sentinels)})
		m := w.g.AddressMap()
		m["big.rconn-test.svc.cluster.local:26379"] = srv.Addr()
		o := w.options("big.rconn-test.svc.cluster.local:26379")
		o.NodeAddressMap, _ = cluster.StaticMap(m)
		_, err := newSentinelInspector(t, o).Discover(ctx)
		if !errors.Is(err, cluster.ErrNoSentinelAnswered) || !errors.Is(err, cluster.ErrReplyTooLarge) {
			t.Fatalf("%s: Discover error %v, want ErrNoSentinelAnswered with ErrReplyTooLarge", tc.name, err)
		}
		if class, msg := cluster.Classify(err); class != cluster.ClassReplyTooLarge || !strings.Contains(msg, "big.rconn-test.svc.cluster.local:26379") {
			t.Fatalf("%s: Classify = %s %q, want ReplyTooLarge naming the sentinel", tc.name, class, msg)
		}
	}
}

// eventLog collects subscription events.
type eventLog struct {
	mu     sync.Mutex
	events []cluster.SentinelEvent
}

func (l *eventLog) add(e cluster.SentinelEvent) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) find(kind cluster.SentinelEventKind, match func(cluster.SentinelEvent) bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if e.Kind == kind && (match == nil || match(e)) {
			return true
		}
	}
	return false
}

func TestSentinelFollowsFailoverAndKilledMaster(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	w := startSentinelWorld(t, redistest.SentinelGroupOptions{})
	si := newSentinelInspector(t, w.options(w.g.SentinelAddrs()...))
	if _, err := si.Discover(ctx); err != nil {
		t.Fatal(err)
	}
	var log eventLog
	stop := si.Subscribe(log.add)
	defer stop()
	nettest.WaitFor(t, 10*time.Second, "the subscription", func() error {
		if !log.find(cluster.EventResubscribed, nil) {
			return errors.New("not subscribed yet")
		}
		return nil
	})
	follow := func(what string, old int, act func() (int, error)) int {
		t.Helper()
		if _, err := act(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		next, err := w.g.WaitNewMaster(ctx, old)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		nettest.WaitFor(t, 20*time.Second, what+": +switch-master", func() error {
			if !log.find(cluster.EventSwitchMaster, func(e cluster.SentinelEvent) bool {
				return e.OldMaster == w.g.Data[old].Announced && e.NewMaster == w.g.Data[next].Announced
			}) {
				return errors.New("no +switch-master event yet")
			}
			return nil
		})
		nettest.WaitFor(t, 20*time.Second, what+": the new master confirmed", func() error {
			topo, err := si.Discover(ctx)
			if err != nil {
				return err
			}
			if !topo.MasterConfirmed || topo.Master.Announced != w.g.Data[next].Announced {
				return errors.New(string(topo.Reason))
			}
			return nil
		})
		return next
	}
	m1 := follow("SENTINEL FAILOVER", 0, func() (int, error) { return w.g.Failover(ctx) })
	if err := w.g.WaitSettled(ctx, m1); err != nil {
		t.Fatal(err)
	}
	follow("killed master", m1, func() (int, error) { return w.g.KillMaster(ctx) })
	// The killed master is announced down (what starts the controller's probe before the
	// switch). Each sentinel sends +sdown, those that reach the quorum +odown: any of them will
	// do, as a subscription that was being re-established under load misses what its sentinel
	// sent meanwhile (a cold make test once saw no +odown at all).
	down := func(e cluster.SentinelEvent) bool { return e.Instance == w.g.Data[m1].Announced }
	if !log.find(cluster.EventODown, down) && !log.find(cluster.EventSDown, down) {
		t.Fatalf("no +sdown nor +odown for the killed master %s; events: %s", w.g.Data[m1].Announced, log.String())
	}
}

func (l *eventLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, e := range l.events {
		fmt.Fprintf(&b, "\n  %s from %s: %s (%s -> %s)", e.Kind, e.Sentinel, e.Instance, e.OldMaster, e.NewMaster)
	}
	return b.String()
}

func TestSentinelACLAndTLS(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	tlsm := redistest.NewTLS(t, redistest.TLSOptions{})
	w := startSentinelWorld(t, redistest.SentinelGroupOptions{
		Data: redistest.ServerOptions{TLS: tlsm, Password: "data-admin", Users: []redistest.User{
			{Name: "app", Password: "app-pw", Rules: "-@all +ping +role"},
			{Name: "sentinel-agent", Password: "agent-pw"},
		}},
		Sentinel: redistest.ServerOptions{TLS: tlsm, Password: "sent-admin", Users: []redistest.User{
			// The minimal ACL pkg/cluster's doc names for the sentinels.
			{Name: "watcher", Password: "watcher-pw", Rules: "-@all +ping +role +auth +sentinel|get-master-addr-by-name +sentinel|replicas +sentinel|sentinels +subscribe &+switch-master &+sdown &-sdown &+odown"},
		}},
		AuthUser: "sentinel-agent", AuthPass: "agent-pw",
	})
	o := w.options(w.g.Sentinels[0].Announced)
	o.Defaults = cluster.NodeOptions{Username: "app", Password: "app-pw", TLS: tlsm.ClientConfig("")}
	o.Sentinel.Defaults = cluster.NodeOptions{Username: "watcher", Password: "watcher-pw", TLS: tlsm.ClientConfig("")}
	topo, err := newSentinelInspector(t, o).Discover(ctx)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if !topo.MasterConfirmed || topo.Answered != 3 || len(topo.Replicas) != 2 {
		t.Fatalf("reason %s (%v), answered %d, replicas %d", topo.Reason, topo.MasterErr, topo.Answered, len(topo.Replicas))
	}
	si := newSentinelInspector(t, o)
	var log eventLog
	stop := si.Subscribe(log.add)
	defer stop()
	nettest.WaitFor(t, 10*time.Second, "the subscription with the minimal ACL over TLS", func() error {
		if !log.find(cluster.EventResubscribed, nil) {
			return errors.New("not subscribed yet")
		}
		return nil
	})
	// The sentinels' credentials are their own: the data nodes' ones do not open them...
	bad := o
	bad.Sentinel = &cluster.SentinelOptions{MasterName: o.Sentinel.MasterName, RootNodes: o.Sentinel.RootNodes, Defaults: o.Defaults}
	_, err = newSentinelInspector(t, bad).Discover(ctx)
	if class, _ := cluster.Classify(err); !errors.Is(err, cluster.ErrNoSentinelAnswered) || class != cluster.ClassAuthenticationFailed {
		t.Fatalf("data credentials on sentinels: %v (%s), want AuthenticationFailed", err, class)
	}
	// ...and the sentinels' do not open the data nodes: the majority's master is not confirmed.
	bad = o
	bad.Defaults = o.Sentinel.Defaults
	topo, err = newSentinelInspector(t, bad).Discover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if class, _ := cluster.Classify(topo.MasterErr); topo.Reason != cluster.SentinelMasterNotConfirmed || class != cluster.ClassAuthenticationFailed {
		t.Fatalf("sentinel credentials on data nodes: %s %v (%s), want MasterNotConfirmed, AuthenticationFailed", topo.Reason, topo.MasterErr, class)
	}
	// Without TLS nothing answers.
	plain := o
	plain.Sentinel = &cluster.SentinelOptions{MasterName: o.Sentinel.MasterName, RootNodes: o.Sentinel.RootNodes, Defaults: cluster.NodeOptions{Username: "watcher", Password: "watcher-pw"}}
	if _, err := newSentinelInspector(t, plain).Discover(ctx); !errors.Is(err, cluster.ErrNoSentinelAnswered) {
		t.Fatalf("plaintext to TLS sentinels: %v, want ErrNoSentinelAnswered", err)
	}
}

func TestSentinelOptionsValidation(t *testing.T) {
	a := cluster.RootNode{Address: cluster.Address{Host: "127.0.0.1"}}
	for name, o := range map[string]cluster.Options{
		"no sentinel":   {},
		"no name":       {Sentinel: &cluster.SentinelOptions{RootNodes: []cluster.RootNode{a}}},
		"no roots":      {Sentinel: &cluster.SentinelOptions{MasterName: "m"}},
		"data roots":    {RootNodes: []cluster.RootNode{a}, Sentinel: &cluster.SentinelOptions{MasterName: "m", RootNodes: []cluster.RootNode{a}}},
		"mixed schemes": {Sentinel: &cluster.SentinelOptions{MasterName: "m", RootNodes: []cluster.RootNode{{URL: "redis://a"}, {URL: "rediss://b"}}}},
	} {
		if _, err := cluster.NewSentinelInspector(o); !errors.Is(err, cluster.ErrInvalidOptions) {
			t.Errorf("%s: %v, want ErrInvalidOptions", name, err)
		}
	}
	si, err := cluster.NewSentinelInspector(cluster.Options{Sentinel: &cluster.SentinelOptions{MasterName: "m", RootNodes: []cluster.RootNode{a, {URL: "redis://s1.example"}}}})
	if err != nil {
		t.Fatal(err)
	}
	_ = si.Close()
}

// TestSentinelSubscriptionMessageBeyondCapsDropped: a sentinel pushing a +switch-master
// message beyond cmdSubscribe's caps (a 100 KB payload: under the generic 1 MiB bulk cap) is
// cut off, the event is never delivered, and the subscription reconnects.
func TestSentinelSubscriptionMessageBeyondCapsDropped(t *testing.T) {
	t.Parallel()
	payload := "mymaster old.rconn-test.invalid 6379 new.rconn-test.invalid 6379" + strings.Repeat(" ", 100<<10)
	var confirm strings.Builder
	for i, ch := range []string{"+switch-master", "+sdown", "-sdown", "+odown"} {
		confirm.WriteString("*3\r\n$9\r\nsubscribe\r\n$" + itoa(len(ch)) + "\r\n" + ch + "\r\n:" + itoa(i+1) + "\r\n")
	}
	msg := "*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$" + itoa(len(payload)) + "\r\n" + payload + "\r\n"
	srv := hostile.MustStart(t, hostile.Config{Handler: func(r hostile.Request) []byte {
		if strings.EqualFold(r.Args[0], "SUBSCRIBE") {
			return []byte(confirm.String() + msg)
		}
		return hostile.MinimalRedis(r)
	}})
	a, _ := cluster.ParseAddress(srv.Addr())
	si, err := cluster.NewSentinelInspector(cluster.Options{
		Dial:        newRecorder(nil).Dial,
		ReadTimeout: 2 * time.Second,
		Sentinel:    &cluster.SentinelOptions{MasterName: "mymaster", RootNodes: []cluster.RootNode{{Address: a}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = si.Close() })
	var log eventLog
	stop := si.Subscribe(log.add)
	defer stop()
	nettest.WaitFor(t, 20*time.Second, "a reconnect", func() error {
		if srv.Accepted() < 2 {
			return errors.New("no reconnect yet")
		}
		return nil
	})
	stop()
	if log.find(cluster.EventSwitchMaster, nil) {
		t.Fatal("a +switch-master message beyond the caps was delivered")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestSentinelNoQuorumAndMasterUnknown: two sentinels naming two masters is no majority
// (NoQuorum, nothing trusted, nothing dialed but the sentinels); sentinels that know no master
// by the name are MasterUnknown.
func TestSentinelNoQuorumAndMasterUnknown(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	discover := func(masters ...string) *cluster.SentinelTopology {
		t.Helper()
		rec := newRecorder(nil)
		var roots []cluster.RootNode
		for _, m := range masters {
			s := hostile.MustStart(t, hostile.Config{Handler: hostile.Sentinel(m, nil, nil)})
			a, _ := cluster.ParseAddress(s.Addr())
			roots = append(roots, cluster.RootNode{Address: a})
		}
		si := newSentinelInspector(t, cluster.Options{Dial: rec.Dial, ReadTimeout: 2 * time.Second, Sentinel: &cluster.SentinelOptions{MasterName: "mymaster", RootNodes: roots}})
		topo, err := si.Discover(ctx)
		if err != nil {
			t.Fatalf("Discover: %v", err)
		}
		if len(rec.Dialed()) != len(masters) {
			t.Fatalf("dialed %v, want only the %d sentinels", rec.Dialed(), len(masters))
		}
		return topo
	}
	topo := discover("a.rconn-test.invalid:6379", "b.rconn-test.invalid:6379")
	if topo.Reason != cluster.SentinelNoQuorum || topo.Master != nil || topo.Answered != 2 || len(topo.Votes) != 2 {
		t.Fatalf("two sentinels, two masters: %s master %+v answered %d votes %v; want NoQuorum", topo.Reason, topo.Master, topo.Answered, topo.Votes)
	}
	topo = discover("", "")
	if topo.Reason != cluster.SentinelMasterUnknown || topo.Master != nil || topo.Answered != 2 {
		t.Fatalf("no master by that name: %s master %+v answered %d; want MasterUnknown", topo.Reason, topo.Master, topo.Answered)
	}
}
