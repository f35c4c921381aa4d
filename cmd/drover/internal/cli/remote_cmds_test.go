package cli

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs/report"
)

// TestRemote_CanaryApply: a canary run through the daemon ends as a local one does:
// exit 0, the report in waiting_approval, the approve command on stderr.
func TestRemote_CanaryApply(t *testing.T) {
	url := testDaemonWith(t, smallCluster, func(p *orchestrator.Policy) { p.Canary = true })
	t.Setenv("DROVER_TOKEN", remoteOperator)
	out, errOut, code := runCLI(t, "apply", "--server", url, "--yes", "--json")
	if code != 0 {
		t.Fatalf("apply --server of a canary run: exit %d, want 0 as locally\n%s\n%s", code, out, errOut)
	}
	var rep report.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("apply --json printed no report: %v\n%s", err, out)
	}
	if rep.State != "waiting_approval" || rep.Summary.NodesDone != 1 {
		t.Errorf("report: %s with %d nodes done, want waiting_approval after 1", rep.State, rep.Summary.NodesDone)
	}
	if want := "drover runs approve " + rep.ID + " --server " + url; !strings.Contains(errOut, want) {
		t.Errorf("stderr lacks %q:\n%s", want, errOut)
	}
	// The approval through the daemon finishes it.
	out, errOut, code = runCLI(t, "runs", "approve", rep.ID, "--server", url, "--json")
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.State != "succeeded" {
		t.Errorf("runs approve --server: exit %d, state %s\n%s\n%s", code, rep.State, out, errOut)
	}
}

// TestRemote_PreviewIsTheDryRun: the daemon's preview is the object of a local
// `apply --dry-run --json` (plus the daemon's predictions).
func TestRemote_PreviewIsTheDryRun(t *testing.T) {
	url := testDaemon(t, smallCluster)
	t.Setenv("DROVER_TOKEN", remoteViewer)
	local, errOut, code := runCLI(t, "--config", testSetup(t, smallCluster, ""), "apply", "--dry-run", "--json")
	if code != 0 {
		t.Fatalf("local dry run: exit %d\n%s", code, errOut)
	}
	remote, errOut, code := runCLI(t, "apply", "--dry-run", "--json", "--server", url)
	if code != 0 {
		t.Fatalf("remote dry run: exit %d\n%s", code, errOut)
	}
	var l, r map[string]json.RawMessage
	if err := json.Unmarshal([]byte(local), &l); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(remote), &r); err != nil {
		t.Fatal(err)
	}
	delete(r, "predictions")
	if lk, rk := slices.Sorted(maps.Keys(l)), slices.Sorted(maps.Keys(r)); !slices.Equal(lk, rk) || !slices.Equal(lk, []string{"cluster", "dry_run", "nodes", "order", "plan"}) {
		t.Fatalf("keys: local %v, daemon %v; want both cluster, dry_run, nodes, order, plan", lk, rk)
	}
	for _, k := range []string{"cluster", "dry_run", "order"} {
		if string(l[k]) != string(r[k]) {
			t.Errorf("%s: local %s, daemon %s", k, l[k], r[k])
		}
	}
	var lp, rp orchestrator.RunPlan
	if json.Unmarshal(l["plan"], &lp) != nil || json.Unmarshal(r["plan"], &rp) != nil || lp.Migrations == 0 || lp.Migrations != rp.Migrations || !slices.Equal(lp.Order, rp.Order) {
		t.Errorf("plans differ: local %d migrations %v, daemon %d migrations %v", lp.Migrations, lp.Order, rp.Migrations, rp.Order)
	}
}

// TestRemote_ServerFlag: commands with a daemon route answer through it (with no
// local config at all); the others refuse --server instead of ignoring it.
func TestRemote_ServerFlag(t *testing.T) {
	url := testDaemon(t, smallCluster)
	t.Setenv("DROVER_TOKEN", remoteViewer)
	t.Setenv("DROVER_CONFIG", "")
	tests := []struct {
		name string
		args []string
		code int
		out  []string
		err  []string
	}{
		{name: "analyze", args: []string{"analyze"}, out: []string{"PASS", "Cluster t is ready"}},
		{name: "analyze-json", args: []string{"analyze", "--json"}, out: []string{`"cluster":"t","ready":true`}},
		{name: "plan", args: []string{"plan"}, out: []string{"Plan for cluster t: 3 nodes, 5 migrations", "Order: b c a"}},
		{name: "plan-json", args: []string{"plan", "--json"}, out: []string{`"order":["b","c","a"]`, `"eta":`}},
		{name: "plan-named-cluster", args: []string{"plan", "--cluster-name", "t"}, out: []string{"Plan for cluster t"}},
		{name: "plan-unknown-cluster", args: []string{"plan", "--cluster-name", "nope"}, code: 1, err: []string{"404", "no cluster"}},
		{name: "plan-policy-flag", args: []string{"plan", "--max-parallel-nodes", "2"}, code: 2, err: []string{"--max-parallel-nodes cannot be used with --server"}},
		{name: "analyze-policy-flag", args: []string{"analyze", "--reserve-nodes", "1"}, code: 2, err: []string{"--reserve-nodes cannot be used with --server"}},
		{name: "inventory", args: []string{"inventory"}, code: 2, err: []string{"drover inventory does not work through a daemon", "--server"}},
		{name: "preview", args: []string{"preview", "--json"}, code: 2, err: []string{"drover preview does not work through a daemon", "--server"}},
		{name: "bench", args: []string{"bench"}, code: 2, err: []string{"--server"}},
		{name: "serve", args: []string{"serve"}, code: 2, err: []string{"--server"}},
		{name: "sim-serve", args: []string{"sim", "serve"}, code: 2, err: []string{"--server"}},
		{name: "version-ignores-it", args: []string{"version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, append(tt.args, "--server", url)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			for _, s := range tt.out {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tt.err {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr lacks %q:\n%s", s, errOut)
				}
			}
		})
	}
}

// TestPlan_MaxParallelNodes: the ETA counts nodes in maintenance at once where the
// reserve allows it, as the run does.
func TestPlan_MaxParallelNodes(t *testing.T) {
	tests := []struct {
		name    string
		cluster string
		shorter bool
	}{
		{name: "room-for-two-out", cluster: smallCluster, shorter: true},
		// Three nodes of 8 GiB with 12 GiB of VMs: one node may be out, not two.
		{name: "no-room-for-two-out", cluster: tightCluster},
	}
	eta := func(t *testing.T, cfg string, n string) orchestrator.RunPlan {
		t.Helper()
		out, errOut, code := runCLI(t, "--config", cfg, "plan", "--json", "--max-parallel-nodes", n)
		if code != 0 {
			t.Fatalf("plan --max-parallel-nodes %s: exit %d\n%s", n, code, errOut)
		}
		var p orchestrator.RunPlan
		if err := json.Unmarshal([]byte(out), &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testSetup(t, tt.cluster, "")
			one, two := eta(t, cfg, "1"), eta(t, cfg, "2")
			if tt.shorter && two.ETA >= one.ETA {
				t.Errorf("ETA with 2 nodes at once %v, want less than with 1 (%v)", two.ETA, one.ETA)
			}
			if !tt.shorter && two.ETA != one.ETA {
				t.Errorf("ETA with 2 nodes at once %v, want %v: the cluster cannot have two out", two.ETA, one.ETA)
			}
		})
	}
}
