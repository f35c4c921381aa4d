package orchestrator_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/droverhq/drover/runs/report"
)

// TestEngine_RunTimesOnTheClusterClock: with a simulator 60 times faster than the
// wall clock, the run's start and end are recorded on the cluster's clock too, so
// that every node phase lies between them (not after the run's "Finished"), and
// the run's cluster duration is 60 times its wall duration.
func TestEngine_RunTimesOnTheClusterClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		h := newScaledHarness(t, small, 60)
		rep, err := h.apply(ctx, testPolicy(nil))
		if err != nil || rep.State != "succeeded" {
			t.Fatalf("apply: %s, %v", rep.State, err)
		}
		from, to := rep.ClusterStartedAt, rep.ClusterFinishedAt
		if from.IsZero() || to.IsZero() {
			t.Fatalf("run has no cluster times: %v .. %v", from, to)
		}
		for _, n := range rep.Nodes {
			for _, p := range n.Phases {
				if p.Start.Before(from) || p.Start.After(to) {
					t.Errorf("node %s phase %s starts at %s, outside the run's %s .. %s (cluster clock)", n.Name, p.Name, p.Start, from, to)
				}
			}
		}
		sm := rep.Summary
		if sm.Seconds <= 0 || sm.ClusterSeconds/sm.Seconds < 59 || sm.ClusterSeconds/sm.Seconds > 61 {
			t.Errorf("run took %.1fs of cluster time and %.1fs of wall time, want a ratio of 60", sm.ClusterSeconds, sm.Seconds)
		}
		var b bytes.Buffer
		if err := report.Render(&b, rep, "md"); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), "of cluster time, ") || !strings.Contains(b.String(), "| Cluster clock | started ") {
			t.Errorf("markdown report does not label the run's two clocks:\n%s", b.String())
		}
	})
}
