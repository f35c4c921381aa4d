// Over 600 lines: the placer's capacity, CPU-group, network and anti-affinity rules share one index of the cluster; split, every rule would need it exported.

package policies

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/droverhq/drover/cluster"
)

// DefaultCPUOvercommit is the vCPU to physical CPU ratio used when
// PlacementOptions.CPUOvercommit is 0.
const DefaultCPUOvercommit = 4.0

// PlacementOptions configures a Placer.
type PlacementOptions struct {
	// CPUOvercommit is the maximum of vCPUs per physical CPU on a target; 0 = DefaultCPUOvercommit.
	CPUOvercommit float64 `json:"cpu_overcommit,omitempty"`
	// MemoryHeadroomMiB is kept free on every node for the hypervisor itself.
	MemoryHeadroomMiB int64 `json:"memory_headroom_mib,omitempty"`
	// Unavailable maps a node to the reason it takes no placements now (in maintenance,
	// draining, excluded by the operator).
	Unavailable map[string]string `json:"unavailable,omitempty"`
	// Rank is a preference among feasible targets: lower is better (already patched
	// nodes 0, nodes drained later in the run 2). Nodes not listed rank 1.
	Rank map[string]int `json:"rank,omitempty"`
}

func (o PlacementOptions) overcommit() float64 {
	if o.CPUOvercommit <= 0 {
		return DefaultCPUOvercommit
	}
	return o.CPUOvercommit
}

// Validate reports options that cannot be right.
func (o PlacementOptions) Validate() error {
	var errs []error
	if o.CPUOvercommit < 0 || math.IsNaN(o.CPUOvercommit) || math.IsInf(o.CPUOvercommit, 0) {
		errs = append(errs, fieldf("cpu_overcommit", "use a ratio > 0, e.g. 4, or 0 for the default", "%v is not a valid ratio", o.CPUOvercommit))
	}
	if o.MemoryHeadroomMiB < 0 {
		errs = append(errs, fieldf("memory_headroom_mib", "use 0 or more MiB", "%d is negative", o.MemoryHeadroomMiB))
	}
	return errors.Join(errs...)
}

// Sentinel errors of Place and PlaceOn; test with errors.Is.
var (
	// ErrNoTarget: no node can take the VM (the error is a *NoTargetError with the reasons).
	ErrNoTarget = errors.New("no feasible target")
	// ErrTargetsBusy: the only feasible targets are the ones the caller asked to avoid
	// (e.g. they are at their concurrent-migration limit); retry when one is free.
	ErrTargetsBusy = errors.New("all feasible targets are busy")
)

// Refusal says why one node cannot take a VM.
type Refusal struct {
	Node   string `json:"node"`
	Reason string `json:"reason"`
}

func (r Refusal) String() string { return r.Node + ": " + r.Reason }

// NoTargetError is returned when no node can take a VM. errors.Is(err, ErrNoTarget) holds.
type NoTargetError struct {
	VM string
	// Refusals has one entry per refused node, by node name.
	Refusals []Refusal
}

// maxRefusalsInMessage keeps the message of a large cluster readable; Refusals has all.
const maxRefusalsInMessage = 12

func (e *NoTargetError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "place vm %s: %v", e.VM, ErrNoTarget)
	for i, r := range e.Refusals {
		if i == maxRefusalsInMessage {
			fmt.Fprintf(&b, "; and %d more nodes", len(e.Refusals)-i)
			break
		}
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(r.String())
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNoTarget) true.
func (e *NoTargetError) Is(target error) bool { return target == ErrNoTarget }

