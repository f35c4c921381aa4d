package policies

import (
	"fmt"
	"testing"

	"github.com/droverhq/drover/cluster"
)

// BenchmarkDrainOptions_Decide is one decision of the adaptive scheduler in a 64-node
// cluster of 2,560 VMs: a node's 40 VMs waiting, 5 migrations in flight, placement
// on the real Placer (every decision places and takes back what it defers).
func BenchmarkDrainOptions_Decide(b *testing.B) {
	var in cluster.Inventory
	for i := range 64 {
		in.Nodes = append(in.Nodes, node(fmt.Sprintf("n%02d", i), 512*1024, 96, withNIC(25000, 5000)))
		for k := range 40 {
			in.VMs = append(in.VMs, vm(fmt.Sprintf("v%02d-%02d", i, k), fmt.Sprintf("n%02d", i), int64(2048*(1+k%4)), 2, dirty(float64(5+k%35))))
		}
	}
	var jobs []DrainJob
	for _, v := range in.VMs[5:40] {
		jobs = append(jobs, DrainJob{VM: v})
	}
	var fl []Flight
	for i, v := range in.VMs[:5] {
		fl = append(fl, Flight{VM: v.Name, From: "n00", To: fmt.Sprintf("n%02d", i+1), MemoryMiB: v.MemoryMiB, DirtyMiBs: v.DirtyMiBs, RemainingMiB: float64(v.MemoryMiB) / 2, RateMiBs: 596})
	}
	placer := NewPlacer(in, PlacementOptions{Unavailable: map[string]string{"n00": "draining"}})
	view := DrainView{Links: LinksOf(in), Flights: fl}
	opts := DrainOptions{MaxParallel: 32, MaxPerNode: 8}
	started := 0
	for b.Loop() {
		dec := opts.Decide(view, jobs, placer)
		started += len(dec.Start)
		for _, s := range dec.Start {
			placer.Cancel(s.Job.VM, s.To)
		}
	}
	b.ReportMetric(float64(started)/float64(b.N), "starts/decision")
}
