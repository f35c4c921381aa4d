package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/droverhq/drover/runs/report"
)

// TestWords: what the CLI says is said once, in the right number, with the right
// placeholders and suggestions (issue 16, "Words").
func TestWords(t *testing.T) {
	cfg := testSetup(t, smallCluster, "")
	typo := filepath.Join(filepath.Dir(cfg), "typo.yaml")
	if err := os.WriteFile(typo, []byte("cluster: {name: t, driver: sim, sim: {cluster_file: cluster.yaml}}\nstate: state.db\npolicy: {failbak: immediate}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		code    int
		want    []string
		notWant []string
	}{
		{name: "help-placeholders", args: []string{"--help"}, want: []string{"--server string", "--sim-url string"}, notWant: []string{"--server drover serve", "--sim-url drover sim serve"}},
		{name: "runs-help-names-every-subcommand", args: []string{"runs", "--help"}, want: []string{"approve and report runs"}},
		{name: "policy-typo-suggests-policy-keys", args: []string{"--config", typo, "plan"}, code: 2,
			want: []string{"policy.failbak: unknown key", "did you mean policy.failback?", "keys of policy: canary,"}, notWant: []string{"known keys: cluster"}},
		{name: "misspelled-policy-env-is-warned", args: []string{"--config", cfg, "analyze"}, env: map[string]string{"DROVER_POLICY_FAILBAK": "immediate"}, code: 0,
			want: []string{"warning: DROVER_POLICY_FAILBAK names no policy key and is ignored; did you mean DROVER_POLICY_FAILBACK?"}},
		{name: "known-policy-env-is-not-warned", args: []string{"--config", cfg, "analyze"}, env: map[string]string{"DROVER_POLICY_FAILBACK": "immediate"}, code: 0, notWant: []string{"warning: DROVER_POLICY"}},
		{name: "sim-serve-cluster-and-cluster-file-disagree", args: []string{"sim", "serve", "--cluster", "a.yaml", "--cluster-file", "b.yaml"}, code: 2,
			want: []string{"--cluster a.yaml and --cluster-file b.yaml name different files"}},
		{name: "plan-plurals", args: []string{"--config", cfg, "plan"}, want: []string{"Plan for cluster t: 3 nodes, "}, notWant: []string{" 1 nodes", " 1 migrations", " 1 VMs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			out, errOut, code := runCLI(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			all := out + errOut
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(all, w) {
					t.Errorf("output has %q:\n%s", w, all)
				}
			}
		})
	}
}

// TestWords_RunsListHasClusterColumn: local `runs list` names each run's cluster,
// as the remote one does.
func TestWords_RunsListHasClusterColumn(t *testing.T) {
	cfg := testSetup(t, smallCluster, "")
	if _, errOut, code := runCLI(t, "--config", cfg, "apply", "--yes"); code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, errOut)
	}
	out, errOut, code := runCLI(t, "--config", cfg, "runs", "list")
	if code != 0 {
		t.Fatalf("runs list: exit %d\n%s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || strings.Fields(lines[0])[1] != "CLUSTER" || strings.Fields(lines[1])[1] != "t" {
		t.Errorf("runs list has no CLUSTER column with the run's cluster:\n%s", out)
	}
}

// TestWords_PromptShowsETAAndPolicy: the [y/N] question of apply says how long the
// plan expects the run to take and under which policy.
func TestWords_PromptShowsETAAndPolicy(t *testing.T) {
	cfg := testSetup(t, smallCluster, "  failback: immediate\n")
	var out, errOut bytes.Buffer
	f := &Factory{IO: IOStreams{In: strings.NewReader("n\n"), Out: &out, ErrOut: &errOut, IsTerminal: true}, Version: "test"}
	root := NewCmdRoot(f)
	root.SetArgs([]string{"--config", cfg, "apply"})
	err := root.ExecuteContext(context.Background())
	if ExitCode(err) != ExitFailed {
		t.Fatalf("exit %d (%v), want 1 (not started)", ExitCode(err), err)
	}
	q := errOut.String()
	for _, w := range []string{"Policy of cluster t: ", "failback=immediate", "Plan: 3 nodes, ", "ETA ", "of cluster time", "Start the run? [y/N]"} {
		if !strings.Contains(q, w) {
			t.Errorf("the question lacks %q:\n%s", w, q)
		}
	}
}

// TestWords_ReportSaysThingsOnce: a stopped run's report says "stopped by the
// operator" once, counts in the right number.
func TestWords_ReportSaysThingsOnce(t *testing.T) {
	rep := report.Report{ID: "r1", Cluster: "c", State: "stopped", Error: "stopped by the operator",
		Nodes: []report.Node{{Name: "n1", State: "done"}}}
	rep.Summary.Nodes, rep.Summary.NodesDone, rep.Summary.Migrations, rep.Summary.UpdatesInstalled = 1, 1, 1, 1
	var b bytes.Buffer
	printReport(&b, rep)
	out := b.String()
	for _, w := range []string{"Run r1 on cluster c: stopped by the operator\n", "1/1 node done", "1 update installed", "1 migration, 0 VMs moved more than once", "0 (0 failed attempts)", "CLUSTER TIME"} {
		if !strings.Contains(out, w) {
			t.Errorf("report lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "stopped (stopped") || strings.Contains(out, "stopped stopped") {
		t.Errorf("report says stopped twice:\n%s", out)
	}
	for _, tt := range []struct {
		n    int
		want string
	}{{1, "once"}, {2, "twice"}, {3, "3 times"}} {
		if got := report.Times(tt.n); got != tt.want {
			t.Errorf("Times(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

// TestApply_NothingToDoRecordsNoRun: apply on a cluster with nothing to patch says
// so, exits 0 and records no run (issue 16, truthful answers).
func TestApply_NothingToDoRecordsNoRun(t *testing.T) {
	cfg := testSetup(t, strings.ReplaceAll(smallCluster, `, updates: [{name: kernel, version: "2"}]`, ""), "")
	out, errOut, code := runCLI(t, "--config", cfg, "apply", "--yes")
	if code != 0 || !strings.Contains(out, "Nothing to do on cluster t") {
		t.Fatalf("apply: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	list, _, _ := runCLI(t, "--config", cfg, "runs", "list", "--json")
	var got []map[string]any
	if err := json.Unmarshal([]byte(list), &got); err != nil || len(got) != 0 {
		t.Errorf("runs after an apply with nothing to do: %s (err %v), want none", list, err)
	}
}

// TestWords_EndedRunsUntouchedNodesAreSkipped: in the report printed for people, a
// node still queued when its run ended (stopped, failed) is skipped, with why; a
// run that goes on keeps it queued.
func TestWords_EndedRunsUntouchedNodesAreSkipped(t *testing.T) {
	for _, tt := range []struct{ state, want string }{
		{"stopped", "n2    skipped"},
		{"stopped", "not started: the run stopped before this node's turn"},
		{"failed", "not started: the run failed before this node's turn"},
		{"running", "n2    queued"},
	} {
		rep := report.Report{ID: "r1", Cluster: "c", State: tt.state, Nodes: []report.Node{{Name: "n1", State: "done"}, {Name: "n2", State: "queued"}}}
		var b bytes.Buffer
		printReport(&b, rep)
		if !strings.Contains(b.String(), tt.want) {
			t.Errorf("%s run: report lacks %q:\n%s", tt.state, tt.want, b.String())
		}
	}
}
