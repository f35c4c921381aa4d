package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/policies"
	"github.com/droverhq/drover/runs"
)

// RunPlan is the plan of a run: the whole run as policies.BuildPlan predicts it on
// the inventory of the run's start, with the timings measured in earlier runs. Start
// stores it in runs.Run.Plan; the drain of each node follows it while it still holds.
type RunPlan struct {
	policies.Plan
	// At is the cluster time the plan was made.
	At time.Time `json:"at"`
	// MeasuredTimings counts the measurements of earlier runs that refined the
	// estimates (0: the model's defaults only).
	MeasuredTimings int `json:"measured_timings"`
	// SchedulerInputs are the drain scheduler's inputs per node and where each
	// comes from (measured, learned, configured, assumed).
	SchedulerInputs []policies.NodeInputs `json:"scheduler_inputs,omitempty"`
}

// Node returns the plan of node name.
func (p *RunPlan) Node(name string) (policies.NodePlan, bool) {
	for _, n := range p.Nodes {
		if n.Node == name {
			return n, true
		}
	}
	return policies.NodePlan{}, false
}

// timingsKept is how many measurements per node and kind refine the estimates: the
// most recent, so that hardware changes age out. The state file keeps no more.
const timingsKept = runs.TimingsKept

// PlanRun prepares a new run and plans it, without changing anything and without a
// state file: `drover plan` and `apply --dry-run`. timings are the measurements of
// earlier runs (runs.Store.Timings), nil when there are none.
func PlanRun(ctx context.Context, d drivers.Driver, u drivers.Updater, p Policy, timings []runs.Timing) (Prepared, error) {
	prep, err := Prepare(ctx, d, u, p)
	if err != nil {
		return prep, err
	}
	prep.Plan, err = buildRunPlan(prep, timings, drivers.ClockOf(d).Now())
	return prep, err
}

// withPlan adds the plan to a prepared run, refined with the cluster's timings.
func (e *Engine) withPlan(prep Prepared) (Prepared, error) {
	ts, err := e.cfg.Store.Timings(e.cfg.Cluster)
	if err != nil {
		return prep, fmt.Errorf("read timings of earlier runs: %w", err)
	}
	prep.Plan, err = buildRunPlan(prep, ts, e.clock.Now())
	return prep, err
}

// buildRunPlan plans the prepared run: its nodes in its order on the inventory the
// order was decided on.
func buildRunPlan(prep Prepared, timings []runs.Timing, now time.Time) (*RunPlan, error) {
	pt, n := PlanTimings(timings)
	rp := &RunPlan{At: now, MeasuredTimings: n}
	_, rp.SchedulerInputs = policies.DrainInputs(prep.inv, policies.LearnLinks(LinkSamples(timings)))
	var nodes []string
	for _, r := range prep.Records {
		if r.State == NodeSkipped {
			rp.Skipped = append(rp.Skipped, policies.SkippedNode{Node: r.Name, Reason: r.SkipReason})
			continue
		}
		nodes = append(nodes, r.Name)
	}
	if len(nodes) == 0 {
		rp.Order, rp.MovesPerVM = []string{}, map[string]int{}
		return rp, nil
	}
	plan, err := policies.BuildPlan(prep.inv, planOptions(prep.Policy, nodes, pt, prep.caps))
	if err != nil {
		return nil, fmt.Errorf("plan the run: %w", err)
	}
	plan.Skipped = rp.Skipped
	rp.Plan = plan
	return rp, nil
}

// planOptions maps a run's policy onto the planner's options; the order is the run's.
func planOptions(p Policy, order []string, t policies.Timings, caps drivers.Capabilities) policies.PlanOptions {
	return policies.PlanOptions{
		MigrateSuspended: caps.MigrateSuspended,
		Order:            policies.OrderOptions{Strategy: policies.OrderExplicit, Nodes: order},
		Placement:        policies.PlacementOptions{CPUOvercommit: p.CPUOvercommit, MemoryHeadroomMiB: p.MemoryHeadroomMiB},
		ReserveK:         p.ReserveNodes,
		OverrideReserve:  p.OverrideReserve,
		NonMigratable:    policies.NonMigratableMode(p.NonMigratable),
		LocalStorage:     p.localStorage(),
		Failback:         policies.FailbackMode(p.Failback),
		Estimate:         policies.EstimateOptions{MaxParallel: p.MaxParallelMigrations, PerNode: p.MaxMigrationsPerNode},
		Timings:          t,
		// The run overlaps nodes where the reserve allows it (parallel.go): so does
		// the ETA.
		MaxParallelNodes: p.MaxParallelNodes,
	}
}

// PlanTimings turns the measurements of earlier runs into the planner's timings
// (reboot and install seconds, migration throughput per source node), keeping the
// most recent timingsKept per node and kind. It returns how many it kept.
func PlanTimings(ts []runs.Timing) (policies.Timings, int) {
	sorted := slices.Clone(ts)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].At.After(sorted[j].At) })
	out := policies.Timings{Nodes: map[string]policies.NodeTimings{}}
	kept := 0
	for _, t := range sorted {
		if t.Node == "" || !(t.Seconds > 0) {
			continue
		}
		nt := out.Nodes[t.Node]
		var list *[]float64
		v := t.Seconds
		switch t.Kind {
		case "reboot":
			list = &nt.RebootSeconds
		case "install":
			list = &nt.InstallSeconds
		case "migration":
			if !(t.MiB > 0) {
				continue
			}
			// Transferred MiB per second over the whole migration: re-sent dirty
			// pages count, so this is the link's rate rather than the VM's.
			list, v = &nt.MigrationMiBs, t.MiB/t.Seconds
		default:
			continue
		}
		if len(*list) >= timingsKept {
			continue
		}
		*list = append(*list, v)
		out.Nodes[t.Node] = nt
		kept++
	}
	return out, kept
}

