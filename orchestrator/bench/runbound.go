package bench

import (
	"cmp"
	"math"
	"slices"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/policies"
)

// RunBound is the lower bound of a whole rolling run: every node drained, patched
// and rebooted, at most Parallel at once. See RunLowerBound.
type RunBound struct {
	// Seconds is the bound: the largest of the three terms below.
	Seconds float64 `json:"seconds"`
	// Parallel is the most nodes that can be in maintenance at once: the
	// scenario's max_parallel_nodes, lowered to what the reserve allows.
	Parallel int `json:"parallel_nodes"`
	// LongestNode: the node whose drain, patch and reboot take longest.
	LongestNode float64 `json:"longest_node_seconds"`
	// Spread: every node's time spread evenly over Parallel slots.
	Spread float64 `json:"spread_seconds"`
	// Batches: the batch term, (k+1)·t_(kP+1) at its largest (with equal nodes it is
	// batches × one node's time).
	Batches float64 `json:"batches_seconds"`
	// MoveAgain is the least extra source-NIC time of the VMs that must move twice
	// (those of the first node drained land on nodes not yet patched), counted in
	// Spread beyond what the nodes' slack absorbs.
	MoveAgain float64 `json:"move_again_seconds"`
	// Converges is false when some node's drain cannot converge (Seconds +Inf).
	Converges bool `json:"converges"`
}

// NodeTime is the least time one node spends in maintenance: its drain's lower
// bound (every other ready node a possible target), then its install and reboot.
type NodeTime struct {
	Node    string
	Seconds float64
	// Slack is how much more its source NIC could carry before its drain bound
	// grows: the bound's largest term minus its source-NIC term.
	Slack float64
}

// RunLowerBound computes the bound of a whole run over nodes (with times t_i, the
// least time node i spends out: drain bound + install + reboot) when at most
// parallel nodes are out at once, and again seconds of source-NIC time that VMs
// moving a second time add to the drains. With t sorted longest first
// (t_1 >= t_2 >= …) and P = parallel:
//
//	bound = max( t_1,                                  no node is faster than its own time
//	             (Σ t_i + max(0, again − Σ slack_i)) / P,  P slots carry every node's time
//	             max_k (k+1) · t_(kP+1) )              of the kP+1 longest nodes, some
//	                                                   slot runs k+1 one after another
//
// It is a bound whatever the order and however the drains overlap: draining
// several nodes at once shares links and only makes each drain longer, never
// shorter than its own bound. A VM that lands on a node not yet patched leaves it
// again in that node's drain, through its source NIC: that adds to the node's
// source-NIC term, which lengthens its drain once the term passes the others (the
// slack). When every node takes the same time the bound is batches × one node's
// time, ⌈N/P⌉·t.
func RunLowerBound(times []NodeTime, parallel int, again float64) RunBound {
	parallel = max(parallel, 1)
	b := RunBound{Parallel: parallel, Converges: true}
	if len(times) == 0 {
		return b
	}
	t := make([]float64, len(times))
	sum, slack := 0.0, 0.0
	for i, n := range times {
		t[i] = n.Seconds
		sum += n.Seconds
		slack += max(n.Slack, 0)
		if math.IsInf(n.Seconds, 1) {
			b.Converges = false
		}
	}
	if !b.Converges {
		b.Seconds, b.LongestNode, b.Spread, b.Batches = math.Inf(1), math.Inf(1), math.Inf(1), math.Inf(1)
		return b
	}
	slices.SortFunc(t, func(a, b float64) int { return cmp.Compare(b, a) })
	b.LongestNode = t[0]
	b.MoveAgain = max(again, 0)
	b.Spread = (sum + max(0, b.MoveAgain-slack)) / float64(parallel)
	for k := 0; k*parallel < len(t); k++ {
		b.Batches = max(b.Batches, float64(k+1)*t[k*parallel])
	}
	b.Seconds = max(b.LongestNode, b.Spread, b.Batches)
	return b
}

