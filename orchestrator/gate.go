package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/policies"
	"github.com/droverhq/drover/runs"
)

// This file holds what must hold before a run moves on: the health gate between
// nodes, the canary's approval, the run's deadlines (warn_after, stop_after), the
// cluster being online, and the failback hours.

// Journal ops of the run policies (facts, StatusEvent).
const (
	opApproval runs.Op = "approval" // Detail "waiting" or "approved"
	opDeadline runs.Op = "deadline" // Detail "warn_after: ..." or "stop_after: ..."
	opGate     runs.Op = "gate"     // Detail "passed before NODE" or "failed before NODE: ..."
	opPlan     runs.Op = "plan"     // how a node's drain relates to the plan
)

// ErrAwaitingApproval: the run waits at its canary for `drover runs approve`.
var ErrAwaitingApproval = errors.New("run waits for approval")

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

// requireOnline refuses to start a run unless every node is up (with
// policy.require_all_nodes_online) or a majority is.
func requireOnline(inv cluster.Inventory, p Policy) error {
	down := notReady(inv, nil)
	if p.RequireAllNodesOnline && len(down) > 0 {
		return fmt.Errorf("policy.require_all_nodes_online: %d of %d nodes are not up (%s); bring them up, or unset the option to patch the others", len(down), len(inv.Nodes), strings.Join(down, ", "))
	}
	// The same rule as analyze's nodes_up check: with most of the cluster down (or
	// unreachable), taking one more node out is unsafe, and a run that skips every
	// node must not report success.
	if up := len(inv.Nodes) - len(down); up*2 <= len(inv.Nodes) {
		return fmt.Errorf("only %d of %d nodes are up (%s): no majority; bring nodes up (or make them reachable) before maintenance", up, len(inv.Nodes), strings.Join(down, ", "))
	}
	return nil
}

// notReady lists the nodes of inv (or only those named in want, which must exist)
// that are not ready, with their state.
func notReady(inv cluster.Inventory, want []string) []string {
	var out []string
	if want == nil {
		for _, n := range inv.Nodes {
			if !n.Ready() {
				out = append(out, fmt.Sprintf("%s is %s", n.Name, n.State))
			}
		}
		return out
	}
	for _, name := range want {
		n, ok := inv.Node(name)
		switch {
		case !ok:
			out = append(out, name+" is gone from the inventory")
		case !n.Ready():
			out = append(out, fmt.Sprintf("%s is %s", name, n.State))
		}
	}
	return out
}

// maintained reports the first node of the run that was paused (and so maintained,
// whatever its outcome), "" when none was yet.
func (rs *runState) maintained() string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, name := range rs.order {
		if !rs.nodes[name].StartedAt.IsZero() {
			return name
		}
	}
	return ""
}

// beforeNode applies the gates between nodes before the queued node name starts:
// the canary's approval, then the health gate. A node in progress (a resumed run)
// goes on without them. It returns a run event when the run must not go on.
func (e *Engine) beforeNode(ctx context.Context, rs *runState, name string) (string, error) {
	if rs.node(name).State != NodeQueued {
		return "", nil
	}
	if rs.maintained() == "" {
		return "", nil // the first node: nothing to gate yet
	}
	if rs.policy.Canary {
		r, err := e.cfg.Store.Run(rs.id)
		if err != nil {
			return "", fmt.Errorf("read run %s: %w", rs.id, err)
		}
		if !r.Approved {
			return evRunWait, nil
		}
	}
	err := e.healthGate(ctx, rs, name)
	if rs.stopped() {
		return evRunStop, rs.pol.stopError()
	}
	var gf *gateFailure
	if !errors.As(err, &gf) {
		return "", err
	}
	msg := fmt.Sprintf("health gate failed before node %s: %v", name, gf.err)
	e.log.Error("health gate failed", "run_id", rs.id, "node", name, "error", gf.err)
	e.emit(Event{Kind: EventWarning, RunID: rs.id, Node: name, Message: msg})
	if _, err := e.journal(rs, runs.Entry{Op: opGate, Status: runs.StatusEvent, Node: name, Detail: "failed before " + name + ": " + gf.err.Error()}); err != nil {
		return "", err
	}
	// The nodes left are said to be left, with why, rather than left queued.
	for _, n := range rs.order {
		if rs.node(n).State != NodeQueued {
			continue
		}
		if err := e.transition(rs, n, evSkip, func(r *runs.NodeRecord) { r.SkipReason = "not started: " + msg }); err != nil {
			return "", err
		}
	}
	return evRunStop, errors.New(msg)
}

