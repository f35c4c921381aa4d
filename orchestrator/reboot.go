package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/policies"
	"github.com/droverhq/drover/runs"
)

// Keys of the actions that must never run twice (runs.NodeRecord.Outcomes).
const actReboot = "reboot"

func actKey(op runs.Op, what string) string { return string(op) + ":" + what }

// reboot reboots the node once, after the guard: a node that still holds a VM's
// state is never rebooted.
func (e *Engine) reboot(ctx context.Context, rs *runState, name string) error {
	rec := rs.node(name)
	if rec.Rebooted {
		return nil
	}
	inv, err := e.cfg.Driver.Inventory(ctx)
	if err != nil {
		return failNode("read inventory before rebooting %s: %w", name, err)
	}
	// Safety invariant 1: never reboot a node that still holds a VM's state
	// (running, suspended, or of unknown power state), except VMs the policy
	// deliberately left there (and the report names them).
	left := map[string]bool{}
	for _, l := range rec.VMsLeft {
		// Only skipped VMs may still hold state: one shut down for the patch must be off.
		left[l.VM] = l.Action == "skipped"
	}
	var still []string
	for _, vm := range inv.VMsOn(name) {
		if c := policies.Classify(vm); c != policies.ClassStopped && !left[vm.Name] {
			still = append(still, fmt.Sprintf("%s (%s)", vm.Name, c))
		}
	}
	if len(still) > 0 {
		return failNode("refusing to reboot %s: it still holds %s", name, strings.Join(still, ", "))
	}
	node, _ := inv.Node(name)
	issued, err := e.rebootAlreadyIssued(rs, name, rec, node)
	if err != nil {
		return err
	}
	if !issued {
		err := e.act(ctx, rs, runs.Entry{Op: runs.OpReboot, Node: name, Detail: "boot id before: " + rec.BootIDBefore}, actReboot, func(ctx context.Context) error {
			return e.cfg.Driver.RebootNode(ctx, name)
		}, func(r *runs.NodeRecord, err error) { r.Rebooted = err == nil })
		if err != nil {
			if errors.Is(err, ErrInterrupted) {
				return err
			}
			return failNode("reboot %s: %w", name, err)
		}
	}
	return nil
}

// rebootAlreadyIssued settles a reboot intent left open by an interrupted run: the
// node is down or has a new boot ID, so the reboot happened and is not repeated.
func (e *Engine) rebootAlreadyIssued(rs *runState, name string, rec runs.NodeRecord, node cluster.Node) (bool, error) {
	seq, err := e.openIntent(rs, runs.Entry{Op: runs.OpReboot, Node: name})
	if err != nil || seq == 0 {
		return false, err
	}
	newBoot := rec.BootIDBefore != "" && node.BootID != "" && node.BootID != rec.BootIDBefore
	if node.Ready() && !newBoot {
		return false, nil
	}
	err = e.closeIntent(rs, runs.Entry{Op: runs.OpReboot, Node: name}, seq, actReboot, nil,
		fmt.Sprintf("found %s with boot id %q after a restart", node.State, node.BootID),
		func(r *runs.NodeRecord, _ error) {
			r.Rebooted = true
			r.SeenDown = r.SeenDown || !node.Ready()
		})
	return err == nil, err
}

