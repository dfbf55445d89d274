package cluster_test

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/testing/hostile"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// The hostile-server suite against the Sentinel path (issue 24, items 2 and 9): every reply a
// sentinel sends (SENTINEL GET-MASTER-ADDR-BY-NAME, REPLICAS, SENTINELS) and its subscription
// stream meets the hostile servers the cluster path meets, and each is classified as a cluster
// node's would be, never dials a denied address, holds no memory beyond the caps and budget,
// and blocks no other inspector.

// sentinelCommands are the replies a sentinel sends Discover, as hostile.Request.Name spells
// the command.
var sentinelCommands = []string{"SENTINEL GET-MASTER-ADDR-BY-NAME", "SENTINEL REPLICAS", "SENTINEL SENTINELS"}

// sentinelWith is a sentinel naming master that answers cmd with reply.
func sentinelWith(master, cmd string, reply []byte) hostile.Handler {
	base := hostile.Sentinel(master, nil, nil)
	return func(r hostile.Request) []byte {
		if r.Name() == cmd {
			return reply
		}
		return base(r)
	}
}

// sentinelOn is a SentinelInspector for master name "mymaster" on roots (IP:port), through a
// recording base dialer, with o's other settings.
func sentinelOn(t *testing.T, o cluster.Options, roots ...string) *cluster.SentinelInspector {
	t.Helper()
	var rn []cluster.RootNode
	for _, r := range roots {
		a, err := cluster.ParseAddress(r)
		if err != nil {
			t.Fatal(err)
		}
		rn = append(rn, cluster.RootNode{Address: a})
	}
	if o.Dial == nil {
		o.Dial = newRecorder(nil).Dial
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = 2 * time.Second
	}
	o.Sentinel = &cluster.SentinelOptions{MasterName: "mymaster", RootNodes: rn}
	return newSentinelInspector(t, o)
}

// clusterClass is how the cluster Inspector classifies a root answering CLUSTER SHARDS and
// CLUSTER SLOTS with reply (the message with the address replaced by "ADDR").
func clusterClass(t *testing.T, reply []byte) (cluster.ErrorClass, string) {
	t.Helper()
	srv := hostile.Slow(t, 0, func(r hostile.Request) []byte {
		if r.Name() == "CLUSTER SHARDS" || r.Name() == "CLUSTER SLOTS" {
			return reply
		}
		return hostile.MinimalRedis(r)
	})
	_, err := hostileInspector(t, cluster.Options{ReadTimeout: 2 * time.Second}, srv.Addr()).Discover(testCtx(t))
	class, msg := cluster.Classify(err)
	return class, strings.ReplaceAll(msg, srv.Addr(), "ADDR")
}

// TestHostileSentinelRepliesClassifiedLikeClusterNodes: a sentinel answering one of the three
// SENTINEL commands with a header declaring a billion elements (or 2 GB, a billion pairs, 100
// nested arrays) or with bytes that are not RESP (binary, an HTTP page carrying a secret) is
// refused as a whole (ErrNoSentinelAnswered), with the class and message a cluster node
// answering CLUSTER SHARDS the same way gets, allocating almost nothing and echoing nothing.
// Fails without LimitConn on the sentinel connections (the header is allocated, or the
// reply's bytes reach the error).
func TestHostileSentinelRepliesClassifiedLikeClusterNodes(t *testing.T) {
	replies := map[string]string{
		"billion-element array": hostile.HugeArray,
		"2 GB bulk":             hostile.HugeBulk,
		"billion-pair map":      hostile.HugeMap,
		"nested 100 deep":       hostile.Nested(100),
		"binary":                "\x00\x01\x02garbage\r\n",
		"http":                  hostile.HTTPBadRequest,
	}
	for name, reply := range replies {
		for _, cmd := range sentinelCommands {
			t.Run(name+"/"+cmd, func(t *testing.T) {
				wantClass, wantMsg := clusterClass(t, []byte(reply))
				srv := hostile.Slow(t, 0, sentinelWith("m.rconn-test.invalid:6379", cmd, []byte(reply)))
				si := sentinelOn(t, cluster.Options{}, srv.Addr())
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				topo, err := si.Discover(testCtx(t))
				runtime.ReadMemStats(&after)
				if !errors.Is(err, cluster.ErrNoSentinelAnswered) {
					t.Fatalf("Discover = %+v, %v; want ErrNoSentinelAnswered", topo, err)
				}
				if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
					t.Fatalf("Discover allocated %d MiB", grew>>20)
				}
				class, msg := cluster.Classify(err)
				if class != wantClass || strings.ReplaceAll(msg, srv.Addr(), "ADDR") != wantMsg {
					t.Fatalf("Classify = %s %q, want %s %q as for a cluster node (error %v)", class, msg, wantClass, wantMsg, err)
				}
				for _, leak := range []string{hostile.Secret, "HTTP/1.1", "garbage"} {
					if strings.Contains(err.Error(), leak) {
						t.Fatalf("error quotes server bytes %q: %v", leak, err)
					}
				}
			})
		}
	}
}

