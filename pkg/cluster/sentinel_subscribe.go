package cluster

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// SentinelEventKind is the Sentinel channel an event came from, or EventResubscribed.
type SentinelEventKind string

// Events Subscribe delivers.
const (
	// EventSwitchMaster: the sentinels switched the master (OldMaster -> NewMaster).
	EventSwitchMaster SentinelEventKind = "+switch-master"
	// EventSDown / EventSDownCleared: a sentinel finds an instance subjectively down / up again.
	EventSDown        SentinelEventKind = "+sdown"
	EventSDownCleared SentinelEventKind = "-sdown"
	// EventODown: the master is objectively down (a quorum agrees); a failover follows.
	EventODown SentinelEventKind = "+odown"
	// EventResubscribed: the subscription was (re)established, on the first sentinel or after
	// a reconnect. Events may have been missed meanwhile: discover again.
	EventResubscribed SentinelEventKind = "resubscribed"
)

var sentinelChannels = []string{string(EventSwitchMaster), string(EventSDown), string(EventSDownCleared), string(EventODown)}

// SentinelEvent is one Sentinel event about the inspector's master (events about other
// masters a sentinel monitors are dropped). Addresses are announced ("host:port"): map them
// with Dialer().Resolve. An event is a hint, never the truth: a sentinel may lie, so act on it
// by running Discover (majority + ROLE), not by trusting NewMaster.
type SentinelEvent struct {
	Kind SentinelEventKind
	// Sentinel is the announced address of the sentinel that sent it.
	Sentinel string
	// OldMaster and NewMaster: EventSwitchMaster only.
	OldMaster, NewMaster string
	// InstanceType ("master", "slave", "sentinel") and Instance: the sdown/odown events.
	InstanceType, Instance string
}

// Subscription backoff between reconnects: from subscribeMinBackoff, doubling, up to
// subscribeMaxBackoff, with jitter.
const (
	subscribeMinBackoff = 100 * time.Millisecond
	subscribeMaxBackoff = 5 * time.Second
)

// Messages one subscription reads: subscribeMessageBurst at once, then subscribeMessageRate a
// second; a sentinel that sends more (any channel, any master) is dropped like one that breaks
// the caps, and tried again after the backoff. Why: each message costs a parse on the
// subscription's goroutine even when it is about another master, so a sentinel pushing
// nonstop would keep a core busy for as long as it likes. Honest sentinels publish on these
// channels only when instances fail or recover: 256 at once covers an outage of every
// instance of ~80 masters one sentinel watches; beyond that, dropping costs the events of the
// next backoff (the resubscription itself starts a discovery). A flood costs at most 256
// messages per reconnect, reconnects backing off to one per 5 s.
const (
	subscribeMessageBurst = 256
	subscribeMessageRate  = 32
)

// Subscribe starts one bounded subscription to the sentinels' +switch-master, +sdown, -sdown
// and +odown channels and calls fn for every event about the master (and EventResubscribed
// whenever the subscription is (re)established). It holds one connection to one sentinel at
// a time (the root nodes, then the peers the last Discover learned, in turn) and one
// goroutine; fn runs on that goroutine, so it must not block for long (hand the event to a
// queue; the controller enqueues a reconcile). Every message passes the same Limits, budget
// and address policy as discovery (cmdSubscribe caps: 8 elements, 4 KiB per string). A
// connection that fails, stays silent for the read timeout and does not answer a PING, or
// sends more than 256 messages at once or 32 a second, is dropped and another sentinel is tried
// after a backoff (100 ms doubling to 5 s). Subscribe is
// the fast path only: keep the periodic Discover as the fallback for events missed while
// reconnecting. stop ends the subscription and waits for the goroutine; it is idempotent.
func (si *SentinelInspector) Subscribe(fn func(SentinelEvent)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &subscription{si: si, fn: fn}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.run(ctx)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			s.closeCurrent()
			<-done
		})
	}
}

