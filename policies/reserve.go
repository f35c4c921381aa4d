// Over 600 lines: the N-k reserve check (aggregate bound, per-VM first-fit proof over failure sets, explanations) is one algorithm; split, its invariants would span files.

package policies

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/droverhq/drover/cluster"
)

// DefaultMaxFailureSets bounds the per-VM reserve check: with at most this many
// k-subsets of nodes every one is checked (a proof), else only the worst candidates
// (an estimate).
const DefaultMaxFailureSets = 20000

// ReserveOptions configures ReserveCheck and ReserveDuringRun.
type ReserveOptions struct {
	// Placement gives the capacity rule (headroom, overcommit) and the nodes that take
	// no placements (they can fail, but nothing fails over to them).
	Placement PlacementOptions `json:"placement"`
	// MaxFailureSets: 0 = DefaultMaxFailureSets.
	MaxFailureSets int `json:"max_failure_sets,omitempty"`
}

// ReserveResult is the verdict of an N-k reserve check.
//
// The model (VMM's over-committed rule): the nodes in Out are down for maintenance,
// their migratable VMs must run elsewhere; then any K further ready nodes may fail and
// their migratable VMs must restart on the survivors that take placements. Running,
// suspended and unknown-power VMs count (see the package doc); non-migratable VMs stay
// on their node and go down with it, so they need no room elsewhere.
//
// Two checks:
//   - aggregate (exact): free memory and vCPUs of the survivors (an over-committed node
//     counts as full, not below) against what the down nodes displace. Each node's failure costs its free capacity plus its displaced
//     VMs, so the worst set is the K costliest nodes: a sort, no enumeration. If this
//     fails the reserve is proven broken.
//   - per VM (sufficient): first-fit-decreasing of the displaced VMs into the
//     survivors' free room (memory, vCPUs, networks, hard anti-affinity; the source's
//     CPU group for live-migrated VMs of Out, none for restarts). A packing found is a
//     witness; not finding one is an estimate, another arrangement may exist. Proven
//     only when every K-subset was checked (at most MaxFailureSets of them).
type ReserveResult struct {
	K   int      `json:"k"`
	Out []string `json:"out,omitempty"`
	// Holds: the cluster keeps its reserve.
	Holds bool `json:"holds"`
	// Proven: Holds is exact; false means it is an estimate (see Basis).
	Proven bool `json:"proven"`
	// Basis says how the verdict was reached, for the report.
	Basis string `json:"basis"`
	// WorstFailure is the failure set that breaks the reserve or, when it holds, the
	// aggregate worst case (by memory).
	WorstFailure []string `json:"worst_failure,omitempty"`
	// ShortfallMiB and ShortfallVCPUs are what the survivors lack, in aggregate, with
	// WorstFailure down (0 when enough).
	ShortfallMiB   int64 `json:"shortfall_mib"`
	ShortfallVCPUs int   `json:"shortfall_vcpus"`
	// SpareMiB is the aggregate memory left in the worst case (negative = shortfall).
	SpareMiB int64 `json:"spare_mib"`
	// Unplaced lists the VMs first-fit-decreasing could not place with WorstFailure down.
	Unplaced []string `json:"unplaced,omitempty"`
	// FailureSets is how many failure sets the per-VM check tried; AllFailureSets is
	// true when that was every K-subset.
	FailureSets    int  `json:"failure_sets"`
	AllFailureSets bool `json:"all_failure_sets"`
}

// ReserveCheck reports whether the cluster of inv, with the nodes in out down for
// maintenance, survives any k further node failures. See ReserveResult.
func ReserveCheck(inv cluster.Inventory, k int, out []string, opts ReserveOptions) ReserveResult {
	return NewPlacer(inv, opts.Placement).ReserveCheck(k, out, opts.MaxFailureSets)
}

// ReserveDuringRun checks the reserve while each node of order is out in turn (the
// others as in inv), one result per node, in order.
func ReserveDuringRun(inv cluster.Inventory, k int, order []string, opts ReserveOptions) []ReserveResult {
	p := NewPlacer(inv, opts.Placement)
	out := make([]ReserveResult, 0, len(order))
	for _, n := range order {
		out = append(out, p.ReserveCheck(k, []string{n}, opts.MaxFailureSets))
	}
	return out
}

// rhost is a node in the reserve computation.
type rhost struct {
	i         int32
	placeable bool
	freeMem   int64
	freeCPU   int
	dispMem   int64 // migratable reserving VMs: what its loss displaces
	dispCPU   int
}

func (h rhost) costMem() int64 {
	if h.placeable {
		return h.freeMem + h.dispMem
	}
	return h.dispMem
}