// TestSlowLorisSentinelBlocksNobody: a sentinel that writes all of one SENTINEL reply but its
// last byte and then waits (slow-loris) costs its read timeout, classified Unreachable as a
// silent cluster node: the two honest sentinels of the same inspector confirm the master, and
// another inspector discovers while the reply is still being held. Fails when sentinels are
// asked one after the other, or without read deadlines.
func TestSlowLorisSentinelBlocksNobody(t *testing.T) {
	t.Parallel()
	master := hostile.Slow(t, 0, nil) // ROLE master
	for _, cmd := range sentinelCommands {
		t.Run(cmd, func(t *testing.T) {
			reply := hostile.SentinelEntries(3, 2)
			if cmd == "SENTINEL GET-MASTER-ADDR-BY-NAME" {
				host, port, _ := net.SplitHostPort(master.Addr())
				reply = []byte("*2\r\n$" + itoa(len(host)) + "\r\n" + host + "\r\n$" + itoa(len(port)) + "\r\n" + port + "\r\n")
			}
			loris := hostile.MustStart(t, hostile.Config{Handler: sentinelWith(master.Addr(), cmd, reply), HoldLastByte: time.Minute, HoldCommand: cmd})
			honest := []string{
				hostile.Slow(t, 0, hostile.Sentinel(master.Addr(), nil, nil)).Addr(),
				hostile.Slow(t, 0, hostile.Sentinel(master.Addr(), nil, nil)).Addr(),
			}
			si := sentinelOn(t, cluster.Options{ReadTimeout: 3 * time.Second}, append([]string{loris.Addr()}, honest...)...)
			done := make(chan *cluster.SentinelTopology, 1)
			go func() {
				topo, _ := si.Discover(testCtx(t))
				done <- topo
			}()
			nettest.WaitFor(t, 10*time.Second, "the loris holding its reply", func() error {
				if loris.Holding() == 0 {
					return errors.New("not holding yet")
				}
				return nil
			})
			// Another inspector is not held up by it.
			other, err := sentinelOn(t, cluster.Options{}, honest...).Discover(testCtx(t))
			if err != nil || !other.MasterConfirmed {
				t.Fatalf("another inspector: %+v, %v", other, err)
			}
			if loris.Holding() == 0 {
				t.Fatal("the loris stopped holding before the other inspector finished: the test proves nothing")
			}
			topo := <-done
			if topo == nil || !topo.MasterConfirmed || topo.Answered != 2 || topo.Master.Announced != master.Addr() {
				t.Fatalf("topology %+v, want the master confirmed by the 2 honest sentinels", topo)
			}
			p := topo.Sentinels[0]
			if class, msg := cluster.Classify(p.Err); p.Announced != loris.Addr() || class != cluster.ClassUnreachable || msg != "no Redis server answered at "+loris.Addr() {
				t.Fatalf("the loris: %+v classified %s %q, want Unreachable", p, class, msg)
			}
		})
	}
}

