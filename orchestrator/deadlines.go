package orchestrator

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/droverhq/drover/runs"
)

// This file holds the run's deadlines (policy.warn_after, stop_after) and the
// run policies' own state.

// Journal ops of the run policies (facts, StatusEvent).
const (
	opApproval runs.Op = "approval" // Detail "waiting" or "approved"
	opDeadline runs.Op = "deadline" // Detail "warn_after: ..." or "stop_after: ..."
	opGate     runs.Op = "gate"     // Detail "passed before NODE" or "failed before NODE: ..."
	opPlan     runs.Op = "plan"     // how a node's drain relates to the plan
)

// policyState is the run policies' own state of a run in progress.
type policyState struct {
	mu         sync.Mutex
	stopReason string // why the run was stopped, when not by the operator

	planOnce sync.Once
	plan     *RunPlan // nil: the run has no (readable) plan
}

func (ps *policyState) setStopReason(reason string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.stopReason = reason
}

// stopError is the run's error when it ends stopped.
func (ps *policyState) stopError() error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.stopReason != "" {
		return errors.New(ps.stopReason)
	}
	return errors.New("stopped by the operator")
}

// stopSkipReason is the skip reason of the node in maintenance when the run stops.
func (ps *policyState) stopSkipReason() string {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.stopReason != "" {
		return ps.stopReason + "; the node was resumed before it was patched"
	}
	return errStopped.Error()
}

// runClock reads, from the journal, how long the run has been going in cluster time
// (without the time it waited for approval) and whether warn_after already fired.
func (e *Engine) runClock(rs *runState) (elapsed time.Duration, warned bool, err error) {
	journal, err := e.cfg.Store.Journal(rs.id)
	if err != nil {
		return 0, false, fmt.Errorf("read journal: %w", err)
	}
	now := e.clock.Now()
	var start, waiting time.Time
	var parked time.Duration
	for _, en := range journal {
		switch {
		case en.Op == runs.OpRunStart && start.IsZero():
			start = en.At
		case en.Op == opApproval && en.Detail == "waiting":
			waiting = en.At
		case en.Op == opApproval && en.Detail == "approved" && !waiting.IsZero():
			parked += en.At.Sub(waiting)
			waiting = time.Time{}
		case en.Op == opDeadline && strings.HasPrefix(en.Detail, "warn_after"):
			warned = true
		}
	}
	if start.IsZero() {
		return 0, warned, nil
	}
	if !waiting.IsZero() {
		parked += now.Sub(waiting)
	}
	return now.Sub(start) - parked, warned, nil
}

// watchDeadlines arms policy.warn_after and policy.stop_after for the run; the
// returned function disarms them.
func (e *Engine) watchDeadlines(rs *runState) (disarm func()) {
	p := rs.policy
	if p.WarnAfter <= 0 && p.StopAfter <= 0 {
		return func() {}
	}
	elapsed, warned, err := e.runClock(rs)
	if err != nil {
		e.log.Warn("cannot arm the run's deadlines", "run_id", rs.id, "error", err)
		return func() {}
	}
	var timers []*time.Timer
	after := func(d time.Duration, fn func()) {
		timers = append(timers, time.AfterFunc(max(0, e.clock.WallDuration(d-elapsed)), fn))
	}
	if p.WarnAfter > 0 && !warned {
		after(p.WarnAfter.D(), func() {
			msg := fmt.Sprintf("run has taken longer than policy.warn_after (%s)", p.WarnAfter.D())
			e.deadline(rs, "warn_after", msg)
		})
	}
	if p.StopAfter > 0 {
		after(p.StopAfter.D(), func() {
			// The reason becomes the run's error, shown after its state ("run ID
			// stopped: the run reached ..."): it does not say "stopped" itself.
			reason := fmt.Sprintf("the run reached policy.stop_after (%s)", p.StopAfter.D())
			rs.pol.setStopReason(reason)
			e.deadline(rs, "stop_after", "stopping: "+reason)
			e.Stop(rs.id)
		})
	}
	return func() {
		for _, t := range timers {
			t.Stop()
		}
	}
}

// deadline reports a deadline reached: log, event and journal. The node in
// maintenance gets a note once the run's loop is done with it (noteDeadlines).
func (e *Engine) deadline(rs *runState, key, msg string) {
	node := rs.inProgress()
	e.log.Warn("run deadline reached", "run_id", rs.id, "policy", key, "node", node)
	e.emit(Event{Kind: EventWarning, RunID: rs.id, Node: node, Message: msg})
	if _, err := e.journal(rs, runs.Entry{Op: opDeadline, Status: runs.StatusEvent, Node: node, Detail: key + ": " + msg}); err != nil {
		e.log.Error("cannot journal the deadline", "run_id", rs.id, "policy", key, "error", err)
	}
}

// inProgress is the first node of the run in maintenance (between queued and a final
// state), "" when none.
func (rs *runState) inProgress() string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, name := range rs.order {
		st := rs.nodes[name].State
		if st != NodeQueued && !NodeTerminal(st) {
			return name
		}
	}
	return ""
}

// noteDeadlines adds a note for each warn_after warning of the journal to the node
// that was in maintenance then (else the last node started), for the report. It runs
// after the run's loop, when no node is being worked on.
func (e *Engine) noteDeadlines(rs *runState) error {
	if rs.policy.WarnAfter <= 0 {
		return nil
	}
	journal, err := e.cfg.Store.Journal(rs.id)
	if err != nil {
		return fmt.Errorf("read journal: %w", err)
	}
	for _, en := range journal {
		if en.Op != opDeadline || !strings.HasPrefix(en.Detail, "warn_after") {
			continue
		}
		node := en.Node
		if node == "" {
			node = rs.lastStarted()
		}
		if node == "" {
			continue
		}
		note := fmt.Sprintf("warning at %s: %s", en.At.UTC().Format(time.RFC3339), strings.TrimPrefix(en.Detail, "warn_after: "))
		if slices.Contains(rs.node(node).Notes, note) {
			continue
		}
		if _, err := e.persist(rs, node, func(r *runs.NodeRecord) { r.Notes = append(r.Notes, note) }); err != nil {
			return err
		}
	}
	return nil
}

// lastStarted is the node of the run started last, else the first of the order.
func (rs *runState) lastStarted() string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	best := ""
	var at time.Time
	for _, name := range rs.order {
		if s := rs.nodes[name].StartedAt; !s.IsZero() && !s.Before(at) {
			best, at = name, s
		}
	}
	if best == "" && len(rs.order) > 0 {
		best = rs.order[0]
	}
	return best
}
