package orchestrator

import (
	"time"

	"github.com/droverhq/drover/runs"
)

// policy.reboot_timeout counts cluster time from the reboot command, whose moment
// is persisted (the journal's intent): a run resumed after its process died keeps
// the original deadline instead of starting a fresh one.

// rebootIssuedAt is the cluster time of the node's latest reboot intent, zero when
// the journal has none (or cannot be read: the timeout then starts now).
func (e *Engine) rebootIssuedAt(rs *runState, name string) time.Time {
	journal, err := e.cfg.Store.Journal(rs.id)
	if err != nil {
		e.log.Warn("cannot read when the reboot was issued; policy.reboot_timeout starts now", "run_id", rs.id, "node", name, "error", err)
		return time.Time{}
	}
	var at time.Time
	for _, en := range journal {
		if en.Op == runs.OpReboot && en.Node == name && en.Status == runs.StatusIntent {
			at = en.At
		}
	}
	return at
}

// timeLeft is what is left of timeout, in cluster time, of a span that began at
// since (zero: now). A cluster clock earlier than since is not the clock the span
// began on (an in-process simulator started anew with its process): the span's
// elapsed time is then unknown and the whole timeout is given, with a warning.
func (e *Engine) timeLeft(rs *runState, name, key string, since time.Time, timeout time.Duration) time.Duration {
	if since.IsZero() {
		return timeout
	}
	elapsed := e.clock.Now().Sub(since)
	if elapsed < 0 {
		e.log.Warn("the cluster clock is earlier than when this phase began (a simulator started anew?); its timeout starts again",
			"run_id", rs.id, "node", name, "policy", key, "began", since, "now", e.clock.Now())
		return timeout
	}
	return max(0, timeout-elapsed)
}