// TestSentinelAddressSteeringIsDenied: sentinels naming, as master, replica or peer sentinel,
// a 10.x address, the cloud metadata service, 0.0.0.0 or the API server (a loopback listener
// in DenyAddrPorts that answers ROLE master) get AddressDenied for that node and nothing is
// dialed there. Fails without the address policy on the sentinel inspector's dialers (the
// record shows the dials; the "API server" confirms itself as master).
func TestSentinelAddressSteeringIsDenied(t *testing.T) {
	t.Parallel()
	apiServer := hostile.Slow(t, 0, nil)
	master := hostile.Slow(t, 0, nil)
	apAddr := netip.MustParseAddrPort(apiServer.Addr())
	policy := cluster.NewAddressPolicy(cluster.AddressPolicyOptions{
		AllowLoopback: true, Deny: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, DenyAddrPorts: []netip.AddrPort{apAddr},
	})
	entry := func(addr string) []byte {
		host, port, _ := net.SplitHostPort(addr)
		return []byte("*1\r\n*4\r\n$2\r\nip\r\n$" + itoa(len(host)) + "\r\n" + host + "\r\n$4\r\nport\r\n$" + itoa(len(port)) + "\r\n" + port + "\r\n")
	}
	for _, target := range []string{"10.1.2.3:6379", "169.254.169.254:80", "0.0.0.0:6379", apiServer.Addr()} {
		check := func(t *testing.T, rec *nettest.Recorder, what string, err error) {
			t.Helper()
			if class, msg := cluster.Classify(err); class != cluster.ClassAddressDenied || !strings.Contains(msg, target) {
				t.Fatalf("%s: Classify(%v) = %s %q, want AddressDenied naming %s", what, err, class, msg, target)
			}
			if rec.Has(target) || apiServer.Accepted() != 0 {
				t.Fatalf("%s: %s was dialed (%v)", what, target, rec.Dialed())
			}
		}
		t.Run(target+"/master", func(t *testing.T) {
			rec := newRecorder(nil)
			var roots []string
			for range 3 {
				roots = append(roots, hostile.Slow(t, 0, hostile.Sentinel(target, nil, nil)).Addr())
			}
			topo, err := sentinelOn(t, cluster.Options{Dial: rec.Dial, AddressPolicy: policy}, roots...).Discover(testCtx(t))
			if err != nil || topo.Reason != cluster.SentinelMasterNotConfirmed {
				t.Fatalf("Discover = %+v, %v; want MasterNotConfirmed", topo, err)
			}
			check(t, rec, "master", topo.MasterErr)
		})
		t.Run(target+"/replica", func(t *testing.T) {
			rec := newRecorder(nil)
			root := hostile.Slow(t, 0, hostile.Sentinel(master.Addr(), entry(target), nil)).Addr()
			si := sentinelOn(t, cluster.Options{Dial: rec.Dial, AddressPolicy: policy}, root)
			topo, err := si.Discover(testCtx(t))
			if err != nil || !topo.MasterConfirmed || len(topo.Replicas) != 1 {
				t.Fatalf("Discover = %+v, %v; want the master confirmed and the replica listed", topo, err)
			}
			h := si.CheckHealth(testCtx(t), topo, time.Second)
			check(t, rec, "replica health", h.Data[1].Err)
		})
		t.Run(target+"/sentinel", func(t *testing.T) {
			rec := newRecorder(nil)
			root := hostile.Slow(t, 0, hostile.Sentinel(master.Addr(), nil, entry(target))).Addr()
			si := sentinelOn(t, cluster.Options{Dial: rec.Dial, AddressPolicy: policy}, root)
			topo, err := si.Discover(testCtx(t))
			if err != nil || !topo.MasterConfirmed || len(topo.Sentinels) != 2 {
				t.Fatalf("Discover = %+v, %v; want the master confirmed and the peer listed", topo, err)
			}
			p := topo.Sentinels[1]
			if !p.Asked || p.Answered {
				t.Fatalf("peer %+v: want asked (the only sentinel lists it) and refused", p)
			}
			check(t, rec, "peer", p.Err)
			h := si.CheckHealth(testCtx(t), topo, time.Second)
			check(t, rec, "peer health", h.Sentinels[1].Err)
		})
	}
}

// TestHostileSentinelSubscriptionStreams: a subscription that pushes a message declaring a
// billion elements, nested 100 deep, a message with a 2 GB bulk, or bytes that are not RESP
// is cut off and retried (another connection is accepted), and no event is delivered. Fails
// without LimitConn on the subscription's connection (go-redis allocates what the header
// declares, or parses the garbage as a reply).
func TestHostileSentinelSubscriptionStreams(t *testing.T) {
	t.Parallel()
	confirm := hostile.SubscribeConfirm("+switch-master", "+sdown", "-sdown", "+odown")
	for name, push := range map[string]string{
		"billion-element array": hostile.HugeArray,
		"nested 100 deep":       hostile.Nested(100),
		"2 GB bulk message":     "*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n" + hostile.HugeBulk,
		"binary":                "\x00\x01\x02garbage\r\n",
		"http":                  hostile.HTTPBadRequest,
	} {
		t.Run(name, func(t *testing.T) {
			srv := hostile.MustStart(t, hostile.Config{
				Handler: func(r hostile.Request) []byte {
					if r.Name() == "SUBSCRIBE" {
						return append(append([]byte(nil), confirm...), push...)
					}
					return hostile.MinimalRedis(r)
				},
			})
			si := sentinelOn(t, cluster.Options{}, srv.Addr())
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
				t.Fatal("an event was delivered from a hostile stream")
			}
		})
	}
}

