package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/policies"
	"github.com/droverhq/drover/runs"
)

// drain empties a paused node: every running VM moves away, or is shut down or left
// according to policy.non_migratable.
func (e *Engine) drain(ctx context.Context, rs *runState, name string) error {
	dctx := ctx
	if d := rs.policy.DrainTimeout.D(); d > 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, e.clock.WallDuration(d))
		defer cancel()
	}
	const maxPasses = 3
	for pass := 0; ; pass++ {
		inv, err := e.cfg.Driver.Inventory(dctx)
		if err != nil {
			return e.drainErr(ctx, dctx, rs, failNode("read inventory while draining %s: %w", name, err))
		}
		inv = rs.policy.movableInventory(inv)
		joins, err := e.reconcileMigrations(rs, inv, name)
		if err != nil {
			return err
		}
		joining := map[string]bool{}
		for _, j := range joins {
			joining[j.vm.Name] = true
		}
		left := rs.node(name).VMsLeft
		handled := map[string]bool{}
		for _, l := range left {
			// A VM recorded for shutdown that still runs (the process died before
			// the shutdown took effect) is shut down again below.
			handled[l.VM] = l.Action != "shutdown"
		}
		split := e.splitVMs(rs, inv.VMsOn(name))
		if len(split.Blocking) > 0 {
			return failNode("node %s cannot be emptied: %s; the node is not patched%s", name, describeNotes(split.Blocking), blockingFix(rs.policy))
		}
		var jobs []migJob
		for _, vm := range split.Migrate {
			switch {
			case joining[vm.Name], handled[vm.Name]:
			case vm.MigratingTo != "":
				// Moving, but not by an intent of ours (another tool, or an intent
				// lost with a crash before it was written): join it, journaled anew.
				jobs = append(jobs, migJob{vm: vm, from: name, to: vm.MigratingTo, kind: runs.KindDrain})
			default:
				jobs = append(jobs, migJob{vm: vm, from: name, kind: runs.KindDrain})
			}
		}
		var shutdown []cluster.VM
		for _, vm := range split.Shutdown {
			if !handled[vm.Name] {
				shutdown = append(shutdown, vm)
			}
		}
		var skip []policies.VMNote
		for _, n := range split.Skip {
			if !handled[n.VM] {
				skip = append(skip, n)
			}
		}
		jobs = append(joins, jobs...)
		if len(jobs) == 0 {
			return e.leaveVMs(dctx, rs, name, shutdown, skip)
		}
		if nd, ok := e.nativeDrainer(); ok && pass == 0 {
			// The platform places and moves the VMs itself (Hyper-V's
			// Suspend-ClusterNode -Drain); what it leaves behind, Drover moves on
			// the next pass with its own placement.
			err := e.act(dctx, rs, runs.Entry{Op: runs.OpDrain, Node: name}, "", func(ctx context.Context) error {
				return nd.DrainNode(ctx, name, func(p drivers.MigrationProgress) {
					e.emit(Event{Kind: EventMigrationProgress, RunID: rs.id, Node: name, VM: p.VM, From: p.From, To: p.To, Progress: &p})
				})
			}, nil)
			if err != nil {
				if rs.stopped() {
					return errStopped
				}
				if dctx.Err() != nil || errors.Is(err, ErrInterrupted) {
					return e.drainErr(ctx, dctx, rs, err)
				}
				e.log.Warn("native drain failed, drover moves the rest", "run_id", rs.id, "node", name, "error", err)
			}
			continue
		}
		if pass == maxPasses {
			return failNode("node %s still runs %d VMs after %d drain passes", name, len(jobs), maxPasses)
		}
		rs.limiter.setLinks(policies.LinksOf(inv))
		shared, release := rs.placer.acquire(inv, e.placementOptions(rs, inv))
		placer, err := e.followPlan(rs, name, inv, jobs, shared)
		if err != nil {
			release()
			return err
		}
		failed, err := e.migrate(dctx, rs, name, jobs, runRanker{placer, rs})
		release()
		if err != nil {
			return e.drainErr(ctx, dctx, rs, err)
		}
		if rs.stopped() {
			return errStopped
		}
		if dctx.Err() != nil {
			return e.drainErr(ctx, dctx, rs, dctx.Err())
		}
		if len(failed) > 0 {
			return failNode("drain of %s failed: %w", name, joinSorted(failed))
		}
	}
}

// nativeDrainer returns the driver's own drain when the platform is configured to
// drain nodes itself (Capabilities.NativeDrain).
func (e *Engine) nativeDrainer() (drivers.NativeDrainer, bool) {
	nd, ok := e.cfg.Driver.(drivers.NativeDrainer)
	return nd, ok && e.cfg.Driver.Capabilities().NativeDrain
}

