package policies

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/droverhq/drover/cluster"
)

func TestOrderNodes(t *testing.T) {
	const g = 1024
	// n1: 2 VMs, n2: 1 running + 1 stopped, n3: 0, n4: 3, n5: 1 (tie with n2 by count).
	base := inv([]cluster.Node{
		node("n4", 100*g, 8, withDomain("rack-b"), withLabel("row", "2")),
		node("n1", 100*g, 8, withDomain("rack-a"), withLabel("row", "2")),
		node("n2", 100*g, 8, withDomain("rack-b"), withLabel("row", "1")),
		node("n3", 100*g, 8),
		node("n5", 100*g, 8, withDomain("rack-a")),
	},
		vm("a1", "n1", g, 1), vm("a2", "n1", g, 1),
		vm("b1", "n2", g, 1), vm("b2", "n2", g, 1, power(cluster.PowerStopped)),
		vm("d1", "n4", g, 1), vm("d2", "n4", g, 1), vm("d3", "n4", g, 1),
		vm("e1", "n5", g, 1),
	)
	withDown := base
	withDown.Nodes = append(slices.Clone(base.Nodes), node("n6", 100*g, 8, withState(cluster.NodeDown)), node("n7", 100*g, 8, withState(cluster.NodeRebooting)))
	moveOnce := inv([]cluster.Node{node("a", 100, 8), node("b", 100, 8), node("c", 100, 8), node("d", 200, 8)},
		vm("a1", "a", 50, 1), vm("b1", "b", 10, 1), vm("c1", "c", 40, 1), vm("c2", "c", 40, 1),
		vm("d1", "d", 150, 1))

	tests := []struct {
		name        string
		inv         cluster.Inventory
		opts        OrderOptions
		want        []string
		wantSkipped []string // "node: reason" substrings, in order
		wantErr     string
	}{
		{name: "fewest-vms-default", inv: base, want: []string{"n3", "n2", "n5", "n1", "n4"}},
		{name: "fewest-vms-named", inv: base, opts: OrderOptions{Strategy: OrderFewestVMs}, want: []string{"n3", "n2", "n5", "n1", "n4"}},
		{name: "down-and-rebooting-skipped", inv: withDown, want: []string{"n3", "n2", "n5", "n1", "n4"},
			wantSkipped: []string{"n6: node is down", "n7: node is rebooting"}},
		{name: "explicit", inv: base, opts: OrderOptions{Strategy: OrderExplicit, Nodes: []string{"n4", "n1", "n3"}},
			want: []string{"n4", "n1", "n3"}, wantSkipped: []string{"n2: not in the explicit order", "n5: not in the explicit order"}},
		{name: "explicit-unknown-node", inv: base, opts: OrderOptions{Strategy: OrderExplicit, Nodes: []string{"n1", "nx"}},
			wantErr: `order.nodes[1]: unknown node "nx"`},
		{name: "explicit-repeated-node", inv: base, opts: OrderOptions{Strategy: OrderExplicit, Nodes: []string{"n1", "n1"}},
			wantErr: `order.nodes[1]: node "n1" repeated`},
		{name: "explicit-empty", inv: base, opts: OrderOptions{Strategy: OrderExplicit}, wantErr: "order.nodes: explicit order without nodes"},
		{name: "explicit-down-node-skipped", inv: withDown, opts: OrderOptions{Strategy: OrderExplicit, Nodes: []string{"n6", "n1"}},
			want: []string{"n1"}, wantSkipped: []string{"n2: not in", "n3: not in", "n4: not in", "n5: not in", "n6: node is down", "n7: node is rebooting"}},
		{name: "fault-domain", inv: base, opts: OrderOptions{Strategy: OrderFaultDomain},
			want: []string{"n5", "n1", "n2", "n4", "n3"}},
		{name: "label", inv: base, opts: OrderOptions{Strategy: OrderLabel, Label: "row"},
			want: []string{"n2", "n1", "n4", "n3", "n5"}},
		{name: "label-without-key", inv: base, opts: OrderOptions{Strategy: OrderLabel}, wantErr: "order.label"},
		{name: "unknown-strategy", inv: base, opts: OrderOptions{Strategy: "random"}, wantErr: `order.strategy: unknown strategy "random"`},
		// move-once: b (least load) first; then a (50 fits in 100 free, frees 50) before
		// c (80 fits, frees 20) and d (150 does not fit yet); then d (fits in 150, frees 50), c.
		{name: "move-once", inv: moveOnce, opts: OrderOptions{Strategy: OrderMoveOnce}, want: []string{"b", "a", "d", "c"}},
		{name: "pending-zero-and-missing-skipped", inv: base,
			opts: OrderOptions{Pending: map[string]int{"n1": 3, "n2": 0, "n3": 1, "n4": 2}},
			want: []string{"n3", "n1", "n4"},
			wantSkipped: []string{"n2: no pending updates (force to maintain anyway)",
				"n5: no scan result: pending updates unknown"}},
		{name: "pending-forced", inv: base, opts: OrderOptions{Pending: map[string]int{"n1": 3}, Force: true},
			want: []string{"n3", "n2", "n5", "n1", "n4"}},
		{name: "excluded", inv: base, opts: OrderOptions{Exclude: map[string]string{"n1": "holds the licence server", "n3": ""}},
			want: []string{"n2", "n5", "n4"}, wantSkipped: []string{"n1: holds the licence server", "n3: excluded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, skipped, err := OrderNodes(tt.inv, tt.opts)
			if tt.wantErr != "" {
				var fe *cluster.FieldError
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &fe) {
					t.Fatalf("OrderNodes error = %v, want *FieldError with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("OrderNodes: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("order = %v, want %v", got, tt.want)
			}
			if len(skipped) != len(tt.wantSkipped) {
				t.Fatalf("skipped = %v, want %v", skipped, tt.wantSkipped)
			}
			for i, s := range skipped {
				if line := fmt.Sprintf("%s: %s", s.Node, s.Reason); !strings.HasPrefix(line, tt.wantSkipped[i]) {
					t.Errorf("skipped[%d] = %q, want prefix %q", i, line, tt.wantSkipped[i])
				}
			}
		})
	}
}

func TestParseOrderStrategy(t *testing.T) {
	for _, s := range OrderStrategies() {
		if got, err := ParseOrderStrategy(string(s)); err != nil || got != s {
			t.Errorf("ParseOrderStrategy(%q) = %q, %v", s, got, err)
		}
	}
	if got, err := ParseOrderStrategy(""); err != nil || got != OrderFewestVMs {
		t.Errorf(`ParseOrderStrategy("") = %q, %v`, got, err)
	}
	if _, err := ParseOrderStrategy("Fewest-VMs"); err == nil || !strings.Contains(err.Error(), "use one of fewest-vms, explicit") {
		t.Errorf("ParseOrderStrategy(bad) = %v", err)
	}
}
