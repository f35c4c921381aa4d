package limits

import (
	"errors"
	"fmt"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/orchestrator"
)

// Upper bounds of the policy's numbers. The engine accepts any positive value; a
// typo (1e9 retries, 100000 nodes at once) must not become a run that retries for
// ever or takes a whole cluster down at once, so the config refuses it.
const (
	MaxParallelMigrationsLimit = 1024
	MaxMigrationsPerNodeLimit  = 256
	MaxParallelNodesLimit      = 1024
	RetriesPerNodeLimit        = 100
	MaxFailedNodesLimit        = 100000
	ReserveNodesLimit          = 1024
	HealthGateRetriesLimit     = 100
	CPUOvercommitLimit         = 64
	MemoryHeadroomMiBLimit     = 64 << 20 // 64 TiB
)

// Policy refuses policy numbers beyond the bounds above; each error names
// the key and the range allowed.
func Policy(p orchestrator.Policy) error {
	var errs []error
	check := func(key string, v, lo, hi int64) {
		// Lower bounds are the engine's own (Policy.Validate says them); only the
		// upper ones are added here, so a value is never reported twice.
		if v > hi {
			errs = append(errs, drivers.Fieldf("policy."+key, rangeFix(lo, hi), "%d is out of range", v))
		}
	}
	check("max_parallel_migrations", int64(p.MaxParallelMigrations), 1, MaxParallelMigrationsLimit)
	check("max_migrations_per_node", int64(p.MaxMigrationsPerNode), 1, MaxMigrationsPerNodeLimit)
	check("max_parallel_nodes", int64(p.MaxParallelNodes), 1, MaxParallelNodesLimit)
	check("retries_per_node", int64(p.RetriesPerNode), 0, RetriesPerNodeLimit)
	check("max_failed_nodes", int64(p.MaxFailedNodes), -1, MaxFailedNodesLimit)
	check("reserve_nodes", int64(p.ReserveNodes), 0, ReserveNodesLimit)
	check("health_gate.retries", int64(p.HealthGate.Retries), 0, HealthGateRetriesLimit)
	check("memory_headroom_mib", p.MemoryHeadroomMiB, 0, MemoryHeadroomMiBLimit)
	if p.CPUOvercommit > CPUOvercommitLimit {
		errs = append(errs, drivers.Fieldf("policy.cpu_overcommit", "give a ratio above 0 and up to 64", "%g is out of range", p.CPUOvercommit))
	}
	for i, n := range p.Nodes {
		if err := cluster.CheckName(fmt.Sprintf("policy.nodes[%d]", i), n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func rangeFix(lo, hi int64) string {
	return fmt.Sprintf("give a whole number from %d to %d", lo, hi)
}