func (h rhost) costCPU() int {
	if h.placeable {
		return h.freeCPU + h.dispCPU
	}
	return h.dispCPU
}

// reserveScratch holds the buffers of ReserveCheck, reused across calls (BuildPlan
// checks the reserve once per node).
type reserveScratch struct {
	isOut               []bool
	hosts, byMem, byCPU []rhost
	set                 []rhost
	pk                  packer
}

// ReserveCheck is ReserveCheck on the Placer's current model (placements made so far
// count). maxFailureSets 0 = DefaultMaxFailureSets.
func (p *Placer) ReserveCheck(k int, out []string, maxFailureSets int) ReserveResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	if maxFailureSets <= 0 {
		maxFailureSets = DefaultMaxFailureSets
	}
	res := ReserveResult{K: k, Out: slices.Sorted(slices.Values(out))}
	if k < 0 {
		res.Basis = fmt.Sprintf("invalid reserve k=%d: use 0 or more", k)
		return res
	}
	sc := p.scratch
	if sc == nil {
		sc = &reserveScratch{isOut: make([]bool, len(p.nodes))}
		p.scratch = sc
	}
	clear(sc.isOut)
	for _, name := range out {
		if i, ok := p.nodeIdx[name]; ok {
			sc.isOut[i] = true
		}
	}
	sc.hosts = sc.hosts[:0]
	var slackMem int64
	var slackCPU int
	for i := range p.nodes {
		n := &p.nodes[i]
		// An over-committed node has no room, not negative room: its VMs run already.
		h := rhost{i: int32(i), placeable: n.placeable(), freeMem: max(n.freeMem(), 0), freeCPU: max(n.freeVCPU(), 0),
			dispMem: n.dispMem, dispCPU: n.dispCPU}
		switch {
		case sc.isOut[i]:
			slackMem -= h.dispMem
			slackCPU -= h.dispCPU
		case n.state == cluster.NodeUp || n.state == cluster.NodePaused:
			if h.placeable {
				slackMem += h.freeMem
				slackCPU += h.freeCPU
			}
			sc.hosts = append(sc.hosts, h)
		}
	}
	hosts := sc.hosts
	kk := min(k, len(hosts))
	byName := func(a, b rhost) int { return strings.Compare(p.nodes[a.i].name, p.nodes[b.i].name) }
	sc.byMem = append(sc.byMem[:0], hosts...)
	slices.SortFunc(sc.byMem, func(a, b rhost) int { return cmp.Or(cmp.Compare(b.costMem(), a.costMem()), byName(a, b)) })
	sc.byCPU = append(sc.byCPU[:0], hosts...)
	slices.SortFunc(sc.byCPU, func(a, b rhost) int { return cmp.Or(cmp.Compare(b.costCPU(), a.costCPU()), byName(a, b)) })
	byMem, byCPU := sc.byMem, sc.byCPU
	spareMem, spareCPU := slackMem, slackCPU
	for _, h := range byMem[:kk] {
		spareMem -= h.costMem()
	}
	for _, h := range byCPU[:kk] {
		spareCPU -= h.costCPU()
	}
	names := func(hs []rhost) []string {
		s := make([]string, len(hs))
		for j, h := range hs {
			s[j] = p.nodes[h.i].name
		}
		slices.Sort(s)
		return s
	}
	res.SpareMiB = spareMem
	res.WorstFailure = names(byMem[:kk])
	pk := &sc.pk
	pk.reset(p, sc.isOut, kk)

	if spareMem < 0 || spareCPU < 0 {
		worst := byMem[:kk]
		if spareMem >= 0 {
			worst = byCPU[:kk]
		}
		res.WorstFailure = names(worst)
		wm, wc := slackMem, slackCPU
		for _, h := range worst {
			wm -= h.costMem()
			wc -= h.costCPU()
		}
		res.ShortfallMiB, res.ShortfallVCPUs = max(-wm, 0), max(-wc, 0)
		res.Proven = true
		res.Unplaced = pk.pack(worst)
		res.Basis = fmt.Sprintf("aggregate (exact): with %s failed the surviving nodes lack %d MiB and %d vCPUs",
			describeSet(res.Out, res.WorstFailure), res.ShortfallMiB, res.ShortfallVCPUs)
		return res
	}

	all := eachFailureSet(byMem, byCPU, kk, maxFailureSets, &sc.set, func(set []rhost) bool {
		res.FailureSets++
		if unplaced := pk.pack(set); len(unplaced) > 0 {
			res.WorstFailure = names(set)
			res.Unplaced = unplaced
			return false
		}
		return true
	})
	res.AllFailureSets = all
	if len(res.Unplaced) > 0 {
		res.Basis = fmt.Sprintf("estimate: aggregate capacity suffices, but first-fit-decreasing finds no node for %d VMs with %s failed (another arrangement may exist)",
			len(res.Unplaced), describeSet(res.Out, res.WorstFailure))
		return res
	}
	res.Holds = true
	res.Proven = all
	switch {
	case kk == 0:
		res.Basis = "proven: every displaced VM has room (no further failure to survive)"
	case all:
		res.Basis = fmt.Sprintf("proven: every one of the %d failure sets of %d nodes leaves room for every displaced VM", res.FailureSets, kk)
	default:
		res.Basis = fmt.Sprintf("estimate: aggregate capacity suffices (exact); per-VM placement found for the %d worst failure sets only (more than %d sets in all)", res.FailureSets, maxFailureSets)
	}
	return res
}