// Placer tracks the free capacity of a cluster and picks migration targets.
//
// It is the cluster model that Place, Cancel and the reserve check share: a Place
// moves the VM's reservation from its source to the target at once, so the next
// decision sees it. Safe for concurrent use (one mutex; every call is short).
//
// Hard constraints of a target: State up and not Paused, not Unavailable, not the VM's
// current node, the source's CPU group, every network of the VM (Network.SameAs),
// memory (node memory - headroom - reserved) and vCPUs (CPUs x overcommit - reserved),
// hard anti-affinity. Soft preferences, in order: fewer soft anti-affinity conflicts,
// lower Rank, more free memory after placement (spreads load: one destination taking
// every VM is how OOM cascades start), node name.
//
// Anti-affinity: VMs sharing a non-empty AntiAffinity value form a group. Placing a VM
// on a node that holds another capacity-reserving VM of its group is a hard conflict
// when either of the two is AntiAffinityHard, else a soft one.
//
// Stopped VMs reserve nothing, so Place checks state, CPU group and networks for them
// but not capacity or anti-affinity. A VM with MigratingTo set in the snapshot counts
// on its target and keeps its reservation on its source too (both hold its memory
// while the migration runs; conservative if it is then aborted).
type Placer struct {
	mu sync.Mutex

	headroom   int64
	overcommit float64

	// nodes, sorted by name; nodeIdx maps a name to its index.
	nodes   []pnode
	nodeIdx map[string]int32
	// byGroup holds, per CPU group id, its node indices ordered by (rank, free memory
	// descending, name): the first feasible node in that order is the best one.
	byGroup  [][]int32
	ordered  bool // byGroup is built (NewPlacer is done)
	groupIdx map[string]int32
	groupOf  []string // group id -> name, for messages

	// netIdx interns networks (lower-case name + VLAN) to bit positions of pnode.nets.
	netIdx map[netKey]int32

	vms   []pvm
	vmIdx map[string]int32

	aaIdx map[string]int32
	// cells counts, per (anti-affinity group, node), the reserving VMs of the group there.
	cells map[cellKey]*aaCell
	// aaHard counts the reserving hard VMs per group: a group without any can only
	// conflict with a hard newcomer (saves map lookups in the reserve check).
	aaHard []int32

	scratch *reserveScratch // buffers of ReserveCheck, reused
}

type pnode struct {
	name        string
	state       cluster.NodeState
	paused      bool
	group       int32
	nets        []uint64
	capMem      int64 // MemoryMiB - headroom
	capVCPU     int   // floor(CPUs x overcommit)
	usedMem     int64
	usedVCPU    int
	unavailable string
	rank        int
	// storage is the free space for local disks (Node.StorageMiB), less the disks
	// placed here, plus those placed away.
	storage int64
	// vms are the capacity-reserving VMs accounted on this node (pvm indices).
	vms []int32
	// dispMem and dispCPU sum the migratable ones among vms: what the node's loss
	// displaces (reserve check).
	dispMem int64
	dispCPU int
	// disp caches those VMs by memory descending, name; valid while dispOK, like
	// dispNets (the union of their networks; dispUnknownNet when one is on no node) and
	// dispGroups (their anti-affinity groups).
	disp           []int32
	dispNets       []uint64
	dispUnknownNet bool
	dispGroups     []aaMark
	dispOK         bool
}

func (n *pnode) freeMem() int64 { return n.capMem - n.usedMem }
func (n *pnode) freeVCPU() int  { return n.capVCPU - n.usedVCPU }

// placeable reports whether the node takes placements at all.
func (n *pnode) placeable() bool {
	return n.state == cluster.NodeUp && !n.paused && n.unavailable == ""
}

type pvm struct {
	vm     cluster.VM // last value seen; vm.Node is the node it is accounted on
	node   int32      // accounted node, -1 = none
	from   int32      // node before the last Place, for Cancel; -1 = none
	pos    int32      // index in nodes[node].vms while reserving
	active bool       // reserves capacity (not stopped)
	group  int32      // anti-affinity group id, -1 = none
	nets   []int32
}

type netKey struct {
	name string
	vlan int
}

type cellKey struct{ group, node int32 }

type aaCell struct {
	names []string // reserving VMs of the group on the node
	hard  int      // how many of them are hard
}

