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
// state: it performs the actions of the node's state (perform: I/O only), hands
// what they came to to the node machine (nodeRules.step: the decisions, pure) and
// writes the decision (transition: the record and the journal in one write, through
// the node's looplab/fsm). A resumed run re-enters the actions of the state it was
// in, and every action is idempotent.
func (e *Engine) processNode(ctx context.Context, rs *runState, name string, index int) error {
	rules := rs.rules()
	for {
		// The machine holds the state; the record was written with it.
		state := rs.machine(name).current()
		if NodeTerminal(state) {
			return nil
		}
		rec := rs.node(name)
		if rec.State != state {
			return fmt.Errorf("node %s: machine in %q, record in %q", name, state, rec.State)
		}
		ev, err := e.perform(ctx, rs, name, rules.actions(rec))
		if err != nil {
			return err
		}
		if ev.kind == evtFailed {
			e.log.Warn("node failed", "run_id", rs.id, "node", name, "error", ev.err)
		}
		d, err := rules.step(rs.node(name), ev)
		if err != nil {
			return fmt.Errorf("node %s: %w", name, err)
		}
		if err := e.transition(rs, name, d.event, d.set); err != nil {
			return err
		}
	}
}

// rules are the settings of the run the node machine decides by.
func (rs *runState) rules() nodeRules {
	return nodeRules{
		force:    rs.policy.Force,
		failback: rs.policy.Failback != FailbackNone,
		preHook:  rs.policy.PreHook.Enabled(),
		postHook: rs.policy.PostHook.Enabled(),
		evacuate: rs.policy.Evacuate,
	}
}

// perform runs the actions of a node's state in order and says what they came to.
// A node failure or a stop is an event for the machine; an interruption, or a state
// that cannot be written, ends the node's processing (the run stops rather than act
// without a record).
func (e *Engine) perform(ctx context.Context, rs *runState, name string, actions []action) (nodeEvent, error) {
	ev := nodeEvent{kind: evtDone}
	for _, a := range actions {
		err := e.do(ctx, rs, name, a, &ev)
		if err != nil {
			if ctx.Err() != nil {
				return ev, fmt.Errorf("%w: %v", ErrInterrupted, ctx.Err())
			}
			if errors.Is(err, ErrInterrupted) {
				return ev, err
			}
			var nf *nodeFailure
			switch {
			case errors.Is(err, errStopped):
				return nodeEvent{kind: evtStopped, reason: rs.pol.stopSkipReason()}, nil
			case errors.As(err, &nf):
				return nodeEvent{kind: evtFailed, err: err}, nil
			}
			return ev, err
		}
		if ev.kind != evtDone {
			break
		}
	}
	return ev, nil
}

// do performs one action; it may add what it observed to ev.
func (e *Engine) do(ctx context.Context, rs *runState, name string, a action, ev *nodeEvent) error {
	switch a {
	case doCheck:
		return e.checkQueued(ctx, rs, name, ev)
	case doPreHook:
		return e.runHook(ctx, rs, name, hookPre)
	case doPause:
		return e.pause(ctx, rs, name)
	case doDrain:
		if rs.stopped() {
			return errStopped
		}
		if err := e.drain(ctx, rs, name); err != nil {
			return err
		}
		if rs.stopped() {
			return errStopped
		}
		return nil
	case doInstall:
		return e.install(ctx, rs, name, ev)
	case doReboot:
		return e.reboot(ctx, rs, name)
	case doWaitBack:
		return e.waitBack(ctx, rs, name)
	case doCheckReady:
		ready, err := e.cfg.Driver.NodeReady(ctx, name)
		if err != nil || !ready {
			return failNode("node %s is not ready after patching (ready=%v, err=%v)", name, ready, err)
		}
		return nil
	case doCheckUpdates:
		return e.checkUpdates(ctx, rs, name)
	case doRestartLeft:
		err := e.restartLeft(ctx, rs, name)
		var nf *nodeFailure
		if rs.node(name).State == NodeResuming && errors.As(err, &nf) {
			// The node is back and resumed: a VM that does not start is noted,
			// and does not fail the node.
			_, err = e.persist(rs, name, func(r *runs.NodeRecord) { r.Errors = append(r.Errors, nf.Error()) })
		}
		return err
	case doPostHook:
		return e.runHook(ctx, rs, name, hookPost)
	case doResume:
		return e.resume(ctx, rs, name, ev)
	case doFailback:
		return e.failback(ctx, rs, name)
	}
	return fmt.Errorf("node %s: unknown action %q", name, a)
}

// checkQueued checks that the node may be taken out now; a node not to be touched
// is an evtSkipped, one that cannot be emptied (or would break the reserve) fails.
func (e *Engine) checkQueued(ctx context.Context, rs *runState, name string, ev *nodeEvent) error {
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
		ev.kind, ev.reason = evtSkipped, fmt.Sprintf("node is %s at its turn; not touched", node.State)
		return nil
	}
	if node.Paused {
		who := "someone else"
		if id, ok := runOfMark(node.PausedBy); ok {
			who = "drover run " + id
		}
		ev.kind, ev.reason = evtSkipped, "node was paused by "+who+" at its turn; drover leaves it alone"
		return nil
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
	ev.bootID = node.BootID
	return nil
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

func (e *Engine) pause(ctx context.Context, rs *runState, name string) error {
	err := e.act(ctx, rs, runs.Entry{Op: runs.OpPause, Node: name}, "", func(ctx context.Context) error {
		return e.cfg.Driver.PauseNode(ctx, name, drivers.PauseMark(rs.id))
	}, func(r *runs.NodeRecord, err error) { r.PausedByUs = r.PausedByUs || err == nil })
	if err != nil {
		if errors.Is(err, ErrInterrupted) {
			return err
		}
		return failNode("pause node %s: %w", name, err)
	}
	return nil
}

// install installs the node's updates; updates found installed by an earlier
// process whose outcome was lost go to ev.found.
func (e *Engine) install(ctx context.Context, rs *runState, name string, ev *nodeEvent) error {
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
	if len(rs.node(name).Installed) == 0 && len(pendingBefore) > 0 {
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
				ev.found = append(ev.found, u)
			}
		}
	}
	return nil
}

func updateNames(us []runs.Update) string {
	names := make([]string, 0, len(us))
	for _, u := range us {
		names = append(names, u.Name)
	}
	return strings.Join(names, ",")
}
