package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/policies"
	"github.com/droverhq/drover/runs"
)

// nodeFailure is a failure of one node: the run records it, resumes the node and
// goes on (within the failure budget).
type nodeFailure struct{ err error }

func (f *nodeFailure) Error() string { return f.err.Error() }
func (f *nodeFailure) Unwrap() error { return f.err }

func failNode(format string, args ...any) error {
	return &nodeFailure{err: fmt.Errorf(format, args...)}
}

// errStopped: the operator stopped the run; the node is resumed and skipped.
var errStopped = errors.New("run stopped by the operator before this node was patched")

// processNode drives one node through its state machine until it reaches a final
// state. Each step performs the action its state names and moves on; a resumed run
// re-enters the step of the state it was in, and every step is idempotent.
func (e *Engine) processNode(ctx context.Context, rs *runState, name string, index int) error {
	for {
		rec := rs.node(name)
		if NodeTerminal(rec.State) {
			return nil
		}
		var err error
		switch rec.State {
		case NodeQueued:
			err = e.stepQueued(ctx, rs, name)
		case NodePausing:
			err = e.stepPausing(ctx, rs, name)
		case NodeDraining:
			err = e.stepDraining(ctx, rs, name)
		case NodePatching:
			err = e.stepPatching(ctx, rs, name)
		case NodeRebooting:
			err = e.stepRebooting(ctx, rs, name)
		case NodeVerifying:
			err = e.stepVerifying(ctx, rs, name)
		case NodeResuming:
			err = e.stepResuming(ctx, rs, name)
		case NodeFailingBack:
			err = e.stepFailingBack(ctx, rs, name)
		default:
			return fmt.Errorf("node %s: unknown state %q in the state file", name, rec.State)
		}
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %v", ErrInterrupted, ctx.Err())
		}
		if errors.Is(err, ErrInterrupted) {
			return err
		}
		var nf *nodeFailure
		switch {
		case errors.Is(err, errStopped):
			if err := e.abortNode(rs, name, func(r *runs.NodeRecord) { r.SkipReason = rs.pol.stopSkipReason() }); err != nil {
				return err
			}
		case errors.As(err, &nf):
			e.log.Warn("node failed", "run_id", rs.id, "node", name, "error", err)
			if err := e.abortNode(rs, name, func(r *runs.NodeRecord) { r.Failure = err.Error() }); err != nil {
				return err
			}
		default:
			// The journal cannot be written or the state is inconsistent: stop the run
			// rather than act without a record.
			return err
		}
	}
}

// abortNode records why the node stops early and moves it to resuming (or, if it was
// never touched, straight to failed or skipped).
func (e *Engine) abortNode(rs *runState, name string, set func(*runs.NodeRecord)) error {
	rec := rs.node(name)
	if rec.State == NodeQueued {
		ev := evFail
		probe := rec
		set(&probe)
		if probe.Failure == "" {
			ev = evSkip
		}
		return e.transition(rs, name, ev, set)
	}
	if rec.State == NodeResuming || rec.State == NodeFailingBack {
		// Failures after the node is back do not undo its patch.
		_, err := e.persist(rs, name, func(r *runs.NodeRecord) {
			probe := runs.NodeRecord{}
			set(&probe)
			if probe.Failure != "" {
				r.Errors = append(r.Errors, probe.Failure)
			}
		})
		if err != nil {
			return err
		}
		if rec.State == NodeResuming {
			return e.transition(rs, name, evFailback, nil)
		}
		return e.transition(rs, name, evFinish, nil)
	}
	return e.transition(rs, name, evAbort, set)
}

