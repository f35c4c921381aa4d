package policies

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/droverhq/drover/cluster"
)

// OrderStrategy names a way to order the nodes of a run.
type OrderStrategy string

const (
	// OrderFewestVMs maintains the node with the fewest capacity-reserving VMs first
	// (CAU's default), ties by name. The default.
	OrderFewestVMs OrderStrategy = "fewest-vms"
	// OrderExplicit follows OrderOptions.Nodes.
	OrderExplicit OrderStrategy = "explicit"
	// OrderFaultDomain maintains a whole fault domain after another (domains by name,
	// nodes without a domain last), fewest VMs first inside a domain.
	OrderFaultDomain OrderStrategy = "fault-domain"
	// OrderLabel is OrderFaultDomain with the value of the label OrderOptions.Label.
	OrderLabel OrderStrategy = "label"
	// OrderMoveOnce aims at moving each VM once: start with the least loaded node, then
	// always take the node whose VMs fit into the memory already free on patched nodes
	// and that frees the most capacity once patched. A heuristic on memory sums.
	OrderMoveOnce OrderStrategy = "move-once"
)

// OrderStrategies lists the valid strategies, for messages and flag help.
func OrderStrategies() []OrderStrategy {
	return []OrderStrategy{OrderFewestVMs, OrderExplicit, OrderFaultDomain, OrderLabel, OrderMoveOnce}
}

// ParseOrderStrategy checks a strategy name; "" is OrderFewestVMs.
func ParseOrderStrategy(s string) (OrderStrategy, error) {
	if s == "" {
		return OrderFewestVMs, nil
	}
	if slices.Contains(OrderStrategies(), OrderStrategy(s)) {
		return OrderStrategy(s), nil
	}
	return "", fieldf("order.strategy", "use one of "+joinStrategies(), "unknown strategy %q", s)
}

func joinStrategies() string {
	var s []string
	for _, o := range OrderStrategies() {
		s = append(s, string(o))
	}
	return strings.Join(s, ", ")
}

// OrderOptions configures OrderNodes.
type OrderOptions struct {
	Strategy OrderStrategy `json:"strategy,omitempty"` // "" = fewest-vms
	// Nodes is the order of OrderExplicit; inventory nodes not listed are skipped.
	Nodes []string `json:"nodes,omitempty"`
	// Label is the label key of OrderLabel.
	Label string `json:"label,omitempty"`
	// Pending maps a node to its number of pending updates. Nil means no scan was made:
	// every node is maintained. A node missing from a non-nil map is skipped (its scan
	// failed or was not done), as is a node with 0, unless Force.
	Pending map[string]int `json:"pending,omitempty"`
	// Force maintains nodes without pending updates (or without a scan result) too.
	Force bool `json:"force,omitempty"`
	// Exclude maps nodes the operator leaves out to the reason.
	Exclude map[string]string `json:"exclude,omitempty"`
}

// SkippedNode is a node a run does not maintain, and why.
type SkippedNode struct {
	Node   string `json:"node"`
	Reason string `json:"reason"`
}

