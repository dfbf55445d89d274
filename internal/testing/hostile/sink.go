package hostile

import (
	"slices"
	"strings"
	"sync"
)

// Sink is an attacker's listener that a tampered configuration points clients at: it answers
// like MinimalRedis (so a client that reaches it goes on to authenticate) and records every
// request, so a test can assert that no credential ever arrived.
type Sink struct {
	*Server
	mu   sync.Mutex
	seen [][]string
}

// StartSink starts a Sink on 127.0.0.1 and registers Close with t.Cleanup.
func StartSink(t TB) *Sink {
	t.Helper()
	s := &Sink{}
	s.Server = MustStart(t, Config{Handler: func(r Request) []byte {
		s.mu.Lock()
		s.seen = append(s.seen, slices.Clone(r.Args))
		s.mu.Unlock()
		return MinimalRedis(r)
	}})
	return s
}

// Requests returns the requests received so far.
func (s *Sink) Requests() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

// Saw reports whether any request so far carried secret in an argument (AUTH, HELLO ... AUTH).
func (s *Sink) Saw(secret string) bool {
	for _, r := range s.Requests() {
		for _, a := range r {
			if strings.Contains(a, secret) {
				return true
			}
		}
	}
	return false
}
