package orchestrator_test

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/policies"
	"github.com/droverhq/drover/runs"
)

// storedPlan reads the plan Start stored with the run.
func (h *harness) storedPlan(id string) orchestrator.RunPlan {
	h.t.Helper()
	r, err := h.store.Run(id)
	if err != nil {
		h.t.Fatal(err)
	}
	var p orchestrator.RunPlan
	if err := json.Unmarshal(r.Plan, &p); err != nil {
		h.t.Fatalf("run %s has no readable plan: %v (%s)", id, err, r.Plan)
	}
	return p
}

// rewritePlan changes the stored plan of a run, as a test of who follows it.
func (h *harness) rewritePlan(id string, change func(*orchestrator.RunPlan)) {
	h.t.Helper()
	p := h.storedPlan(id)
	change(&p)
	b, err := json.Marshal(p)
	if err != nil {
		h.t.Fatal(err)
	}
	err = h.store.Update(func(tx *runs.Tx) error {
		return tx.UpdateRun(id, func(r *runs.Run) error { r.Plan = b; return nil })
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// drainTargets maps each VM drained in a run to where it went, per node drained.
func drainTargets(h *harness, id string) map[string]string {
	out := map[string]string{}
	for _, n := range h.report(id).Nodes {
		for _, m := range n.Migrations {
			if m.Kind == runs.KindDrain {
				out[n.Name+"/"+m.VM] = m.To
			}
		}
	}
	return out
}

// spread has room everywhere: the placer's own choice for every VM of b is plain,
// so a plan that says otherwise shows whether the drain follows the plan.
const spread = `
nodes:
  - {name: a, memory_mib: 65536, cpus: 32, reboot_seconds: 60, updates: [{name: k, version: "2"}]}
  - {name: b, memory_mib: 65536, cpus: 32, reboot_seconds: 60, updates: [{name: k, version: "2"}]}
  - {name: c, memory_mib: 65536, cpus: 32, reboot_seconds: 60, updates: [{name: k, version: "2"}]}
  - {name: d, memory_mib: 65536, cpus: 32, reboot_seconds: 60, updates: [{name: k, version: "2"}]}
  - {name: e, memory_mib: 65536, cpus: 32, reboot_seconds: 60}
vms:
  - {name: a1, node: a, memory_mib: 2048, vcpus: 2}
  - {name: a2, node: a, memory_mib: 2048, vcpus: 2}
  - {name: a3, node: a, memory_mib: 2048, vcpus: 2}
  - {name: b1, node: b, memory_mib: 4096, vcpus: 2}
  - {name: b2, node: b, memory_mib: 2048, vcpus: 2}
  - {name: c1, node: c, memory_mib: 2048, vcpus: 2}
  - {name: c2, node: c, memory_mib: 2048, vcpus: 2}
  - {name: c3, node: c, memory_mib: 2048, vcpus: 2}
  - {name: d1, node: d, memory_mib: 2048, vcpus: 2}
  - {name: d2, node: d, memory_mib: 2048, vcpus: 2}
  - {name: d3, node: d, memory_mib: 2048, vcpus: 2}
  - {name: d4, node: d, memory_mib: 2048, vcpus: 2}
`

func TestEngine_StoresAndFollowsThePlan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, spread)
		ctx := context.Background()
		id := h.start(ctx, testPolicy(nil))
		plan := h.storedPlan(id)
		run, _ := h.store.Run(id)
		// e has nothing to install: the run lists it last, as skipped; the plan too.
		if !slices.Equal(plan.Order, run.Order[:4]) || run.Order[4] != "e" || len(plan.Nodes) != 4 || plan.Blocked != 0 ||
			len(plan.Skipped) != 1 || plan.Skipped[0].Node != "e" {
			t.Fatalf("stored plan order %v (%d nodes, %d blocked, skipped %v), run order %v", plan.Order, len(plan.Nodes), plan.Blocked, plan.Skipped, run.Order)
		}
		// Send every VM of the last node to the node the plan gave the fewest of
		// them: a legal plan (every node has room), but not what the placer (least
		// loaded first) picks by itself. The other nodes keep their planned targets.
		want := map[string]string{}
		changed := 0
		h.rewritePlan(id, func(p *orchestrator.RunPlan) {
			last := &p.Nodes[len(p.Nodes)-1]
			got := map[string]int{}
			for _, m := range last.Migrations {
				got[m.To]++
			}
			to := ""
			for _, n := range p.Order[:len(p.Order)-1] {
				if to == "" || got[n] < got[to] {
					to = n
				}
			}
			for j := range last.Migrations {
				if last.Migrations[j].To != to {
					changed++
				}
				last.Migrations[j].To = to
			}
			for _, n := range p.Nodes {
				for _, m := range n.Migrations {
					want[n.Node+"/"+m.VM] = m.To
				}
			}
		})
		if changed == 0 {
			t.Fatal("the rewritten plan is the plan: the test shows nothing")
		}
		if _, err := h.eng.Execute(ctx, id); err != nil {
			t.Fatal(err)
		}
		if got := drainTargets(h, id); !mapsEqual(got, want) {
			t.Errorf("drain targets %v, want the plan's %v", got, want)
		}
		journal, _ := h.store.Journal(id)
		follows := 0
		for _, e := range journal {
			if e.Op == "plan" && strings.HasPrefix(e.Detail, "drain follows the plan") {
				follows++
			}
		}
		if follows != 4 {
			t.Errorf("%d nodes journaled that they follow the plan, want 4", follows)
		}
		h.checkSafety(h.report(id))
	})
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestEngine_ReplansWhenTheInventoryChanged(t *testing.T) {
	tests := []struct {
		name    string
		change  func(t *testing.T, h *harness, plan orchestrator.RunPlan)
		noteHas string
		only    bool // no other node deviates from the plan
	}{
		{
			// Someone moves e1 (from e, a node the run leaves out) onto the node
			// drained first, after the plan.
			name: "vm-added-to-the-node",
			change: func(t *testing.T, h *harness, plan orchestrator.RunPlan) {
				if _, err := h.drv.Migrate(context.Background(), migrateReq("e1", "e", plan.Order[0]), nil); err != nil {
					t.Fatal(err)
				}
			},
			noteHas: "not expected on the node: e1",
			only:    true,
		},
		{
			// The planned target of the first node's biggest VM is paused by someone
			// else after the plan: that VM goes elsewhere.
			name: "planned-target-no-longer-fits",
			change: func(t *testing.T, h *harness, plan orchestrator.RunPlan) {
				target := plan.Nodes[0].Migrations[0].To
				if err := h.drv.PauseNode(context.Background(), target, ""); err != nil {
					t.Fatal(err)
				}
			},
			noteHas: "no longer fits",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, spread+"  - {name: e1, node: e, memory_mib: 2048, vcpus: 2}\n")
				ctx := context.Background()
				id := h.start(ctx, testPolicy(nil))
				plan := h.storedPlan(id)
				tt.change(t, h, plan)
				h.before = h.inventory()
				if _, err := h.eng.Execute(ctx, id); err != nil {
					t.Fatal(err)
				}
				rep := h.report(id)
				first := h.node(rep, plan.Order[0])
				if !slices.ContainsFunc(first.Notes, func(n string) bool {
					return strings.Contains(n, "re-planned") && strings.Contains(n, tt.noteHas)
				}) {
					t.Errorf("node %s notes %q, want a re-plan naming %q", first.Name, first.Notes, tt.noteHas)
				}
				for _, n := range rep.Nodes {
					for _, note := range n.Notes {
						if tt.only && n.Name != first.Name && strings.Contains(note, "re-planned") {
							t.Errorf("node %s re-planned too (%s): only the changed node should be", n.Name, note)
						}
					}
				}
				// Resume what the test paused, so the safety check sees the cluster whole.
				for _, n := range h.inventory().Nodes {
					if n.Paused {
						_ = h.drv.ResumeNode(ctx, n.Name)
					}
				}
				h.checkSafety(rep)
			})
		})
	}
}