// waitBack polls until the node is back after its reboot, up to
// policy.reboot_timeout. A "ready" answer alone proves nothing: it may come from the
// old system seconds before it goes down. Back means ready with evidence that the
// node went down and came back: a new boot ID where the platform reports one, else
// the node seen not ready since the reboot command (persisted, so that a resumed run
// knows it), else, only with policy.reboot_evidence=first_ready, nothing more.
func (e *Engine) waitBack(ctx context.Context, rs *runState, name string) error {
	timeout := rs.policy.RebootTimeout.D()
	// Counted from the reboot command, also across a restart; at least one poll,
	// so that a node that came back while no process watched is seen.
	left := max(e.timeLeft(rs, name, "reboot_timeout", e.rebootIssuedAt(rs, name), timeout), rs.policy.PollInterval.D())
	wctx, cancel := context.WithTimeout(ctx, e.clock.WallDuration(left))
	defer cancel()
	before := rs.node(name).BootIDBefore
	bootIDs := before != "" && e.cfg.Driver.Capabilities().BootID
	poll := time.NewTicker(e.clock.WallDuration(rs.policy.PollInterval.D()))
	defer poll.Stop()
	unproven := false // answered ready without evidence of a reboot
	for {
		ready, err := e.cfg.Driver.NodeReady(wctx, name)
		switch {
		case err == nil && !ready && !rs.node(name).SeenDown:
			if _, err := e.persist(rs, name, func(r *runs.NodeRecord) { r.SeenDown = true }); err != nil {
				return err
			}
		case err == nil && ready:
			if e.rebootProven(wctx, rs, name, bootIDs, before) {
				return nil
			}
			unproven = true
		}
		select {
		case <-poll.C:
		case <-wctx.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("%w: %v", ErrInterrupted, ctx.Err())
			}
			if unproven {
				return failNode("node %s answers ready, but within policy.reboot_timeout (%s) there was no evidence that it rebooted (%s); if the platform reports no boot ID and the node reboots faster than policy.poll_interval, set policy.reboot_evidence=first_ready", name, timeout, missingEvidence(bootIDs))
			}
			return failNode("node %s did not come back within policy.reboot_timeout (%s) after its reboot", name, timeout)
		}
	}
}

// rebootProven reports whether a ready node shows evidence of its reboot.
func (e *Engine) rebootProven(ctx context.Context, rs *runState, name string, bootIDs bool, before string) bool {
	if bootIDs {
		inv, err := e.cfg.Driver.Inventory(ctx)
		if err != nil {
			return false
		}
		n, ok := inv.Node(name)
		return ok && n.BootID != "" && n.BootID != before
	}
	return rs.node(name).SeenDown || rs.policy.RebootEvidence == RebootEvidenceFirstReady
}

func missingEvidence(bootIDs bool) string {
	if bootIDs {
		return "its boot ID did not change"
	}
	return "the platform reports no boot ID and drover never saw the node down"
}

// checkUpdates fails the node when an update it installed is still pending after
// its reboot.
func (e *Engine) checkUpdates(ctx context.Context, rs *runState, name string) error {
	rec := rs.node(name)
	pending, err := e.cfg.Updater.Scan(ctx, name)
	if err != nil {
		return failNode("scan updates of %s after its reboot: %w", name, err)
	}
	installed := map[string]bool{}
	for _, u := range rec.Installed {
		installed[u.Name] = true
	}
	var still []string
	for _, u := range pending {
		if installed[u.Name] {
			still = append(still, u.Name)
		}
	}
	if len(still) > 0 {
		return failNode("updates still pending on %s after its reboot: %s", name, strings.Join(still, ", "))
	}
	return nil
}

// restartLeft starts the VMs shut down for the patch.
func (e *Engine) restartLeft(ctx context.Context, rs *runState, name string) error {
	for _, l := range rs.node(name).VMsLeft {
		if l.Action != "shutdown" || l.Restarted {
			continue
		}
		pc, ok := e.cfg.Driver.(drivers.PowerController)
		if !ok {
			return failNode("cannot restart vm %s: driver has no power control", l.VM)
		}
		vm := l.VM
		// Not keyed: a start that failed may be tried again (in resuming); one that
		// worked is marked Restarted in the same write as its outcome.
		err := e.act(ctx, rs, runs.Entry{Op: runs.OpStart, Node: name, VM: vm}, "", func(ctx context.Context) error {
			return pc.StartVM(ctx, vm)
		}, func(r *runs.NodeRecord, err error) {
			for i := range r.VMsLeft {
				if r.VMsLeft[i].VM == vm {
					r.VMsLeft[i].Restarted = err == nil
				}
			}
		})
		if err != nil {
			if errors.Is(err, ErrInterrupted) {
				return err
			}
			return failNode("restart vm %s: %w", vm, err)
		}
	}
	return nil
}

