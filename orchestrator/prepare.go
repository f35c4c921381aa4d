package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/policies"
	"github.com/droverhq/drover/runs"
)

// This file holds the preparation of a new run: scan, node order, records.

// Prepared is a run as it would start: the node order and why nodes are left out.
type Prepared struct {
	Policy  Policy
	Order   []string
	Records []runs.NodeRecord
	// Plan is the whole run as predicted (Engine.Prepare, PlanRun); Start stores it
	// and the drain follows it.
	Plan *RunPlan
	// inv is the inventory the order was decided on.
	inv cluster.Inventory
	// caps are the driver's capabilities (what the plan may do with suspended VMs).
	caps drivers.Capabilities
}

// Prepare scans the cluster, decides the node order of a new run and plans it,
// without changing anything.
func (e *Engine) Prepare(ctx context.Context, p Policy) (Prepared, error) {
	prep, err := Prepare(ctx, e.cfg.Driver, e.cfg.Updater, p)
	if err != nil {
		return prep, err
	}
	if err := e.refuseForeignPauses(prep); err != nil {
		return prep, err
	}
	return e.withPlan(prep)
}

// refuseForeignPauses: starting needs every node free of another run's pause; a plan
// for viewing (PlanRun) only leaves such nodes out.
func (e *Engine) refuseForeignPauses(prep Prepared) error {
	err := checkForeignPauses(prep.inv, nil, "")
	if pe, ok := errors.AsType[*PausedByOtherRunError](err); ok {
		// Tell this state file's interrupted runs (resume them) from other drovers'.
		if rs, rerr := e.cfg.Store.Runs(e.cfg.Cluster); rerr == nil {
			for _, r := range rs {
				if _, mine := pe.Runs[r.ID]; mine && !r.State.Terminal() {
					pe.Ours[r.ID] = true
				}
			}
		}
		if len(pe.Ours) == len(pe.Runs) {
			// Only this state file's own interrupted run holds them: say what the
			// start would say, resume it.
			if r, ok, uerr := e.Unfinished(); uerr == nil && ok && pe.Ours[r.ID] {
				return &UnfinishedRunError{Run: r, Live: e.cfg.Alive(r.Owner) == runs.Alive}
			}
		}
		return pe
	}
	return err
}

// Prepare scans the cluster and decides the node order of a new run, without
// changing anything and without a state file.
func Prepare(ctx context.Context, d drivers.Driver, u drivers.Updater, p Policy) (Prepared, error) {
	if err := p.Validate(); err != nil {
		return Prepared{}, err
	}
	p, err := p.resolveLocalStorage(d.Capabilities())
	if err != nil {
		return Prepared{}, err
	}
	inv, err := d.Inventory(ctx)
	if err != nil {
		return Prepared{}, fmt.Errorf("read inventory: %w", err)
	}
	if err := requireOnline(inv, p); err != nil {
		return Prepared{}, err
	}
	known := map[string]bool{}
	for _, n := range inv.Nodes {
		known[n.Name] = true
	}
	for i, n := range p.Nodes {
		if !known[n] {
			return Prepared{}, drivers.Fieldf(fmt.Sprintf("policy.nodes[%d]", i), "use a node name from `drover inventory`", "unknown node %q", n)
		}
	}
	pending, err := scanAll(ctx, u, inv)
	if err != nil {
		return Prepared{}, err
	}
	order, skipped, err := orderNodes(inv, p, pending)
	if err != nil {
		return Prepared{}, err
	}
	var recs []runs.NodeRecord
	for _, name := range order {
		rec := runs.NodeRecord{Name: name, State: NodeQueued, Pending: toRunUpdates(pending[name])}
		if reason, ok := skipped[name]; ok {
			rec.State, rec.SkipReason = NodeSkipped, reason
		}
		recs = append(recs, rec)
	}
	return Prepared{Policy: p, Order: order, Records: recs, inv: inv, caps: d.Capabilities()}, nil
}

