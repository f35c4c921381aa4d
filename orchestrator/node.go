package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
		// The machine holds the state; the record was written with it.
		state := rs.machine(name).current()
		if NodeTerminal(state) {
			return nil
		}
		var err error
		switch state {
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
			return fmt.Errorf("node %s: unknown state %q in the state file", name, state)
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
		who := "someone else"
		if id, ok := runOfMark(node.PausedBy); ok {
			who = "drover run " + id
		}
		return e.transition(rs, name, evSkip, func(r *runs.NodeRecord) {
			r.SkipReason = "node was paused by " + who + " at its turn; drover leaves it alone"
		})
	}
	if split := e.splitVMs(rs, rs.policy.movableInventory(inv).VMsOn(name)); len(split.Blocking) > 0 {
		return failNode("node %s cannot be emptied: %s; the node is not patched%s", name, describeNotes(split.Blocking), blockingFix(rs.policy))
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

// splitVMs is the run's one classification of a node's VMs (policies.SplitVMs) under
// its policy and the driver's capabilities: plan, drain and reboot guard use it.
func (e *Engine) splitVMs(rs *runState, vms []cluster.VM) policies.Split {
	return policies.SplitVMs(vms, policies.SplitOptions{
		Mode:             policies.NonMigratableMode(rs.policy.NonMigratable),
		MigrateSuspended: e.cfg.Driver.Capabilities().MigrateSuspended,
		LocalStorage:     rs.policy.localStorage(),
	})
}

func describeNotes(ns []policies.VMNote) string {
	out := make([]string, 0, len(ns))
	for _, n := range ns {
		out = append(out, fmt.Sprintf("vm %s (%s)", n.VM, n.Reason))
	}
	return strings.Join(out, ", ")
}

// blockingFix says how to patch a node whose VMs block it, when the policy can.
func blockingFix(p Policy) string {
	switch {
	case p.NonMigratable == NonMigratableFail || p.NonMigratable == "":
		return " (policy.non_migratable=fail, policy.local_storage for VMs with local disks; use shutdown or skip to patch it anyway)"
	case p.LocalStorage == LocalStorageFail:
		return fmt.Sprintf(" (policy.local_storage=%s decides for VMs with local disks; use shutdown or skip to patch it anyway)", p.LocalStorage)
	}
	return ""
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

func (e *Engine) stepPausing(ctx context.Context, rs *runState, name string) error {
	err := e.act(ctx, rs, runs.Entry{Op: runs.OpPause, Node: name}, "", func(ctx context.Context) error {
		return e.cfg.Driver.PauseNode(ctx, name, drivers.PauseMark(rs.id))
	}, func(r *runs.NodeRecord, err error) { r.PausedByUs = r.PausedByUs || err == nil })
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
	if rs.policy.Evacuate {
		return e.evacuated(rs, name)
	}
	return e.transition(rs, name, evPatch, nil)
}

func (e *Engine) stepPatching(ctx context.Context, rs *runState, name string) error {
	pendingBefore := rs.node(name).Pending
	var installErr error
	// An install is retried when the plug-in fails or reports updates that did not
	// install; what one attempt installed stays installed. Each attempt's outcome is
	// written with what it installed, in one transaction, and keyed: a resumed run
	// goes on after the last closed attempt instead of installing again.
	for attempt := 0; attempt <= rs.policy.RetriesPerNode; attempt++ {
		var result drivers.InstallResult
		installErr = e.act(ctx, rs, runs.Entry{Op: runs.OpInstall, Node: name, Detail: updateNames(pendingBefore)}, actKey(runs.OpInstall, strconv.Itoa(attempt)), func(ctx context.Context) error {
			var err error
			result, err = e.cfg.Updater.Install(drivers.WithRunID(ctx, rs.id), name)
			return err
		}, func(r *runs.NodeRecord, err error) {
			if err != nil {
				return
			}
			r.Installed = append(r.Installed, toRunUpdates(result.Installed)...)
			r.RebootRequired = r.RebootRequired || result.RebootRequired
			r.FailedUpdates = nil
			for _, f := range result.Failed {
				r.FailedUpdates = append(r.FailedUpdates, runs.UpdateFailure{Update: runs.Update{Name: f.Update.Name, Version: f.Update.Version}, Error: f.Error})
			}
			if result.Output != "" {
				r.Notes = append(r.Notes, "install output: "+result.Output)
			}
		})
		if errors.Is(installErr, ErrInterrupted) {
			return installErr
		}
		if installErr == nil {
			failed := rs.node(name).FailedUpdates
			if len(failed) == 0 {
				break
			}
			installErr = fmt.Errorf("%d update(s) failed to install, first %s: %s", len(failed), failed[0].Name, failed[0].Error)
		}
		e.log.Warn("install failed", "run_id", rs.id, "node", name, "attempt", attempt+1, "error", installErr)
	}
	if installErr != nil {
		return failNode("install updates on %s: %d attempts failed, last: %w", name, rs.policy.RetriesPerNode+1, installErr)
	}
	rec := rs.node(name)
	var found []runs.Update
	if len(rec.Installed) == 0 && len(pendingBefore) > 0 {
		// An install that took effect before a restart, its outcome lost, leaves
		// nothing to install now: what was pending then and is not pending now was
		// installed.
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
				found = append(found, u)
			}
		}
	}
	reboot := rec.RebootRequired || len(found) > 0 || rs.policy.Force
	next := evVerify
	if reboot {
		next = evReboot
	}
	return e.transition(rs, name, next, func(r *runs.NodeRecord) {
		r.Installed = append(r.Installed, found...)
		r.RebootRequired = reboot
	})
}

func updateNames(us []runs.Update) string {
	names := make([]string, 0, len(us))
	for _, u := range us {
		names = append(names, u.Name)
	}
	return strings.Join(names, ",")
}