// ScenarioRunBound is RunLowerBound of a scenario's cluster, whose every node is
// patched and rebooted: each node's drain bound (LowerBound with that node alone
// as the source), the model's install (instant) and the node's reboot_seconds; the
// parallelism is the scenario's max_parallel_nodes, lowered to the most nodes the
// reserve lets out at once. The VMs of the first node drained of each CPU group
// have no patched node to land on and move again: at least the memory of the
// group's least loaded node, at the fastest NIC of the cluster.
func ScenarioRunBound(sc Scenario, inv cluster.Inventory) RunBound {
	reboot := map[string]float64{}
	for _, n := range sc.Cluster.Nodes {
		reboot[n.Name] = n.RebootSeconds
	}
	times := make([]NodeTime, 0, len(inv.Nodes))
	fastest := 0.0
	for _, n := range inv.Nodes {
		d := LowerBound(inv, sc.Cluster.Model, []string{n.Name})
		times = append(times, NodeTime{Node: n.Name, Seconds: d.Seconds + reboot[n.Name], Slack: d.Seconds - d.SourceNIC})
		fastest = max(fastest, n.NICMbps*mibPerMbit)
	}
	again := 0.0
	if fastest > 0 {
		again = firstMoveAgainMiB(inv) / fastest
	}
	return RunLowerBound(times, reserveParallel(inv, sc.ReserveK, max(sc.ParallelNodes, 1)), again)
}

// firstMoveAgainMiB is the least memory that moves twice in a run patching every
// node: per CPU group, the running migratable VMs of its least loaded node (the
// first node drained of a group can send its VMs only to nodes not yet patched).
// Nodes of no group take any VM: then the least loaded node of the cluster.
func firstMoveAgainMiB(inv cluster.Inventory) float64 {
	load := map[string]float64{}
	for _, v := range inv.VMs {
		if v.Running() && v.Migratable {
			load[v.Node] += float64(v.MemoryMiB)
		}
	}
	least := map[string]float64{}
	for _, n := range inv.Nodes {
		g := n.CPUGroup
		if cur, ok := least[g]; !ok || load[n.Name] < cur {
			least[g] = load[n.Name]
		}
	}
	if _, mixed := least[""]; mixed && len(least) > 1 {
		m := math.Inf(1)
		for _, v := range least {
			m = min(m, v)
		}
		return m
	}
	total := 0.0
	for _, v := range least {
		total += v
	}
	return total
}

// reserveParallel is the most nodes, up to limit, that the reserve lets out at
// once: checked with the nodes holding the least VM memory out, the set that
// leaves the most room when nodes have equal capacity (with unequal nodes another
// set might hold where this one breaks, and the bound would be too high: the
// scenarios' nodes are equal). The first node always goes (the engine does not
// check the reserve for it).
func reserveParallel(inv cluster.Inventory, k, limit int) int {
	if limit <= 1 {
		return 1
	}
	load := map[string]int64{}
	for _, v := range inv.VMs {
		if v.Running() && v.Migratable {
			load[v.Node] += v.MemoryMiB
		}
	}
	names := make([]string, 0, len(inv.Nodes))
	for _, n := range inv.Nodes {
		names = append(names, n.Name)
	}
	slices.SortStableFunc(names, func(a, b string) int {
		if c := cmp.Compare(load[a], load[b]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	for m := min(limit, len(names)); m > 1; m-- {
		if policies.ReserveCheck(inv, k, names[:m], policies.ReserveOptions{}).Holds {
			return m
		}
	}
	return 1
}

// rounded makes the run bound printable, -1 for "cannot converge".
func (b RunBound) rounded() RunBound {
	b.Seconds, b.LongestNode, b.Spread, b.Batches = round(b.Seconds), round(b.LongestNode), round(b.Spread), round(b.Batches)
	return b
}
