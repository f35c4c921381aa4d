package orchestrator_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

func evacuatePolicy(nodes ...string) orchestrator.Policy {
	return testPolicy(func(p *orchestrator.Policy) {
		p.Nodes, p.Force, p.Evacuate = nodes, true, true
	})
}

// checkEvacuated asserts that node is empty, paused and reported left paused, was
// neither patched nor rebooted, and that the run touched no other node.
func checkEvacuated(t *testing.T, h *harness, rep report.Report, node string) {
	t.Helper()
	if rep.State != string(runs.StateSucceeded) {
		t.Fatalf("run = %s (%s), want succeeded", rep.State, rep.Error)
	}
	h.checkSafety(rep)
	if len(rep.Nodes) != 1 || rep.Nodes[0].Name != node {
		t.Fatalf("report nodes %+v, want only %s", rep.Nodes, node)
	}
	n := rep.Nodes[0]
	if n.State != orchestrator.NodeDone || n.LeftPaused == "" || n.Rebooted || n.UpdatesInstalled != 0 {
		t.Errorf("node %s: state %s, left paused %q, rebooted %v, %d installed; want done, left paused, untouched otherwise",
			node, n.State, n.LeftPaused, n.Rebooted, n.UpdatesInstalled)
	}
	inv := h.inventory()
	for _, nd := range inv.Nodes {
		if nd.Paused != (nd.Name == node) {
			t.Errorf("node %s paused = %v after evacuating %s", nd.Name, nd.Paused, node)
		}
	}
	if vms := inv.VMsOn(node); len(vms) != 0 {
		t.Errorf("vms still on %s: %+v", node, vms)
	}
	if st := h.stats(); len(st.Reboots) != 0 {
		t.Errorf("reboots during an evacuation: %v", st.Reboots)
	}
}

func TestEvacuate_DrainsTheNodeAndLeavesItPaused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, localStorageCluster)
		rep, err := h.apply(context.Background(), evacuatePolicy("n1"))
		if err != nil {
			t.Fatal(err)
		}
		checkEvacuated(t, h, rep, "n1")
		// db left with its local disk.
		if m := rep.Nodes[0].Migrations; len(m) != 1 || m[0].VM != "db" || m[0].DiskMiB < 40960 {
			t.Errorf("migrations %+v, want db with its 40960 MiB disk", m)
		}
	})
}

func TestEvacuate_CrashDuringTheDiskCopyThenResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, localStorageCluster)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cd := &crashingDriver{detachingDriver: &detachingDriver{Driver: h.drv}, op: "migrate", n: 1}
		cd.die = func() {
			h.store.Close()
			cancel()
		}
		h.engineWith(&dyingMidCopy{crashingDriver: cd}, cd)
		id := h.start(ctx, evacuatePolicy("n1"))
		if _, err := h.eng.Execute(ctx, id); err == nil || !cd.crashed.Load() {
			t.Fatalf("first Execute = %v, crashed %v: the crash never happened", err, cd.crashed.Load())
		}
		cd.wg.Wait()
		h.openStore()
		if _, err := h.eng.Execute(context.Background(), id); err != nil {
			t.Fatalf("resumed Execute: %v", err)
		}
		checkEvacuated(t, h, h.report(id), "n1")
	})
}
