package client

import (
	"errors"
	"time"
)

// reloadPhase is where the newest version the reloader has read stands.
type reloadPhase uint8

const (
	// phaseCurrent: the version applied last is the newest; nothing waits.
	phaseCurrent reloadPhase = iota
	// phaseWaiting: a new config.json waits (up to SecretWait) for the Secret it was rendered
	// with.
	phaseWaiting
	// phaseRejected: the newest version was refused (its content, or applying it, failed); it
	// is not retried until the source has another version.
	phaseRejected
)

func (p reloadPhase) String() string {
	return [...]string{"current", "waiting", "rejected"}[p]
}

// reportKey identifies a reported failure: a retry that fails alike is not reported again.
type reportKey struct {
	read    bool   // the source could not be read
	version string // the version the failure is about ("" for read failures)
	msg     string // what failed: the same version can fail differently (its Secret changed)
}

// reloadState is the reloader's state between polls. It changes only through its methods,
// each one transition (table-tested in reloadstate_internal_test.go); the caller holds the
// reloader's lock.
type reloadState struct {
	phase reloadPhase
	// rejected is the version phaseRejected refers to (kept through a later wait, so that a
	// source flipping back to it does not re-report it).
	rejected string
	// since is when phaseWaiting began.
	since time.Time
	// forced is the pair mismatch applied after waiting out SecretWait: a later version with
	// the same mismatch is applied at once (the Secret is not coming).
	forced *SecretPendingError
	// failures counts consecutive read failures (the retry backoff).
	failures int
	reported reportKey
}

// readFailed: the source could not be read. It returns when to retry.
func (s *reloadState) readFailed() time.Duration {
	d := backoff(s.failures)
	s.failures++
	return d
}

// readOK: the source was read.
func (s *reloadState) readOK() { s.failures = 0 }

// unchanged: the source still has the version that runs; a later failure is news again.
func (s *reloadState) unchanged() {
	s.failures, s.reported = 0, reportKey{}
}

// waitedOut reports whether the current wait for a Secret has lasted wait.
func (s *reloadState) waitedOut(now time.Time, wait time.Duration) bool {
	return s.phase == phaseWaiting && now.Sub(s.since) >= wait
}

// forcedAlready reports whether pending is the mismatch applied after the last wait.
func (s *reloadState) forcedAlready(pending error) bool {
	var p *SecretPendingError
	return s.forced != nil && errors.As(pending, &p) && *p == *s.forced
}

// waitFor: a new config.json waits for its Secret (from now, unless already waiting). It
// returns how long the wait has left.
func (s *reloadState) waitFor(now time.Time, wait time.Duration) time.Duration {
	if s.phase != phaseWaiting {
		s.phase, s.since = phaseWaiting, now
	}
	return wait - now.Sub(s.since)
}

// reject: version was refused; a wait in progress ends (the next version waits afresh).
func (s *reloadState) reject(version string) {
	s.phase, s.rejected, s.since = phaseRejected, version, time.Time{}
}

// applied: the newest version runs, complete or (mismatch set) after waiting for its Secret.
func (s *reloadState) applied(mismatch error) {
	s.phase, s.rejected, s.since, s.reported, s.forced = phaseCurrent, "", time.Time{}, reportKey{}, nil
	var p *SecretPendingError
	if errors.As(mismatch, &p) {
		s.forced = p
	}
}

// report reports whether a failure is news (not the one reported last), and remembers it.
func (s *reloadState) report(k reportKey) bool {
	if k == s.reported {
		return false
	}
	s.reported = k
	return true
}
