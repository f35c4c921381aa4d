package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/droverhq/drover/drivers/sim"
	"github.com/droverhq/drover/orchestrator"
)

// ScaleFigures measure planning a whole run of a large cluster.
type ScaleFigures struct {
	Nodes, VMs int
	// InventorySeconds is reading the inventory through the sim driver (embedded
	// server, JSON); PlanSeconds is Prepare + plan (update scan of every node,
	// order, placement of every VM, reserve checks) as `drover apply` does it.
	InventorySeconds float64
	PlanSeconds      float64
	// AllocatedBytes is everything the plan allocated (an upper bound of the heap
	// it needs); LiveHeapBytes the heap in use after a GC with the plan held.
	AllocatedBytes uint64
	LiveHeapBytes  uint64
	Migrations     int
	MovedTwice     int
}

// ScaleCluster is a cluster of nodes x vmsPerNode VMs of 2-8 GiB, 40% full.
func ScaleCluster(seed uint64, nodes, vmsPerNode int) *sim.Cluster {
	c := newCluster(seed)
	rng := rand.New(rand.NewPCG(seed, 6))
	sizes := []int64{2, 4, 4, 8}
	for i := range nodes {
		name := fmt.Sprintf("n%04d", i+1)
		addNode(c, name, 768, 128, 25000, 5000, 300)
		for range vmsPerNode {
			addVM(c, name, sizes[rng.IntN(len(sizes))]*gib, 5+35*rng.Float64())
		}
	}
	return c
}

// PlanScale plans a run of a nodes x vmsPerNode cluster through the embedded sim
// driver with the default policy and measures it.
func PlanScale(ctx context.Context, nodes, vmsPerNode int) (ScaleFigures, error) {
	c := ScaleCluster(DefaultSeed, nodes, vmsPerNode)
	drv, err := sim.NewEmbedded(ctx, sim.EmbeddedOptions{Cluster: c, TimeScale: 1})
	if err != nil {
		return ScaleFigures{}, err
	}
	defer drv.Close()
	f := ScaleFigures{Nodes: nodes, VMs: nodes * vmsPerNode}
	t0 := time.Now()
	if _, err := drv.Inventory(ctx); err != nil {
		return f, err
	}
	f.InventorySeconds = time.Since(t0).Seconds()

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	t0 = time.Now()
	prep, err := orchestrator.PlanRun(ctx, drv, drv, orchestrator.DefaultPolicy(), nil)
	f.PlanSeconds = time.Since(t0).Seconds()
	if err != nil {
		return f, err
	}
	runtime.ReadMemStats(&after)
	f.AllocatedBytes = after.TotalAlloc - before.TotalAlloc
	runtime.GC()
	runtime.ReadMemStats(&after)
	f.LiveHeapBytes = after.HeapAlloc
	if prep.Plan != nil {
		f.Migrations = prep.Plan.Migrations
		f.MovedTwice = prep.Plan.MovedMoreThanOnce
	}
	runtime.KeepAlive(prep)
	return f, nil
}