// OrderNodes returns the nodes to maintain, in order, and the nodes skipped with the
// reason (by node name). Nodes that are down or rebooting are always skipped. The
// error is a *FieldError for a bad strategy, an unknown or repeated explicit node, or
// a missing label key.
func OrderNodes(inv cluster.Inventory, opts OrderOptions) ([]string, []SkippedNode, error) {
	strategy, err := ParseOrderStrategy(string(opts.Strategy))
	if err != nil {
		return nil, nil, err
	}
	nodes := map[string]cluster.Node{}
	for _, n := range inv.Nodes {
		if _, dup := nodes[n.Name]; !dup {
			nodes[n.Name] = n
		}
	}
	switch strategy {
	case OrderExplicit:
		if len(opts.Nodes) == 0 {
			return nil, nil, fieldf("order.nodes", "list the nodes in the order to maintain them", "explicit order without nodes")
		}
		seen := map[string]bool{}
		for i, n := range opts.Nodes {
			if _, ok := nodes[n]; !ok {
				return nil, nil, fieldf(fmt.Sprintf("order.nodes[%d]", i), "use a node name from the inventory", "unknown node %q", n)
			}
			if seen[n] {
				return nil, nil, fieldf(fmt.Sprintf("order.nodes[%d]", i), "list each node once", "node %q repeated", n)
			}
			seen[n] = true
		}
	case OrderLabel:
		if opts.Label == "" {
			return nil, nil, fieldf("order.label", "name the label key that groups nodes, e.g. rack", "label order without a label key")
		}
	}

	var skipped []SkippedNode
	eligible := map[string]bool{}
	for name, n := range nodes {
		if reason := skipReason(n, opts); reason != "" {
			skipped = append(skipped, SkippedNode{Node: name, Reason: reason})
			continue
		}
		eligible[name] = true
	}

	load := nodeLoads(inv)
	fewest := func(a, b string) int {
		return cmp.Or(cmp.Compare(load[a].vms, load[b].vms), strings.Compare(a, b))
	}
	var order []string
	switch strategy {
	case OrderExplicit:
		listed := map[string]bool{}
		for _, n := range opts.Nodes {
			listed[n] = true
			if eligible[n] {
				order = append(order, n)
			}
		}
		for n := range eligible {
			if !listed[n] {
				skipped = append(skipped, SkippedNode{Node: n, Reason: "not in the explicit order"})
			}
		}
	case OrderFewestVMs:
		for n := range eligible {
			order = append(order, n)
		}
		slices.SortFunc(order, fewest)
	case OrderFaultDomain, OrderLabel:
		domain := func(n string) string {
			if strategy == OrderLabel {
				return nodes[n].Labels[opts.Label]
			}
			return nodes[n].FaultDomain
		}
		for n := range eligible {
			order = append(order, n)
		}
		slices.SortFunc(order, func(a, b string) int {
			da, db := domain(a), domain(b)
			if (da == "") != (db == "") { // nodes without a domain go last
				if da == "" {
					return 1
				}
				return -1
			}
			return cmp.Or(strings.Compare(da, db), fewest(a, b))
		})
	case OrderMoveOnce:
		order = moveOnceOrder(eligible, nodes, load)
	}
	slices.SortFunc(skipped, func(a, b SkippedNode) int { return strings.Compare(a.Node, b.Node) })
	return order, skipped, nil
}

func skipReason(n cluster.Node, opts OrderOptions) string {
	if r, ok := opts.Exclude[n.Name]; ok {
		if r == "" {
			r = "excluded"
		}
		return r
	}
	if !n.Ready() {
		return fmt.Sprintf("node is %s", n.State)
	}
	if opts.Pending == nil || opts.Force {
		return ""
	}
	c, ok := opts.Pending[n.Name]
	switch {
	case !ok:
		return "no scan result: pending updates unknown (force to maintain anyway)"
	case c <= 0:
		return "no pending updates (force to maintain anyway)"
	}
	return ""
}

type nodeLoad struct {
	vms int
	mem int64
}

// nodeLoads counts the capacity-reserving VMs of every node.
func nodeLoads(inv cluster.Inventory) map[string]nodeLoad {
	out := map[string]nodeLoad{}
	for _, v := range inv.VMs {
		if reserves(v) {
			l := out[v.Node]
			l.vms++
			l.mem += v.MemoryMiB
			out[v.Node] = l
		}
	}
	return out
}

// moveOnceOrder: patched is the memory free on patched nodes. The next node is one
// whose load fits into it (its VMs then move once) that leaves the most free memory
// once patched; when none fits, the least loaded node (fewest VMs move twice).
func moveOnceOrder(eligible map[string]bool, nodes map[string]cluster.Node, load map[string]nodeLoad) []string {
	left := make([]string, 0, len(eligible))
	for n := range eligible {
		left = append(left, n)
	}
	slices.Sort(left)
	var order []string
	var patched int64
	for len(left) > 0 {
		best := -1
		for i, n := range left {
			l, c := load[n].mem, nodes[n].MemoryMiB
			if best < 0 {
				best = i
				continue
			}
			bl, bc := load[left[best]].mem, nodes[left[best]].MemoryMiB
			fits, bestFits := l <= patched, bl <= patched
			switch {
			case fits && !bestFits:
				best = i
			case fits && bestFits && c-l > bc-bl:
				best = i
			case !fits && !bestFits && l < bl:
				best = i
			}
		}
		n := left[best]
		left = slices.Delete(left, best, best+1)
		order = append(order, n)
		patched += nodes[n].MemoryMiB - min(patched, load[n].mem)
	}
	return order
}
