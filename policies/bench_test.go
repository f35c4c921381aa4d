package policies

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/droverhq/drover/cluster"
)

// bigCluster is the benchmark cluster: nodes of 512 GiB / 64 CPUs in two CPU groups,
// vmsPerNode VMs of 1-16 GiB each (about half full), a quarter of them in
// anti-affinity groups of 5 (one in ten of those hard), two networks.
func bigCluster(nodes, vms int) cluster.Inventory {
	rng := rand.New(rand.NewPCG(1, 2))
	var in cluster.Inventory
	for i := range nodes {
		in.Nodes = append(in.Nodes, cluster.Node{
			Name: fmt.Sprintf("node-%04d", i), State: cluster.NodeUp, MemoryMiB: 512 * 1024, CPUs: 64,
			CPUGroup: fmt.Sprintf("g%d", i%2), FaultDomain: fmt.Sprintf("rack-%02d", i/20),
			Networks: []cluster.Network{{Name: "prod", VLAN: 10}, {Name: "backup", VLAN: 20}}, NICMbps: 25000, StreamMbps: 10000,
		})
	}
	for i := range vms {
		v := cluster.VM{
			Name: fmt.Sprintf("vm-%06d", i), Node: in.Nodes[i%nodes].Name,
			MemoryMiB: int64(1024 * (1 + rng.IntN(16))), VCPUs: 1 + rng.IntN(4),
			Power: cluster.PowerRunning, Migratable: true, Networks: []cluster.Network{{Name: "prod", VLAN: 10}},
			DirtyMiBs: float64(rng.IntN(40)),
		}
		if rng.IntN(4) == 0 {
			v.AntiAffinity = fmt.Sprintf("svc-%d", i/20)
			v.AntiAffinityHard = rng.IntN(10) == 0
		}
		in.VMs = append(in.VMs, v)
	}
	return in
}

// BenchmarkPlacer_RollingDrain drains every node of a 1,000 node / 30,000 VM cluster in
// turn (node out, place each of its VMs, node back with rank 0): one op = the whole run.
func BenchmarkPlacer_RollingDrain(b *testing.B) {
	in := bigCluster(1000, 30000)
	b.ReportAllocs()
	var places int
	for b.Loop() {
		places = 0
		p := NewPlacer(in, PlacementOptions{MemoryHeadroomMiB: 4096})
		for _, n := range in.Nodes {
			p.SetUnavailable(n.Name, "maintenance")
			ni := p.nodeIdx[n.Name]
			for _, r := range append([]int32(nil), p.nodes[ni].vms...) {
				if _, err := p.Place(p.vms[r].vm, nil); err != nil {
					b.Fatal(err)
				}
				places++
			}
			p.SetAvailable(n.Name)
			p.SetRank(n.Name, 0)
		}
	}
	b.ReportMetric(float64(places), "places/op")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(places), "ns/place")
}

// BenchmarkPlacer_New measures building the model of 1,000 nodes / 30,000 VMs.
func BenchmarkPlacer_New(b *testing.B) {
	in := bigCluster(1000, 30000)
	b.ReportAllocs()
	for b.Loop() {
		NewPlacer(in, PlacementOptions{})
	}
}

func benchReserve(b *testing.B, nodes, vms, k int) {
	in := bigCluster(nodes, vms)
	out := []string{in.Nodes[0].Name}
	b.ReportAllocs()
	var r ReserveResult
	for b.Loop() {
		r = ReserveCheck(in, k, out, ReserveOptions{Placement: PlacementOptions{MemoryHeadroomMiB: 4096}})
	}
	b.ReportMetric(float64(r.FailureSets), "failure-sets")
	if !r.Holds || !r.Proven {
		b.Logf("verdict: %s", r.Basis)
	}
}

// BenchmarkReserveCheck_64Nodes_K2: 64 nodes / 1,920 VMs, one node out, k=2 (2,016 sets).
func BenchmarkReserveCheck_64Nodes_K2(b *testing.B) { benchReserve(b, 64, 1920, 2) }

// BenchmarkReserveCheck_1000Nodes_K1: 1,000 nodes / 30,000 VMs, one node out, k=1.
func BenchmarkReserveCheck_1000Nodes_K1(b *testing.B) { benchReserve(b, 1000, 30000, 1) }

// BenchmarkBuildPlan_1000Nodes: the whole-run plan of 1,000 nodes / 30,000 VMs with
// reserve k=1 checked while each node is out.
func BenchmarkBuildPlan_1000Nodes(b *testing.B) {
	in := bigCluster(1000, 30000)
	opts := PlanOptions{ReserveK: 1, Placement: PlacementOptions{MemoryHeadroomMiB: 4096}}
	b.ReportAllocs()
	var p Plan
	for b.Loop() {
		var err error
		if p, err = BuildPlan(in, opts); err != nil {
			b.Fatal(err)
		}
	}
	proven := 0
	for _, n := range p.Nodes {
		if n.Reserve.Proven {
			proven++
		}
	}
	b.ReportMetric(float64(p.Migrations), "migrations")
	b.ReportMetric(float64(p.MovedMoreThanOnce), "moved-twice")
	b.ReportMetric(float64(p.Blocked), "blocked")
	b.ReportMetric(float64(proven), "reserve-proven")
	b.ReportMetric(p.ETA.Hours(), "eta-h")
}

func benchReserveDuringRun(b *testing.B, nodes, vms, k int) {
	in := bigCluster(nodes, vms)
	order := make([]string, 0, nodes)
	for _, n := range in.Nodes {
		order = append(order, n.Name)
	}
	b.ReportAllocs()
	var rs []ReserveResult
	for b.Loop() {
		rs = ReserveDuringRun(in, k, order, ReserveOptions{Placement: PlacementOptions{MemoryHeadroomMiB: 4096}})
	}
	sets, holds, proven := 0, 0, 0
	for _, r := range rs {
		sets += r.FailureSets
		if r.Holds {
			holds++
		}
		if r.Proven {
			proven++
		}
	}
	b.ReportMetric(float64(sets), "failure-sets")
	b.ReportMetric(float64(holds), "nodes-hold")
	b.ReportMetric(float64(proven), "nodes-proven")
}

// BenchmarkReserveDuringRun_64Nodes_K2: what `drover analyze` checks on 64 nodes /
// 1,920 VMs with k=2: the reserve while each node in turn is out (64 checks).
func BenchmarkReserveDuringRun_64Nodes_K2(b *testing.B) { benchReserveDuringRun(b, 64, 1920, 2) }

// BenchmarkReserveDuringRun_1000Nodes_K1: the same on 1,000 nodes / 30,000 VMs, k=1
// (1,000 checks of 999 failure sets each).
func BenchmarkReserveDuringRun_1000Nodes_K1(b *testing.B) { benchReserveDuringRun(b, 1000, 30000, 1) }