func describeSet(out, failed []string) string {
	s := "no node"
	if len(failed) > 0 {
		s = strings.Join(failed, ", ")
	}
	if len(out) > 0 {
		s = strings.Join(out, ", ") + " out and " + s
	}
	return s
}

// eachFailureSet calls fn with each k-subset to check, worst (by memory cost) first,
// until fn returns false: every subset when there are at most limit of them (all is
// then true), else the worst by memory, by vCPUs and by displaced load. The set slice
// is reused between calls.
func eachFailureSet(byMem, byCPU []rhost, k, limit int, buf *[]rhost, fn func([]rhost) bool) (all bool) {
	if k == 0 {
		fn(nil)
		return true
	}
	if binomialAtMost(len(byMem), k, limit) {
		idx := make([]int, k)
		for i := range idx {
			idx[i] = i
		}
		for {
			set := (*buf)[:0]
			for _, x := range idx {
				set = append(set, byMem[x])
			}
			*buf = set
			if !fn(set) {
				return true
			}
			j := k - 1
			for j >= 0 && idx[j] == len(byMem)-k+j {
				j--
			}
			if j < 0 {
				return true
			}
			idx[j]++
			for m := j + 1; m < k; m++ {
				idx[m] = idx[m-1] + 1
			}
		}
	}
	byDisp := slices.Clone(byMem)
	slices.SortStableFunc(byDisp, func(a, b rhost) int { return cmp.Compare(b.dispMem, a.dispMem) })
	var tried [][]rhost
	for _, cand := range [][]rhost{byMem[:k], byCPU[:k], byDisp[:k]} {
		if slices.ContainsFunc(tried, func(s []rhost) bool { return sameHosts(s, cand) }) {
			continue
		}
		tried = append(tried, cand)
		if !fn(cand) {
			break
		}
	}
	return false
}

func sameHosts(a, b []rhost) bool {
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y rhost) bool { return y.i == x.i }) {
			return false
		}
	}
	return len(a) == len(b)
}

// binomialAtMost reports whether C(n, k) <= limit without overflowing.
func binomialAtMost(n, k, limit int) bool {
	k = min(k, n-k)
	c := 1
	for i := range k {
		c = c * (n - i) / (i + 1) // exact at every step
		if c > limit {
			return false
		}
	}
	return c <= limit
}

// packer runs first-fit-decreasing of displaced VMs over the Placer's model without
// changing it; buffers are reused across failure sets and calls.
type packer struct {
	p      *Placer
	isOut  []bool
	failed []bool
	order  []int32 // placeable, not out; sorted by cmpFree once needed
	sorted bool
	top    []int32 // the survivors with the most free memory (wholeNodes)
	outs   []int32 // nodes out for maintenance
	addMem []int64
	addCPU []int
	placed []aaMark
	disp   []int32
	touch  []int32
	lists  [][]int32 // displaced VMs per down node, for merging
	slots  []slot    // scratch of wholeNodes
	// onWitness, when set (tests), receives every placement found: VM record -> node.
	onWitness func(set []rhost, moves [][2]int32)
	moves     [][2]int32
}

type aaMark struct {
	group, node int32
	hard        bool
}

// slot is a survivor taking whole down nodes in wholeNodes.
type slot struct {
	node   int32
	mem    int64
	cpu    int
	groups []aaMark
}