func reserves(v cluster.VM) bool { return v.Power != cluster.PowerStopped }

// NewPlacer builds the capacity model of inv. Duplicate node or VM names keep the first.
// VMs on nodes missing from inv are known but reserve nothing.
func NewPlacer(inv cluster.Inventory, opts PlacementOptions) *Placer {
	p := &Placer{
		headroom:   opts.MemoryHeadroomMiB,
		overcommit: opts.overcommit(),
		nodeIdx:    make(map[string]int32, len(inv.Nodes)),
		groupIdx:   map[string]int32{},
		netIdx:     map[netKey]int32{},
		vmIdx:      make(map[string]int32, len(inv.VMs)),
		aaIdx:      map[string]int32{},
		cells:      map[cellKey]*aaCell{},
	}
	nodes := slices.Clone(inv.Nodes)
	slices.SortStableFunc(nodes, func(a, b cluster.Node) int { return strings.Compare(a.Name, b.Name) })
	nodes = slices.CompactFunc(nodes, func(a, b cluster.Node) bool { return a.Name == b.Name })
	for _, n := range nodes {
		for _, nw := range n.Networks {
			k := netKey{strings.ToLower(nw.Name), nw.VLAN}
			if _, ok := p.netIdx[k]; !ok {
				p.netIdx[k] = int32(len(p.netIdx))
			}
		}
	}
	words := (len(p.netIdx) + 63) / 64
	p.nodes = make([]pnode, len(nodes))
	for i, n := range nodes {
		g, ok := p.groupIdx[n.CPUGroup]
		if !ok {
			g = int32(len(p.groupOf))
			p.groupIdx[n.CPUGroup] = g
			p.groupOf = append(p.groupOf, n.CPUGroup)
			p.byGroup = append(p.byGroup, nil)
		}
		rank, ok := opts.Rank[n.Name]
		if !ok {
			rank = 1
		}
		pn := pnode{
			name: n.Name, state: n.State, paused: n.Paused, group: g,
			nets:        make([]uint64, words),
			capMem:      n.MemoryMiB - p.headroom,
			capVCPU:     int(math.Floor(float64(max(n.CPUs, 0))*p.overcommit + 1e-9)),
			unavailable: opts.Unavailable[n.Name],
			rank:        rank,
			storage:     n.StorageMiB,
		}
		for _, nw := range n.Networks {
			id := p.netIdx[netKey{strings.ToLower(nw.Name), nw.VLAN}]
			pn.nets[id>>6] |= 1 << (id & 63)
		}
		p.nodes[i] = pn
		p.nodeIdx[n.Name] = int32(i)
	}
	p.vms = make([]pvm, 0, len(inv.VMs))
	for _, v := range inv.VMs {
		if _, dup := p.vmIdx[v.Name]; dup {
			continue
		}
		r := p.newRecord(v)
		src, srcOK := p.nodeIdx[v.Node]
		if dst, ok := p.nodeIdx[v.MigratingTo]; ok && v.MigratingTo != v.Node {
			if srcOK && p.vms[r].active {
				p.nodes[src].usedMem += v.MemoryMiB
				p.nodes[src].usedVCPU += v.VCPUs
			}
			p.addTo(r, dst, v)
		} else if srcOK {
			p.addTo(r, src, v)
		}
	}
	for i := range p.nodes {
		g := p.nodes[i].group
		p.byGroup[g] = append(p.byGroup[g], int32(i))
	}
	for _, g := range p.byGroup {
		slices.SortFunc(g, p.cmpNodes)
	}
	p.ordered = true
	return p
}

// newRecord registers a VM that the Placer has not seen, accounted nowhere yet.
func (p *Placer) newRecord(v cluster.VM) int32 {
	r := int32(len(p.vms))
	p.vms = append(p.vms, pvm{node: -1, from: -1, pos: -1, group: -1})
	p.vmIdx[v.Name] = r
	p.refresh(r, v)
	return r
}

