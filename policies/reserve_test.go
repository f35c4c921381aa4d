package policies

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/droverhq/drover/cluster"
)

// evenCluster: n nodes of capGiB each, every node with vms VMs of vmGiB.
func evenCluster(n int, capGiB int64, vms int, vmGiB int64) cluster.Inventory {
	var in cluster.Inventory
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		in.Nodes = append(in.Nodes, node(name, capGiB*1024, 64))
		for j := range vms {
			in.VMs = append(in.VMs, vm(fmt.Sprintf("%s-v%d", name, j), name, vmGiB*1024, 1))
		}
	}
	return in
}

func TestReserveCheck(t *testing.T) {
	const g = 1024
	// The seed's example: 8 nodes, reserve 2: every 6 nodes must host all VMs.
	eight := evenCluster(8, 100, 3, 25) // 600 GiB of VMs, 6 x 100 GiB survive
	eightPlus := eight
	eightPlus.VMs = append(slices.Clone(eight.VMs), vm("extra", "n1", 1, 1))
	fiveUp := evenCluster(8, 100, 0, 0) // 3 nodes down, 5 up, reserve 2: every 3 must host all
	for i := range 3 {
		fiveUp.Nodes[i].State = cluster.NodeDown
	}
	for i := 3; i < 8; i++ {
		name := fiveUp.Nodes[i].Name
		fiveUp.VMs = append(fiveUp.VMs, vm(name+"-a", name, 20*g, 1), vm(name+"-b", name, 20*g, 1), vm(name+"-c", name, 20*g, 1))
	}
	uneven := inv([]cluster.Node{node("big", 256*g, 64), node("mid", 128*g, 64), node("s1", 64*g, 64), node("s2", 64*g, 64)},
		vm("b1", "big", 64*g, 1), vm("m1", "mid", 64*g, 1), vm("x1", "s1", 32*g, 1), vm("x2", "s2", 32*g, 1))
	fragmented := inv([]cluster.Node{node("n1", 100*g, 64), node("n2", 100*g, 64), node("n3", 100*g, 64)},
		vm("huge", "n1", 60*g, 1), vm("f2", "n2", 50*g, 1), vm("f3", "n3", 50*g, 1))
	cpuBound := inv([]cluster.Node{node("n1", 100*g, 4), node("n2", 100*g, 4), node("n3", 100*g, 4)},
		vm("c1", "n1", g, 12), vm("c2", "n2", g, 12), vm("c3", "n3", g, 10))
	hardAA := inv([]cluster.Node{node("n1", 100*g, 64), node("n2", 100*g, 64), node("n3", 100*g, 64)},
		vm("db-1", "n1", g, 1, antiAff("db", true)), vm("db-2", "n2", g, 1, antiAff("db", true)), vm("db-3", "n3", g, 1, antiAff("db", true)))
	localDisk := inv([]cluster.Node{node("n1", 100*g, 64), node("n2", 100*g, 64)},
		vm("pinned", "n1", 90*g, 1, notMigratable("local disk")), vm("ok", "n2", 50*g, 1))
	withStopped := inv([]cluster.Node{node("n1", 100*g, 64), node("n2", 100*g, 64)},
		vm("off", "n1", 90*g, 1, power(cluster.PowerStopped)), vm("on", "n2", 90*g, 1))

	// n1 runs 110 GiB on 100: it has no room, but its over-commit must not eat the room
	// of others. Losing n2 (100 displaced) leaves n3's 100 free: holds.
	overCommitted := inv([]cluster.Node{node("n1", 100*g, 64), node("n2", 200*g, 64), node("n3", 100*g, 64)},
		vm("o1", "n1", 55*g, 1), vm("o2", "n1", 55*g, 1), vm("t1", "n2", 50*g, 1), vm("t2", "n2", 50*g, 1))

	tests := []struct {
		name         string
		inv          cluster.Inventory
		opts         ReserveOptions
		k            int
		out          []string
		holds        bool
		proven       bool
		worst        string // comma-joined, "" = don't check
		shortfallMiB int64
		shortCPU     int
		unplaced     string
		sets         int
		basisHas     string
	}{
		{name: "seed-8-nodes-k2-holds", inv: eight, k: 2, holds: true, proven: true, sets: 28, basisHas: "proven: every one of the 28"},
		{name: "seed-8-nodes-k2-one-mib-short", inv: eightPlus, k: 2, proven: true, worst: "n1,n2", shortfallMiB: 1},
		{name: "seed-5-up-k2-holds", inv: fiveUp, k: 2, holds: true, proven: true, sets: 10},
		{name: "seed-5-up-k2-one-out-breaks", inv: fiveUp, k: 2, out: []string{"n4"}, proven: true, shortfallMiB: 100 * g}, // 2 survivors x 40 free < 3 x 60 displaced
		{name: "headroom-counts", inv: eight, k: 2, opts: ReserveOptions{Placement: PlacementOptions{MemoryHeadroomMiB: 1}},
			proven: true, shortfallMiB: 6},
		{name: "worst-set-is-the-biggest", inv: uneven, k: 1, holds: true, proven: true, sets: 4},
		{name: "worst-set-is-the-biggest-k2", inv: uneven, k: 2, proven: true, worst: "big,mid", shortfallMiB: 64 * g},
		{name: "k0-with-node-out", inv: uneven, k: 0, out: []string{"big"}, holds: true, proven: true, sets: 1},
		{name: "fragmentation-is-an-estimate", inv: fragmented, k: 1, proven: false, worst: "n1", unplaced: "huge", basisHas: "estimate"},
		{name: "vcpus-short", inv: cpuBound, k: 1, proven: true, worst: "n1", shortCPU: 2},
		{name: "overcommit-ratio", inv: cpuBound, k: 1, opts: ReserveOptions{Placement: PlacementOptions{CPUOvercommit: 8}}, holds: true, proven: true, sets: 3},
		{name: "hard-anti-affinity-blocks-restart", inv: hardAA, k: 1, proven: false, unplaced: "db-1"},
		{name: "non-migratable-needs-no-room", inv: localDisk, k: 1, holds: false, proven: true, worst: "n2", shortfallMiB: 40 * g},
		{name: "non-migratable-node-fails-alone", inv: localDisk, k: 0, out: []string{"n1"}, holds: true, proven: true},
		{name: "stopped-vms-need-no-room", inv: withStopped, k: 1, holds: true, proven: true},
		{name: "k-larger-than-cluster", inv: uneven, k: 9, proven: true, worst: "big,mid,s1,s2", shortfallMiB: 192 * g, shortCPU: 4},
		{name: "bounded-enumeration-is-an-estimate", inv: eight, k: 2, opts: ReserveOptions{MaxFailureSets: 27}, holds: true, proven: false,
			basisHas: "worst failure sets only"},
		{name: "negative-k", inv: eight, k: -1, basisHas: "invalid reserve k=-1"},
		{name: "over-committed-node-counts-as-full", inv: overCommitted, k: 1, holds: true, proven: true, sets: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ReserveCheck(tt.inv, tt.k, tt.out, tt.opts)
			if r.Holds != tt.holds || r.Proven != tt.proven {
				t.Fatalf("Holds, Proven = %v, %v; want %v, %v (%s)", r.Holds, r.Proven, tt.holds, tt.proven, r.Basis)
			}
			if tt.worst != "" && strings.Join(r.WorstFailure, ",") != tt.worst {
				t.Errorf("WorstFailure = %v, want %s", r.WorstFailure, tt.worst)
			}
			if r.ShortfallMiB != tt.shortfallMiB || r.ShortfallVCPUs != tt.shortCPU {
				t.Errorf("shortfall = %d MiB, %d vCPUs; want %d, %d (%s)", r.ShortfallMiB, r.ShortfallVCPUs, tt.shortfallMiB, tt.shortCPU, r.Basis)
			}
			if tt.unplaced != "" && strings.Join(r.Unplaced, ",") != tt.unplaced {
				t.Errorf("Unplaced = %v, want %s", r.Unplaced, tt.unplaced)
			}
			if tt.sets != 0 && r.FailureSets != tt.sets {
				t.Errorf("FailureSets = %d, want %d", r.FailureSets, tt.sets)
			}
			if !strings.Contains(r.Basis, tt.basisHas) {
				t.Errorf("Basis = %q, want %q", r.Basis, tt.basisHas)
			}
		})
	}
}

