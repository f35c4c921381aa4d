package orchestrator_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/droverhq/drover/orchestrator"
)

// TestEngine_MigrationTimeout: a migration that exceeds policy.migration_timeout
// (128 GiB over 1 Gb/s takes some 18 minutes) is cancelled on its own: its VM stays
// on its source and the node fails naming the key, while the other VM of the same
// drain moves as usual and the drain ends long before policy.drain_timeout.
func TestEngine_MigrationTimeout(t *testing.T) {
	const cluster = `
seed: 1
nodes:
  - {name: a, memory_mib: 262144, cpus: 16, nic_mbps: 1000, reboot_seconds: 60, updates: [{name: kernel, version: "2"}]}
  - {name: b, memory_mib: 262144, cpus: 16, nic_mbps: 1000, reboot_seconds: 60}
vms:
  - {name: huge, node: a, memory_mib: 131072, vcpus: 2}
  - {name: small, node: a, memory_mib: 1024, vcpus: 1}
`
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, cluster)
		start := time.Now()
		rep, _ := h.apply(context.Background(), testPolicy(func(p *orchestrator.Policy) {
			p.MigrationTimeout = orchestrator.Duration(2 * time.Minute)
			p.RetriesPerNode = 0
			p.Nodes = []string{"a"}
			// Both migrations in flight at once: the timeout of one must not end the other.
			p.DrainScheduler, p.MaxMigrationsPerNode = orchestrator.DrainFixed, 2
		}))
		a := h.node(rep, "a")
		if a.State != orchestrator.NodeFailed || !strings.Contains(a.Failure, "policy.migration_timeout") {
			t.Errorf("node a = %s (%q), want failed naming policy.migration_timeout", a.State, a.Failure)
		}
		inv := h.inventory()
		if vm, _ := inv.VM("small"); vm.Node != "b" {
			t.Errorf("small is on %s: the timeout of another migration cancelled it", vm.Node)
		}
		if vm, _ := inv.VM("huge"); vm.Node != "a" || !vm.Running() || vm.MigratingTo != "" {
			t.Errorf("huge = %s on %s migrating to %q, want running on a, not moving", vm.Power, vm.Node, vm.MigratingTo)
		}
		if took := time.Since(start); took > 10*time.Minute {
			t.Errorf("the run took %s: the migration was not cancelled at its timeout", took)
		}
		h.checkSafety(rep)
	})
}
