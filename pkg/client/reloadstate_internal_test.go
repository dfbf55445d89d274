package client

import (
	"fmt"
	"testing"
	"time"
)

// The reloader's state transitions, one table row per step of a sequence: what the transition
// returned, and the phase, rejected version, wait and backoff after it.
func TestReloadStateTransitions(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const wait = 10 * time.Second
	mismatch := &SecretPendingError{Kind: PendingKey, Want: "tls.key"}
	type step struct {
		name     string
		do       func(s *reloadState) any
		ret      any
		phase    reloadPhase
		rejected string
		waiting  bool // since is set
		failures int
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"read failures back off, a read resets", []step{
			{"fail", func(s *reloadState) any { return s.readFailed() }, retryBase, phaseCurrent, "", false, 1},
			{"fail", func(s *reloadState) any { return s.readFailed() }, 2 * retryBase, phaseCurrent, "", false, 2},
			{"read", func(s *reloadState) any { s.readOK(); return nil }, nil, phaseCurrent, "", false, 0},
		}},
		{"a pending pair waits from its first sight, then is waited out", []step{
			{"wait", func(s *reloadState) any { return s.waitFor(t0, wait) }, wait, phaseWaiting, "", true, 0},
			{"still", func(s *reloadState) any { return s.waitFor(t0.Add(4*time.Second), wait) }, 6 * time.Second, phaseWaiting, "", true, 0},
			{"not yet", func(s *reloadState) any { return s.waitedOut(t0.Add(9*time.Second), wait) }, false, phaseWaiting, "", true, 0},
			{"out", func(s *reloadState) any { return s.waitedOut(t0.Add(wait), wait) }, true, phaseWaiting, "", true, 0},
			{"applied with the mismatch", func(s *reloadState) any { s.applied(mismatch); return s.forcedAlready(mismatch) }, true, phaseCurrent, "", false, 0},
			{"the same mismatch is not waited for again", func(s *reloadState) any {
				return s.forcedAlready(fmt.Errorf("wrapped: %w", &SecretPendingError{Kind: PendingKey, Want: "tls.key"}))
			}, true, phaseCurrent, "", false, 0},
			{"another mismatch is waited for", func(s *reloadState) any {
				return s.forcedAlready(&SecretPendingError{Kind: PendingKey, Want: "tls.crt"})
			}, false, phaseCurrent, "", false, 0},
			{"a complete pair clears it", func(s *reloadState) any { s.applied(nil); return s.forcedAlready(mismatch) }, false, phaseCurrent, "", false, 0},
		}},
		{"a rejection ends the wait; the next version waits afresh", []step{
			{"wait", func(s *reloadState) any { return s.waitFor(t0, wait) }, wait, phaseWaiting, "", true, 0},
			{"reject", func(s *reloadState) any { s.reject("v2"); return s.waitedOut(t0.Add(time.Hour), wait) }, false, phaseRejected, "v2", false, 0},
			{"wait for v3", func(s *reloadState) any { return s.waitFor(t0.Add(time.Minute), wait) }, wait, phaseWaiting, "v2", true, 0},
			{"v3 applied", func(s *reloadState) any { s.applied(nil); return nil }, nil, phaseCurrent, "", false, 0},
		}},
		{"a failure is reported once until something changes", []step{
			{"first", func(s *reloadState) any { return s.report(reportKey{version: "v2", msg: "bad"}) }, true, phaseCurrent, "", false, 0},
			{"again", func(s *reloadState) any { return s.report(reportKey{version: "v2", msg: "bad"}) }, false, phaseCurrent, "", false, 0},
			{"same version, other failure", func(s *reloadState) any { return s.report(reportKey{version: "v2", msg: "worse"}) }, true, phaseCurrent, "", false, 0},
			{"a read failure is another", func(s *reloadState) any { return s.report(reportKey{read: true, msg: "worse"}) }, true, phaseCurrent, "", false, 0},
			{"unchanged source forgets it", func(s *reloadState) any { s.unchanged(); return s.report(reportKey{read: true, msg: "worse"}) }, true, phaseCurrent, "", false, 0},
			{"an apply forgets it", func(s *reloadState) any { s.applied(nil); return s.report(reportKey{read: true, msg: "worse"}) }, true, phaseCurrent, "", false, 0},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s reloadState
			for _, st := range tc.steps {
				ret := st.do(&s)
				if ret != st.ret || s.phase != st.phase || s.rejected != st.rejected || !s.since.IsZero() != st.waiting || s.failures != st.failures {
					t.Fatalf("%s: returned %v, state %s rejected=%q waiting=%t failures=%d; want %v, %s rejected=%q waiting=%t failures=%d",
						st.name, ret, s.phase, s.rejected, !s.since.IsZero(), s.failures, st.ret, st.phase, st.rejected, st.waiting, st.failures)
				}
			}
		})
	}
}
