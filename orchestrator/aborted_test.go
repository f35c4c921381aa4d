package orchestrator_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
)

// TestEngine_StoppedMigrationsAreNotFailedAttempts: `drover runs stop` (or Ctrl-C)
// during a drain cuts the migrations in flight off; the report lists them as
// aborted, not as failed attempts, and no migration_failed event is sent.
func TestEngine_StoppedMigrationsAreNotFailedAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, small)
		ctx := context.Background()
		id := h.start(ctx, testPolicy(nil))
		stopAt := migrationStarted(1)
		h.events.check = func(e orchestrator.Event) {
			if stopAt(e) {
				h.eng.Stop(id)
			}
		}
		run, err := h.eng.Execute(ctx, id)
		if err != nil || run.State != runs.StateStopped {
			t.Fatalf("Execute = %s, %v; want stopped", run.State, err)
		}
		rep := h.report(id)
		if rep.Summary.FailedMigrations != 0 {
			t.Errorf("report counts %d failed migrations, want 0: a migration cut off by the stop is not a failed attempt", rep.Summary.FailedMigrations)
		}
		if rep.Summary.AbortedMigrations != 1 {
			t.Errorf("report counts %d aborted migrations, want 1", rep.Summary.AbortedMigrations)
		}
		for _, n := range rep.Nodes {
			for _, m := range n.AbortedMigrations {
				if inv := h.inventory(); func() bool { v, _ := inv.VM(m.VM); return v.Node != m.From }() {
					t.Errorf("aborted migration of %s: the VM is not on its source %s", m.VM, m.From)
				}
			}
		}
		h.events.mu.Lock()
		defer h.events.mu.Unlock()
		aborted := 0
		for _, e := range h.events.events {
			switch e.Kind {
			case orchestrator.EventMigrationFailed:
				t.Errorf("event %s for %s: %s", e.Kind, e.VM, e.Message)
			case orchestrator.EventMigrationAborted:
				aborted++
			}
		}
		if aborted != 1 {
			t.Errorf("%d migration_aborted events, want 1", aborted)
		}
	})
}
