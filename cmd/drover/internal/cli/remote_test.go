package cli

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/cmd/drover/internal/server"
	"github.com/droverhq/drover/drivers/sim"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/orchestrator/schedule"
	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

const (
	remoteViewer   = "cli-viewer-51f0"
	remoteOperator = "cli-operator-9e3c"
)

// testDaemon serves the daemon's API for a simulated cluster on a loopback socket.
func testDaemon(t *testing.T, cluster string) string {
	t.Helper()
	return testDaemonWith(t, cluster, nil)
}

// testDaemonWith is testDaemon with the cluster's policy changed by setPolicy.
func testDaemonWith(t *testing.T, cluster string, setPolicy func(*orchestrator.Policy)) string {
	t.Helper()
	c, err := sim.ParseCluster([]byte(cluster))
	if err != nil {
		t.Fatal(err)
	}
	drv, err := sim.NewEmbedded(context.Background(), sim.EmbeddedOptions{Cluster: c, TimeScale: 500})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { drv.Close() })
	st, err := runs.Open(filepath.Join(t.TempDir(), "state.db"), runs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var tokens []server.Token
	for name, secret := range map[string]string{"viewer": remoteViewer, "operator": remoteOperator} {
		sum := sha256.Sum256([]byte(secret))
		tk, err := server.NewToken(name, name, hex.EncodeToString(sum[:]))
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, tk)
	}
	p := orchestrator.DefaultPolicy()
	p.PollInterval = orchestrator.Duration(100 * time.Millisecond)
	if setPolicy != nil {
		setPolicy(&p)
	}
	srv, err := server.New(server.Config{
		Store: st, Owner: runs.Self("test", time.Now()), Tokens: tokens, Logger: slog.New(slog.DiscardHandler),
		Clusters: []server.ClusterConfig{{Name: "t", DriverName: "sim", Driver: drv, Updater: drv, Policy: p, Schedule: &schedule.Schedule{}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv.Start(ctx)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		cancel()
		srv.Shutdown()
		ts.Close()
	})
	return ts.URL
}

func TestRemote_ApplyAndRuns(t *testing.T) {
	url := testDaemon(t, smallCluster)
	t.Setenv("DROVER_TOKEN", remoteOperator)

	out, errOut, code := runCLI(t, "apply", "--server", url, "--yes", "--json", "--max-parallel-migrations", "2")
	if code != 0 {
		t.Fatalf("apply --server: exit %d\n%s\n%s", code, out, errOut)
	}
	var rep report.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("apply --json printed no report: %v\n%s", err, out)
	}
	if rep.State != "succeeded" || rep.Summary.NodesDone != 3 || rep.Summary.Migrations == 0 {
		t.Errorf("report = %+v", rep.Summary)
	}
	if !strings.Contains(errOut, "started on the daemon") || !strings.Contains(errOut, "node a: done") {
		t.Errorf("progress (stderr) does not follow the run:\n%s", errOut)
	}

	tests := []struct {
		name string
		args []string
		env  string // DROVER_TOKEN
		code int
		out  []string
		err  []string
	}{
		{name: "list", args: []string{"runs", "list"}, env: remoteViewer, out: []string{rep.ID, "succeeded"}},
		{name: "show", args: []string{"runs", "show", rep.ID[:12]}, env: remoteViewer, out: []string{"Run " + rep.ID + " on cluster t: succeeded", "3/3 nodes done"}},
		{name: "report-md", args: []string{"runs", "report", "last", "--format", "md"}, env: remoteViewer, out: []string{"# Drover run " + rep.ID, "| Node | State |"}},
		{name: "resume-ended-run", args: []string{"runs", "resume", rep.ID}, env: remoteOperator, code: 1, err: []string{"409", "already ended"}},
		{name: "apply-needs-operator", args: []string{"apply", "--yes"}, env: remoteViewer, code: 2, err: []string{"403"}},
		{name: "no-token", args: []string{"runs", "list"}, env: "", code: 2, err: []string{"DROVER_TOKEN"}},
		{name: "wrong-token", args: []string{"runs", "list"}, env: "nope", code: 2, err: []string{"401"}},
		{name: "set-is-refused", args: []string{"runs", "list", "--set", "policy.force=true"}, env: remoteViewer, code: 2, err: []string{"--set"}},
		{name: "unknown-run", args: []string{"runs", "show", "20200101-000000-000000"}, env: remoteViewer, code: 1, err: []string{"404"}},
		{name: "bad-policy-value", args: []string{"apply", "--yes", "--failback", "sometimes"}, env: remoteOperator, code: 2, err: []string{"policy.failback"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("DROVER_TOKEN", tt.env)
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
			if strings.Contains(out+errOut, remoteOperator) || strings.Contains(out+errOut, remoteViewer) {
				t.Error("a token shows in the output")
			}
		})
	}
}

func TestRunsReport_Local(t *testing.T) {
	cfg := testSetup(t, smallCluster, "")
	if out, errOut, code := runCLI(t, "--config", cfg, "apply", "--yes"); code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", code, out, errOut)
	}
	file := filepath.Join(t.TempDir(), "r.csv")
	tests := []struct {
		name  string
		args  []string
		code  int
		check func(t *testing.T, out string)
	}{
		{name: "csv-to-file", args: []string{"runs", "report", "last", "--format", "csv", "-o", file}, check: func(t *testing.T, out string) {
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rows, err := csv.NewReader(f).ReadAll()
			if err != nil || len(rows) < 5 || rows[0][0] != "record" {
				t.Errorf("csv: %v rows %d", err, len(rows))
			}
			if out != "" {
				t.Errorf("stdout not empty with -o: %q", out)
			}
		}},
		{name: "html-default", args: []string{"runs", "report", "last"}, check: func(t *testing.T, out string) {
			if !strings.HasPrefix(out, "<!DOCTYPE html>") || !strings.Contains(out, "Node a:") {
				t.Errorf("html: %.200s", out)
			}
		}},
		{name: "json-is-runs-show-json", args: []string{"runs", "report", "last", "--format", "json"}, check: func(t *testing.T, out string) {
			show, _, _ := runCLI(t, "--config", cfg, "runs", "show", "last", "--json")
			if out != show {
				t.Errorf("runs report --format json differs from runs show --json")
			}
		}},
		{name: "unknown-format", args: []string{"runs", "report", "last", "--format", "pdf"}, code: 2},
		{name: "unknown-run", args: []string{"runs", "report", "20200101"}, code: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, append([]string{"--config", cfg}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tt.code, out, errOut)
			}
			if tt.check != nil {
				tt.check(t, out)
			}
		})
	}
}
