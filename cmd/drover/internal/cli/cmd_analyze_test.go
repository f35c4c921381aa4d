package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/droverhq/drover/drivers/all"
	"github.com/droverhq/drover/orchestrator/readiness"
	"github.com/droverhq/drover/runs"
)

// smallCluster: b and c run one VM each, a two; every node has an update.
const smallCluster = `
nodes:
  - {name: a, memory_mib: 32768, cpus: 16, reboot_seconds: 2, updates: [{name: kernel, version: "2"}]}
  - {name: b, memory_mib: 32768, cpus: 16, reboot_seconds: 2, updates: [{name: kernel, version: "2"}]}
  - {name: c, memory_mib: 32768, cpus: 16, reboot_seconds: 2, updates: [{name: kernel, version: "2"}]}
vms:
  - {name: v1, node: a, memory_mib: 2048, vcpus: 2}
  - {name: v2, node: a, memory_mib: 2048, vcpus: 2}
  - {name: v3, node: b, memory_mib: 2048, vcpus: 2}
  - {name: v4, node: c, memory_mib: 2048, vcpus: 2}
`

// tightCluster: three nodes of 8 GiB with 12 GiB of VMs: with k=1 no node can be out.
const tightCluster = `
nodes:
  - {name: a, memory_mib: 8192, cpus: 8, updates: [{name: k, version: "1"}]}
  - {name: b, memory_mib: 8192, cpus: 8, updates: [{name: k, version: "1"}]}
  - {name: c, memory_mib: 8192, cpus: 8, updates: [{name: k, version: "1"}]}
vms:
  - {name: v1, node: a, memory_mib: 4096, vcpus: 1}
  - {name: v2, node: b, memory_mib: 4096, vcpus: 1}
  - {name: v3, node: c, memory_mib: 4096, vcpus: 1}
`

// testSetup writes a simulated cluster and a config using it (embedded sim, fast
// clock, a state file in the test's folder) and returns the config's path.
func testSetup(t *testing.T, cluster, policy string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cluster.yaml"), []byte(cluster), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := "cluster:\n  name: t\n  driver: sim\n  sim: {cluster_file: cluster.yaml, time_scale: 200}\nstate: state.db\n"
	if policy != "" {
		cfg += "policy:\n" + policy
	}
	path := filepath.Join(dir, "drover.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runCLI runs drover with args and returns its output and exit status.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	f := &Factory{IO: IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, Version: "test"}
	root := NewCmdRoot(f)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err != nil {
		errOut.WriteString("drover: " + err.Error() + "\n")
	}
	return out.String(), errOut.String(), ExitCode(err)
}

func TestAnalyze_Command(t *testing.T) {
	ready := testSetup(t, smallCluster, "")
	tight := testSetup(t, tightCluster, "")
	tests := []struct {
		name   string
		args   []string
		code   int
		out    []string
		checks map[string]readiness.CheckStatus // with --json
	}{
		{name: "ready", args: []string{"--config", ready, "analyze"}, code: 0, out: []string{"PASS    vms_movable", "Cluster t is ready: 13 passed, 0 warnings, 0 failed."}},
		{name: "ready-json", args: []string{"--config", ready, "analyze", "--json"}, code: 0,
			checks: map[string]readiness.CheckStatus{"driver_reachable": "pass", "update_plugin": "pass", "reserve_during_run": "pass"}},
		{name: "reserve-cannot-hold", args: []string{"--config", tight, "analyze", "--reserve-nodes", "1"}, code: 1,
			out: []string{"FAIL    reserve_during_run  N-1 reserve breaks for 3 of 3 nodes", "remedy: add capacity", "Cluster t is NOT ready"}},
		{name: "reserve-cannot-hold-json", args: []string{"--config", tight, "analyze", "--json", "--set", "policy.reserve_nodes=1"}, code: 1,
			checks: map[string]readiness.CheckStatus{"reserve_now": "pass", "reserve_during_run": "fail"}},
		{name: "bad-config", args: []string{"--config", ready, "analyze", "--set", "policy.warn_after=2h", "--set", "policy.stop_after=1h"}, code: 2},
		{name: "unknown-flag", args: []string{"--config", ready, "analyze", "--fast"}, code: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			for _, s := range tt.out {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			if tt.checks != nil {
				var a readiness.Analysis
				if err := json.Unmarshal([]byte(out), &a); err != nil {
					t.Fatalf("--json output: %v\n%s", err, out)
				}
				if a.Ready != (tt.code == 0) || a.Cluster != "t" {
					t.Errorf("ready %v cluster %q, exit %d", a.Ready, a.Cluster, code)
				}
				for name, want := range tt.checks {
					found := false
					for _, c := range a.Checks {
						if c.Name == name {
							found = true
							if c.Status != want || (want == "fail" && c.Remedy == "") {
								t.Errorf("check %s = %+v, want %s (with a remedy when failing)", name, c, want)
							}
						}
					}
					if !found {
						t.Errorf("no check %s in %s", name, out)
					}
				}
			}
		})
	}
}

func TestAnalyze_StateFileHeldByAnotherDrover(t *testing.T) {
	cfg := testSetup(t, smallCluster, "")
	// This test holds the state file as a running drover would.
	st, err := runs.Open(filepath.Join(filepath.Dir(cfg), "state.db"), runs.Options{Owner: runs.Owner{PID: os.Getpid(), Host: "test", Command: "apply"}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out, errOut, code := runCLI(t, "--config", cfg, "analyze")
	if code != 1 || !strings.Contains(out, "FAIL    no_active_run") || !strings.Contains(out, "in use by another drover process") {
		t.Errorf("exit %d, want 1 with no_active_run failing:\n%s\n%s", code, out, errOut)
	}
	// The other checks still ran.
	if !strings.Contains(out, "PASS    vms_movable") {
		t.Errorf("the other checks did not run:\n%s", out)
	}
}