func (e *Engine) stepQueued(ctx context.Context, rs *runState, name string) error {
	if rs.stopped() {
		return errStopped
	}
	inv, err := e.cfg.Driver.Inventory(ctx)
	if err != nil {
		return failNode("read inventory before pausing %s: %w", name, err)
	}
	node, ok := inv.Node(name)
	if !ok {
		return failNode("node %s is no longer in the inventory", name)
	}
	if !node.Ready() {
		return e.transition(rs, name, evSkip, func(r *runs.NodeRecord) {
			r.SkipReason = fmt.Sprintf("node is %s at its turn; not touched", node.State)
		})
	}
	if node.Paused {
		return e.transition(rs, name, evSkip, func(r *runs.NodeRecord) {
			r.SkipReason = "node was paused by someone else at its turn; drover leaves it alone"
		})
	}
	if stuck := rs.policy.stuckOn(inv, name); len(stuck) > 0 {
		return failNode("cannot live-migrate %s; with policy.non_migratable=fail (policy.local_storage=fail for VMs with local disks) the node is not patched (use shutdown or skip to patch it anyway)", strings.Join(stuck, ", "))
	}
	if k := rs.policy.ReserveNodes; k > 0 && !rs.policy.OverrideReserve {
		out := append(rs.inMaintenance(), name)
		res := policies.ReserveCheck(inv, k, out, policies.ReserveOptions{Placement: e.placementOptions(rs, inv)})
		if !res.Holds {
			return failNode("pausing %s would break the cluster reserve of %d node(s): with %v failing, %d MiB short (%s); use --override-reserve to pause anyway", name, k, res.WorstFailure, res.ShortfallMiB, res.Basis)
		}
	}
	if err := e.runHook(ctx, rs, name, hookPre); err != nil {
		return err
	}
	return e.transition(rs, name, evPause, func(r *runs.NodeRecord) {
		r.BootIDBefore = node.BootID
		r.Attempts++
	})
}

func describeStuck(vm cluster.VM) string {
	if vm.NotMigratableReason != "" {
		return fmt.Sprintf("vm %s (%s)", vm.Name, vm.NotMigratableReason)
	}
	return "vm " + vm.Name
}

// inMaintenance lists the run's nodes that must not receive placements now.
func (rs *runState) inMaintenance() []string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var out []string
	for _, name := range rs.order {
		if nodeInMaintenance(rs.nodes[name].State) {
			out = append(out, name)
		}
	}
	return out
}

// act journals an intent, runs do, and journals its outcome. An intent for the same
// action left open by an interrupted run is reused rather than written again.
func (e *Engine) act(ctx context.Context, rs *runState, intent runs.Entry, do func(context.Context) error) error {
	seq, err := e.openIntent(rs, intent)
	if err != nil {
		return err
	}
	if seq == 0 {
		intent.Status = runs.StatusIntent
		seqs, err := e.journal(rs, intent)
		if err != nil {
			return err
		}
		seq = seqs[0]
	}
	actErr := do(ctx)
	if ctx.Err() != nil {
		// Leave the intent open: the next run reconciles it.
		return fmt.Errorf("%w: %v", ErrInterrupted, ctx.Err())
	}
	out := intent
	out.Ref, out.Status = seq, runs.StatusDone
	if actErr != nil {
		out.Status, out.Detail = runs.StatusFailed, actErr.Error()
	}
	if _, err := e.journal(rs, out); err != nil {
		return err
	}
	return actErr
}

// openIntent finds an open intent of the same op on the same node (and VM).
func (e *Engine) openIntent(rs *runState, want runs.Entry) (uint64, error) {
	journal, err := e.cfg.Store.Journal(rs.id)
	if err != nil {
		return 0, fmt.Errorf("read journal: %w", err)
	}
	for _, in := range runs.OpenIntents(journal) {
		if in.Op == want.Op && in.Node == want.Node && in.VM == want.VM {
			return in.Seq, nil
		}
	}
	return 0, nil
}

// settleIntent closes an open intent whose action is found done after a restart
// (the process died between the action and its outcome), so that the journal says
// what happened and no later step mistakes it for an action still to do.
func (e *Engine) settleIntent(rs *runState, want runs.Entry, detail string) error {
	seq, err := e.openIntent(rs, want)
	if err != nil || seq == 0 {
		return err
	}
	want.Status, want.Ref, want.Detail = runs.StatusDone, seq, detail
	_, err = e.journal(rs, want)
	return err
}