// gateFailure is a health gate that did not pass (as opposed to an interrupted run or
// a store error).
type gateFailure struct{ err error }

func (g *gateFailure) Error() string { return g.err.Error() }

// healthGate waits until the nodes the run depends on are ready again (up to
// health_gate.ready_timeout), then runs the optional check with its retries.
func (e *Engine) healthGate(ctx context.Context, rs *runState, next string) error {
	g := rs.policy.HealthGate
	wctx, cancel := context.WithTimeout(ctx, e.clock.WallDuration(orDefault(g.ReadyTimeout.D(), 15*time.Minute)))
	defer cancel()
	poll := time.NewTicker(e.clock.WallDuration(rs.policy.PollInterval.D()))
	defer poll.Stop()
	var missing []string
	for {
		inv, err := e.cfg.Driver.Inventory(wctx)
		switch {
		case err == nil:
			if missing = notReady(inv, rs.gateNodes()); len(missing) == 0 {
				return e.gateCheckWithRetries(ctx, rs, next)
			}
		case wctx.Err() == nil: // a call cut by the deadline keeps the last finding
			missing = []string{"inventory unreadable: " + err.Error()}
		}
		select {
		case <-poll.C:
			continue
		case <-rs.stop:
			return nil
		case <-wctx.Done():
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %v", ErrInterrupted, ctx.Err())
		}
		return &gateFailure{fmt.Errorf("nodes not ready within policy.health_gate.ready_timeout (%s): %s", g.ReadyTimeout.D(), strings.Join(missing, "; "))}
	}
}

// gateCheckWithRetries runs the health gate's optional check, with its retries.
func (e *Engine) gateCheckWithRetries(ctx context.Context, rs *runState, next string) error {
	g := rs.policy.HealthGate
	if len(g.Command) == 0 && g.URL == "" {
		return nil
	}
	env := map[string]string{"DROVER_NODE": next, "DROVER_RUN_ID": rs.id, "DROVER_PHASE": hookGate, "DROVER_CLUSTER": e.cfg.Cluster}
	var last error
	for attempt := 0; attempt <= g.Retries; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(e.clock.WallDuration(g.Interval.D()))
			select {
			case <-t.C:
			case <-rs.stop:
				t.Stop()
				return nil
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("%w: %v", ErrInterrupted, ctx.Err())
			}
		}
		if last = gateCheck(ctx, g, env, nil); last == nil {
			_, err := e.journal(rs, runs.Entry{Op: opGate, Status: runs.StatusEvent, Node: next, Detail: "passed before " + next})
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %v", ErrInterrupted, ctx.Err())
		}
		e.log.Warn("health check failed", "run_id", rs.id, "node", next, "attempt", attempt+1, "error", last)
	}
	return &gateFailure{fmt.Errorf("check failed %d times, last: %w", g.Retries+1, last)}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// gateNodes lists the nodes that must be ready for the run to go on: with