// refresh takes the VM's description (memory, networks, group) from v. Only call it
// while the record reserves nothing.
func (p *Placer) refresh(r int32, v cluster.VM) {
	rec := &p.vms[r]
	rec.vm = v
	rec.active = reserves(v)
	rec.group = -1
	if v.AntiAffinity != "" {
		g, ok := p.aaIdx[v.AntiAffinity]
		if !ok {
			g = int32(len(p.aaIdx))
			p.aaIdx[v.AntiAffinity] = g
			p.aaHard = append(p.aaHard, 0)
		}
		rec.group = g
	}
	rec.nets = rec.nets[:0]
	for _, nw := range v.Networks {
		id, ok := p.netIdx[netKey{strings.ToLower(nw.Name), nw.VLAN}]
		if !ok {
			id = -1
		}
		rec.nets = append(rec.nets, id)
	}
}

// cmpNodes orders the nodes of a CPU group by preference, soft anti-affinity aside.
func (p *Placer) cmpNodes(a, b int32) int {
	na, nb := &p.nodes[a], &p.nodes[b]
	if na.rank != nb.rank {
		return na.rank - nb.rank
	}
	if fa, fb := na.freeMem(), nb.freeMem(); fa != fb {
		if fa > fb {
			return -1
		}
		return 1
	}
	return strings.Compare(na.name, nb.name)
}

// reorder applies change to node i and keeps its CPU group's order. Keys are unique
// (the name breaks ties), so a binary search finds the node's slot. Before the order
// exists (inside NewPlacer) it only applies the change.
func (p *Placer) reorder(i int32, change func(n *pnode)) {
	if !p.ordered {
		change(&p.nodes[i])
		return
	}
	gi := p.nodes[i].group
	g := p.byGroup[gi]
	at, found := slices.BinarySearchFunc(g, i, p.cmpNodes)
	if !found || g[at] != i {
		panic("policies: placer order corrupted") // an invariant of this file, not an input error
	}
	change(&p.nodes[i])
	g = slices.Delete(g, at, at+1) // shifts in place: no allocation
	to, _ := slices.BinarySearchFunc(g, i, p.cmpNodes)
	p.byGroup[gi] = slices.Insert(g, to, i) // fits in the capacity Delete left
}

// addTo accounts the record on node n, with v as its new description.
func (p *Placer) addTo(r, n int32, v cluster.VM) {
	rec := &p.vms[r]
	if rec.node >= 0 {
		panic("policies: addTo of an accounted vm")
	}
	p.refresh(r, v)
	rec.vm.Node = p.nodes[n].name
	rec.vm.MigratingTo = ""
	rec.node = n
	if !rec.active {
		return
	}
	mem, cpu := rec.vm.MemoryMiB, rec.vm.VCPUs
	p.reorder(n, func(nd *pnode) { nd.usedMem += mem; nd.usedVCPU += cpu })
	nd := &p.nodes[n]
	rec.pos = int32(len(nd.vms))
	nd.vms = append(nd.vms, r)
	if rec.vm.Migratable {
		nd.dispMem += mem
		nd.dispCPU += cpu
		nd.dispOK = false
	}
	if rec.group >= 0 {
		k := cellKey{rec.group, n}
		c := p.cells[k]
		if c == nil {
			c = &aaCell{}
			p.cells[k] = c
		}
		c.names = append(c.names, rec.vm.Name)
		if rec.vm.AntiAffinityHard {
			c.hard++
			p.aaHard[rec.group]++
		}
	}
}