// TestSentinelRepliesHoldNoMoreThanTheBudget: eight sentinel roots answer SENTINEL REPLICAS
// with 1,000 entries of 64 pairs (128,001 elements: inside SENTINEL REPLICAS' own cap) and
// hold the last byte back, so every reply is read and allocated at once. The sentinels and data
// nodes of one SentinelInspector share one account of the reply budget: the inspector holds its
// share, the other sentinels fail at once with ErrReplyBudgetExhausted (ManagerBusy, as a
// cluster node would), and the heap stays within the share. Fails without the budget on the
// sentinel connections (all eight are held).
func TestSentinelRepliesHoldNoMoreThanTheBudget(t *testing.T) {
	srvs := make([]*hostile.Server, 8)
	addrs := make([]string, len(srvs))
	reply := hostile.SentinelEntries(1000, 64)
	for i := range srvs {
		srvs[i] = hostile.MustStart(t, hostile.Config{
			Handler:      sentinelWith("m.rconn-test.invalid:6379", "SENTINEL REPLICAS", reply),
			HoldLastByte: holdFor, HoldCommand: "SENTINEL REPLICAS",
		})
		addrs[i] = srvs[i].Addr()
	}
	budget := cluster.NewReplyBudget(32 << 20) // a share of 8 MiB
	si := sentinelOn(t, cluster.Options{ReadTimeout: 30 * time.Second, ReplyBudget: budget}, addrs...)
	var err error
	grew := heapGrowth(t, func() { _, err = si.Discover(testCtx(t)) },
		func() bool { return budget.Refused() >= 4 && holding(srvs) > 0 || holding(srvs) == len(srvs) },
		func() { closeAll(srvs) })
	const bound = 16 << 20 // the share (8 MiB) and slack
	t.Logf("heap growth %d MiB, %d reads refused", grew>>20, budget.Refused())
	if grew > bound {
		t.Fatalf("the heap grew by %d MiB (bound %d MiB)", grew>>20, bound>>20)
	}
	if !errors.Is(err, cluster.ErrReplyBudgetExhausted) {
		t.Fatalf("Discover = %v, want an ErrReplyBudgetExhausted among the sentinels' errors", err)
	}
	if class, _ := cluster.Classify(err); class != cluster.ClassManagerBusy {
		t.Fatalf("class %s, want ManagerBusy", class)
	}
	if used := budget.Used(); used != 0 {
		t.Fatalf("%d bytes of the budget still charged after every connection closed", used)
	}
}

// TestSentinelSubscriptionFloodIsCutOff: a sentinel that pushes messages nonstop (about
// another master: each still costs a parse) is dropped once it sends more than the
// subscription's message allowance, and tried again after the backoff; one that pushes ten a
// second keeps its subscription. On the code before, the flood held the subscription, and a
// core, for as long as it lasted (one connection, never dropped).
func TestSentinelSubscriptionFloodIsCutOff(t *testing.T) {
	t.Parallel()
	msg := hostile.Message("+sdown", "master othermaster 127.0.0.1 6379")
	stream := func(every time.Duration) *hostile.Server {
		return hostile.MustStart(t, hostile.Config{Handler: hostile.Subscribing(nil), Stream: msg, StreamCommand: "SUBSCRIBE", StreamEvery: every})
	}
	flood, steady := stream(0), stream(100*time.Millisecond)
	var log eventLog
	for _, srv := range []*hostile.Server{flood, steady} {
		stop := sentinelOn(t, cluster.Options{}, srv.Addr()).Subscribe(log.add)
		t.Cleanup(stop)
	}
	nettest.WaitFor(t, 20*time.Second, "the flooding sentinel dropped", func() error {
		if flood.Accepted() < 2 {
			return errors.New("still on its first connection")
		}
		return nil
	})
	nettest.WaitFor(t, 20*time.Second, "ten messages from the steady sentinel", func() error {
		if steady.Streamed() < 10 {
			return errors.New("fewer than ten yet")
		}
		return nil
	})
	if steady.Accepted() != 1 {
		t.Fatalf("the steady sentinel: %d messages on %d connections, want one connection", steady.Streamed(), steady.Accepted())
	}
}
