package policies

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/droverhq/drover/cluster"
)

// PlanOptions configures BuildPlan.
type PlanOptions struct {
	Order OrderOptions `json:"order"`
	// Placement: capacity rule and nodes excluded from placements for the whole run.
	// Its Rank applies to nodes outside the run; the plan ranks the run's own nodes
	// (patched 0, not yet patched 2) so each VM moves once where capacity allows.
	Placement PlacementOptions `json:"placement"`
	// ReserveK is the number of node failures the cluster must survive while a node is
	// out; a node whose maintenance would break it is blocked unless OverrideReserve.
	ReserveK        int  `json:"reserve_k"`
	OverrideReserve bool `json:"override_reserve"`
	// ReserveMaxFailureSets bounds the per-VM reserve check per node (0 =
	// DefaultMaxFailureSets); see ReserveResult.
	ReserveMaxFailureSets int               `json:"reserve_max_failure_sets,omitempty"`
	NonMigratable         NonMigratableMode `json:"non_migratable"`
	// MigrateSuspended: the driver moves suspended VMs as saved state
	// (drivers.Capabilities.MigrateSuspended); without it they cannot leave a node.
	MigrateSuspended bool `json:"migrate_suspended,omitempty"`
	// LocalStorage decides for VMs with local disks (zero: as the driver says).
	LocalStorage LocalStorage `json:"local_storage,omitzero"`
	// Failback: policy mode is planned as "VMs whose PreferredNode is the node go back";
	// their allowed hours are evaluated at run time (FailbackTargets).
	Failback FailbackMode    `json:"failback"`
	Estimate EstimateOptions `json:"estimate"`
	Timings  Timings         `json:"timings"`
	// MaxParallelNodes is how many nodes may be in maintenance at once (0 or 1: one at
	// a time). As the run does it, a node joins those in maintenance only when the
	// reserve (ReserveK; with k=0 the capacity alone) holds with all of them out; it
	// shortens the ETA, targets are still planned one node after the other.
	MaxParallelNodes int `json:"max_parallel_nodes,omitempty"`
}

// NodeStatus is the planned outcome of a node.
type NodeStatus string

const (
	// NodePlanned: the node can be drained, patched and resumed as planned.
	NodePlanned NodeStatus = "planned"
	// NodeBlocked: the node cannot be maintained; Blocked says why. Its VMs stay.
	NodeBlocked NodeStatus = "blocked"
)

// Plan is a whole run as BuildPlan predicts it.
type Plan struct {
	Order   []string      `json:"order"`
	Skipped []SkippedNode `json:"skipped,omitempty"`
	Nodes   []NodePlan    `json:"nodes"`
	// Blocked counts the nodes that cannot be maintained.
	Blocked int `json:"blocked"`
	// Migrations counts every planned live migration (drains and failbacks).
	Migrations int `json:"migrations"`
	// MovesPerVM: how often each moved VM moves in the run; MovedMoreThanOnce counts
	// the VMs moved twice or more (the plan tries to keep it 0).
	MovesPerVM        map[string]int `json:"moves_per_vm"`
	MovedMoreThanOnce int            `json:"moved_more_than_once"`
	// ETA is the predicted duration of the run: nodes are maintained one at a time,
	// or up to PlanOptions.MaxParallelNodes at once where the reserve allows it.
	ETA      time.Duration `json:"eta"`
	Warnings []string      `json:"warnings,omitempty"`
}

// Migration is one planned live migration.
type Migration struct {
	VM        string `json:"vm"`
	From      string `json:"from"`
	To        string `json:"to"`
	MemoryMiB int64  `json:"memory_mib"`
	// DiskMiB is the size of the local disks copied with the VM (storage migration).
	DiskMiB  int64         `json:"disk_mib"`
	Duration time.Duration `json:"duration"`
	// Converges is false when the VM dirties memory faster than its bandwidth (see
	// MigrationSeconds); Measured is true when Duration comes from measured throughput.
	Converges bool `json:"converges"`
	Measured  bool `json:"measured,omitempty"`
}

// UnplacedVM is a VM the plan found no target for.
type UnplacedVM struct {
	VM    string `json:"vm"`
	Error string `json:"error"`
	// Refusals: per node, why it was refused (for the first few VMs of a node only).
	Refusals []Refusal `json:"refusals,omitempty"`
}

