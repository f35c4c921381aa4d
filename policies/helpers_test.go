package policies

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/droverhq/drover/cluster"
)

// Test builders: a node and a VM with sane defaults, changed by options.

func node(name string, memMiB int64, cpus int, opts ...func(*cluster.Node)) cluster.Node {
	n := cluster.Node{Name: name, State: cluster.NodeUp, MemoryMiB: memMiB, CPUs: cpus,
		Networks: []cluster.Network{{Name: "prod", VLAN: 10}}}
	for _, o := range opts {
		o(&n)
	}
	return n
}

func vm(name, on string, memMiB int64, vcpus int, opts ...func(*cluster.VM)) cluster.VM {
	v := cluster.VM{Name: name, Node: on, MemoryMiB: memMiB, VCPUs: vcpus, Power: cluster.PowerRunning,
		Migratable: true, Networks: []cluster.Network{{Name: "prod", VLAN: 10}}}
	for _, o := range opts {
		o(&v)
	}
	return v
}

func withState(s cluster.NodeState) func(*cluster.Node) { return func(n *cluster.Node) { n.State = s } }
func paused(n *cluster.Node)                            { n.Paused = true }
func withGroup(g string) func(*cluster.Node)            { return func(n *cluster.Node) { n.CPUGroup = g } }
func withNets(nets ...cluster.Network) func(*cluster.Node) {
	return func(n *cluster.Node) { n.Networks = nets }
}
func withDomain(d string) func(*cluster.Node) { return func(n *cluster.Node) { n.FaultDomain = d } }
func withLabel(k, v string) func(*cluster.Node) {
	return func(n *cluster.Node) {
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[k] = v
	}
}
func withNIC(nic, stream float64) func(*cluster.Node) {
	return func(n *cluster.Node) { n.NICMbps, n.StreamMbps = nic, stream }
}

func power(p cluster.PowerState) func(*cluster.VM) { return func(v *cluster.VM) { v.Power = p } }
func antiAff(g string, hard bool) func(*cluster.VM) {
	return func(v *cluster.VM) { v.AntiAffinity, v.AntiAffinityHard = g, hard }
}
func vmNets(nets ...cluster.Network) func(*cluster.VM) {
	return func(v *cluster.VM) { v.Networks = nets }
}
func notMigratable(reason string) func(*cluster.VM) {
	return func(v *cluster.VM) { v.Migratable, v.NotMigratableReason = false, reason }
}
func dirty(miBs float64) func(*cluster.VM)   { return func(v *cluster.VM) { v.DirtyMiBs = miBs } }
func preferred(n string) func(*cluster.VM)   { return func(v *cluster.VM) { v.PreferredNode = n } }
func migratingTo(n string) func(*cluster.VM) { return func(v *cluster.VM) { v.MigratingTo = n } }
func inv(nodes []cluster.Node, vms ...cluster.VM) cluster.Inventory {
	return cluster.Inventory{Nodes: nodes, VMs: vms}
}

// randomCluster builds a seeded random cluster with CPU groups, networks in mixed case,
// paused and down nodes, stopped and suspended VMs, soft and hard anti-affinity and
// non-migratable VMs. Nodes are loaded to roughly fill (0..1] of their memory.
func randomCluster(rng *rand.Rand, nNodes, nVMs int, fill float64) cluster.Inventory {
	groups := []string{"", "g1", "g2"}[:1+rng.IntN(3)]
	nets := []cluster.Network{{Name: "prod", VLAN: 10}, {Name: "Prod", VLAN: 20}, {Name: "backup", VLAN: 0}, {Name: "dmz", VLAN: 30}}
	var in cluster.Inventory
	for i := range nNodes {
		n := cluster.Node{
			Name:      fmt.Sprintf("n%03d", i),
			State:     cluster.NodeUp,
			MemoryMiB: int64(32768 * (1 + rng.IntN(4))),
			CPUs:      8 * (1 + rng.IntN(4)),
			CPUGroup:  groups[rng.IntN(len(groups))],
			Networks:  []cluster.Network{{Name: "PROD", VLAN: 10}}, // every node has the main network
		}
		for _, nw := range nets[1:] {
			if rng.IntN(4) != 0 {
				n.Networks = append(n.Networks, nw)
			}
		}
		switch r := rng.IntN(20); {
		case r == 0:
			n.State = cluster.NodeDown
		case r == 1:
			n.Paused, n.State = true, cluster.NodePaused
		}
		n.FaultDomain = fmt.Sprintf("rack%d", rng.IntN(3))
		n.NICMbps = []float64{0, 1000, 10000, 25000}[rng.IntN(4)]
		in.Nodes = append(in.Nodes, n)
	}
	used := make([]int64, nNodes)
	for i := range nVMs {
		ni := rng.IntN(nNodes)
		n := in.Nodes[ni]
		mem := int64(512 * (1 + rng.IntN(16)))
		if float64(used[ni]+mem) > fill*float64(n.MemoryMiB) {
			continue
		}
		used[ni] += mem
		v := cluster.VM{
			Name: fmt.Sprintf("vm%05d", i), Node: n.Name, MemoryMiB: mem,
			VCPUs: 1 + rng.IntN(8), Power: cluster.PowerRunning, Migratable: true,
			DirtyMiBs: float64(rng.IntN(50)),
		}
		switch r := rng.IntN(20); {
		case r == 0:
			v.Power = cluster.PowerStopped
		case r == 1:
			v.Power = cluster.PowerSuspended
		case r == 2:
			v.Migratable, v.NotMigratableReason = false, "local disk"
		}
		if rng.IntN(4) == 0 {
			v.AntiAffinity = fmt.Sprintf("svc%d", rng.IntN(max(nVMs/8, 1)))
			v.AntiAffinityHard = rng.IntN(2) == 0
		}
		// The VM uses some of its node's networks (so it could at least stay there).
		for _, nw := range n.Networks {
			if rng.IntN(2) == 0 {
				v.Networks = append(v.Networks, cluster.Network{Name: strings.ToLower(nw.Name), VLAN: nw.VLAN})
			}
		}
		in.VMs = append(in.VMs, v)
	}
	return in
}

