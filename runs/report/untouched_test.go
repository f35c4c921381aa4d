package report

import (
	"testing"

	"github.com/droverhq/drover/runs"
)

// TestBuild_UntouchedNodesOfAnEndedRunAreSkipped: nodes still queued when a run
// ended (stopped, failed) show as skipped with the reason; an interrupted run's
// queued nodes stay queued (it continues).
func TestBuild_UntouchedNodesOfAnEndedRunAreSkipped(t *testing.T) {
	nodes := []runs.NodeRecord{{Name: "n1", State: "done"}, {Name: "n2", State: "queued"}}
	for _, tt := range []struct {
		name  string
		state runs.State
		want  string
	}{
		{name: "stopped", state: runs.StateStopped, want: "skipped"},
		{name: "failed", state: runs.StateFailed, want: "skipped"},
		{name: "running", state: runs.StateRunning, want: "queued"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rep := Build(runs.Run{ID: "r", State: tt.state}, nodes)
			if got := rep.Nodes[1].State; got != tt.want {
				t.Fatalf("n2 = %s, want %s", got, tt.want)
			}
			if tt.want == "skipped" && (rep.Summary.NodesSkipped != 1 || rep.Nodes[1].SkipReason != "not started: the run "+string(tt.state)+" before this node's turn") {
				t.Errorf("summary %+v, reason %q", rep.Summary, rep.Nodes[1].SkipReason)
			}
		})
	}
}
