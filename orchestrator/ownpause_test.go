package orchestrator_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/orchestrator/readiness"
	"github.com/droverhq/drover/runs"
)

// TestAnalyze_RecognisesItsOwnInterruptedRun: after a run is interrupted with a
// node paused under its mark, analyze and a new plan say "resume run X", not
// "paused by someone else, resume it on the platform" (issue 16).
func TestAnalyze_RecognisesItsOwnInterruptedRun(t *testing.T) {
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
		a := readiness.Analyze(context.Background(), readiness.AnalyzeConfig{
			Cluster: "test", Policy: testPolicy(nil), Driver: h.drv, Updater: h.drv, Store: h.store,
			Alive: func(runs.Owner) runs.Liveness { return runs.Dead },
		})
		c, _ := checkOf(a, "nodes_up")
		if !strings.Contains(c.Message, "paused by Drover run "+id) || !strings.Contains(c.Remedy, "drover runs resume "+id) || strings.Contains(c.Message, "someone else") {
			t.Errorf("nodes_up = %+v, want the node named as paused by run %s", c, id)
		}
		// Starting anew is refused, naming the run to resume ...
		if _, err := h.eng.Prepare(context.Background(), testPolicy(nil)); err == nil || !strings.Contains(err.Error(), id) {
			t.Errorf("Prepare = %v, want a refusal naming run %s", err, id)
		}
		// ... and a plan (drover plan, apply --dry-run) leaves the node out, saying so.
		prep, err := orchestrator.PlanRun(context.Background(), h.drv, h.drv, testPolicy(nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range prep.Records {
			if r.State == orchestrator.NodeSkipped {
				found = true
				if !strings.Contains(r.SkipReason, "drover runs resume "+id) {
					t.Errorf("node %s skipped: %q, want resume run %s", r.Name, r.SkipReason, id)
				}
			}
		}
		if !found {
			t.Errorf("no node skipped in the new plan: the paused node was not recognised")
		}
	})
}

// TestAnalyze_NoNodeAnswers: a driver whose every node is down (unreachable hosts)
// fails driver_reachable, naming them, instead of "inventory read: 2 nodes".
func TestAnalyze_NoNodeAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, strings.ReplaceAll(strings.ReplaceAll(small, "cpus: 16,", "cpus: 16, down: true,"), "vcpus: 2,", "vcpus: 2, power: stopped,"))
		a := readiness.Analyze(context.Background(), readiness.AnalyzeConfig{
			Cluster: "test", Policy: testPolicy(nil), Driver: h.drv, Updater: h.drv, Store: h.store,
		})
		c, _ := checkOf(a, "driver_reachable")
		if c.Status != readiness.CheckFail || !strings.Contains(c.Message, "a (down), b (down), c (down)") {
			t.Errorf("driver_reachable = %+v, want a failure naming a, b and c", c)
		}
		if a.Ready {
			t.Errorf("a cluster none of whose nodes answers is called ready")
		}
		// Nothing claims an answer from nodes that were not asked.
		for _, c := range a.Checks {
			if c.Status == readiness.CheckPass && strings.Contains(c.Message, "answered on all 0") {
				t.Errorf("check %s passes with %q", c.Name, c.Message)
			}
		}
	})
}

// TestAnalyze_SomeNodesDown: the update plug-in's answer says which nodes it could
// not ask.
func TestAnalyze_SomeNodesDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		down := strings.Replace(small, "{name: c, memory_mib: 32768, cpus: 16,", "{name: c, memory_mib: 32768, cpus: 16, down: true,", 1)
		h := newHarness(t, strings.Replace(down, "{name: v4, node: c,", "{name: v4, node: c, power: stopped,", 1))
		a := readiness.Analyze(context.Background(), readiness.AnalyzeConfig{
			Cluster: "test", Policy: testPolicy(nil), Driver: h.drv, Updater: h.drv, Store: h.store,
		})
		u, _ := checkOf(a, "update_plugin")
		if !strings.Contains(u.Message, "answered on all 2 ready nodes") || !strings.HasSuffix(u.Message, "; not asked: c (down)") {
			t.Errorf("update_plugin = %+v, want the answer of a and b and c named as not asked", u)
		}
	})
}
