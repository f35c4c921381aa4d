package orchestrator_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
)

// suspendedCluster has a suspended (saved) VM on b: its memory state lives on b.
const suspendedCluster = small + "  - {name: saved, node: b, memory_mib: 2048, vcpus: 1, power: suspended}\n"

// noSavedMoves is the sim as a driver that cannot migrate suspended VMs, whatever
// the sim itself can.
type noSavedMoves struct{ drivers.Driver }

func (d noSavedMoves) Capabilities() drivers.Capabilities {
	c := d.Driver.Capabilities()
	c.MigrateSuspended = false
	return c
}

// TestEngine_SuspendedVMIsNeverRebootedAway: a suspended VM holds memory state on its
// node. A driver that cannot move it fails the node (default policy) and names the
// VM; with non_migratable=skip the node is patched and the report names the VM left
// behind. Either way the plan said the same beforehand.
func TestEngine_SuspendedVMIsNeverRebootedAway(t *testing.T) {
	t.Run("fail-the-node", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, suspendedCluster)
			h.swapDriver(noSavedMoves{h.drv})
			ctx := context.Background()
			p := testPolicy(nil)
			prep, err := h.eng.Prepare(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if np := planNode(prep, "b"); np == nil || len(np.Blocked) == 0 || !strings.Contains(strings.Join(np.Blocked, ";"), "saved") {
				t.Errorf("plan of b = %+v, want blocked naming vm saved", np)
			}
			id, err := h.eng.Start(ctx, prep)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = h.eng.Execute(ctx, id)
			rep := h.report(id)
			b := h.node(rep, "b")
			if b.State != orchestrator.NodeFailed || !strings.Contains(b.Failure, "vm saved") {
				t.Errorf("node b = %s (%q), want failed naming vm saved", b.State, b.Failure)
			}
			if rep.State == string(runs.StateSucceeded) {
				t.Errorf("run = succeeded with a node failed")
			}
			if st := h.stats(); st.Reboots["b"] != 0 {
				t.Errorf("b rebooted %d times under a suspended VM", st.Reboots["b"])
			}
			if vm, _ := h.inventory().VM("saved"); vm.Node != "b" || vm.Power != cluster.PowerSuspended {
				t.Errorf("saved = %s on %s, want suspended on b", vm.Power, vm.Node)
			}
			h.checkSafety(rep)
		})
	})
	t.Run("migrated-as-saved-state", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, suspendedCluster)
			if !h.drv.Capabilities().MigrateSuspended {
				t.Fatal("the sim does not migrate suspended VMs")
			}
			ctx := context.Background()
			prep, err := h.eng.Prepare(ctx, testPolicy(nil))
			if err != nil {
				t.Fatal(err)
			}
			if np := planNode(prep, "b"); np == nil || len(np.Blocked) > 0 {
				t.Errorf("plan of b = %+v, want planned", np)
			}
			id, err := h.eng.Start(ctx, prep)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.eng.Execute(ctx, id); err != nil {
				t.Fatalf("run: %v", err)
			}
			rep := h.report(id)
			if vm, _ := h.inventory().VM("saved"); vm.Node == "b" || vm.Power != cluster.PowerSuspended {
				t.Errorf("saved = %s on %s, want suspended on another node", vm.Power, vm.Node)
			}
			moved := false
			for _, m := range h.node(rep, "b").Migrations {
				moved = moved || (m.VM == "saved" && m.Error == "")
			}
			if !moved || h.stats().Reboots["b"] != 1 {
				t.Errorf("saved moved=%v, b rebooted %d times; want moved, then b rebooted once", moved, h.stats().Reboots["b"])
			}
			h.checkSafety(rep)
		})
	})
	t.Run("skip-names-it", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, suspendedCluster)
			h.swapDriver(noSavedMoves{h.drv})
			rep, err := h.apply(context.Background(), testPolicy(func(p *orchestrator.Policy) { p.NonMigratable = orchestrator.NonMigratableSkip }))
			if err != nil {
				t.Fatal(err)
			}
			b := h.node(rep, "b")
			if b.State != orchestrator.NodeDone || len(b.VMsLeft) != 1 || b.VMsLeft[0].VM != "saved" || !strings.Contains(b.VMsLeft[0].Reason, "suspended") {
				t.Errorf("node b = %s, vms left %+v; want done naming suspended vm saved", b.State, b.VMsLeft)
			}
		})
	})
	t.Run("unknown-power-blocks", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, small)
			h.swapDriver(unknownPower{h.drv, "v3"})
			rep, _ := h.apply(context.Background(), testPolicy(func(p *orchestrator.Policy) { p.NonMigratable = orchestrator.NonMigratableSkip }))
			b := h.node(rep, "b")
			if b.State != orchestrator.NodeFailed || !strings.Contains(b.Failure, "power state unknown") {
				t.Errorf("node b = %s (%q), want failed: power state unknown", b.State, b.Failure)
			}
			if st := h.stats(); st.Reboots["b"] != 0 {
				t.Errorf("b rebooted %d times under a VM of unknown power state", st.Reboots["b"])
			}
		})
	})
}

// unknownPower reports one VM's power state as unknown.
type unknownPower struct {
	drivers.Driver
	vm string
}

func (d unknownPower) Inventory(ctx context.Context) (cluster.Inventory, error) {
	inv, err := d.Driver.Inventory(ctx)
	for i := range inv.VMs {
		if inv.VMs[i].Name == d.vm {
			inv.VMs[i].Power = cluster.PowerUnknown
		}
	}
	return inv, err
}

func planNode(prep orchestrator.Prepared, node string) *struct{ Blocked []string } {
	if prep.Plan == nil {
		return nil
	}
	for _, np := range prep.Plan.Plan.Nodes {
		if np.Node == node {
			return &struct{ Blocked []string }{np.Blocked}
		}
	}
	return nil
}
