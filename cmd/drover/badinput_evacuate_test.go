package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/droverhq/drover/runs/report"
)

func TestCLI_EvacuateBadInput(t *testing.T) {
	bin := droverBinary(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "no-node", args: []string{"evacuate", "--yes"}, want: "drover: evacuate needs the node(s) to empty: drover evacuate NODE... (see drover inventory)"},
		{name: "unknown-node", args: []string{"evacuate", "n9", "--yes"}, want: `drover: evacuate: unknown node "n9" in cluster default (nodes: n1, n2, n3)`},
		{name: "node-twice", args: []string{"evacuate", "n1", "n1", "--yes"}, want: `drover: evacuate: node argument 2 ("n1") is empty or given twice`},
		{name: "not-through-a-daemon", args: []string{"--server", "http://127.0.0.1:1", "evacuate", "n1", "--yes"}, want: "evacuate does not work through a daemon"},
		{name: "no-confirmation-off-a-terminal", args: []string{"evacuate", "n1"}, want: "drover: evacuate changes the cluster: confirm with --yes (or run on a terminal)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "drover.yaml"), storageConfig(t, ""))
			code, stderr := runDrover(t, bin, dir, nil, append([]string{"--config", "drover.yaml"}, tt.args...)...)
			msg := errorMessage(stderr, dir, "")
			if code != 2 || !strings.Contains(msg, tt.want) {
				t.Fatalf("exit %d, %q; want exit 2 and %q", code, msg, tt.want)
			}
			// Bad input changes nothing: no run recorded.
			if code, out, _ := runDroverOut(t, bin, dir, nil, "--config", "drover.yaml", "runs", "list", "--json"); code != 0 || strings.TrimSpace(out) != "[]" {
				t.Errorf("runs list after bad input: exit %d, %s", code, out)
			}
		})
	}
}

// TestCLI_EvacuateEmptiesANode: `drover evacuate n1 --yes --json` on the sim prints
// apply's report object: n1 drained (db with its local disk), done and left paused,
// not patched; the other nodes untouched; --dry-run before it prints the plan.
func TestCLI_EvacuateEmptiesANode(t *testing.T) {
	bin := droverBinary(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "drover.yaml"), storageConfig(t, ""))
	code, out, stderr := runDroverOut(t, bin, dir, nil, "--config", "drover.yaml", "evacuate", "n1", "--dry-run", "--json")
	var preview map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &preview) != nil {
		t.Fatalf("evacuate --dry-run --json: exit %d\n%s\n%s", code, out, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "state.db")); err == nil {
		t.Error("a dry run left a state file behind")
	}
	code, out, stderr = runDroverOut(t, bin, dir, nil, "--config", "drover.yaml", "evacuate", "n1", "--yes", "--json")
	if code != 0 {
		t.Fatalf("evacuate: exit %d\n%s", code, stderr)
	}
	var rep report.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("evacuate --json is not a report: %v\n%s", err, out)
	}
	if rep.State != "succeeded" || len(rep.Nodes) != 1 || len(rep.Summary.LeftPaused) != 1 || rep.Summary.LeftPaused[0] != "n1" {
		t.Fatalf("report %+v", rep)
	}
	n := rep.Nodes[0]
	if n.Name != "n1" || n.State != "done" || !strings.Contains(n.LeftPaused, "evacuated") || n.Rebooted || n.UpdatesInstalled != 0 {
		t.Errorf("node %+v: want n1 done, left paused (evacuated), not patched or rebooted", n)
	}
	if len(n.Migrations) != 1 || n.Migrations[0].VM != "db" || n.Migrations[0].DiskMiB != 40960 || n.Migrations[0].To == "n3" {
		t.Errorf("migrations %+v: want db with its 40960 MiB disk, not onto n3 (too little storage)", n.Migrations)
	}
}