// removeFrom takes the record's reservation off the node it is accounted on.
func (p *Placer) removeFrom(r int32) {
	rec := &p.vms[r]
	n := rec.node
	if n < 0 {
		return
	}
	rec.node = -1
	if !rec.active {
		return
	}
	mem, cpu := rec.vm.MemoryMiB, rec.vm.VCPUs
	p.reorder(n, func(nd *pnode) { nd.usedMem -= mem; nd.usedVCPU -= cpu })
	nd := &p.nodes[n]
	if rec.vm.Migratable {
		nd.dispMem -= mem
		nd.dispCPU -= cpu
		nd.dispOK = false
	}
	last := nd.vms[len(nd.vms)-1]
	nd.vms[rec.pos] = last
	p.vms[last].pos = rec.pos
	nd.vms = nd.vms[:len(nd.vms)-1]
	rec.pos = -1
	if rec.group >= 0 {
		k := cellKey{rec.group, n}
		c := p.cells[k]
		if i := slices.Index(c.names, rec.vm.Name); i >= 0 {
			c.names = slices.Delete(c.names, i, i+1)
		}
		if rec.vm.AntiAffinityHard {
			c.hard--
			p.aaHard[rec.group]--
		}
		if len(c.names) == 0 {
			delete(p.cells, k)
		}
	}
}

// Place chooses a target for vm (which lives on vm.Node), reserves its memory and vCPUs
// there and takes its reservation off its source. Nodes in avoid are not chosen this
// time: when they are the only feasible ones the error wraps ErrTargetsBusy; when no
// node is feasible at all it is a *NoTargetError (errors.Is(err, ErrNoTarget)) with
// every node's refusal.
func (p *Placer) Place(vm cluster.VM, avoid map[string]bool) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	src, ok := p.nodeIdx[vm.Node]
	if !ok {
		return "", fmt.Errorf("place vm %s: source node %q is not in the inventory", vm.Name, vm.Node)
	}
	return p.place(vm, src, avoid, true)
}

// place is Place with the lock held; explain false leaves NoTargetError.Refusals empty
// (BuildPlan explains a bounded number of failures per node).
func (p *Placer) place(vm cluster.VM, src int32, avoid map[string]bool, explain bool) (string, error) {
	r, known := p.vmIdx[vm.Name]
	if !known {
		r = p.newRecord(vm)
	}
	cand := p.candidate(r, vm)
	best, busy := p.choose(&cand, src, avoid)
	if best < 0 {
		if len(busy) > 0 {
			return "", fmt.Errorf("place vm %s: %w: %s", vm.Name, ErrTargetsBusy, strings.Join(busy, ", "))
		}
		e := &NoTargetError{VM: vm.Name}
		if explain {
			e.Refusals = p.explain(&cand, src, avoid)
		}
		return "", e
	}
	p.moveTo(r, best, vm)
	return p.nodes[best].name, nil
}

// PlaceOn reserves vm on target if target satisfies every hard constraint (for
// failback and operator-chosen targets). The error is a *NoTargetError naming the
// refusal.
func (p *Placer) PlaceOn(vm cluster.VM, target string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	src, ok := p.nodeIdx[vm.Node]
	if !ok {
		return fmt.Errorf("place vm %s: source node %q is not in the inventory", vm.Name, vm.Node)
	}
	t, ok := p.nodeIdx[target]
	if !ok {
		return fmt.Errorf("place vm %s: target node %q is not in the inventory", vm.Name, target)
	}
	r, known := p.vmIdx[vm.Name]
	if !known {
		r = p.newRecord(vm)
	}
	cand := p.candidate(r, vm)
	if reasons := p.refuse(&cand, src, t, nil); len(reasons) > 0 {
		return &NoTargetError{VM: vm.Name, Refusals: []Refusal{{Node: target, Reason: strings.Join(reasons, ", ")}}}
	}
	p.moveTo(r, t, vm)
	return nil
}

func (p *Placer) moveTo(r, to int32, vm cluster.VM) {
	prev := p.vms[r].node
	p.moveDisks(vm, prev, to)
	p.removeFrom(r)
	p.addTo(r, to, vm)
	p.vms[r].from = prev
}