// resume lifts the run's own pause of the node; a node that cannot be resumed (gone,
// not ready, paused by another, or the resume failed) is an evtLeftPaused.
func (e *Engine) resume(ctx context.Context, rs *runState, name string, ev *nodeEvent) error {
	inv, err := e.cfg.Driver.Inventory(ctx)
	if err != nil {
		return failNode("read inventory before resuming %s: %w", name, err)
	}
	node, ok := inv.Node(name)
	var leftPaused string
	switch {
	case !ok:
		leftPaused = "node is gone from the inventory"
	case !node.Ready():
		// A node that did not come back stays paused: an admin must look at it
		// before it takes VMs again.
		leftPaused = fmt.Sprintf("node is %s; drover does not resume a node it cannot verify: check it, then resume it on the platform", node.State)
	case node.Paused:
		ours, err := e.pauseIsOurs(rs, node)
		if err != nil {
			return err
		}
		if !ours {
			// Another run's (or an admin's) pause: never lifted by this run.
			leftPaused = fmt.Sprintf("node is paused by %s, not by this run; drover leaves it alone", orUnmarked(node.PausedBy))
			break
		}
		err = e.act(ctx, rs, runs.Entry{Op: runs.OpResume, Node: name}, "", func(ctx context.Context) error {
			return e.cfg.Driver.ResumeNode(ctx, name)
		}, nil)
		if errors.Is(err, ErrInterrupted) {
			return err
		}
		if err != nil {
			leftPaused = "resume failed: " + err.Error()
		}
	default:
		// Already resumed: a resume of an earlier process took effect before its
		// outcome was journaled. Close that intent: the journal must say what
		// happened.
		if err := e.settleIntent(rs, runs.Entry{Op: runs.OpResume, Node: name}, "", "found resumed after a restart", nil); err != nil {
			return err
		}
	}
	if leftPaused != "" {
		e.log.Error("node left paused", "run_id", rs.id, "node", name, "reason", leftPaused)
		e.emit(Event{Kind: EventWarning, RunID: rs.id, Node: name, Message: "node left paused: " + leftPaused})
		ev.kind, ev.reason = evtLeftPaused, leftPaused
	}
	return nil
}

func orUnmarked(mark string) string {
	if mark == "" {
		return "someone else (no owner mark)"
	}
	return mark
}

// failback moves the VMs drained off the node back to it, unless the run was
// stopped meanwhile.
func (e *Engine) failback(ctx context.Context, rs *runState, name string) error {
	if rs.stopped() {
		return nil
	}
	inv, err := e.cfg.Driver.Inventory(ctx)
	if err != nil {
		return failNode("read inventory before failback to %s: %w", name, err)
	}
	joins, err := e.reconcileMigrations(rs, inv, name)
	if err != nil {
		return err
	}
	jobs := append([]migJob(nil), joins...)
	seen := map[string]bool{}
	for _, j := range joins {
		seen[j.vm.Name] = true
	}
	for _, m := range rs.node(name).Migrations {
		if m.Kind != runs.KindDrain || !m.OK || seen[m.VM] {
			continue
		}
		seen[m.VM] = true
		vm, ok := inv.VM(m.VM)
		if !ok || vm.Node != m.To || !policies.Classify(vm).HoldsState() || vm.MigratingTo != "" {
			continue // moved on, stopped or gone since: leave it where it is
		}
		jobs = append(jobs, migJob{vm: vm, from: m.To, to: name, kind: runs.KindFailback})
	}
	if jobs, err = e.failbackAllowed(rs, name, inv, jobs, len(joins)); err != nil {
		return err
	}
	if len(jobs) > 0 {
		failed, err := e.migrate(ctx, rs, name, jobs, nil)
		if err != nil {
			return err
		}
		if len(failed) > 0 {
			msg := fmt.Sprintf("failback to %s incomplete: %v", name, joinSorted(failed))
			e.emit(Event{Kind: EventWarning, RunID: rs.id, Node: name, Message: msg})
			if _, err := e.persist(rs, name, func(r *runs.NodeRecord) { r.Notes = append(r.Notes, msg) }); err != nil {
				return err
			}
		}
	}
	return nil
}
