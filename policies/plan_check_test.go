package policies

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/droverhq/drover/cluster"
)

// checkPlan replays plan on inv with the naive model (helpers_test.go), which shares
// no code with the Placer, and returns the first broken rule: a target that is paused,
// out of service, the node in maintenance, over capacity, in breach of a hard
// anti-affinity, of another CPU group or without a network of the VM; a VM left on a
// drained node; a reserve claimed to hold that the brute-force aggregate denies; move
// counts that do not match.
func checkPlan(in cluster.Inventory, opts PlanOptions, plan Plan) error {
	c := newNaive(in, opts.Placement)
	moves := map[string]int{}
	if len(plan.Nodes) != len(plan.Order) {
		return fmt.Errorf("%d node plans for %d ordered nodes", len(plan.Nodes), len(plan.Order))
	}
	move := func(m Migration, node string) error {
		v := c.find(m.VM)
		if v == nil {
			return fmt.Errorf("%s: unknown vm %s", node, m.VM)
		}
		if v.Node != m.From {
			return fmt.Errorf("%s: vm %s is on %s, plan moves it from %s", node, m.VM, v.Node, m.From)
		}
		if bad := c.violations(*v, m.To); len(bad) > 0 {
			return fmt.Errorf("%s: vm %s -> %s breaks %v", node, m.VM, m.To, bad)
		}
		v.Node = m.To
		moves[m.VM]++
		return nil
	}
	for i, np := range plan.Nodes {
		x := np.Node
		if x != plan.Order[i] {
			return fmt.Errorf("node plan %d is %s, order says %s", i, x, plan.Order[i])
		}
		if n, ok := c.nodes[x]; !ok || !n.Ready() {
			return fmt.Errorf("%s: planned but not a ready node", x)
		}
		if np.Status == NodeBlocked {
			if len(np.Migrations)+len(np.Failback) > 0 || len(np.Blocked) == 0 {
				return fmt.Errorf("%s: blocked with %d migrations and reasons %v", x, len(np.Migrations), np.Blocked)
			}
			continue
		}
		wasUnavailable := c.unavailable[x]
		c.unavailable[x] = true
		for _, m := range np.Migrations {
			if m.From != x {
				return fmt.Errorf("%s: drain migration of %s from %s", x, m.VM, m.From)
			}
			if err := move(m, x); err != nil {
				return err
			}
		}
		for _, v := range c.vms {
			if v.Node != x || v.Power == cluster.PowerStopped {
				continue
			}
			listed := slices.Contains(np.Shutdown, v.Name) ||
				slices.ContainsFunc(np.LeftOn, func(n VMNote) bool { return n.VM == v.Name })
			movable := v.Migratable && (v.Power != cluster.PowerSuspended || opts.MigrateSuspended)
			if movable || !listed {
				return fmt.Errorf("%s: vm %s (%s, migratable %v) stays on the node through its reboot", x, v.Name, v.Power, v.Migratable)
			}
		}
		if np.Reserve.Holds {
			snap := cluster.Inventory{Nodes: in.Nodes, VMs: c.vms}
			if mem, cpu := bruteAggregate(snap, opts.ReserveK, []string{x}, opts.Placement, c.unavailable); mem > 0 || cpu > 0 {
				return fmt.Errorf("%s: reserve claimed to hold, brute force finds %d MiB / %d vCPUs short", x, mem, cpu)
			}
		} else if !opts.OverrideReserve {
			return fmt.Errorf("%s: planned although the reserve does not hold: %s", x, np.Reserve.Basis)
		}
		c.unavailable[x] = wasUnavailable
		for _, m := range np.Failback {
			if m.To != x {
				return fmt.Errorf("%s: failback of %s to %s", x, m.VM, m.To)
			}
			if err := move(m, x); err != nil {
				return err
			}
		}
	}
	if !maps.Equal(moves, plan.MovesPerVM) {
		return fmt.Errorf("moves per vm %v, plan says %v", moves, plan.MovesPerVM)
	}
	return nil
}

