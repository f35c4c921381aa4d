package orchestrator

import (
	"context"
	"fmt"
	"time"

	"github.com/droverhq/drover/runs"
)

// EventWaiting: a queued node waits before it starts (for a maintenance window in
// which it fits); Message says until when and why. The run stays running.
const EventWaiting EventKind = "waiting"

// StartGate decides whether a queued node may start now. The daemon's maintenance
// windows implement it; the CLI runs without one.
type StartGate interface {
	// Hold returns the wall-clock time until which node must wait before it starts,
	// and why; the zero time lets it start now. Hold is asked again when that time
	// comes. An error holds the node too (the gate fails closed) and is asked again
	// after StartGateRetry.
	Hold(ctx context.Context, runID, node string) (until time.Time, reason string, err error)
}

// StartGateRetry is how long a node waits after its StartGate failed.
const StartGateRetry = time.Minute

// waitStartGate holds a node that has not started until the StartGate lets it start,
// the run is stopped (the caller's stop check then ends the run), or ctx is done
// (interrupted). Every new wait is journaled and sent as EventWaiting.
func (e *Engine) waitStartGate(ctx context.Context, rs *runState, name string) error {
	if e.cfg.StartGate == nil {
		return nil
	}
	var last time.Time
	for rs.node(name).State == NodeQueued && !rs.stopped() {
		until, reason, err := e.cfg.StartGate.Hold(ctx, rs.id, name)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%w: %v", ErrInterrupted, ctx.Err())
			}
			e.log.Warn("start gate failed; node waits", "run_id", rs.id, "node", name, "error", err)
			until, reason = time.Now().Add(StartGateRetry), "start gate failed: "+err.Error()
		}
		if until.IsZero() || !until.After(time.Now()) {
			return nil
		}
		if !until.Equal(last) {
			last = until
			msg := fmt.Sprintf("waiting until %s: %s", until.Format(time.RFC3339), reason)
			if _, err := e.journal(rs, runs.Entry{Op: runs.OpState, Status: runs.StatusEvent, Node: name, Detail: msg}); err != nil {
				return err
			}
			e.log.Info("node waits", "run_id", rs.id, "node", name, "until", until, "reason", reason)
			e.emit(Event{Kind: EventWaiting, RunID: rs.id, Node: name, State: NodeQueued, Message: msg})
		}
		timer := time.NewTimer(time.Until(until))
		select {
		case <-timer.C:
		case <-rs.stop:
			timer.Stop()
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("%w: %v", ErrInterrupted, ctx.Err())
		}
	}
	return nil
}