// scanAll asks the update plug-in for every ready node's pending updates, a few
// nodes at a time.
func scanAll(ctx context.Context, u drivers.Updater, inv cluster.Inventory) (map[string][]cluster.Update, error) {
	pending, failed, _ := scanNodes(ctx, u, inv)
	errs := make([]error, 0, len(failed))
	for _, name := range sortedKeys(failed) {
		errs = append(errs, fmt.Errorf("scan updates of node %s: %w", name, failed[name]))
	}
	return pending, errors.Join(errs...)
}

// scanNodes scans every ready node, eight at a time: the pending updates of those
// that answered, the errors of those that did not, and how many were asked.
func scanNodes(ctx context.Context, u drivers.Updater, inv cluster.Inventory) (pending map[string][]cluster.Update, failed map[string]error, asked int) {
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, 8)
	)
	pending, failed = map[string][]cluster.Update{}, map[string]error{}
	for _, n := range inv.Nodes {
		if !n.Ready() {
			continue
		}
		asked++
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			ups, err := u.Scan(ctx, n.Name)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed[n.Name] = err
				return
			}
			pending[n.Name] = ups
		})
	}
	wg.Wait()
	return pending, failed, asked
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// orderNodes applies the order policy. Nodes the run leaves out (no pending update,
// down, paused by someone else) come last, as skipped, so the report shows them.
func orderNodes(inv cluster.Inventory, p Policy, pending map[string][]cluster.Update) ([]string, map[string]string, error) {
	strategy, err := policies.ParseOrderStrategy(p.NodeOrder)
	if err != nil {
		return nil, nil, drivers.Fieldf("policy.node_order", "use one of: "+strategyNames(), "unknown order %q", p.NodeOrder)
	}
	counts := map[string]int{}
	for name, ups := range pending {
		counts[name] = len(ups)
	}
	exclude := map[string]string{}
	for _, n := range inv.Nodes {
		switch {
		case !n.Ready():
			exclude[n.Name] = fmt.Sprintf("node is %s", n.State)
		case pausedByRun(n) != "":
			id := pausedByRun(n)
			exclude[n.Name] = "node is paused by Drover run " + id + ": let that run finish, or resume it if it was interrupted (drover runs resume " + id + ")"
		case n.Paused:
			exclude[n.Name] = "node was paused before the run (drover leaves it alone; resume it to include it)"
		}
	}
	opts := policies.OrderOptions{Strategy: strategy, Pending: counts, Force: p.Force, Exclude: exclude}
	if len(p.Nodes) > 0 {
		opts.Nodes = p.Nodes
		if strategy != policies.OrderExplicit {
			// A node list with another strategy limits the run to those nodes.
			for _, n := range inv.Nodes {
				if !slices.Contains(p.Nodes, n.Name) {
					opts.Exclude[n.Name] = "not in policy.nodes"
				}
			}
		}
	}
	opts.Label = p.OrderLabel
	order, skippedList, err := policies.OrderNodes(inv, opts)
	if err != nil {
		return nil, nil, policyField(err)
	}
	sort.Slice(skippedList, func(i, j int) bool { return skippedList[i].Node < skippedList[j].Node })
	skipped := map[string]string{}
	for _, s := range skippedList {
		if s.Reason == "not in policy.nodes" || (strategy == policies.OrderExplicit && !slices.Contains(p.Nodes, s.Node)) {
			continue // outside the run altogether
		}
		if strings.HasPrefix(s.Reason, "no pending updates") {
			s.Reason = "no pending updates (use --force to patch and reboot anyway)"
		}
		skipped[s.Node] = s.Reason
		order = append(order, s.Node)
	}
	return order, skipped, nil
}

// policyField renames the fields of the order policy's errors to config keys.
func policyField(err error) error {
	var fe *drivers.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	field := fe.Field
	for from, to := range map[string]string{"order.nodes": "policy.nodes", "order.strategy": "policy.node_order", "order.label": "policy.order_label"} {
		if strings.HasPrefix(field, from) {
			field = to + strings.TrimPrefix(field, from)
		}
	}
	return &drivers.FieldError{Field: field, Problem: fe.Problem, Fix: fe.Fix}
}

func strategyNames() string {
	var s []string
	for _, o := range policies.OrderStrategies() {
		s = append(s, string(o))
	}
	return strings.Join(s, ", ")
}