func encodePlan(p *RunPlan) (json.RawMessage, error) {
	if p == nil {
		return nil, nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode plan: %w", err)
	}
	return b, nil
}

// runPlan is the run's stored plan, decoded once; nil when it has none.
func (e *Engine) runPlan(rs *runState) *RunPlan {
	rs.pol.planOnce.Do(func() {
		r, err := e.cfg.Store.Run(rs.id)
		if err != nil || len(r.Plan) == 0 {
			return
		}
		var p RunPlan
		if err := json.Unmarshal(r.Plan, &p); err != nil {
			e.log.Warn("cannot read the run's plan; placing without it", "run_id", rs.id, "error", err)
			return
		}
		rs.pol.plan = &p
	})
	return rs.pol.plan
}

// followPlan returns the chooser of a node's drain. It follows the plan: each VM goes
// to its planned target while that target is still feasible. What the inventory
// changed since the plan is re-planned, and only that: a VM the plan did not expect
// on the node, or whose planned target no longer fits, gets a target chosen anew (a
// node the plan had blocked is re-planned whole). Re-plans are journaled and noted in
// the node's record.
func (e *Engine) followPlan(rs *runState, name string, inv cluster.Inventory, jobs []migJob, placer *policies.Placer) (chooser, error) {
	plan := e.runPlan(rs)
	if plan == nil {
		return placer, nil
	}
	var free []migJob
	for _, j := range jobs {
		if j.to == "" {
			free = append(free, j)
		}
	}
	if len(free) == 0 {
		return placer, nil
	}
	np, ok := plan.Node(name)
	if !ok || np.Status != policies.NodePlanned {
		why := "the plan did not include it"
		if ok {
			why = "the plan had it blocked: " + strings.Join(np.Blocked, "; ")
		}
		return placer, e.planNote(rs, name, "plan: node re-planned, "+why)
	}
	planned := map[string]string{}
	for _, m := range np.Migrations {
		planned[m.VM] = m.To
	}
	// Check the planned targets on a scratch model, in the order migrate starts the
	// VMs, so that the real placer is only asked for targets that fit together.
	scratch := policies.NewPlacer(inv, e.placementOptions(rs, inv))
	sort.SliceStable(free, func(i, j int) bool { return free[i].vm.MemoryMiB > free[j].vm.MemoryMiB })
	follow := map[string]string{}
	var added, misfit []string
	for _, j := range free {
		t, ok := planned[j.vm.Name]
		if !ok {
			added = append(added, j.vm.Name)
			continue
		}
		if err := scratch.PlaceOn(j.vm, t); err != nil {
			misfit = append(misfit, fmt.Sprintf("vm %s: planned target %s no longer fits (%v)", j.vm.Name, t, err))
			continue
		}
		follow[j.vm.Name] = t
	}
	chosen := &planChooser{placer: placer, follow: follow}
	if len(added)+len(misfit) == 0 {
		_, err := e.journal(rs, runs.Entry{Op: opPlan, Status: runs.StatusEvent, Node: name, Detail: fmt.Sprintf("drain follows the plan (%d VMs)", len(follow))})
		return chosen, err
	}
	var what []string
	if len(added) > 0 {
		sort.Strings(added)
		what = append(what, "not expected on the node: "+strings.Join(added, ", "))
	}
	what = append(what, misfit...)
	note := fmt.Sprintf("plan: node re-planned in part, the inventory changed since the plan (%s); %d VMs follow the plan", strings.Join(what, "; "), len(follow))
	return chosen, e.planNote(rs, name, note)
}

// planNote journals a deviation from the plan and notes it for the report (once).
func (e *Engine) planNote(rs *runState, node, note string) error {
	if slices.Contains(rs.node(node).Notes, note) {
		return nil
	}
	e.log.Info("drain deviates from the plan", "run_id", rs.id, "node", node, "reason", note)
	if _, err := e.journal(rs, runs.Entry{Op: opPlan, Status: runs.StatusEvent, Node: node, Detail: note}); err != nil {
		return err
	}
	return e.addNotes(rs, node, []string{note})
}

// planChooser places the VMs of a drain on their planned targets, and the others (or
// a VM whose planned target stopped fitting during the drain) with the placer.
type planChooser struct {
	placer *policies.Placer

	mu     sync.Mutex
	follow map[string]string // VM -> planned target
}

// Place reserves vm on its planned target; a busy planned target makes the VM wait
// (ErrTargetsBusy) rather than go elsewhere.
func (c *planChooser) Place(vm cluster.VM, avoid map[string]bool) (string, error) {
	c.mu.Lock()
	t, ok := c.follow[vm.Name]
	c.mu.Unlock()
	if ok {
		if avoid[t] {
			return "", fmt.Errorf("place vm %s: %w: planned target %s", vm.Name, policies.ErrTargetsBusy, t)
		}
		if err := c.placer.PlaceOn(vm, t); err == nil {
			return t, nil
		}
		c.mu.Lock()
		delete(c.follow, vm.Name)
		c.mu.Unlock()
	}
	return c.placer.Place(vm, avoid)
}

// Cancel undoes a Place.
func (c *planChooser) Cancel(vm cluster.VM, target string) { c.placer.Cancel(vm, target) }

var _ chooser = (*planChooser)(nil)
