package orchestrator_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/droverhq/drover/orchestrator"
)

// TestEngine_PlanAndReportCountAlike: a run that goes as planned reports the
// plan's migrations and VMs moved more than once (failbacks count in both).
func TestEngine_PlanAndReportCountAlike(t *testing.T) {
	for _, failback := range []string{orchestrator.FailbackNone, orchestrator.FailbackImmediate} {
		t.Run("failback-"+failback, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, small)
				ctx := context.Background()
				p := testPolicy(func(p *orchestrator.Policy) { p.Failback = failback })
				prep, err := h.eng.Prepare(ctx, p)
				if err != nil || prep.Plan == nil {
					t.Fatalf("Prepare: %v (plan %v)", err, prep.Plan)
				}
				rep, err := h.apply(ctx, p)
				if err != nil || rep.State != "succeeded" {
					t.Fatalf("apply: %s, %v", rep.State, err)
				}
				pl, sm := prep.Plan, rep.Summary
				if pl.Migrations != sm.Migrations || pl.MovedMoreThanOnce != sm.MovedMoreThanOnce {
					t.Errorf("plan: %d migrations, %d VMs moved more than once; report: %d, %d", pl.Migrations, pl.MovedMoreThanOnce, sm.Migrations, sm.MovedMoreThanOnce)
				}
				if failback == orchestrator.FailbackImmediate && sm.MovedMoreThanOnce == 0 {
					t.Error("every drained VM fails back, yet the report counts none moved more than once")
				}
			})
		})
	}
}
