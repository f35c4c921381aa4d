package policies

import (
	"strings"
	"testing"

	"github.com/droverhq/drover/cluster"
)

func TestBuildPlan_MaxParallelNodes(t *testing.T) {
	const g = 1024
	// Four roomy nodes: any two can be out at once.
	roomy := inv([]cluster.Node{node("n1", 64*g, 16), node("n2", 64*g, 16), node("n3", 64*g, 16), node("n4", 64*g, 16)},
		vm("a", "n1", 8*g, 2), vm("b", "n2", 8*g, 2), vm("c", "n3", 8*g, 2), vm("d", "n4", 8*g, 2))
	// Three nodes with 40 GiB of VMs: one node out leaves 64 GiB, two leave 32.
	tight := inv([]cluster.Node{node("n1", 32*g, 16), node("n2", 32*g, 16), node("n3", 32*g, 16)},
		vm("a", "n1", 14*g, 2), vm("b", "n2", 13*g, 2), vm("c", "n3", 13*g, 2))
	tests := []struct {
		name    string
		inv     cluster.Inventory
		opts    PlanOptions
		shorter bool // the ETA with 2 nodes at once is shorter than with 1
		atOnce  int  // the most nodes in maintenance at once with 2 allowed
	}{
		{name: "capacity-allows-two", inv: roomy, shorter: true, atOnce: 2},
		{name: "capacity-forbids-two", inv: tight, atOnce: 1},
		// k=2: one node out leaves three, of which two may fail; two out leave two.
		{name: "reserve-forbids-two", inv: roomy, opts: PlanOptions{ReserveK: 2}, atOnce: 1},
		{name: "override-reserve-ignores-it", inv: roomy, opts: PlanOptions{ReserveK: 2, OverrideReserve: true}, shorter: true, atOnce: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			one, two := tt.opts, tt.opts
			one.MaxParallelNodes, two.MaxParallelNodes = 1, 2
			p1, err := BuildPlan(tt.inv, one)
			if err != nil {
				t.Fatal(err)
			}
			p2, err := BuildPlan(tt.inv, two)
			if err != nil {
				t.Fatal(err)
			}
			if p1.Blocked+p2.Blocked != 0 {
				t.Fatalf("blocked nodes: %s / %s", migrationsOf(p1), migrationsOf(p2))
			}
			// One at a time: the plan is the sequential one, each node after the last.
			for i, n := range p1.Nodes {
				if i > 0 && n.Start != p1.Nodes[i-1].End {
					t.Errorf("max 1: %s starts at %v, the previous ends at %v", n.Node, n.Start, p1.Nodes[i-1].End)
				}
			}
			if p1.ETA != p1.Nodes[len(p1.Nodes)-1].End {
				t.Errorf("max 1: ETA %v, last node ends at %v", p1.ETA, p1.Nodes[len(p1.Nodes)-1].End)
			}
			atOnce := 0
			for i, n := range p2.Nodes {
				// Durations and order are kept.
				if d1, d2 := p1.Nodes[i].End-p1.Nodes[i].Start, n.End-n.Start; d1 != d2 || n.Node != p1.Nodes[i].Node {
					t.Errorf("node %d: %s %v with 2, %s %v with 1", i, n.Node, d2, p1.Nodes[i].Node, d1)
				}
				if i > 0 && n.Start < p2.Nodes[i-1].Start {
					t.Errorf("%s starts before %s", n.Node, p2.Nodes[i-1].Node)
				}
				// Nodes in maintenance when n starts (n included).
				in := 0
				for _, o := range p2.Nodes[:i+1] {
					if o.Start <= n.Start && n.Start < o.End {
						in++
					}
				}
				atOnce = max(atOnce, in)
			}
			if atOnce != tt.atOnce {
				t.Errorf("%d nodes in maintenance at once, want %d", atOnce, tt.atOnce)
			}
			if tt.shorter {
				if p2.ETA >= p1.ETA {
					t.Errorf("ETA with 2 at once %v, want less than with 1 (%v)", p2.ETA, p1.ETA)
				}
				if !strings.Contains(strings.Join(p2.Warnings, "\n"), "max_parallel_nodes=2") {
					t.Errorf("no warning that targets are planned one node after the other: %q", p2.Warnings)
				}
			} else if p2.ETA != p1.ETA {
				t.Errorf("ETA with 2 at once %v, want %v as with 1: no two nodes may be out together", p2.ETA, p1.ETA)
			}
		})
	}
}