func TestReserveDuringRun(t *testing.T) {
	const g = 1024
	in := inv([]cluster.Node{node("n1", 100*g, 64), node("n2", 100*g, 64), node("n3", 200*g, 64)},
		vm("a", "n1", 50*g, 1), vm("b", "n2", 50*g, 1), vm("c", "n3", 100*g, 1))
	// n1 out, then n3 fails: only n2 (50 free) is left for a and c (150): 100 short.
	// n3 out, no failure: c (100) has 100 free in aggregate but no node with 100 free.
	got := ReserveDuringRun(in, 1, []string{"n1", "n3"}, ReserveOptions{})
	if len(got) != 2 {
		t.Fatalf("%d results", len(got))
	}
	if got[0].Holds || !got[0].Proven || strings.Join(got[0].WorstFailure, ",") != "n3" || got[0].ShortfallMiB != 100*g {
		t.Errorf("n1 out: %+v", got[0])
	}
	if got[1].Holds || strings.Join(got[1].Out, ",") != "n3" {
		t.Errorf("n3 out: %+v", got[1])
	}
	got = ReserveDuringRun(in, 0, []string{"n1", "n3"}, ReserveOptions{})
	if !got[0].Holds || !got[0].Proven {
		t.Errorf("k=0, n1 out: %+v", got[0])
	}
	if got[1].Holds || got[1].Proven || strings.Join(got[1].Unplaced, ",") != "c" {
		t.Errorf("k=0, n3 out: %+v", got[1])
	}
}