// Cancel undoes a Place of vm to target (the migration failed): the VM is accounted on
// the node it was taken from again. Cancelling a VM that is not on target does nothing.
func (p *Placer) Cancel(vm cluster.VM, target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.vmIdx[vm.Name]
	t, tok := p.nodeIdx[target]
	if !ok || !tok || p.vms[r].node != t {
		return
	}
	back := p.vms[r].from
	if back < 0 {
		if s, ok := p.nodeIdx[vm.Node]; ok && s != t {
			back = s
		}
	}
	prevVM := p.vms[r].vm
	p.moveDisks(prevVM, t, back)
	p.removeFrom(r)
	if back >= 0 {
		p.addTo(r, back, prevVM)
	}
	p.vms[r].from = -1
}

// SetUnavailable stops placements on node (in maintenance, draining, excluded).
func (p *Placer) SetUnavailable(node, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i, ok := p.nodeIdx[node]; ok {
		if reason == "" {
			reason = "unavailable"
		}
		p.nodes[i].unavailable = reason
	}
}

// SetAvailable allows placements on node again (its State and Paused still apply).
func (p *Placer) SetAvailable(node string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i, ok := p.nodeIdx[node]; ok {
		p.nodes[i].unavailable = ""
	}
}

// SetState records a node's new state and pause flag (e.g. up and unpaused after its
// reboot, or down when it stopped answering).
func (p *Placer) SetState(node string, state cluster.NodeState, paused bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i, ok := p.nodeIdx[node]; ok {
		p.nodes[i].state, p.nodes[i].paused = state, paused
	}
}

// SetRank changes node's preference (lower is better), e.g. 0 once it is patched.
func (p *Placer) SetRank(node string, rank int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i, ok := p.nodeIdx[node]; ok {
		p.reorder(i, func(n *pnode) { n.rank = rank })
	}
}

// Free returns the memory (after headroom) and vCPUs (under the overcommit ratio) still
// free on node; negative when the node is over-committed, zeros for an unknown node.
func (p *Placer) Free(node string) (memMiB int64, vcpus int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, ok := p.nodeIdx[node]
	if !ok {
		return 0, 0
	}
	return p.nodes[i].freeMem(), p.nodes[i].freeVCPU()
}

// Location returns the node the Placer accounts vm on ("" when unknown).
func (p *Placer) Location(vm string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.vmIdx[vm]
	if !ok || p.vms[r].node < 0 {
		return ""
	}
	return p.nodes[p.vms[r].node].name
}

// candidate is a VM being placed, described by the caller's value of it.
type candidate struct {
	vm     cluster.VM
	active bool
	group  int32
	nets   []int32
	at     int32 // where the Placer accounts it (-1 none), excluded like the source
}

func (p *Placer) candidate(r int32, vm cluster.VM) candidate {
	c := candidate{vm: vm, active: reserves(vm), group: -1, at: p.vms[r].node}
	if vm.AntiAffinity != "" {
		if g, ok := p.aaIdx[vm.AntiAffinity]; ok {
			c.group = g
		} // a group nobody else has cannot conflict
	}
	for _, nw := range vm.Networks {
		id, ok := p.netIdx[netKey{strings.ToLower(nw.Name), nw.VLAN}]
		if !ok {
			id = -1
		}
		c.nets = append(c.nets, id)
	}
	return c
}

func (p *Placer) hasNets(n *pnode, nets []int32) bool {
	for _, id := range nets {
		if id < 0 || n.nets[id>>6]&(1<<(id&63)) == 0 {
			return false
		}
	}
	return true
}

// conflict returns the anti-affinity conflict of c on node i: hard, or the number of
// soft conflicts, and one conflicting VM's name. Only call it for i != c.at (the
// candidate's own node holds the candidate itself).
func (p *Placer) conflict(c *candidate, i int32) (hard bool, soft int, with string) {
	if c.group < 0 || !c.active {
		return false, 0, ""
	}
	cell := p.cells[cellKey{c.group, i}]
	if cell == nil || len(cell.names) == 0 {
		return false, 0, ""
	}
	if cell.hard > 0 || c.vm.AntiAffinityHard {
		return true, 0, cell.names[0]
	}
	return false, len(cell.names), cell.names[0]
}

