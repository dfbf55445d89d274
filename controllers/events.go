package controllers

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/types"
)

// Events per RedisConnection are rate limited: a flapping cluster (or a hostile one that
// changes its topology on every probe) cannot flood the API server or etcd with Events. Each
// RedisConnection gets a token bucket of eventBurst Events refilled at one per eventEvery;
// Events beyond it are dropped and counted (rconn_events_dropped_total), and the next Event
// that passes says how many were dropped before it. The limiter of a deleted RedisConnection
// goes with it (forget), so the map is bounded by the number of RedisConnections.
const (
	eventBurst = 20
	eventEvery = 30 * time.Second
)

type eventLimiter struct {
	mu    sync.Mutex
	byRC  map[types.NamespacedName]*rcEvents
	burst int
	every time.Duration
}

type rcEvents struct {
	lim     *rate.Limiter
	dropped int
}

// allow reports whether an Event of the RedisConnection may be recorded now, and how many
// Events were dropped since the last one that was.
func (l *eventLimiter) allow(key types.NamespacedName, now time.Time) (ok bool, droppedBefore int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byRC == nil {
		l.byRC = map[types.NamespacedName]*rcEvents{}
	}
	e := l.byRC[key]
	if e == nil {
		burst, every := l.burst, l.every
		if burst <= 0 {
			burst, every = eventBurst, eventEvery
		}
		e = &rcEvents{lim: rate.NewLimiter(rate.Every(every), burst)}
		l.byRC[key] = e
	}
	if !e.lim.AllowN(now, 1) {
		e.dropped++
		eventsDropped.Inc()
		return false, 0
	}
	d := e.dropped
	e.dropped = 0
	return true, d
}

func (l *eventLimiter) forget(key types.NamespacedName) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.byRC, key)
}

func (l *eventLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byRC)
}