// TestReserveCheck_AggregateExact compares the aggregate verdict with brute force over
// every failure set: if some set leaves too little capacity, ReserveCheck must say the
// reserve is broken (proven) with the largest shortfall; if none does, it must not
// claim a proven break.
func TestReserveCheck_AggregateExact(t *testing.T) {
	for seed := range uint64(60) {
		rng := rand.New(rand.NewPCG(seed, 11))
		in := randomCluster(rng, 2+rng.IntN(8), 5+rng.IntN(50), 0.2+0.8*rng.Float64())
		k := rng.IntN(3)
		var out []string
		if rng.IntN(2) == 0 {
			out = []string{in.Nodes[rng.IntN(len(in.Nodes))].Name}
		}
		opts := ReserveOptions{Placement: PlacementOptions{MemoryHeadroomMiB: int64(rng.IntN(2)) * 2048}}
		r := ReserveCheck(in, k, out, opts)

		worstMem, worstCPU := bruteAggregate(in, k, out, opts.Placement, nil)
		broken := worstMem > 0 || worstCPU > 0
		if broken != (!r.Holds && r.Proven) {
			t.Fatalf("seed %d: brute force shortfall %d MiB / %d vCPUs, ReserveCheck %+v", seed, worstMem, worstCPU, r)
		}
		if broken && worstMem > 0 && r.ShortfallMiB != worstMem {
			t.Fatalf("seed %d: shortfall %d, brute force %d", seed, r.ShortfallMiB, worstMem)
		}
		if !broken && r.SpareMiB < 0 {
			t.Fatalf("seed %d: spare %d with no aggregate shortfall", seed, r.SpareMiB)
		}
	}
}

// bruteAggregate enumerates every k-subset of the ready nodes (not out) and returns the
// largest memory and vCPU shortfall: displaced migratable reserving VMs of out and the
// failed nodes, against the free room of the surviving placeable nodes (up, not paused,
// not unavailable).
func bruteAggregate(in cluster.Inventory, k int, out []string, opts PlacementOptions, unavailable map[string]bool) (int64, int) {
	oc := opts.CPUOvercommit
	if oc == 0 {
		oc = 4
	}
	var hosts []cluster.Node
	for _, n := range in.Nodes {
		if !slices.Contains(out, n.Name) && n.Ready() {
			hosts = append(hosts, n)
		}
	}
	k = min(k, len(hosts))
	var worstMem int64
	var worstCPU int
	var rec func(start int, failed []string)
	rec = func(start int, failed []string) {
		if len(failed) == k {
			down := append(slices.Clone(out), failed...)
			var room, need int64
			var roomCPU, needCPU int
			for _, n := range hosts {
				if slices.Contains(failed, n.Name) || n.State != cluster.NodeUp || n.Paused || unavailable[n.Name] {
					continue
				}
				free := n.MemoryMiB - opts.MemoryHeadroomMiB
				freeCPU := int(float64(n.CPUs)*oc + 1e-9)
				for _, v := range in.VMs {
					if v.Node == n.Name && v.Power != cluster.PowerStopped {
						free -= v.MemoryMiB
						freeCPU -= v.VCPUs
					}
				}
				room += max(free, 0) // an over-committed node is full, not below
				roomCPU += max(freeCPU, 0)
			}
			for _, v := range in.VMs {
				if slices.Contains(down, v.Node) && v.Power != cluster.PowerStopped && v.Migratable {
					need += v.MemoryMiB
					needCPU += v.VCPUs
				}
			}
			worstMem = max(worstMem, need-room)
			worstCPU = max(worstCPU, needCPU-roomCPU)
			return
		}
		for i := start; i < len(hosts); i++ {
			rec(i+1, append(failed, hosts[i].Name))
		}
	}
	rec(0, nil)
	return worstMem, worstCPU
}

