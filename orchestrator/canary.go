package orchestrator

import (
	"errors"
	"fmt"

	"github.com/droverhq/drover/runs"
)

// This file holds the canary: the run waits after its first node until approved.

// ErrAwaitingApproval: the run waits at its canary for `drover runs approve`.
var ErrAwaitingApproval = errors.New("run waits for approval")

// checkApproval refuses to execute a run that waits at its canary, unless a stop was
// requested (stopping a waiting run is allowed).
func (e *Engine) checkApproval(runID string) (runs.Run, error) {
	r, err := e.cfg.Store.Run(runID)
	if err != nil || r.State != runs.StateWaitingApproval || r.Approved {
		return runs.Run{}, nil // claim reports a missing run
	}
	select {
	case <-e.stopChan(runID):
		return runs.Run{}, nil
	default:
	}
	return r, fmt.Errorf("run %s: %w: its canary node is done; check it, then continue with `drover runs approve %s` (or end it with `drover runs stop %s`)", runID, ErrAwaitingApproval, runID, runID)
}

// awaitApproval parks the run after its canary node: state waiting_approval, the
// cluster's run lock released, an approval_needed event.
func (e *Engine) awaitApproval(rs *runState) (runs.Run, error) {
	var final runs.Run
	canary := rs.maintained()
	err := e.cfg.Store.Update(func(tx *runs.Tx) error {
		err := tx.UpdateRun(rs.id, func(r *runs.Run) error {
			st, err := nextRunState(r.State, evRunWait)
			if err != nil {
				return err
			}
			r.State = st
			final = *r
			return nil
		})
		if err != nil {
			return err
		}
		if _, err := tx.Append(rs.id, runs.Entry{At: e.clock.Now(), Op: opApproval, Status: runs.StatusEvent, Node: canary, Detail: "waiting"}); err != nil {
			return err
		}
		return tx.ReleaseLock(e.cfg.Cluster, rs.id)
	})
	if err != nil {
		return final, fmt.Errorf("park run %s for approval: %w", rs.id, err)
	}
	msg := fmt.Sprintf("canary node %s is done; check it, then continue with `drover runs approve %s`", canary, rs.id)
	e.log.Info("run waits for approval", "run_id", rs.id, "node", canary)
	e.emit(Event{Kind: EventApprovalNeeded, RunID: rs.id, Node: canary, State: string(final.State), Message: msg})
	return final, nil
}

// Approve records the approval of a run's canary: a run waiting for it goes back to
// running (Execute continues it); a run not yet at its canary will not stop there.
func (e *Engine) Approve(runID string) error {
	err := e.cfg.Store.Update(func(tx *runs.Tx) error {
		r, err := tx.Run(runID)
		if err != nil {
			return err
		}
		if r.Cluster != e.cfg.Cluster {
			return fmt.Errorf("run %s belongs to cluster %s, not %s", runID, r.Cluster, e.cfg.Cluster)
		}
		if r.State.Terminal() {
			return fmt.Errorf("run %s has ended (%s): nothing to approve", runID, r.State)
		}
		err = tx.UpdateRun(runID, func(r *runs.Run) error {
			r.Approved = true
			if r.State == runs.StateWaitingApproval {
				st, err := nextRunState(r.State, evRunApprove)
				if err != nil {
					return err
				}
				r.State = st
			}
			return nil
		})
		if err != nil {
			return err
		}
		_, err = tx.Append(runID, runs.Entry{At: e.clock.Now(), Op: opApproval, Status: runs.StatusEvent, Detail: "approved"})
		return err
	})
	if err != nil {
		return fmt.Errorf("approve run %s: %w", runID, err)
	}
	e.log.Info("run approved", "run_id", runID)
	return nil
}