// choose returns the best feasible target (-1 if none) and, when it returns -1, the
// avoided nodes that would have been feasible.
func (p *Placer) choose(c *candidate, src int32, avoid map[string]bool) (int32, []string) {
	g := p.byGroup[p.nodes[src].group]
	best, bestSoft := int32(-1), math.MaxInt
	var busy []string
	for j := 0; j < len(g); j++ {
		i := g[j]
		n := &p.nodes[i]
		if i == src || i == c.at || !n.placeable() {
			continue
		}
		if c.active {
			if n.freeMem() < c.vm.MemoryMiB {
				// Free memory only falls from here to the end of this rank: skip to the next rank.
				rank := n.rank
				j += sort.Search(len(g)-j, func(k int) bool { return p.nodes[g[j+k]].rank > rank }) - 1
				continue
			}
			if n.freeVCPU() < c.vm.VCPUs {
				continue
			}
		}
		if !p.hasNets(n, c.nets) || !n.fitsDisks(c.vm) {
			continue
		}
		hard, soft, _ := p.conflict(c, i)
		if hard {
			continue
		}
		if len(avoid) > 0 && avoid[n.name] {
			busy = append(busy, n.name)
			continue
		}
		if soft == 0 {
			return i, nil
		}
		if soft < bestSoft {
			best, bestSoft = i, soft
		}
	}
	if best >= 0 {
		return best, nil
	}
	slices.Sort(busy)
	return -1, busy
}

// refuse lists why node i cannot take c; empty when it can.
func (p *Placer) refuse(c *candidate, src, i int32, avoid map[string]bool) []string {
	n := &p.nodes[i]
	var why []string
	if i == src || i == c.at {
		return []string{"current node"}
	}
	switch {
	case n.state != cluster.NodeUp:
		why = append(why, string(n.state))
	case n.paused:
		why = append(why, "paused")
	}
	if n.unavailable != "" {
		why = append(why, n.unavailable)
	}
	if sg := p.nodes[src].group; n.group != sg {
		why = append(why, fmt.Sprintf("cpu group %q, vm needs %q", p.groupOf[n.group], p.groupOf[sg]))
	}
	for k, id := range c.nets {
		if id < 0 || n.nets[id>>6]&(1<<(id&63)) == 0 {
			nw := c.vm.Networks[k]
			why = append(why, fmt.Sprintf("no network %s vlan %d", nw.Name, nw.VLAN))
		}
	}
	if hard, _, with := p.conflict(c, i); hard {
		why = append(why, "hard anti-affinity with "+with)
	}
	if !n.fitsDisks(c.vm) {
		why = append(why, fmt.Sprintf("needs %d MiB of storage for local disks, %d free", c.vm.LocalDiskMiB(), max(n.storage, 0)))
	}
	if c.active {
		if free := n.freeMem(); free < c.vm.MemoryMiB {
			why = append(why, fmt.Sprintf("needs %d MiB, %d free", c.vm.MemoryMiB, max(free, 0)))
		}
		if free := n.freeVCPU(); free < c.vm.VCPUs {
			why = append(why, fmt.Sprintf("needs %d vCPUs, %d free", c.vm.VCPUs, max(free, 0)))
		}
	}
	if len(why) == 0 && avoid[n.name] {
		why = append(why, "busy")
	}
	return why
}

// explain lists every node's refusal, by node name.
func (p *Placer) explain(c *candidate, src int32, avoid map[string]bool) []Refusal {
	out := make([]Refusal, 0, len(p.nodes))
	for i := range p.nodes {
		if why := p.refuse(c, src, int32(i), avoid); len(why) > 0 {
			out = append(out, Refusal{Node: p.nodes[i].name, Reason: strings.Join(why, ", ")})
		}
	}
	return out
}