func migrateReq(vm, from, to string) drivers.MigrateRequest {
	return drivers.MigrateRequest{VM: vm, From: from, To: to}
}

func TestEngine_PlanLearnsFromEarlierRuns(t *testing.T) {
	// The first plan knows nothing: install and reboot take the model's defaults.
	// After one run, the plan uses what was measured (the sim reboots in 60 s).
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, small)
		ctx := context.Background()
		p := testPolicy(func(p *orchestrator.Policy) { p.Force = true })
		first, err := h.eng.Prepare(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if first.Plan.MeasuredTimings != 0 || first.Plan.Nodes[0].Reboot != 300*time.Second {
			t.Fatalf("first plan: %d timings, reboot %s; want none and the 300 s default", first.Plan.MeasuredTimings, first.Plan.Nodes[0].Reboot)
		}
		if _, err := h.apply(ctx, p); err != nil {
			t.Fatal(err)
		}
		second, err := h.eng.Prepare(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if second.Plan.MeasuredTimings == 0 {
			t.Fatal("second plan uses no measurements")
		}
		for _, n := range second.Plan.Nodes {
			if s := n.Reboot.Seconds(); s < 55 || s > 80 {
				t.Errorf("node %s: predicted reboot %s, want about the 60 s measured", n.Node, n.Reboot)
			}
		}
		if second.Plan.ETA >= first.Plan.ETA {
			t.Errorf("ETA %s after measuring, %s before: the measured run was much faster than the defaults", second.Plan.ETA, first.Plan.ETA)
		}
	})
}

