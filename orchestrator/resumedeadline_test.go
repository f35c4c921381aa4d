package orchestrator_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/droverhq/drover/drivers/sim"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
)

// newScaledHarness is newHarness with the simulator scale times faster than the
// wall clock (the bubble's fake one).
func newScaledHarness(t *testing.T, cluster string, scale float64) *harness {
	t.Helper()
	c, err := sim.ParseCluster([]byte(cluster))
	if err != nil {
		t.Fatal(err)
	}
	drv, err := sim.NewEmbedded(context.Background(), sim.EmbeddedOptions{Cluster: c, TimeScale: scale})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { drv.Close() })
	h := &harness{t: t, drv: drv, driver: drv, events: &eventLog{}, dir: t.TempDir()}
	h.openStore()
	if h.before, err = drv.Inventory(context.Background()); err != nil {
		t.Fatal(err)
	}
	return h
}

// entryAt is the cluster time of the first journal entry of the run that matches.
func entryAt(t *testing.T, h *harness, id string, match func(runs.Entry) bool) time.Time {
	t.Helper()
	journal, err := h.store.Journal(id)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range journal {
		if match(en) {
			return en.At
		}
	}
	t.Fatalf("no such journal entry in run %s", id)
	return time.Time{}
}

// TestEngine_RebootDeadlineSurvivesRestart: with the simulator 60 times faster
// than the (fake) wall clock, the process dies 4 cluster minutes into a node's
// reboot wait and is started again 3 cluster minutes later. The node never comes
// back: it must fail when policy.reboot_timeout has passed since the reboot
// command, not a whole reboot_timeout after the restart.
func TestEngine_RebootDeadlineSurvivesRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		faults := "  - {kind: node_no_return, node: a, always: true}\n" +
			"  - {kind: node_no_return, node: b, always: true}\n" +
			"  - {kind: node_no_return, node: c, always: true}\n"
		const scale = 60
		h := newScaledHarness(t, withFaults(small, faults), scale)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		rebooting := make(chan string, 1)
		h.events.check = func(e orchestrator.Event) {
			if e.Kind == orchestrator.EventNodeState && e.State == orchestrator.NodeRebooting {
				select {
				case rebooting <- e.Node:
				default:
				}
			}
		}
		const timeout = 10 * time.Minute
		p := testPolicy(func(p *orchestrator.Policy) { p.RebootTimeout = orchestrator.Duration(timeout) })
		id := h.start(ctx, p)
		done := make(chan error, 1)
		go func() {
			_, err := h.eng.Execute(ctx, id)
			done <- err
		}()
		node := <-rebooting
		time.Sleep(4 * time.Minute / scale) // the process waits for the node...
		cancel()                            // ...and dies
		if err := <-done; !errors.Is(err, orchestrator.ErrInterrupted) {
			t.Fatalf("first Execute = %v, want ErrInterrupted", err)
		}
		h.events.check = nil
		time.Sleep(3 * time.Minute / scale) // nobody runs the run meanwhile
		h.openStore()
		if run, err := h.eng.Execute(context.Background(), id); err != nil || run.State != runs.StateFailed {
			t.Fatalf("resumed Execute = %s, %v; want a failed run (the node never came back)", run.State, err)
		}
		issued := entryAt(t, h, id, func(en runs.Entry) bool {
			return en.Op == runs.OpReboot && en.Node == node && en.Status == runs.StatusIntent
		})
		gaveUp := entryAt(t, h, id, func(en runs.Entry) bool {
			return en.Op == runs.OpState && en.Node == node && en.Detail == "rebooting -> resuming"
		})
		waited := gaveUp.Sub(issued)
		poll := p.PollInterval.D()
		if waited < timeout || waited > timeout+2*poll {
			t.Errorf("node %s gave up %s after its reboot command, want policy.reboot_timeout %s (+ one poll of %s): the deadline was not kept across the restart", node, waited, timeout, poll)
		}
		rep := h.report(id)
		if f := h.node(rep, node).Failure; !strings.Contains(f, "did not come back within policy.reboot_timeout (10m0s)") {
			t.Errorf("node %s failure = %q, want the reboot_timeout named", node, f)
		}
	})
}

// TestEngine_StopAfterSurvivesRestart: policy.stop_after counts from the run's
// start in cluster time, the time nobody ran it included: a run interrupted after
// 2 minutes and resumed 2 minutes later stops 6 minutes after it started, not 6
// minutes after the restart.
func TestEngine_StopAfterSurvivesRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := strings.ReplaceAll(small, "reboot_seconds: 60", "reboot_seconds: 600")
		h := newHarness(t, slow)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		const stopAfter = 6 * time.Minute
		id := h.start(ctx, testPolicy(func(p *orchestrator.Policy) { p.StopAfter = orchestrator.Duration(stopAfter) }))
		go func() {
			time.Sleep(2 * time.Minute)
			cancel()
		}()
		if _, err := h.eng.Execute(ctx, id); !errors.Is(err, orchestrator.ErrInterrupted) {
			t.Fatalf("first Execute = %v, want ErrInterrupted", err)
		}
		time.Sleep(2 * time.Minute)
		h.openStore()
		resumed := time.Now()
		if run, err := h.eng.Execute(context.Background(), id); err != nil || run.State != runs.StateStopped {
			t.Fatalf("resumed Execute = %s, %v; want stopped by policy.stop_after", run.State, err)
		}
		started := entryAt(t, h, id, func(en runs.Entry) bool { return en.Op == runs.OpRunStart })
		fired := entryAt(t, h, id, func(en runs.Entry) bool {
			return en.Op == "deadline" && strings.HasPrefix(en.Detail, "stop_after")
		})
		if got := fired.Sub(started); got != stopAfter {
			t.Errorf("stop_after fired %s after the run started (%s after the restart), want %s", got, fired.Sub(resumed), stopAfter)
		}
	})
}