// reset prepares packing with up to k failed nodes: it keeps the survivors with the
// most free memory for the fast path (k of them may fail, and each down node may want
// its own) and sorts all of them only when needed.
func (pk *packer) reset(p *Placer, isOut []bool, k int) {
	n := len(p.nodes)
	if len(pk.failed) != n {
		pk.failed, pk.addMem, pk.addCPU = make([]bool, n), make([]int64, n), make([]int, n)
	}
	pk.p, pk.isOut, pk.sorted = p, isOut, false
	pk.order, pk.top, pk.outs = pk.order[:0], pk.top[:0], pk.outs[:0]
	for i, o := range isOut {
		if o {
			pk.outs = append(pk.outs, int32(i))
		}
	}
	keep := 2*k + len(pk.outs) + 1
	for i := range p.nodes {
		if !p.nodes[i].placeable() || isOut[i] {
			continue
		}
		pk.order = append(pk.order, int32(i))
		// Insert into top, the `keep` most free so far (keep is small).
		at := len(pk.top)
		for at > 0 && pk.cmpFree(int32(i), pk.top[at-1]) < 0 {
			at--
		}
		if at < keep {
			pk.top = slices.Insert(pk.top, at, int32(i))
			if len(pk.top) > keep {
				pk.top = pk.top[:keep]
			}
		}
	}
}

// cmpFree orders survivors by free memory descending, then name.
func (pk *packer) cmpFree(a, b int32) int {
	na, nb := &pk.p.nodes[a], &pk.p.nodes[b]
	return cmp.Or(cmp.Compare(nb.freeMem(), na.freeMem()), strings.Compare(na.name, nb.name))
}

// displaced returns node i's migratable reserving VMs by memory descending, then name
// (cached until the node's VMs change), and refreshes the node's summary of them.
func (p *Placer) displaced(i int32) []int32 {
	n := &p.nodes[i]
	if !n.dispOK {
		n.disp, n.dispGroups, n.dispUnknownNet = n.disp[:0], n.dispGroups[:0], false
		if n.dispNets == nil {
			n.dispNets = make([]uint64, len(n.nets))
		}
		clear(n.dispNets)
		for _, r := range n.vms {
			rec := &p.vms[r]
			if !rec.vm.Migratable {
				continue
			}
			n.disp = append(n.disp, r)
			for _, id := range rec.nets {
				if id < 0 {
					n.dispUnknownNet = true
					continue
				}
				n.dispNets[id>>6] |= 1 << (id & 63)
			}
			if rec.group >= 0 {
				n.dispGroups = append(n.dispGroups, aaMark{group: rec.group, node: -1, hard: rec.vm.AntiAffinityHard})
			}
		}
		slices.SortFunc(n.disp, p.cmpDisplaced)
		n.dispOK = true
	}
	return n.disp
}

func (p *Placer) cmpDisplaced(a, b int32) int {
	va, vb := &p.vms[a].vm, &p.vms[b].vm
	return cmp.Or(cmp.Compare(vb.MemoryMiB, va.MemoryMiB), strings.Compare(va.Name, vb.Name))
}

// mergeDisplaced merges sorted lists (few: the down nodes) into dst, largest first.
func mergeDisplaced(p *Placer, dst []int32, lists [][]int32) []int32 {
	if len(lists) == 1 {
		return append(dst, lists[0]...)
	}
	heads := make([]int, len(lists))
	for {
		best := -1
		for l, h := range heads {
			if h < len(lists[l]) && (best < 0 || p.cmpDisplaced(lists[l][h], lists[best][heads[best]]) < 0) {
				best = l
			}
		}
		if best < 0 {
			return dst
		}
		dst = append(dst, lists[best][heads[best]])
		heads[best]++
	}
}

// hardCell reports whether a VM of group g conflicts hard with the group's VMs on node.
func (p *Placer) hardCell(g aaMark, node int32) bool {
	if !g.hard && p.aaHard[g.group] == 0 {
		return false
	}
	c := p.cells[cellKey{g.group, node}]
	return c != nil && len(c.names) > 0 && (c.hard > 0 || g.hard)
}