func (e *Engine) stepPausing(ctx context.Context, rs *runState, name string) error {
	err := e.act(ctx, rs, runs.Entry{Op: runs.OpPause, Node: name}, func(ctx context.Context) error {
		return e.cfg.Driver.PauseNode(ctx, name, drivers.PauseMark(rs.id))
	})
	if err != nil {
		if errors.Is(err, ErrInterrupted) {
			return err
		}
		return failNode("pause node %s: %w", name, err)
	}
	return e.transition(rs, name, evDrain, nil)
}

func (e *Engine) stepDraining(ctx context.Context, rs *runState, name string) error {
	if rs.stopped() {
		return errStopped
	}
	if err := e.drain(ctx, rs, name); err != nil {
		return err
	}
	if rs.stopped() {
		return errStopped
	}
	return e.transition(rs, name, evPatch, nil)
}

func (e *Engine) stepPatching(ctx context.Context, rs *runState, name string) error {
	rec := rs.node(name)
	pendingBefore := rec.Pending
	var (
		installed  []runs.Update
		failed     []drivers.UpdateFailure
		output     []string
		reboot     bool
		installErr error
	)
	// An install is retried when the plug-in fails or reports updates that did not
	// install; what one attempt installed stays installed.
	for attempt := 0; attempt <= rs.policy.RetriesPerNode; attempt++ {
		var result drivers.InstallResult
		installErr = e.act(ctx, rs, runs.Entry{Op: runs.OpInstall, Node: name, Detail: updateNames(pendingBefore)}, func(ctx context.Context) error {
			var err error
			result, err = e.cfg.Updater.Install(ctx, name)
			return err
		})
		if errors.Is(installErr, ErrInterrupted) {
			return installErr
		}
		if installErr == nil {
			installed = append(installed, toRunUpdates(result.Installed)...)
			failed = result.Failed
			reboot = reboot || result.RebootRequired
			if result.Output != "" {
				output = append(output, result.Output)
			}
			if len(failed) == 0 {
				break
			}
			installErr = fmt.Errorf("%d update(s) failed to install, first %s: %s", len(failed), failed[0].Update.Name, failed[0].Error)
		}
		e.log.Warn("install failed", "run_id", rs.id, "node", name, "attempt", attempt+1, "error", installErr)
	}
	if len(installed) == 0 && len(pendingBefore) > 0 && installErr == nil {
		// An install that ran before a restart leaves nothing to install now: what
		// was pending then and is not pending now was installed.
		now, err := e.cfg.Updater.Scan(ctx, name)
		if err != nil {
			return failNode("scan updates of %s after install: %w", name, err)
		}
		still := map[string]bool{}
		for _, u := range now {
			still[u.Name] = true
		}
		for _, u := range pendingBefore {
			if !still[u.Name] {
				installed = append(installed, u)
			}
		}
		reboot = reboot || len(installed) > 0
	}
	record := func(r *runs.NodeRecord) {
		r.Installed = installed
		r.RebootRequired = reboot || rs.policy.Force
		r.FailedUpdates = nil
		for _, f := range failed {
			r.FailedUpdates = append(r.FailedUpdates, runs.UpdateFailure{Update: runs.Update{Name: f.Update.Name, Version: f.Update.Version}, Error: f.Error})
		}
		for _, o := range output {
			r.Notes = append(r.Notes, "install output: "+o)
		}
	}
	if installErr != nil {
		if _, err := e.persist(rs, name, record); err != nil {
			return err
		}
		return failNode("install updates on %s: %d attempts failed, last: %w", name, rs.policy.RetriesPerNode+1, installErr)
	}
	next := evVerify
	if reboot || rs.policy.Force {
		next = evReboot
	}
	return e.transition(rs, name, next, record)
}

func updateNames(us []runs.Update) string {
	names := make([]string, 0, len(us))
	for _, u := range us {
		names = append(names, u.Name)
	}
	return strings.Join(names, ",")
}
