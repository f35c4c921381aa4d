package orchestrator_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

// noBootIDs is the sim as a platform that reports no boot IDs (libvirt without
// boot_id_command).
type noBootIDs struct {
	drivers.Driver
	// lateBy delays the reboot after the command returned: meanwhile the old system
	// still answers "ready".
	lateBy time.Duration
	// hideDown answers "ready" while the node reboots (a reboot faster than the poll).
	hideDown bool
	// onReboot runs when the reboot command is given.
	onReboot func()
	wg       sync.WaitGroup
}

func (d *noBootIDs) Capabilities() drivers.Capabilities {
	c := d.Driver.Capabilities()
	c.BootID = false
	return c
}

func (d *noBootIDs) Inventory(ctx context.Context) (cluster.Inventory, error) {
	inv, err := d.Driver.Inventory(ctx)
	for i := range inv.Nodes {
		inv.Nodes[i].BootID = ""
	}
	return inv, err
}

func (d *noBootIDs) NodeReady(ctx context.Context, node string) (bool, error) {
	if d.hideDown {
		return true, nil
	}
	return d.Driver.NodeReady(ctx, node)
}

func (d *noBootIDs) RebootNode(ctx context.Context, node string) error {
	if d.onReboot != nil {
		d.onReboot()
	}
	if d.lateBy == 0 {
		return d.Driver.RebootNode(ctx, node)
	}
	d.wg.Go(func() {
		time.Sleep(d.lateBy)
		_ = d.Driver.RebootNode(context.Background(), node)
	})
	return nil
}

// TestEngine_RebootNeedsEvidence: without boot IDs, a "ready" answer right after the
// reboot command comes from the old system, which goes down moments later. The run
// must wait for evidence (the node seen down), also when it resumes in rebooting
// after the reboot's outcome was written; VMs failed back onto a node about to
// reboot would die with it.
func TestEngine_RebootNeedsEvidence(t *testing.T) {
	failback := func(p *orchestrator.Policy) { p.Failback = orchestrator.FailbackImmediate }
	t.Run("late-reboot", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, small)
			d := &noBootIDs{Driver: h.drv, lateBy: 30 * time.Second}
			h.swapDriver(d)
			rep, err := h.apply(context.Background(), testPolicy(failback))
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			d.wg.Wait()
			checkRebootedOnce(t, h, rep)
		})
	})
	t.Run("resumed-in-rebooting", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, small)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			d := &noBootIDs{Driver: h.drv, lateBy: 30 * time.Second}
			once := sync.Once{}
			// Die right after the first reboot's outcome is written.
			d.onReboot = func() { once.Do(func() { h.store.CrashAfter(1, cancel) }) }
			h.swapDriver(d)
			id := h.start(ctx, testPolicy(failback))
			if _, err := h.eng.Execute(ctx, id); err == nil {
				t.Fatal("first Execute succeeded: the crash never happened")
			}
			if n, _ := h.store.Nodes(id); !hasState(n, orchestrator.NodeRebooting) {
				t.Fatalf("no node in rebooting after the crash: %+v", n)
			}
			h.openStore() // the new process comes back before the node went down
			if _, err := h.eng.Execute(context.Background(), id); err != nil {
				t.Fatalf("resumed Execute: %v", err)
			}
			d.wg.Wait()
			checkRebootedOnce(t, h, h.report(id))
		})
	})
	t.Run("ready-without-evidence-fails", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, small)
			h.swapDriver(&noBootIDs{Driver: h.drv, hideDown: true})
			rep, _ := h.apply(context.Background(), testPolicy(func(p *orchestrator.Policy) {
				p.RebootTimeout = orchestrator.Duration(5 * time.Minute)
				p.MaxFailedNodes = 3
			}))
			for _, n := range rep.Nodes {
				if n.State != orchestrator.NodeFailed || !strings.Contains(n.Failure, "policy.reboot_evidence=first_ready") {
					t.Errorf("node %s = %s (%q), want failed for lack of reboot evidence, naming the key", n.Name, n.State, n.Failure)
				}
			}
		})
	})
}

func hasState(ns []runs.NodeRecord, state string) bool {
	for _, n := range ns {
		if n.State == state {
			return true
		}
	}
	return false
}

// checkRebootedOnce: the run succeeded, every node rebooted once, and nothing was
// lost (a VM failed back onto a node before its late reboot would be).
func checkRebootedOnce(t *testing.T, h *harness, rep report.Report) {
	t.Helper()
	if rep.State != string(runs.StateSucceeded) {
		t.Errorf("run = %s (%s), want succeeded", rep.State, rep.Error)
	}
	st := h.stats()
	for _, node := range []string{"a", "b", "c"} {
		if st.Reboots[node] != 1 {
			t.Errorf("node %s rebooted %d times, want 1", node, st.Reboots[node])
		}
	}
	h.checkSafety(rep)
}