// NodePlan is the plan of one node.
type NodePlan struct {
	Node    string     `json:"node"`
	Status  NodeStatus `json:"status"`
	Blocked []string   `json:"blocked,omitempty"`
	// Migrations drain the node (empty when blocked: nothing moves).
	Migrations []Migration   `json:"migrations,omitempty"`
	Unplaced   []UnplacedVM  `json:"unplaced,omitempty"`
	Shutdown   []string      `json:"shutdown,omitempty"`
	LeftOn     []VMNote      `json:"left_running,omitempty"`
	Blocking   []VMNote      `json:"blocking,omitempty"`
	Reserve    ReserveResult `json:"reserve"`
	Failback   []Migration   `json:"failback,omitempty"`
	Warnings   []string      `json:"warnings,omitempty"`
	// Predicted durations, and the node's start and end relative to the run's start.
	Drain        time.Duration `json:"drain"`
	Install      time.Duration `json:"install"`
	Reboot       time.Duration `json:"reboot"`
	FailbackTime time.Duration `json:"failback_time"`
	Start        time.Duration `json:"start"`
	End          time.Duration `json:"end"`
}

// maxExplainedPerNode bounds the refusal lists of a node's unplaced VMs: a full
// cluster would otherwise produce nodes x VMs refusals.
const maxExplainedPerNode = 10