// drainErr tells an interruption of the run from the drain's own timeout.
func (e *Engine) drainErr(ctx, dctx context.Context, rs *runState, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %v", ErrInterrupted, ctx.Err())
	}
	if dctx.Err() != nil {
		return failNode("drain did not finish within policy.drain_timeout (%s)", rs.policy.DrainTimeout.D())
	}
	return err
}

func joinSorted(m map[string]error) error {
	errs := make([]error, 0, len(m))
	for _, k := range sortedKeys(m) {
		errs = append(errs, m[k])
	}
	return errors.Join(errs...)
}

// leaveVMs handles the non-migratable VMs once everything else has moved: shut them
// down (restarted once the node is back) or leave them running, loudly.
func (e *Engine) leaveVMs(ctx context.Context, rs *runState, name string, shutdown []cluster.VM, skip []policies.VMNote) error {
	for _, n := range skip {
		msg := fmt.Sprintf("vm %s cannot leave %s and is LEFT ON IT (policy.non_migratable=skip): %s", n.VM, name, n.Reason)
		e.log.Warn("vm left on node", "run_id", rs.id, "node", name, "vm", n.VM, "reason", n.Reason)
		e.emit(Event{Kind: EventWarning, RunID: rs.id, Node: name, VM: n.VM, Message: msg})
		if _, err := e.persist(rs, name, func(r *runs.NodeRecord) {
			r.VMsLeft = append(r.VMsLeft, runs.VMLeft{VM: n.VM, Action: "skipped", Reason: "vm " + n.VM + ": " + n.Reason})
		}); err != nil {
			return err
		}
	}
	for _, l := range rs.node(name).VMsLeft {
		if l.Action == "shutdown" && !slices.ContainsFunc(shutdown, func(vm cluster.VM) bool { return vm.Name == l.VM }) {
			// Recorded and no longer running: shut down by a process that died
			// before journaling it.
			if err := e.settleIntent(rs, runs.Entry{Op: runs.OpShutdown, Node: name, VM: l.VM}, actKey(runs.OpShutdown, l.VM), "found stopped after a restart", nil); err != nil {
				return err
			}
		}
	}
	if len(shutdown) == 0 {
		return nil
	}
	pc, ok := e.cfg.Driver.(drivers.PowerController)
	if !ok {
		return failNode("policy.non_migratable=shutdown, but this driver cannot shut VMs down")
	}
	for _, vm := range shutdown {
		// Record the VM before shutting it down: once stopped it looks like any
		// stopped VM, and a process that died right after the shutdown must still
		// know to start it again after the patch.
		if !slices.ContainsFunc(rs.node(name).VMsLeft, func(l runs.VMLeft) bool { return l.VM == vm.Name }) {
			if _, err := e.persist(rs, name, func(r *runs.NodeRecord) {
				r.VMsLeft = append(r.VMsLeft, runs.VMLeft{VM: vm.Name, Action: "shutdown", Reason: shutdownReason(vm)})
			}); err != nil {
				return err
			}
		}
		err := e.act(ctx, rs, runs.Entry{Op: runs.OpShutdown, Node: name, VM: vm.Name}, actKey(runs.OpShutdown, vm.Name), func(ctx context.Context) error {
			return pc.ShutdownVM(ctx, vm.Name)
		}, nil)
		if err != nil {
			if errors.Is(err, ErrInterrupted) {
				return err
			}
			return failNode("shut down vm %s: %w", vm.Name, err)
		}
	}
	return nil
}

func shutdownReason(vm cluster.VM) string {
	if policies.Classify(vm) == policies.ClassSaved && vm.Migratable {
		return "vm " + vm.Name + " is suspended and the driver cannot migrate saved state: shut down, its saved state is lost"
	}
	return describeStuck(vm) + " cannot live-migrate"
}

// placementOptions builds the placer's view: nodes in maintenance, or about to enter
// it, take nothing; nodes already patched are preferred, then nodes outside the run,
// then the nodes still queued, so a drained VM is not moved again when a later node
// is drained.
func (e *Engine) placementOptions(rs *runState, inv cluster.Inventory) policies.PlacementOptions {
	opts := policies.PlacementOptions{
		CPUOvercommit:     rs.policy.CPUOvercommit,
		MemoryHeadroomMiB: rs.policy.MemoryHeadroomMiB,
		Unavailable:       map[string]string{},
		Rank:              map[string]int{},
	}
	claimed := rs.limiter.claimedNodes(rs)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, name := range rs.order {
		st := rs.nodes[name].State
		switch {
		case nodeInMaintenance(st) || claimed[name]:
			opts.Unavailable[name] = "in maintenance"
		case st == NodeDone || st == NodeResuming || st == NodeFailingBack:
			opts.Rank[name] = 0
		case st == NodeQueued:
			opts.Rank[name] = 2
		}
	}
	return opts
}
