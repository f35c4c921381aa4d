package orchestrator_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/orchestrator/readiness"
	"github.com/droverhq/drover/runs"
)

// otherDrover pauses a node with another run's mark just before this run pauses
// it: a second drover (another state file) on the same cluster.
type otherDrover struct {
	drivers.Driver
	node, mark string
}

func (d otherDrover) PauseNode(ctx context.Context, node, owner string) error {
	if node == d.node {
		if err := d.Driver.PauseNode(ctx, node, d.mark); err != nil {
			return err
		}
	}
	return d.Driver.PauseNode(ctx, node, owner)
}

// TestEngine_ForeignPause: nodes paused by another drover run are never touched.
// analyze fails and a new run refuses to start while any node carries such a mark,
// naming the run; a node the other run pauses while ours works is never resumed,
// drained or rebooted by ours.
func TestEngine_ForeignPause(t *testing.T) {
	other := drivers.PauseMark("20990101-000000-0ther0")
	t.Run("apply-refuses", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, small)
			ctx := context.Background()
			if err := h.drv.PauseNode(ctx, "b", other); err != nil {
				t.Fatal(err)
			}
			_, err := h.eng.Prepare(ctx, testPolicy(nil))
			var pe *orchestrator.PausedByOtherRunError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), "drover run 20990101-000000-0ther0") || !strings.Contains(err.Error(), "node(s) b") {
				t.Fatalf("Prepare = %v, want PausedByOtherRunError naming the run and node b", err)
			}
			// `drover apply` plans for viewing first (PlanRun), then starts: the
			// start refuses too.
			prep, err := orchestrator.PlanRun(ctx, h.drv, h.drv, testPolicy(nil), nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.eng.Start(ctx, prep); !errors.As(err, &pe) {
				t.Fatalf("Start of a run planned with PlanRun = %v, want PausedByOtherRunError", err)
			}
			a := readiness.Analyze(ctx, readiness.AnalyzeConfig{Cluster: "test", Policy: testPolicy(nil), Driver: h.drv, Updater: h.drv, Store: h.store})
			var found bool
			for _, c := range a.Checks {
				if c.Name == "pause_marks" {
					found = true
					if c.Status != readiness.CheckFail || !strings.Contains(c.Message, "20990101-000000-0ther0") {
						t.Errorf("pause_marks = %s %q, want fail naming the run", c.Status, c.Message)
					}
				}
			}
			if !found || a.Ready {
				t.Errorf("analyze ready=%v with pause_marks found=%v, want not ready", a.Ready, found)
			}
		})
	})
	t.Run("never-touched-mid-run", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, small)
			h.swapDriver(otherDrover{Driver: h.drv, node: "b", mark: other})
			rep, _ := h.apply(context.Background(), testPolicy(nil))
			b := h.node(rep, "b")
			if b.State != orchestrator.NodeFailed || !strings.Contains(b.LeftPaused, other) {
				t.Errorf("node b = %s (failure %q, left paused %q), want failed and left to the other run", b.State, b.Failure, b.LeftPaused)
			}
			n, _ := h.inventory().Node("b")
			if !n.Paused || n.PausedBy != other {
				t.Errorf("node b paused=%v by %q: the other run's pause was lifted", n.Paused, n.PausedBy)
			}
			st := h.stats()
			if st.Reboots["b"] != 0 {
				t.Errorf("b rebooted %d times", st.Reboots["b"])
			}
			for _, m := range st.Migrations {
				if m.From == "b" {
					t.Errorf("vm %s drained off b, which another run holds", m.VM)
				}
			}
			if rep.State == string(runs.StateSucceeded) {
				t.Error("run succeeded with a node it could not patch")
			}
		})
	})
}

// TestEngine_StopsArePruned: the engine forgets a run's stop switch once the run no
// longer executes, and a stop of a finished run leaves nothing behind (a daemon lives
// for months).
func TestEngine_StopsArePruned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, small)
		rep, err := h.apply(context.Background(), testPolicy(nil))
		if err != nil {
			t.Fatal(err)
		}
		h.eng.Stop(rep.ID)
		if n := h.eng.PendingStops(); n != 0 {
			t.Errorf("%d stop switches kept after the run finished and a late stop", n)
		}
	})
}

// TestAnalyze_OwnInterruptedRunsMarks: nodes paused by this state file's interrupted
// run make analyze fail with the way on: resume that run.
func TestAnalyze_OwnInterruptedRunsMarks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, small)
		ctx, cancel := context.WithCancel(context.Background())
		h.events.check = func(e orchestrator.Event) {
			if e.Kind == orchestrator.EventMigrationStarted {
				cancel()
			}
		}
		id := h.start(ctx, testPolicy(nil))
		if _, err := h.eng.Execute(ctx, id); !errors.Is(err, orchestrator.ErrInterrupted) {
			t.Fatalf("Execute = %v", err)
		}
		h.openStore()
		a := readiness.Analyze(context.Background(), readiness.AnalyzeConfig{Cluster: "test", Policy: testPolicy(nil), Driver: h.drv, Updater: h.drv, Store: h.store,
			Alive: func(runs.Owner) runs.Liveness { return runs.Dead }})
		found := false
		for _, c := range a.Checks {
			if c.Name != "pause_marks" {
				continue
			}
			found = true
			if c.Status != readiness.CheckFail || !strings.Contains(c.Message, "drover runs resume "+id) {
				t.Errorf("pause_marks = %s %q, want fail saying resume run %s", c.Status, c.Message, id)
			}
		}
		if !found {
			t.Error("analyze has no pause_marks check")
		}
	})
}