// TestReserveCheck_WitnessesAreValid checks every placement the per-VM check reports as
// found (the fast whole-node one and the VM-by-VM one) against the rules, naively:
// the reserve may only be "proven" by placements that really fit.
func TestReserveCheck_WitnessesAreValid(t *testing.T) {
	var checked int
	for seed := range uint64(80) {
		rng := rand.New(rand.NewPCG(seed, 5))
		in := randomCluster(rng, 3+rng.IntN(9), 5+rng.IntN(60), 0.1+0.6*rng.Float64())
		opts := PlacementOptions{MemoryHeadroomMiB: int64(rng.IntN(2)) * 1024, CPUOvercommit: []float64{0, 1}[rng.IntN(2)]}
		var out []string
		if rng.IntN(2) == 0 {
			out = []string{in.Nodes[rng.IntN(len(in.Nodes))].Name}
		}
		p := NewPlacer(in, opts)
		p.scratch = &reserveScratch{isOut: make([]bool, len(p.nodes))}
		p.scratch.pk.onWitness = func(set []rhost, moves [][2]int32) {
			checked++
			down := slices.Clone(out)
			for _, h := range set {
				down = append(down, p.nodes[h.i].name)
			}
			if err := checkWitness(in, opts, down, out, p, moves); err != nil {
				t.Fatalf("seed %d, down %v: %v", seed, down, err)
			}
		}
		p.ReserveCheck(1+rng.IntN(2), out, 0)
	}
	if checked < 100 {
		t.Fatalf("only %d witnesses checked", checked)
	}
}

// checkWitness verifies that moves place every migratable reserving VM of the down
// nodes exactly once, onto placeable surviving nodes with room, networks, no hard
// anti-affinity, and the source's CPU group for VMs of nodes out for maintenance.
func checkWitness(in cluster.Inventory, opts PlacementOptions, down, out []string, p *Placer, moves [][2]int32) error {
	oc := opts.CPUOvercommit
	if oc == 0 {
		oc = 4
	}
	nodes := map[string]cluster.Node{}
	for _, n := range in.Nodes {
		nodes[n.Name] = n
	}
	where := map[string]string{} // vm -> node after the moves
	for _, v := range in.VMs {
		where[v.Name] = v.Node
	}
	moved := map[string]bool{}
	for _, m := range moves {
		v := p.vms[m[0]].vm
		if moved[v.Name] {
			return fmt.Errorf("vm %s placed twice", v.Name)
		}
		moved[v.Name] = true
		target := p.nodes[m[1]].name
		t := nodes[target]
		if slices.Contains(down, target) || t.State != cluster.NodeUp || t.Paused {
			return fmt.Errorf("vm %s onto down or paused node %s", v.Name, target)
		}
		if slices.Contains(out, v.Node) && nodes[v.Node].CPUGroup != t.CPUGroup {
			return fmt.Errorf("vm %s live-migrated across cpu groups to %s", v.Name, target)
		}
		for _, want := range v.Networks {
			if !slices.ContainsFunc(t.Networks, want.SameAs) {
				return fmt.Errorf("vm %s onto %s without network %v", v.Name, target, want)
			}
		}
		where[v.Name] = target
	}
	for _, v := range in.VMs {
		if slices.Contains(down, v.Node) && v.Power != cluster.PowerStopped && v.Migratable && !moved[v.Name] {
			return fmt.Errorf("vm %s of a down node not placed", v.Name)
		}
	}
	for name, n := range nodes {
		if slices.Contains(down, name) {
			continue
		}
		var mem int64
		var cpu int
		var here []cluster.VM
		for _, v := range in.VMs {
			if where[v.Name] == name && v.Power != cluster.PowerStopped {
				mem += v.MemoryMiB
				cpu += v.VCPUs
				here = append(here, v)
			}
		}
		var added bool
		for _, v := range here {
			added = added || moved[v.Name]
		}
		if !added {
			continue // untouched nodes may be over-committed already
		}
		if mem > n.MemoryMiB-opts.MemoryHeadroomMiB || float64(cpu) > float64(n.CPUs)*oc+1e-9 {
			return fmt.Errorf("node %s over capacity: %d MiB, %d vCPUs", name, mem, cpu)
		}
		for i, a := range here {
			for _, b := range here[i+1:] {
				if (moved[a.Name] || moved[b.Name]) && a.AntiAffinity != "" && a.AntiAffinity == b.AntiAffinity &&
					(a.AntiAffinityHard || b.AntiAffinityHard) {
					return fmt.Errorf("node %s: %s and %s break hard anti-affinity", name, a.Name, b.Name)
				}
			}
		}
	}
	return nil
}
