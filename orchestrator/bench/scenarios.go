package bench

import (
	"fmt"
	"math/rand/v2"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers/sim"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/policies"
)

// Scenario is a simulated cluster and the run policy around the drains.
type Scenario struct {
	Name        string
	Description string
	Cluster     *sim.Cluster
	// ReserveK is the run's N-k reserve (policy.reserve_nodes).
	ReserveK int
	// ParallelNodes is policy.max_parallel_nodes for every strategy: the
	// strategies differ in how they schedule migrations, not in node concurrency.
	ParallelNodes int
}

// Strategy is a way to schedule live migrations.
type Strategy struct {
	Name  string
	Drain policies.DrainOptions
}

// Strategies are the field's fixed concurrencies and Drover's default scheduler
// (orchestrator.DefaultPolicy().DrainOptions(): what `drover apply` uses).
func Strategies() []Strategy {
	fixed := policies.DrainFixed
	return []Strategy{
		{Name: "serial", Drain: policies.DrainOptions{Mode: fixed, MaxParallel: 1}},
		{Name: "fixed-2", Drain: policies.DrainOptions{Mode: fixed, MaxPerNode: 2}},
		{Name: "fixed-8", Drain: policies.DrainOptions{Mode: fixed, MaxPerNode: 8}},
		{Name: "per-source-1", Drain: policies.DrainOptions{Mode: fixed, MaxPerSource: 1}},
		{Name: "drover", Drain: orchestrator.DefaultPolicy().DrainOptions()},
	}
}

// Scenarios are the benchmark's clusters, generated deterministically from seed.
func Scenarios(seed uint64) []Scenario {
	return []Scenario{
		uniform(seed),
		mixed(seed),
		slowLinks(seed),
		large(seed),
		parallel(seed),
	}
}

// ScenarioNames lists the names of Scenarios.
func ScenarioNames() []string {
	return []string{"uniform-10g", "mixed-dirty", "links-1g", "large-64", "parallel-reserve"}
}

const gib = 1024

func newCluster(seed uint64) *sim.Cluster {
	return &sim.Cluster{Seed: seed, Model: sim.ModelParams{
		SetupSeconds: sim.DefaultSetupSeconds, MaxDowntimeMs: sim.DefaultMaxDowntimeMs,
		ProgressTimeoutSeconds: sim.DefaultProgressTimeoutSeconds, MaxRounds: sim.DefaultMaxRounds,
	}}
}

func addNode(c *sim.Cluster, name string, memGiB, cpus int, nic, stream, reboot float64) {
	c.Nodes = append(c.Nodes, sim.NodeSpec{
		Name: name, MemoryMiB: int64(memGiB) * gib, CPUs: cpus, NICMbps: nic, StreamMbps: stream,
		RebootSeconds: reboot, Updates: []sim.UpdateSpec{{Name: "kernel", Version: "2", Reboot: true}},
	})
}

func addVM(c *sim.Cluster, node string, memMiB int64, dirty float64) {
	c.VMs = append(c.VMs, sim.VMSpec{
		Name: fmt.Sprintf("vm-%05d", len(c.VMs)+1), Node: node, MemoryMiB: memMiB, VCPUs: 2,
		DirtyMiBs: dirty, Migratable: true, Power: cluster.PowerRunning,
	})
}

// uniform: 8 nodes of 24 VMs of 4 GiB each, light dirtying, 10 Gb/s links.
func uniform(seed uint64) Scenario {
	c := newCluster(seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range 8 {
		name := fmt.Sprintf("u%02d", i+1)
		addNode(c, name, 256, 64, 10000, 3000, 120)
		for range 24 {
			addVM(c, name, 4*gib, 10+20*rng.Float64())
		}
	}
	return Scenario{Name: "uniform-10g", Description: "8 nodes x 24 VMs of 4 GiB, 10-30 MiB/s dirty, 10 Gb/s NICs, 3 Gb/s per stream", Cluster: c, ParallelNodes: 1}
}

// mixed: 16 nodes of uneven load, VMs of 1-32 GiB, a few heavy page-dirtiers.
func mixed(seed uint64) Scenario {
	c := newCluster(seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	sizes := []int64{1, 2, 2, 4, 4, 4, 8, 8, 16, 32}
	for i := range 16 {
		name := fmt.Sprintf("m%02d", i+1)
		addNode(c, name, 384, 64, 10000, 3000, 180)
		count := 8 + (i*7)%17
		heavy := 0
		if i%5 == 0 {
			heavy = 2 // a few nodes carry 2 heavy dirtiers (databases, message queues)
		}
		for k := range count {
			if k < heavy {
				addVM(c, name, int64(8+8*(k%2))*gib, 150+30*rng.Float64())
				continue
			}
			addVM(c, name, sizes[rng.IntN(len(sizes))]*gib, 2+58*rng.Float64())
		}
	}
	return Scenario{Name: "mixed-dirty", Description: "16 nodes, 8-24 VMs each of 1-32 GiB at 2-60 MiB/s; every fifth node also runs two 8-16 GiB VMs dirtying 150-180 MiB/s; 10 Gb/s NICs", Cluster: c, ParallelNodes: 1}
}

// slowLinks: 1 Gb/s NICs, so one stream fills a link.
func slowLinks(seed uint64) Scenario {
	c := newCluster(seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	for i := range 8 {
		name := fmt.Sprintf("s%02d", i+1)
		addNode(c, name, 128, 32, 1000, 3000, 120)
		for range 12 {
			addVM(c, name, 4*gib, 5+15*rng.Float64())
		}
	}
	return Scenario{Name: "links-1g", Description: "8 nodes x 12 VMs of 4 GiB, 5-20 MiB/s dirty, 1 Gb/s NICs", Cluster: c, ParallelNodes: 1}
}

// large: 64 nodes of 40 VMs each on 25 Gb/s NICs.
func large(seed uint64) Scenario {
	c := newCluster(seed)
	rng := rand.New(rand.NewPCG(seed, 4))
	sizes := []int64{2, 4, 4, 8}
	for i := range 64 {
		name := fmt.Sprintf("l%02d", i+1)
		addNode(c, name, 512, 96, 25000, 5000, 150)
		for range 40 {
			addVM(c, name, sizes[rng.IntN(len(sizes))]*gib, 5+35*rng.Float64())
		}
	}
	return Scenario{Name: "large-64", Description: "64 nodes x 40 VMs of 2-8 GiB, 5-40 MiB/s dirty, 25 Gb/s NICs, 5 Gb/s per stream", Cluster: c, ParallelNodes: 1}
}

// parallel: a lightly loaded cluster whose reserve (k=1) allows several nodes out.
func parallel(seed uint64) Scenario {
	c := newCluster(seed)
	rng := rand.New(rand.NewPCG(seed, 5))
	for i := range 24 {
		name := fmt.Sprintf("p%02d", i+1)
		addNode(c, name, 256, 64, 10000, 3000, 240)
		for range 10 {
			addVM(c, name, 4*gib, 5+25*rng.Float64())
		}
	}
	return Scenario{Name: "parallel-reserve", Description: "24 nodes x 10 VMs of 4 GiB (16% full), reserve k=1, policy.max_parallel_nodes=4", Cluster: c, ReserveK: 1, ParallelNodes: 4}
}
