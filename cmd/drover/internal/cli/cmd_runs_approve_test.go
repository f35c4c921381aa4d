package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/droverhq/drover/runs/report"
)

func TestRunsApprove_Command(t *testing.T) {
	cfg := testSetup(t, smallCluster, "  canary: true\n")
	out, errOut, code := runCLI(t, "--config", cfg, "apply", "--yes", "--json")
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", code, out, errOut)
	}
	var rep report.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("apply --json: %v\n%s", err, out)
	}
	if rep.State != "waiting_approval" || rep.Summary.NodesDone != 1 || !strings.Contains(errOut, "drover runs approve "+rep.ID) {
		t.Fatalf("after apply: state %s, %d nodes done; stderr %q; want waiting_approval after 1 node and the approve command", rep.State, rep.Summary.NodesDone, errOut)
	}
	// A second apply does not start another run, nor continue this one unapproved.
	if _, errOut, code := runCLI(t, "--config", cfg, "apply", "--yes"); code != 1 || !strings.Contains(errOut, "waiting for approval of its canary node; continue it with `drover runs approve "+rep.ID) {
		t.Errorf("apply while waiting: exit %d, %q; want 1 saying the run waits for approval", code, errOut)
	}
	out, errOut, code = runCLI(t, "--config", cfg, "runs", "approve", rep.ID[:10], "--json")
	if code != 0 {
		t.Fatalf("runs approve: exit %d\n%s\n%s", code, out, errOut)
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("runs approve --json: %v\n%s", err, out)
	}
	if rep.State != "succeeded" || rep.Summary.NodesDone != 3 {
		t.Errorf("after approval: %s with %d nodes done, want succeeded with 3", rep.State, rep.Summary.NodesDone)
	}
	if _, errOut, code := runCLI(t, "--config", cfg, "runs", "approve", rep.ID); code != 1 || !strings.Contains(errOut, "has ended") {
		t.Errorf("approving an ended run: exit %d, %q", code, errOut)
	}
	if _, _, code := runCLI(t, "--config", cfg, "runs", "approve"); code != 2 {
		t.Errorf("approve without an ID: exit %d, want 2", code)
	}
}
