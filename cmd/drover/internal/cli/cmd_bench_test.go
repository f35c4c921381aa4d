package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/droverhq/drover/orchestrator/bench"
)

// benchCLI runs `drover bench` with args.
func benchCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	f := &Factory{IO: IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, Version: "test"}
	root := NewCmdRoot(f)
	root.SetArgs(append([]string{"bench"}, args...))
	err := root.ExecuteContext(context.Background())
	if err != nil {
		errOut.WriteString("drover: " + err.Error() + "\n")
	}
	return out.String(), errOut.String(), ExitCode(err)
}

func TestBench_JSON(t *testing.T) {
	out, errOut, code := benchCLI(t, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got struct {
		Scenarios []map[string]any `json:"scenarios"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &top); err != nil || len(top) != 1 {
		t.Errorf("top level keys %v, want only scenarios", top)
	}
	if len(got.Scenarios) != 25 {
		t.Fatalf("%d rows, want 25 (5 scenarios x 5 strategies)", len(got.Scenarios))
	}
	seen := map[string]bool{}
	for _, r := range got.Scenarios {
		for _, key := range []string{"name", "strategy", "drain_seconds", "run_seconds", "migrations_per_vm", "lower_bound_drain_seconds", "lower_bound_run_seconds"} {
			if _, ok := r[key]; !ok {
				t.Errorf("row %v lacks %q", r["name"], key)
			}
		}
		name, _ := r["name"].(string)
		strategy, _ := r["strategy"].(string)
		seen[name+"/"+strategy] = true
		drain, _ := r["drain_seconds"].(json.Number).Float64()
		lb, _ := r["lower_bound_drain_seconds"].(json.Number).Float64()
		if drain <= 0 || lb <= 0 || drain < lb-0.05 {
			t.Errorf("%s/%s: drain %v s, lower bound %v s", name, strategy, drain, lb)
		}
		run, _ := r["run_seconds"].(json.Number).Float64()
		rlb, _ := r["lower_bound_run_seconds"].(json.Number).Float64()
		if rlb <= 0 || run < rlb-0.05 {
			t.Errorf("%s/%s: run %v s, whole-run lower bound %v s", name, strategy, run, rlb)
		}
	}
	for _, sc := range bench.ScenarioNames() {
		for _, st := range []string{"serial", "fixed-2", "fixed-8", "per-source-1", "drover"} {
			if !seen[sc+"/"+st] {
				t.Errorf("no row for %s under %s", sc, st)
			}
		}
	}
}

func TestBench_Command(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		out  []string
	}{
		{name: "table-and-goals", args: []string{"--scenarios", "links-1g", "--plan-nodes", "20"}, out: []string{
			"links-1g: 8 nodes, 96 VMs", "whole run: lower bound", "strategy", "drover faster", "per-source-1", "Goals:",
			"links-1g: drain within 10% of the lower bound", "plan of 20 nodes / 600 VMs"}},
		{name: "unknown-scenario", args: []string{"--scenarios", "nope"}, code: ExitUsage},
		{name: "zero-seed", args: []string{"--seed", "0"}, code: ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := benchCLI(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			for _, s := range tt.out {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
		})
	}
}