type subscription struct {
	si *SentinelInspector
	fn func(SentinelEvent)

	mu  sync.Mutex
	cur *redis.PubSub
}

func (s *subscription) setCurrent(ps *redis.PubSub) {
	s.mu.Lock()
	s.cur = ps
	s.mu.Unlock()
}

func (s *subscription) closeCurrent() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		_ = s.cur.Close()
	}
}

func (s *subscription) run(ctx context.Context) {
	backoff := subscribeMinBackoff
	for i := 0; ctx.Err() == nil; i++ {
		cands := s.si.candidates()
		addr := cands[i%len(cands)]
		began := time.Now()
		// Only a subscription that lasted resets the backoff: a sentinel that confirms and
		// then sends what the caps refuse must not get a reconnect every 100 ms.
		if s.listen(ctx, addr) && time.Since(began) >= subscribeMaxBackoff {
			backoff = subscribeMinBackoff
		} else {
			backoff = min(2*backoff, subscribeMaxBackoff)
		}
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1)) //nolint:gosec // jitter, not security
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// listen subscribes on one sentinel and delivers its events until the connection fails or ctx
// ends. It reports whether the subscription was established.
func (s *subscription) listen(ctx context.Context, addr string) (established bool) {
	c, err := s.si.sent.client(addr)
	if err != nil {
		return false
	}
	ps := c.Subscribe(ctx)
	s.setCurrent(ps)
	defer func() {
		s.setCurrent(nil)
		_ = ps.Close()
	}()
	if ctx.Err() != nil {
		return false
	}
	if err := ps.Subscribe(ctx, sentinelChannels...); err != nil {
		return false
	}
	timeout := s.si.sent.o.inspectorTimeout(s.si.sent.o.ReadTimeout)
	confirmed, pinged := 0, false
	flood := rate.NewLimiter(subscribeMessageRate, subscribeMessageBurst)
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, timeout)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged {
				// Silent for a read timeout: prove the sentinel is alive, or drop it.
				pinged = ps.Ping(ctx) == nil
				if pinged {
					continue
				}
			}
			return established
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if confirmed++; confirmed == len(sentinelChannels) {
				established = true
				s.fn(SentinelEvent{Kind: EventResubscribed, Sentinel: addr})
			}
		case *redis.Message:
			if !flood.Allow() {
				return established
			}
			if ev, ok := parseSentinelEvent(m.Channel, m.Payload, s.si.name); ok {
				ev.Sentinel = addr
				s.fn(ev)
			}
		}
	}
	return established
}

// parseSentinelEvent reads a Sentinel event payload. +switch-master:
// "<name> <old-ip> <old-port> <new-ip> <new-port>". +sdown/-sdown/+odown:
// "<type> <instance-name> <ip> <port> [@ <master-name> <master-ip> <master-port>]" (a master's
// instance name is the master name). Events about other masters are dropped (ok false).
func parseSentinelEvent(channel, payload, master string) (SentinelEvent, bool) {
	f := strings.Fields(payload)
	ev := SentinelEvent{Kind: SentinelEventKind(channel)}
	switch ev.Kind {
	case EventSwitchMaster:
		if len(f) < 5 || f[0] != master {
			return ev, false
		}
		old, err1 := announcedAddr(f[1], f[2])
		nw, err2 := announcedAddr(f[3], f[4])
		if err1 != nil || err2 != nil {
			return ev, false
		}
		ev.OldMaster, ev.NewMaster = old, nw
		return ev, true
	case EventSDown, EventSDownCleared, EventODown:
		if len(f) < 4 {
			return ev, false
		}
		owner := f[1]
		if f[0] != "master" {
			if len(f) < 6 || f[4] != "@" {
				return ev, false
			}
			owner = f[5]
		}
		inst, err := announcedAddr(f[2], f[3])
		if owner != master || err != nil {
			return ev, false
		}
		ev.InstanceType, ev.Instance = f[0], inst
		return ev, true
	}
	return ev, false
}
