package bench

import (
	"math"
	"slices"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers/sim"
)

// mibPerMbit converts megabits/s into MiB/s, as the model does.
const mibPerMbit = 1e6 / 8 / (1 << 20)

// Bound is the physical lower bound of draining a set of source nodes at once in
// the simulator's model. No schedule can drain faster; see LowerBound.
type Bound struct {
	// Seconds is the bound: the largest of the three terms below.
	Seconds float64 `json:"seconds"`
	// SourceNIC: the busiest source's NIC carrying every byte of its VMs.
	SourceNIC float64 `json:"source_nic_seconds"`
	// TargetNICs: the targets' NICs together carrying every byte.
	TargetNICs float64 `json:"target_nics_seconds"`
	// SlowestVM: the VM that takes longest even alone on the link.
	SlowestVM float64 `json:"slowest_vm_seconds"`
	// Bytes is the least any schedule must send, in bytes.
	Bytes float64 `json:"bytes"`
	// Converges is false when some VM cannot converge even at its best rate
	// (Seconds is then +Inf).
	Converges bool `json:"converges"`
}

// LowerBound computes the bound of draining sources (every running migratable VM on
// them moves) from the inventory inv under the model constants p:
//
//	s_i   = max over targets T of min(stream(src,T), NIC(src), NIC(T))     best rate of VM i
//	r_i   = D_i / s_i                                                      its dirty ratio at that rate
//	n_i   = least n >= 1 with M_i·r_iⁿ / s_i <= max_downtime                its pre-copy rounds
//	B_i   = M_i · (1 + r_i + … + r_i^n_i)                                  least bytes it sends
//	T_i   = setup + B_i / s_i                                              least time it takes
//	bound = max( max_src  setup + Σ_{i on src} B_i / NIC(src),
//	             setup + Σ_i B_i / Σ_T NIC(T),
//	             max_i T_i )
//
// Why it is a bound: a round j+1 sends what the VM dirtied during round j, which
// lasted at least (round j)/s_i, so round j+1 >= r_i·(round j); the stop-and-copy
// starts only when a round fits in max_downtime at a rate <= s_i; so every schedule
// sends at least B_i for VM i (B_i = +Inf when r_i >= 1 or n_i > max_rounds). No
// byte moves before the first setup ends; a source's NIC carries all bytes of its
// VMs (in and out share one pool in the model), the targets' NICs all bytes
// together; no VM moves faster than s_i. Targets are the ready, unpaused nodes
// outside sources of a compatible CPU group; memory capacity is ignored (a
// relaxation: the bound stays valid, only less tight).
func LowerBound(inv cluster.Inventory, p sim.ModelParams, sources []string) Bound {
	isSource := map[string]bool{}
	for _, s := range sources {
		isSource[s] = true
	}
	nodes := map[string]cluster.Node{}
	var targets []cluster.Node
	for _, n := range inv.Nodes {
		nodes[n.Name] = n
		if !isSource[n.Name] && n.State == cluster.NodeUp && !n.Paused {
			targets = append(targets, n)
		}
	}
	downtime := p.MaxDowntimeMs / 1000
	b := Bound{Converges: true}
	perSource := map[string]float64{}
	usedTargets := map[string]bool{}
	total := 0.0
	for _, v := range inv.VMs {
		if !isSource[v.Node] || !v.Running() || !v.Migratable {
			continue
		}
		src := nodes[v.Node]
		best, bestT := 0.0, ""
		for _, t := range targets {
			if src.CPUGroup != "" && t.CPUGroup != "" && src.CPUGroup != t.CPUGroup {
				continue
			}
			usedTargets[t.Name] = true
			rate := min(pairStream(src, t), src.NICMbps, t.NICMbps) * mibPerMbit
			if rate > best {
				best, bestT = rate, t.Name
			}
		}
		bytes := leastBytes(float64(v.MemoryMiB), v.DirtyMiBs, best, downtime, p.MaxRounds)
		if bestT == "" || math.IsInf(bytes, 1) {
			b.Converges = false
			b.Seconds, b.SlowestVM = math.Inf(1), math.Inf(1)
			continue
		}
		total += bytes
		perSource[v.Node] += bytes
		b.SlowestVM = max(b.SlowestVM, p.SetupSeconds+bytes/best)
	}
	b.Bytes = total * (1 << 20)
	for s, bytes := range perSource {
		b.SourceNIC = max(b.SourceNIC, p.SetupSeconds+bytes/(nodes[s].NICMbps*mibPerMbit))
	}
	inbound := 0.0
	for _, t := range targets {
		if usedTargets[t.Name] {
			inbound += t.NICMbps * mibPerMbit
		}
	}
	if inbound > 0 && total > 0 {
		b.TargetNICs = p.SetupSeconds + total/inbound
	}
	if b.Converges {
		b.Seconds = max(b.SourceNIC, b.TargetNICs, b.SlowestVM)
	}
	return b
}

// pairStream is the stream cap between two nodes (Mbit/s).
func pairStream(a, b cluster.Node) float64 {
	return slices.Min([]float64{a.StreamMbps, b.StreamMbps})
}

// leastBytes is B = M·(1 + r + … + rⁿ) (MiB) at rate s: n the least n >= 1 with
// M·rⁿ/s <= downtime; +Inf when the VM cannot converge within maxRounds.
func leastBytes(mem, dirty, s, downtime float64, maxRounds int) float64 {
	if s <= 0 {
		return math.Inf(1)
	}
	if dirty <= 0 {
		return mem
	}
	r := dirty / s
	if r >= 1 {
		return math.Inf(1)
	}
	total, round := mem, mem
	for n := 1; ; n++ {
		round *= r
		total += round
		if round/s <= downtime {
			return total
		}
		if n >= maxRounds {
			return math.Inf(1)
		}
	}
}