// wholeNodes tries the cheap witness first: every down node's displaced VMs together
// on one survivor (several down nodes may share one), among the survivors with the
// most free memory. True means a valid placement exists; false means "pack VM by VM".
func (pk *packer) wholeNodes(set []rhost) bool {
	p := pk.p
	n := 0
	for _, s := range pk.top {
		if pk.failed[s] {
			continue
		}
		if n == len(pk.slots) {
			pk.slots = append(pk.slots, slot{})
		}
		sl := &pk.slots[n]
		sl.node, sl.mem, sl.cpu, sl.groups = s, 0, 0, sl.groups[:0]
		n++
	}
	slots := pk.slots[:n]
	fits := func(d int32, live bool) bool {
		dn := &p.nodes[d]
		p.displaced(d)
		if len(dn.disp) == 0 {
			return true
		}
		if dn.dispUnknownNet {
			return false
		}
		for a, ga := range dn.dispGroups { // VMs of one node that must be apart
			for _, gb := range dn.dispGroups[a+1:] {
				if ga.group == gb.group && (ga.hard || gb.hard) {
					return false
				}
			}
		}
	next:
		for j := range slots {
			sl := &slots[j]
			tn := &p.nodes[sl.node]
			if live && dn.group != tn.group || sl.mem+dn.dispMem > tn.freeMem() || sl.cpu+dn.dispCPU > tn.freeVCPU() {
				continue
			}
			for w, bits := range dn.dispNets {
				if bits&^tn.nets[w] != 0 {
					continue next
				}
			}
			for _, g := range dn.dispGroups {
				if p.hardCell(g, sl.node) {
					continue next
				}
				for _, o := range sl.groups {
					if o.group == g.group && (o.hard || g.hard) {
						continue next
					}
				}
			}
			sl.mem += dn.dispMem
			sl.cpu += dn.dispCPU
			sl.groups = append(sl.groups, dn.dispGroups...)
			if pk.onWitness != nil {
				for _, r := range dn.disp {
					pk.moves = append(pk.moves, [2]int32{r, sl.node})
				}
			}
			return true
		}
		return false
	}
	for _, o := range pk.outs {
		if !fits(o, true) {
			return false
		}
	}
	for _, h := range set {
		if !fits(h.i, false) {
			return false
		}
	}
	return true
}

// pack places the VMs displaced by out and by the failure of set; it returns the names
// of those it could not place.
func (pk *packer) pack(set []rhost) []string {
	p := pk.p
	for _, h := range set {
		pk.failed[h.i] = true
	}
	defer func() {
		for _, h := range set {
			pk.failed[h.i] = false
		}
		for _, i := range pk.touch {
			pk.addMem[i], pk.addCPU[i] = 0, 0
		}
		pk.touch, pk.placed, pk.disp = pk.touch[:0], pk.placed[:0], pk.disp[:0]
	}()
	pk.moves = pk.moves[:0]
	if pk.wholeNodes(set) {
		if pk.onWitness != nil {
			pk.onWitness(set, pk.moves)
		}
		return nil
	}
	pk.moves = pk.moves[:0]
	if !pk.sorted {
		slices.SortFunc(pk.order, pk.cmpFree)
		pk.sorted = true
	}
	pk.lists = pk.lists[:0]
	for _, i := range pk.outs {
		pk.lists = append(pk.lists, p.displaced(i))
	}
	for _, h := range set {
		pk.lists = append(pk.lists, p.displaced(h.i))
	}
	pk.disp = mergeDisplaced(p, pk.disp, pk.lists)
	var unplaced []string
	for _, r := range pk.disp {
		rec := &p.vms[r]
		src := rec.node
		live := pk.isOut[src] // drained by live migration: same CPU group
		target := int32(-1)
		for _, s := range pk.order {
			n := &p.nodes[s]
			if pk.failed[s] || n.freeMem()-pk.addMem[s] < rec.vm.MemoryMiB || n.freeVCPU()-pk.addCPU[s] < rec.vm.VCPUs ||
				live && n.group != p.nodes[src].group || !p.hasNets(n, rec.nets) || pk.hardConflict(rec, s) {
				continue
			}
			target = s
			break
		}
		if target < 0 {
			unplaced = append(unplaced, rec.vm.Name)
			continue
		}
		if pk.addMem[target] == 0 && pk.addCPU[target] == 0 {
			pk.touch = append(pk.touch, target)
		}
		pk.addMem[target] += rec.vm.MemoryMiB
		pk.addCPU[target] += rec.vm.VCPUs
		if pk.onWitness != nil {
			pk.moves = append(pk.moves, [2]int32{r, target})
		}
		if rec.group >= 0 {
			pk.placed = append(pk.placed, aaMark{rec.group, target, rec.vm.AntiAffinityHard})
		}
	}
	if len(unplaced) == 0 && pk.onWitness != nil {
		pk.onWitness(set, pk.moves)
	}
	return unplaced
}

func (pk *packer) hardConflict(rec *pvm, s int32) bool {
	if rec.group < 0 {
		return false
	}
	g := aaMark{group: rec.group, hard: rec.vm.AntiAffinityHard}
	if pk.p.hardCell(g, s) {
		return true
	}
	for _, m := range pk.placed {
		if m.group == rec.group && m.node == s && (m.hard || g.hard) {
			return true
		}
	}
	return false
}
