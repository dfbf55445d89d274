package client

import (
	"errors"
	"math/rand/v2"
	"time"
)

// ReconnectStrategy decides, after the connection was lost (or a connect attempt failed),
// how long to wait before the next attempt: it is called with the number of attempts made so
// far and the error that caused it. Returning an error stops reconnecting: the client emits
// "end" with that error and closes (node-redis: returning false or an Error).
//
// nil means DefaultReconnect(). Note: the node-redis "Connect" guide says the default
// is not to reconnect, while node-redis itself reconnects by default; rconn reconnects by
// default (exponential backoff with jitter), because a 3 a.m. network blip must not kill the
// app. Use NoReconnect for the guide's behaviour.
type ReconnectStrategy func(retries int, cause error) (time.Duration, error)

// ErrReconnectDisabled is the error of NoReconnect.
var ErrReconnectDisabled = errors.New("reconnect disabled")

// NoReconnect never reconnects (node-redis reconnectStrategy: false).
func NoReconnect(int, error) (time.Duration, error) { return 0, ErrReconnectDisabled }

// FixedDelay waits d before every attempt (node-redis reconnectStrategy: number).
func FixedDelay(d time.Duration) ReconnectStrategy {
	return func(int, error) (time.Duration, error) { return d, nil }
}

// ExponentialBackoff waits min(2^retries*base, ceiling) + rand(0..jitter).
func ExponentialBackoff(base, ceiling, jitter time.Duration) ReconnectStrategy {
	return func(retries int, _ error) (time.Duration, error) {
		d := ceiling
		if retries < 30 {
			if e := base << retries; e < ceiling {
				d = e
			}
		}
		if jitter > 0 {
			d += rand.N(jitter)
		}
		return d, nil
	}
}

// The default reconnect backoff, node-redis's own default: min(2^retries*50ms, 2s) +
// rand(0..200ms). They are also the defaults of a rendered exponentialBackoff's baseMs, capMs
// and (when the RedisConnection sets none) jitterMs.
const (
	DefaultReconnectBase   = 50 * time.Millisecond
	DefaultReconnectCap    = 2 * time.Second
	DefaultReconnectJitter = 200 * time.Millisecond
)

// DefaultReconnect returns the strategy a client with no ReconnectStrategy uses:
// ExponentialBackoff(DefaultReconnectBase, DefaultReconnectCap, DefaultReconnectJitter).
func DefaultReconnect() ReconnectStrategy {
	return ExponentialBackoff(DefaultReconnectBase, DefaultReconnectCap, DefaultReconnectJitter)
}

// DefaultReconnectStrategy is DefaultReconnect().
//
// Deprecated: use DefaultReconnect. Assigning this variable has no effect: a client with no
// ReconnectStrategy always uses DefaultReconnect (a package variable would let any package
// change every client's behaviour in the process).
var DefaultReconnectStrategy = DefaultReconnect()

func (rc *ReconnectConfig) strategy() ReconnectStrategy {
	if rc == nil {
		return nil
	}
	ms := func(v int64) time.Duration { return time.Duration(v) * time.Millisecond }
	switch rc.Type {
	case ReconnectTypeNone:
		return NoReconnect
	case ReconnectTypeFixedDelay:
		return FixedDelay(ms(rc.DelayMs))
	default:
		base, capd, jitter := ms(rc.BaseMs), ms(rc.CapMs), ms(rc.JitterMs)
		if base == 0 {
			base = DefaultReconnectBase
		}
		if capd == 0 {
			capd = DefaultReconnectCap
		}
		return ExponentialBackoff(base, capd, jitter)
	}
}