// Validate checks the options.
func (o PlanOptions) Validate() error {
	var errs []error
	if err := o.Placement.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := o.Estimate.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.ReserveK < 0 {
		errs = append(errs, fieldf("reserve_k", "use 0 (no reserve) or the number of node failures to survive", "%d is negative", o.ReserveK))
	}
	if o.MaxParallelNodes < 0 {
		errs = append(errs, fieldf("max_parallel_nodes", "use 1 (one node at a time) or more", "%d is negative", o.MaxParallelNodes))
	}
	if _, err := ParseLocalStorageMode(string(o.LocalStorage.Mode)); err != nil {
		errs = append(errs, err)
	}
	if _, err := ParseNonMigratableMode(string(o.NonMigratable)); err != nil {
		errs = append(errs, err)
	}
	if _, err := ParseFailbackMode(string(o.Failback)); err != nil {
		errs = append(errs, err)
	}
	if _, err := ParseOrderStrategy(string(o.Order.Strategy)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// BuildPlan predicts a whole run: the node order, and for each node in turn, on the
// cluster as it evolves (nodes patched so far are back, the node in maintenance takes
// no placements), the target of every VM, the N-k reserve while it is out, what happens
// to non-migratable VMs, failbacks, and predicted times. A node that cannot be drained
// (VMs without target, a blocking VM) or whose absence breaks the reserve is blocked:
// its placements are undone and it is not patched, the run goes on with the next node.
func BuildPlan(inv cluster.Inventory, opts PlanOptions) (Plan, error) {
	if err := errors.Join(opts.Validate(), inv.Validate()); err != nil {
		return Plan{}, fmt.Errorf("build plan: %w", err)
	}
	inv = opts.LocalStorage.Apply(inv)
	mode, _ := ParseNonMigratableMode(string(opts.NonMigratable))
	failback, _ := ParseFailbackMode(string(opts.Failback))
	est := opts.Estimate.withDefaults()
	parallel := est.Parallel()

	order, skipped, err := OrderNodes(inv, opts.Order)
	if err != nil {
		return Plan{}, fmt.Errorf("build plan: %w", err)
	}
	popts := opts.Placement
	popts.Rank = maps.Clone(opts.Placement.Rank)
	if popts.Rank == nil {
		popts.Rank = map[string]int{}
	}
	for _, n := range order {
		popts.Rank[n] = 2
	}
	p := NewPlacer(inv, popts)
	nodeInfo := make(map[string]cluster.Node, len(inv.Nodes))
	for _, n := range inv.Nodes {
		nodeInfo[n.Name] = n
	}

	plan := Plan{Order: order, Skipped: skipped, MovesPerVM: map[string]int{}}
	if failback == FailbackPolicy {
		plan.Warnings = append(plan.Warnings, "failback policy: allowed hours are evaluated at run time; the plan assumes they allow it")
	}
	pl := planner{p: p, opts: opts, mode: mode, failback: failback, est: est, parallel: parallel, nodes: nodeInfo}
	var clock time.Duration
	for _, name := range order {
		np := pl.node(name)
		np.Start = clock
		if np.Status == NodePlanned {
			clock += np.Drain + np.Install + np.Reboot + np.FailbackTime
		} else {
			plan.Blocked++
		}
		np.End = clock
		for _, m := range slices.Concat(np.Migrations, np.Failback) {
			plan.MovesPerVM[m.VM]++
			plan.Migrations++
		}
		plan.Nodes = append(plan.Nodes, np)
	}
	for _, c := range plan.MovesPerVM {
		if c > 1 {
			plan.MovedMoreThanOnce++
		}
	}
	plan.ETA = clock
	if opts.MaxParallelNodes > 1 {
		overlapNodes(&plan, inv, opts)
	}
	return plan, nil
}

// overlapNodes re-times the plan's nodes as the run starts them with up to
// opts.MaxParallelNodes in maintenance: in order, a node starts once the previous one
// has started, and either no node is in maintenance or fewer than the maximum are and
// the reserve holds with all of them and it out (checked on the cluster before the
// run, as the run checks the cluster of the moment). Each node keeps its duration.
func overlapNodes(plan *Plan, inv cluster.Inventory, opts PlanOptions) {
	k := opts.ReserveK
	if opts.OverrideReserve {
		k = 0
	}
	rp := NewPlacer(inv, opts.Placement)
	holds := map[string]bool{}
	mayJoin := func(out []string) bool {
		key := strings.Join(slices.Sorted(slices.Values(out)), "\x00")
		h, ok := holds[key]
		if !ok {
			h = rp.ReserveCheck(k, out, opts.ReserveMaxFailureSets).Holds
			holds[key] = h
		}
		return h
	}
	var prev, eta time.Duration
	overlapped := false
	for i := range plan.Nodes {
		np := &plan.Nodes[i]
		dur := np.End - np.Start
		t := prev
		for {
			var active []string
			next := time.Duration(-1)
			for _, o := range plan.Nodes[:i] {
				if o.Status == NodePlanned && o.Start <= t && t < o.End {
					active = append(active, o.Node)
					if next < 0 || o.End < next {
						next = o.End
					}
				}
			}
			if len(active) == 0 {
				break
			}
			// A blocked node is not maintained: it only waits for its turn.
			if len(active) < opts.MaxParallelNodes && (np.Status != NodePlanned || mayJoin(append(active, np.Node))) {
				overlapped = overlapped || np.Status == NodePlanned
				break
			}
			t = next
		}
		np.Start, np.End = t, t+dur
		prev, eta = t, max(eta, np.End)
	}
	plan.ETA = eta
	if overlapped {
		plan.Warnings = append(plan.Warnings, fmt.Sprintf("max_parallel_nodes=%d: nodes overlap where the reserve allows it; targets are planned one node after the other, so the run re-plans the drains of overlapping nodes", opts.MaxParallelNodes))
	}
}

// planner holds what BuildPlan's steps share.
type planner struct {
	p        *Placer // the cluster as the run leaves it so far
	opts     PlanOptions
	mode     NonMigratableMode
	failback FailbackMode
	est      EstimateOptions // with defaults
	parallel int
	nodes    map[string]cluster.Node
}

// node plans the maintenance of one node on the Placer's current model and leaves the
// model as the run would: drained and patched, or untouched when blocked.
func (pl *planner) node(name string) NodePlan {
	p, opts, mode, failback, est, parallel, nodeInfo := pl.p, pl.opts, pl.mode, pl.failback, pl.est, pl.parallel, pl.nodes
	np := NodePlan{Node: name, Status: NodePlanned}
	ni := p.nodeIdx[name]
	vms := make([]cluster.VM, 0, len(p.nodes[ni].vms))
	for _, r := range p.nodes[ni].vms {
		vms = append(vms, p.vms[r].vm)
	}
	split := SplitVMs(vms, SplitOptions{Mode: mode, MigrateSuspended: opts.MigrateSuspended, LocalStorage: opts.LocalStorage})
	np.Blocking = split.Blocking
	np.LeftOn = split.Skip
	for _, v := range split.Shutdown {
		np.Shutdown = append(np.Shutdown, v.Name)
	}
	restore := func() { // the node is not maintained: it stays as it was, neutral rank
		if why, ok := opts.Placement.Unavailable[name]; ok {
			p.SetUnavailable(name, why)
		} else {
			p.SetAvailable(name)
		}
		p.SetRank(name, 1)
		np.Status = NodeBlocked
	}
	for _, b := range split.Blocking {
		np.Blocked = append(np.Blocked, fmt.Sprintf("vm %s: %s (non_migratable=%s)", b.VM, b.Reason, mode))
	}
	if len(np.Blocked) > 0 {
		restore()
		return np
	}

	p.SetUnavailable(name, "in maintenance")
	type placed struct {
		vm     cluster.VM
		target string
	}
	var done []placed
	for _, v := range split.Migrate {
		p.mu.Lock()
		target, err := p.place(v, ni, nil, len(np.Unplaced) < maxExplainedPerNode)
		p.mu.Unlock()
		if err != nil {
			u := UnplacedVM{VM: v.Name, Error: err.Error()}
			if nte, ok := errors.AsType[*NoTargetError](err); ok {
				u.Refusals = nte.Refusals
				u.Error = fmt.Sprintf("place vm %s: %v", v.Name, ErrNoTarget)
			}
			np.Unplaced = append(np.Unplaced, u)
			continue
		}
		done = append(done, placed{v, target})
	}
	undo := func() {
		for i := len(done) - 1; i >= 0; i-- {
			p.Cancel(done[i].vm, done[i].target)
		}
	}
	if len(np.Unplaced) > 0 {
		np.Blocked = append(np.Blocked, fmt.Sprintf("cannot drain: %d of %d VMs have no target", len(np.Unplaced), len(split.Migrate)))
		undo()
		restore()
		return np
	}
	if opts.ReserveK == 0 {
		// The drain found room for every VM: that is all k=0 asks.
		np.Reserve = ReserveResult{Out: []string{name}, Holds: true, Proven: true, Basis: "no reserve required (k=0)"}
	} else {
		np.Reserve = p.ReserveCheck(opts.ReserveK, []string{name}, opts.ReserveMaxFailureSets)
	}
	if !np.Reserve.Holds {
		msg := fmt.Sprintf("reserve N-%d does not hold while %s is out: %s", opts.ReserveK, name, np.Reserve.Basis)
		if !opts.OverrideReserve {
			np.Blocked = append(np.Blocked, msg)
			undo()
			restore()
			return np
		}
		np.Warnings = append(np.Warnings, "overridden: "+msg)
	}

	// Drained: predict the drain, the patch and the reboot.
	src := nodeInfo[name]
	inbound := map[string]int{}
	for _, d := range done {
		inbound[d.target]++
	}
	var durs []float64
	out := min(parallel, len(done))
	for _, d := range done {
		m := estimateMigration(d.vm, src, nodeInfo[d.target], out, min(out, inbound[d.target]), est, opts.Timings)
		np.Migrations = append(np.Migrations, m)
		durs = append(durs, m.Duration.Seconds())
		if !m.Converges {
			np.Warnings = append(np.Warnings, fmt.Sprintf("vm %s: dirties %.0f MiB/s, faster than its share of bandwidth: the migration will not converge", d.vm.Name, d.vm.DirtyMiBs))
		}
	}
	if len(durs) > 0 {
		np.Drain = seconds(makespan(durs, parallel))
	}
	install, ok := opts.Timings.measured(name, func(t NodeTimings) []float64 { return t.InstallSeconds })
	if !ok {
		install = est.InstallSeconds
	}
	reboot, ok := opts.Timings.measured(name, func(t NodeTimings) []float64 { return t.RebootSeconds })
	if !ok {
		reboot = est.RebootSeconds
	}
	np.Install, np.Reboot = seconds(install), seconds(reboot)
	if len(split.Skip) > 0 {
		np.Warnings = append(np.Warnings, fmt.Sprintf("%d non-migratable VMs stay running and go down with the reboot", len(split.Skip)))
	}

	// Patched and resumed: it is the preferred target from now on.
	if why, ok := opts.Placement.Unavailable[name]; ok {
		p.SetUnavailable(name, why)
	} else {
		p.SetAvailable(name)
	}
	p.SetRank(name, 0)

	if failback == FailbackImmediate || failback == FailbackPolicy {
		durs = durs[:0]
		back := map[string]int{}
		for _, d := range done {
			if d.vm.Running() && (failback == FailbackImmediate || d.vm.PreferredNode == name) {
				back[d.target]++
			}
		}
		in := 0
		for _, c := range back {
			in += c
		}
		in = min(parallel, in)
		for _, d := range done {
			v := d.vm
			if !v.Running() || (failback == FailbackPolicy && v.PreferredNode != name) {
				continue
			}
			v.Node = d.target
			if err := p.PlaceOn(v, name); err != nil {
				np.Warnings = append(np.Warnings, fmt.Sprintf("failback of vm %s stays on %s: %v", v.Name, d.target, err))
				continue
			}
			m := estimateMigration(v, nodeInfo[d.target], src, min(in, back[d.target]), in, est, opts.Timings)
			np.Failback = append(np.Failback, m)
			durs = append(durs, m.Duration.Seconds())
		}
		if len(durs) > 0 {
			np.FailbackTime = seconds(makespan(durs, parallel))
		}
	}
	return np
}

// estimateMigration predicts one migration of v from src to dst with `out` streams
// leaving src and `in` entering dst at once.
func estimateMigration(v cluster.VM, src, dst cluster.Node, out, in int, est EstimateOptions, t Timings) Migration {
	m := Migration{VM: v.Name, From: src.Name, To: dst.Name, MemoryMiB: v.MemoryMiB, DiskMiB: v.LocalDiskMiB(), Converges: true}
	thr, ok := median(t.Nodes[src.Name].MigrationMiBs)
	if !ok {
		thr, ok = median(t.Nodes[dst.Name].MigrationMiBs)
	}
	if !ok {
		thr, ok = t.measured("", func(n NodeTimings) []float64 { return n.MigrationMiBs })
	}
	if ok {
		// Measured throughput counts every byte sent, disks included.
		m.Duration, m.Measured = seconds(float64(v.MemoryMiB+m.DiskMiB)/thr), true
		return m
	}
	s, conv := StorageMigrationSeconds(v.MemoryMiB, m.DiskMiB, v.DirtyMiBs, streamMiBs(src, dst, out, in, est), est.SetupSeconds, est.MaxRounds)
	m.Duration, m.Converges = seconds(s), conv
	return m
}

// String renders the plan for `drover plan`: one block per node.
func (pl Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "order: %s\n", strings.Join(pl.Order, " "))
	for _, s := range pl.Skipped {
		fmt.Fprintf(&b, "skip %s: %s\n", s.Node, s.Reason)
	}
	for _, n := range pl.Nodes {
		fmt.Fprintf(&b, "%s: %s", n.Node, n.Status)
		if n.Status == NodeBlocked {
			fmt.Fprintf(&b, ": %s\n", strings.Join(n.Blocked, "; "))
			for _, u := range n.Unplaced {
				fmt.Fprintf(&b, "  no target for %s\n", u.VM)
				for _, r := range u.Refusals {
					fmt.Fprintf(&b, "    %s\n", r)
				}
			}
			continue
		}
		fmt.Fprintf(&b, ", %d migrations, drain %v, install %v, reboot %v, at %v-%v\n",
			len(n.Migrations), n.Drain, n.Install, n.Reboot, n.Start, n.End)
		for _, m := range n.Migrations {
			if m.DiskMiB > 0 {
				fmt.Fprintf(&b, "  %s -> %s (%d MiB, disks %d MiB, %v)\n", m.VM, m.To, m.MemoryMiB, m.DiskMiB, m.Duration)
				continue
			}
			fmt.Fprintf(&b, "  %s -> %s (%d MiB, %v)\n", m.VM, m.To, m.MemoryMiB, m.Duration)
		}
		for _, m := range n.Failback {
			fmt.Fprintf(&b, "  failback %s <- %s (%v)\n", m.VM, m.From, m.Duration)
		}
		for _, s := range n.Shutdown {
			fmt.Fprintf(&b, "  shut down %s during maintenance\n", s)
		}
		for _, s := range n.LeftOn {
			fmt.Fprintf(&b, "  LEFT RUNNING %s: %s\n", s.VM, s.Reason)
		}
		for _, w := range n.Warnings {
			fmt.Fprintf(&b, "  warning: %s\n", w)
		}
	}
	fmt.Fprintf(&b, "%d migrations, %d VMs moved more than once, %d nodes blocked, eta %v\n",
		pl.Migrations, pl.MovedMoreThanOnce, pl.Blocked, pl.ETA)
	for _, w := range pl.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	return b.String()
}