// TestBuildPlan_Property: random clusters and options; every plan must pass the
// independent replay.
func TestBuildPlan_Property(t *testing.T) {
	iterations := 300
	if testing.Short() {
		iterations = 60
	}
	var planned, blocked, migrations int
	for seed := range uint64(iterations) {
		rng := rand.New(rand.NewPCG(seed, 99))
		in := randomCluster(rng, 3+rng.IntN(10), 10+rng.IntN(120), 0.2+0.75*rng.Float64())
		opts := PlanOptions{
			Order: OrderOptions{Strategy: []OrderStrategy{OrderFewestVMs, OrderMoveOnce, OrderFaultDomain}[rng.IntN(3)]},
			Placement: PlacementOptions{
				MemoryHeadroomMiB: int64(rng.IntN(3)) * 1024,
				CPUOvercommit:     []float64{0, 1, 2}[rng.IntN(3)],
			},
			ReserveK:        rng.IntN(3),
			OverrideReserve: rng.IntN(5) == 0,
			NonMigratable:   []NonMigratableMode{NonMigratableFail, NonMigratableShutdown, NonMigratableSkip}[rng.IntN(3)],
			Failback:        []FailbackMode{FailbackNone, FailbackImmediate, FailbackPolicy}[rng.IntN(3)],
			// Half the drivers move suspended VMs as saved state.
			MigrateSuspended: seed%2 == 0,
		}
		if rng.IntN(3) == 0 {
			opts.Placement.Unavailable = map[string]string{in.Nodes[rng.IntN(len(in.Nodes))].Name: "excluded"}
		}
		for i := range in.VMs {
			if rng.IntN(3) == 0 {
				in.VMs[i].PreferredNode = in.VMs[i].Node
			}
		}
		plan, err := BuildPlan(in, opts)
		if err != nil {
			t.Fatalf("seed %d: BuildPlan: %v", seed, err)
		}
		if err := checkPlan(in, opts, plan); err != nil {
			t.Fatalf("seed %d (%+v): %v\n%s", seed, opts, err, plan)
		}
		planned += len(plan.Nodes) - plan.Blocked
		blocked += plan.Blocked
		migrations += plan.Migrations
	}
	// The random clusters must exercise both outcomes, or the property says little.
	if planned == 0 || blocked == 0 || migrations == 0 {
		t.Fatalf("degenerate sample: %d planned, %d blocked nodes, %d migrations", planned, blocked, migrations)
	}
	t.Logf("%d plans: %d nodes planned, %d blocked, %d migrations", iterations, planned, blocked, migrations)
}

// TestCheckPlan_CatchesViolations makes sure the checker is not blind: each tampered
// plan must be rejected.
func TestCheckPlan_CatchesViolations(t *testing.T) {
	const g = 1024
	in := inv([]cluster.Node{node("n1", 64*g, 16), node("n2", 64*g, 16), node("n3", 32*g, 16), node("n4", 64*g, 16, paused),
		node("n5", 64*g, 16), node("n6", 16*g, 16), node("n7", 64*g, 16, withGroup("other"))},
		vm("a", "n1", 8*g, 2, antiAff("web", true)), vm("b", "n2", 8*g, 2, antiAff("web", true)),
		vm("c", "n3", 12*g, 2), vm("d", "n6", 10*g, 2))
	opts := PlanOptions{Order: OrderOptions{Strategy: OrderExplicit, Nodes: []string{"n1", "n2", "n3"}}}
	plan, err := BuildPlan(in, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkPlan(in, opts, plan); err != nil {
		t.Fatalf("honest plan rejected: %v\n%s", err, plan)
	}
	var got []string
	for _, np := range plan.Nodes {
		for _, m := range np.Migrations {
			got = append(got, m.VM+"->"+m.To)
		}
	}
	if fmt.Sprint(got) != "[a->n5 b->n1 c->n2]" {
		t.Fatalf("plan = %v\n%s", got, plan)
	}
	// Honest plan: a -> n5, b -> n1 (patched), c -> n2 (patched, most free).
	tamper := []struct {
		name   string
		change func(p *Plan)
	}{
		{"target-paused", func(p *Plan) { p.Nodes[0].Migrations[0].To = "n4" }},
		{"target-is-the-node", func(p *Plan) { p.Nodes[0].Migrations[0].To = "n1" }},
		{"target-other-cpu-group", func(p *Plan) { p.Nodes[0].Migrations[0].To = "n7" }},
		{"hard-anti-affinity", func(p *Plan) { p.Nodes[0].Migrations[0].To = "n2" }},
		{"over-capacity", func(p *Plan) { p.Nodes[2].Migrations[0].To = "n6" }},
		{"target-node-in-maintenance", func(p *Plan) { p.Nodes[2].Migrations[0].To = "n3" }},
		{"vm-left-behind", func(p *Plan) { p.Nodes[2].Migrations = nil }},
		{"wrong-source", func(p *Plan) { p.Nodes[2].Migrations[0].From = "n1" }},
		{"wrong-move-count", func(p *Plan) { p.MovesPerVM["a"] = 5 }},
		{"blocked-but-migrating", func(p *Plan) { p.Nodes[0].Status = NodeBlocked; p.Nodes[0].Blocked = []string{"x"} }},
		{"reserve-claim", func(p *Plan) { p.Nodes[0].Reserve.Holds = false }},
	}
	for _, tt := range tamper {
		t.Run(tt.name, func(t *testing.T) {
			p := clonePlan(plan)
			tt.change(&p)
			if err := checkPlan(in, opts, p); err == nil {
				t.Fatalf("tampered plan accepted:\n%s", p)
			}
		})
	}
}

func clonePlan(p Plan) Plan {
	p.MovesPerVM = maps.Clone(p.MovesPerVM)
	p.Nodes = slices.Clone(p.Nodes)
	for i := range p.Nodes {
		p.Nodes[i].Migrations = slices.Clone(p.Nodes[i].Migrations)
	}
	return p
}