// naiveCluster is an obviously correct, slow model of placement rules for the tests:
// every question scans every VM. It shares no code with Placer.
type naiveCluster struct {
	nodes       map[string]cluster.Node
	vms         []cluster.VM // Node = where the VM is now
	headroom    int64
	overcommit  float64
	unavailable map[string]bool
	rank        map[string]int
}

func newNaive(in cluster.Inventory, opts PlacementOptions) *naiveCluster {
	c := &naiveCluster{nodes: map[string]cluster.Node{}, vms: slices.Clone(in.VMs),
		headroom: opts.MemoryHeadroomMiB, overcommit: opts.CPUOvercommit,
		unavailable: map[string]bool{}, rank: map[string]int{}}
	if c.overcommit == 0 {
		c.overcommit = 4
	}
	for _, n := range in.Nodes {
		c.nodes[n.Name] = n
	}
	for n := range opts.Unavailable {
		c.unavailable[n] = true
	}
	for n, r := range opts.Rank {
		c.rank[n] = r
	}
	return c
}

func (c *naiveCluster) find(name string) *cluster.VM {
	for i := range c.vms {
		if c.vms[i].Name == name {
			return &c.vms[i]
		}
	}
	return nil
}

func (c *naiveCluster) used(node string) (mem int64, cpus int) {
	for _, v := range c.vms {
		if v.Node == node && v.Power != cluster.PowerStopped {
			mem += v.MemoryMiB
			cpus += v.VCPUs
		}
	}
	return mem, cpus
}

func (c *naiveCluster) rankOf(node string) int {
	if r, ok := c.rank[node]; ok {
		return r
	}
	return 1
}

// violations lists the hard rules that moving v (from v.Node) to target would break.
func (c *naiveCluster) violations(v cluster.VM, target string) []string {
	var out []string
	t, ok := c.nodes[target]
	if !ok {
		return []string{"unknown target"}
	}
	if target == v.Node {
		out = append(out, "source")
	}
	if t.State != cluster.NodeUp || t.Paused {
		out = append(out, "not up")
	}
	if c.unavailable[target] {
		out = append(out, "unavailable")
	}
	if c.nodes[v.Node].CPUGroup != t.CPUGroup {
		out = append(out, "cpu group")
	}
	for _, want := range v.Networks {
		found := false
		for _, have := range t.Networks {
			if strings.EqualFold(want.Name, have.Name) && want.VLAN == have.VLAN {
				found = true
			}
		}
		if !found {
			out = append(out, "network")
		}
	}
	if v.Power != cluster.PowerStopped {
		mem, cpus := c.used(target)
		if mem+v.MemoryMiB > t.MemoryMiB-c.headroom {
			out = append(out, "memory")
		}
		if float64(cpus+v.VCPUs) > math.Floor(float64(t.CPUs)*c.overcommit+1e-9) {
			out = append(out, "vcpu")
		}
		for _, u := range c.vms {
			if u.Node == target && u.Name != v.Name && u.Power != cluster.PowerStopped &&
				v.AntiAffinity != "" && u.AntiAffinity == v.AntiAffinity &&
				(u.AntiAffinityHard || v.AntiAffinityHard) {
				out = append(out, "hard anti-affinity")
			}
		}
	}
	return out
}

func (c *naiveCluster) soft(v cluster.VM, target string) int {
	n := 0
	for _, u := range c.vms {
		if u.Node == target && u.Name != v.Name && u.Power != cluster.PowerStopped &&
			v.Power != cluster.PowerStopped && v.AntiAffinity != "" && u.AntiAffinity == v.AntiAffinity {
			n++
		}
	}
	return n
}

// best is the reference choice: every feasible node, sorted by the documented
// preferences. busy is true when only avoided nodes are feasible.
func (c *naiveCluster) best(v cluster.VM, avoid map[string]bool) (target string, busy bool) {
	type cand struct {
		name       string
		soft, rank int
		free       int64
	}
	var cands []cand
	for name, n := range c.nodes {
		if len(c.violations(v, name)) > 0 {
			continue
		}
		if avoid[name] {
			busy = true
			continue
		}
		mem, _ := c.used(name)
		cands = append(cands, cand{name, c.soft(v, name), c.rankOf(name), n.MemoryMiB - c.headroom - mem})
	}
	if len(cands) == 0 {
		return "", busy
	}
	slices.SortFunc(cands, func(a, b cand) int {
		return cmp.Or(cmp.Compare(a.soft, b.soft), cmp.Compare(a.rank, b.rank),
			cmp.Compare(b.free, a.free), strings.Compare(a.name, b.name))
	})
	return cands[0].name, false
}