func TestPlanTimings(t *testing.T) {
	at := func(m int) time.Time { return time.Date(2030, 1, 1, 0, m, 0, 0, time.UTC) }
	ts := []runs.Timing{
		{Node: "n1", Kind: "reboot", Seconds: 60, At: at(1)},
		{Node: "n1", Kind: "install", Seconds: 30, At: at(1)},
		{Node: "n1", Kind: "migration", Seconds: 4, MiB: 2048, At: at(1)},
		{Node: "n1", Kind: "migration", Seconds: 4, At: at(1)}, // no MiB: unusable
		{Node: "n1", Kind: "drain", Seconds: 9, At: at(1)},     // not a planner input
		{Node: "n2", Kind: "reboot", Seconds: 0, At: at(1)},    // not measured
		{Node: "n2", Kind: "reboot", Seconds: math.NaN(), At: at(1)},
		{Node: "", Kind: "reboot", Seconds: 10, At: at(1)},
	}
	got, kept := orchestrator.PlanTimings(ts)
	want := policies.Timings{Nodes: map[string]policies.NodeTimings{
		"n1": {RebootSeconds: []float64{60}, InstallSeconds: []float64{30}, MigrationMiBs: []float64{512}},
	}}
	if kept != 3 || !timingsEqual(got, want) {
		t.Errorf("PlanTimings = %+v (%d kept), want %+v (3)", got, kept, want)
	}
	// Only the most recent 20 per node and kind count.
	var many []runs.Timing
	for i := range 30 {
		many = append(many, runs.Timing{Node: "n1", Kind: "reboot", Seconds: float64(100 + i), At: at(i)})
	}
	got, kept = orchestrator.PlanTimings(many)
	r := got.Nodes["n1"].RebootSeconds
	if kept != 20 || len(r) != 20 || slices.Min(r) != 110 || slices.Max(r) != 129 {
		t.Errorf("kept %d reboots %v, want the newest 20 (110..129)", kept, r)
	}
}

func timingsEqual(a, b policies.Timings) bool {
	if len(a.Nodes) != len(b.Nodes) {
		return false
	}
	for k, x := range a.Nodes {
		y := b.Nodes[k]
		if !slices.Equal(x.RebootSeconds, y.RebootSeconds) || !slices.Equal(x.InstallSeconds, y.InstallSeconds) || !slices.Equal(x.MigrationMiBs, y.MigrationMiBs) {
			return false
		}
	}
	return true
}

func TestPlanRun_ReserveBlocksNodes(t *testing.T) {
	// Three nodes of 8 GiB, 12 GiB of VMs, k=1: no node can be out (see
	// TestEngine_ReserveBlocksPause); the plan says which and why.
	h := newHarness(t, tightCluster)
	p := testPolicy(func(p *orchestrator.Policy) { p.ReserveNodes = 1 })
	prep, err := orchestrator.PlanRun(context.Background(), h.drv, h.drv, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if prep.Plan.Blocked != 3 {
		t.Fatalf("%d nodes blocked, want 3:\n%s", prep.Plan.Blocked, prep.Plan.String())
	}
	for _, n := range prep.Plan.Nodes {
		if n.Status != policies.NodeBlocked || !strings.Contains(strings.Join(n.Blocked, " "), "reserve N-1 does not hold while "+n.Node+" is out") {
			t.Errorf("node %s: %s %q, want blocked by the reserve", n.Node, n.Status, n.Blocked)
		}
	}
	p.OverrideReserve = true
	prep, err = orchestrator.PlanRun(context.Background(), h.drv, h.drv, p, nil)
	if err != nil || prep.Plan.Blocked != 0 {
		t.Fatalf("overridden: %v, %d blocked", err, prep.Plan.Blocked)
	}
}

const tightCluster = `
nodes:
  - {name: a, memory_mib: 8192, cpus: 8, updates: [{name: k, version: "1"}]}
  - {name: b, memory_mib: 8192, cpus: 8, updates: [{name: k, version: "1"}]}
  - {name: c, memory_mib: 8192, cpus: 8, updates: [{name: k, version: "1"}]}
vms:
  - {name: v1, node: a, memory_mib: 4096, vcpus: 1}
  - {name: v2, node: b, memory_mib: 4096, vcpus: 1}
  - {name: v3, node: c, memory_mib: 4096, vcpus: 1}
`