// policy.require_all_nodes_online every node of the cluster (nil), else every node of
// the run except those it already failed or found down before their turn. A node
// that goes down mid-run stops the run before another node is paused.
func (rs *runState) gateNodes() []string {
	if rs.policy.RequireAllNodesOnline {
		return nil
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := []string{}
	for _, name := range rs.order {
		r := rs.nodes[name]
		if r.State == NodeFailed || (r.State == NodeSkipped && strings.HasPrefix(r.SkipReason, "node is ")) {
			continue
		}
		out = append(out, name)
	}
	return out
}

// gateCheck runs the health gate's check once: the command must exit 0, the URL must
// answer a GET with 2xx, within health_gate.timeout. client nil = a default client.
func gateCheck(ctx context.Context, g HealthGate, env map[string]string, client *http.Client) error {
	timeout := orDefault(g.Timeout.D(), 30*time.Second)
	if len(g.Command) > 0 {
		res := runCommand(ctx, g.Command, timeout, env)
		if res.Err != nil {
			if res.Output != "" {
				return fmt.Errorf("%s: %w: %s", g.Command[0], res.Err, res.Output)
			}
			return fmt.Errorf("%s: %w", g.Command[0], res.Err)
		}
		return nil
	}
	u, err := url.Parse(g.URL)
	if err != nil {
		return errors.New("health_gate.url cannot be parsed")
	}
	shown := RedactURL(u.String())
	if client == nil {
		client = &http.Client{}
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, g.URL, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", shown, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		// *url.Error repeats the URL, credentials included: keep only its cause.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		if cctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("no answer within %s", timeout)
		}
		return fmt.Errorf("GET %s: %v", shown, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s", shown, resp.Status)
	}
	return nil
}

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

// failbackAllowed filters the failback jobs after the first nJoins (migrations already
// in flight, kept): policies.FailbackTargets decides which VMs go back now (mode,
// preferred node, allowed hours), then each must fit on the node. VMs held by the
// hours or by capacity are noted in the node's record.
func (e *Engine) failbackAllowed(rs *runState, name string, inv cluster.Inventory, jobs []migJob, nJoins int) ([]migJob, error) {
	cands := jobs[nJoins:]
	if len(cands) == 0 {
		return jobs, nil
	}
	mode, err := policies.ParseFailbackMode(rs.policy.Failback)
	if err != nil {
		return nil, failNode("failback: %w", err)
	}
	var prefs policies.FailbackPrefs
	if rs.policy.FailbackHours != "" {
		if prefs.Default, err = policies.ParseHoursWindow(rs.policy.FailbackHours, rs.policy.FailbackTZ); err != nil {
			return nil, failNode("failback: policy.failback_hours: %w", err)
		}
	}
	drained := make([]policies.DrainedVM, 0, len(cands))
	for _, j := range cands {
		drained = append(drained, policies.DrainedVM{VM: j.vm.Name, From: name, To: j.from})
	}
	moves, held := policies.FailbackTargets(mode, drained, inv, e.clock.Now(), prefs)
	allowed := map[string]bool{}
	for _, m := range moves {
		allowed[m.VM] = true
	}
	var notes []string
	for _, h := range held {
		if strings.HasPrefix(h.Reason, "outside failback hours") {
			notes = append(notes, fmt.Sprintf("failback of vm %s held: %s", h.VM, h.Reason))
		}
	}
	placer := policies.NewPlacer(inv, e.placementOptions(rs, inv))
	out := jobs[:nJoins:nJoins]
	for _, j := range cands {
		if !allowed[j.vm.Name] {
			continue
		}
		if err := placer.PlaceOn(j.vm, name); err != nil {
			notes = append(notes, fmt.Sprintf("failback of vm %s held: %v", j.vm.Name, err))
			continue
		}
		out = append(out, j)
	}
	if err := e.addNotes(rs, name, notes); err != nil {
		return nil, err
	}
	return out, nil
}

// addNotes appends the notes the node's record does not have yet.
func (e *Engine) addNotes(rs *runState, node string, notes []string) error {
	have := rs.node(node).Notes
	var add []string
	for _, n := range notes {
		if !slices.Contains(have, n) && !slices.Contains(add, n) {
			add = append(add, n)
		}
	}
	if len(add) == 0 {
		return nil
	}
	_, err := e.persist(rs, node, func(r *runs.NodeRecord) { r.Notes = append(r.Notes, add...) })
	return err
}
