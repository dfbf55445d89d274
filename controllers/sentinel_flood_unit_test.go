package controllers

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/rconn-dev/redis-connection-operator/internal/testing/hostile"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// loopbackOnly dials IP-literal loopback addresses and refuses everything else without a
// lookup (no DNS, no traffic off the machine).
func loopbackOnly(ctx context.Context, network, addr string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().IsLoopback() {
		return nil, fmt.Errorf("test dialer: refusing %s", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// floodingSentinel is a sentinel root that names master as the master of "mymaster" and,
// once subscribed, pushes msg nonstop, every interval.
func floodingSentinel(t *testing.T, master string, msg []byte, every time.Duration) *hostile.Server {
	t.Helper()
	return hostile.MustStart(t, hostile.Config{
		Handler:       hostile.Subscribing(hostile.Sentinel(master, nil, nil)),
		Stream:        msg,
		StreamCommand: "SUBSCRIBE",
		StreamEvery:   every,
	})
}

// sentinelUnderTest opens a shared Sentinel inspector (subscribed) on root, as the reconciler
// does, and starts its first probe. drained: the event probes' bucket starts empty, as after a
// flood that has lasted a while.
func sentinelUnderTest(t *testing.T, root string, drained bool) *sharedInspector {
	t.Helper()
	a, err := cluster.ParseAddress(root)
	if err != nil {
		t.Fatal(err)
	}
	o := cluster.Options{
		Dial:        loopbackOnly,
		ReadTimeout: 2 * time.Second,
		Sentinel:    &cluster.SentinelOptions{MasterName: "mymaster", RootNodes: []cluster.RootNode{{Address: a}}},
	}
	ins := &inspectors{}
	t.Cleanup(ins.closeAll)
	e, err := ins.acquire(types.NamespacedName{Namespace: "ns", Name: "rc"}, o, "key", 2*time.Second, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if drained {
		e.sent.probes.AllowN(time.Now(), eventProbeBurst)
	}
	e.observe(time.Hour, func(types.NamespacedName) {})
	return e
}

// TestSentinelEventFloodIsRateLimited (issue 24, trust): a hostile sentinel root that pushes
// +switch-master for our master name nonstop, naming a new master that is never confirmed,
// costs at most eventProbeBurst probes at once and then one per eventProbeEvery. The bucket
// starts drained (the flood has already spent the burst). On the code before, every event
// during a probe asked for another one right after it, and every message re-armed the chase:
// probes ran back to back for as long as the flood lasted (measured on a loaded 2-core machine:
// 97 probes in 6 s, 76 with only the subscription's own message limit; 2 after).
func TestSentinelEventFloodIsRateLimited(t *testing.T) {
	master := hostile.MustStart(t, hostile.Config{}) // MinimalRedis: ROLE master
	host, port, _ := net.SplitHostPort(master.Addr())
	msg := hostile.Message("+switch-master", "mymaster "+host+" "+port+" new.rconn-test.invalid 6379")
	root := floodingSentinel(t, master.Addr(), msg, time.Millisecond)
	e := sentinelUnderTest(t, root.Addr(), true)
	const watch = 6 * time.Second
	time.Sleep(watch)
	probes := e.sent.started.Load()
	t.Logf("%d probes in %s under a flood of %d messages", probes, watch, root.Streamed())
	if root.Streamed() < 100 {
		t.Fatalf("the flood did not run (%d messages)", root.Streamed())
	}
	// The first probe (observe, no token) and what the bucket refilled meanwhile.
	if most := int64(1 + int(watch/eventProbeEvery) + 1); probes > most {
		t.Fatalf("%d probes in %s, want at most %d", probes, watch, most)
	}
	// Delayed, not starved: the refilled token was spent on the flood's pending event.
	if probes < 2 {
		t.Fatalf("%d probes in %s: the events never got a probe", probes, watch)
	}
}

// TestSentinelEventProbeAfterQuietIsImmediate: the bucket never delays the first event after
// a quiet spell (a real failover is probed at once and chased every chaseEvery), only a
// flood: once eventProbeBurst probes were taken, the next waits for a refill.
func TestSentinelEventProbeAfterQuietIsImmediate(t *testing.T) {
	s := &sentinelShared{probes: newEventProbeLimiter()}
	now := time.Now()
	if d := s.eventProbeDelay(now, 0); d != 0 {
		t.Fatalf("first event: probe after %s, want at once", d)
	}
	for i := 1; i < eventProbeBurst; i++ {
		if d := s.eventProbeDelay(now, chaseEvery); d != chaseEvery {
			t.Fatalf("chase probe %d: after %s, want %s", i, d, chaseEvery)
		}
	}
	if d := s.eventProbeDelay(now, 0); d < eventProbeEvery/2 {
		t.Fatalf("probe %d in the same instant: after %s, want about %s", eventProbeBurst+1, d, eventProbeEvery)
	}
	later := now.Add(time.Duration(eventProbeBurst+1) * eventProbeEvery)
	if d := s.eventProbeDelay(later, 0); d != 0 {
		t.Fatalf("first event after a quiet spell: probe after %s, want at once", d)
	}
}

// TestSentinelOtherMastersAndGarbageCostNoProbe: messages about another master name, and
// payloads that are not events, are dropped before they reach the inspector: no probe
// beyond the first.
func TestSentinelOtherMastersAndGarbageCostNoProbe(t *testing.T) {
	master := hostile.MustStart(t, hostile.Config{})
	host, port, _ := net.SplitHostPort(master.Addr())
	var msg []byte
	msg = append(msg, hostile.Message("+switch-master", "othermaster "+host+" "+port+" new.rconn-test.invalid 6379")...)
	msg = append(msg, hostile.Message("+switch-master", "mymaster garbage")...)
	msg = append(msg, hostile.Message("+sdown", "slave x 127.0.0.1 1 @ othermaster 127.0.0.1 2")...)
	msg = append(msg, hostile.Message("+odown", "\x00\x01 not an event")...)
	msg = append(msg, hostile.Message("+unknown-channel", "mymaster "+host+" "+port)...)
	// 25 messages a second: under the subscription's own flood limit (pkg/cluster), which
	// would drop the connection, and each resubscription starts a probe.
	root := floodingSentinel(t, master.Addr(), msg, 200*time.Millisecond)
	e := sentinelUnderTest(t, root.Addr(), false)
	time.Sleep(1500 * time.Millisecond)
	// The first probe (observe) and the one the subscription's "resubscribed" starts.
	if probes := e.sent.started.Load(); probes > 2 || root.Streamed() < 5 {
		t.Fatalf("%d probes under %d pushes of 5 messages not about mymaster, want at most 2", probes, root.Streamed())
	}
}
