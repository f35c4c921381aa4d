package orchestrator_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
)

// TestEngine_StopAfterReason: the run's error is shown after its state ("run ID
// stopped: ..."), so it must not say "stopped" again.
func TestEngine_StopAfterReason(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, small)
		var mu sync.Mutex
		var warnings []string
		h.events.check = func(e orchestrator.Event) {
			if e.Kind == orchestrator.EventWarning {
				mu.Lock()
				warnings = append(warnings, e.Message)
				mu.Unlock()
			}
		}
		rep, _ := h.apply(context.Background(), testPolicy(func(p *orchestrator.Policy) {
			p.StopAfter = orchestrator.Duration(90 * time.Second)
		}))
		if rep.State != string(runs.StateStopped) {
			t.Fatalf("run = %s (%s), want stopped", rep.State, rep.Error)
		}
		if want := "the run reached policy.stop_after (1m30s)"; rep.Error != want {
			t.Errorf("run error %q, want %q", rep.Error, want)
		}
		mu.Lock()
		defer mu.Unlock()
		if !slices.ContainsFunc(warnings, func(m string) bool { return strings.HasPrefix(m, "stopping: the run reached policy.stop_after") }) {
			t.Errorf("no warning event saying the run is stopping: %q", warnings)
		}
	})
}
