package cli

import (
	"context"
	"crypto/sha256"
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

// testDaemonClusters serves a daemon running one simulated cluster per name, all
// in one state file.
func testDaemonClusters(t *testing.T, names ...string) string {
	t.Helper()
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
	var clusters []server.ClusterConfig
	for _, name := range names {
		c, err := sim.ParseCluster([]byte(smallCluster))
		if err != nil {
			t.Fatal(err)
		}
		drv, err := sim.NewEmbedded(context.Background(), sim.EmbeddedOptions{Cluster: c, TimeScale: 500})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { drv.Close() })
		p := orchestrator.DefaultPolicy()
		p.PollInterval = orchestrator.Duration(100 * time.Millisecond)
		clusters = append(clusters, server.ClusterConfig{Name: name, DriverName: "sim", Driver: drv, Updater: drv, Policy: p, Schedule: &schedule.Schedule{}})
	}
	srv, err := server.New(server.Config{Store: st, Owner: runs.Self("test", time.Now()), Tokens: tokens, Logger: slog.New(slog.DiscardHandler), Clusters: clusters})
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

// TestRemote_LastIsTheClustersLastRun: with --cluster-name, "last" is that
// cluster's newest run, not the daemon's; a run of another cluster is refused by
// stop, resume and approve (issue 10, item 2).
func TestRemote_LastIsTheClustersLastRun(t *testing.T) {
	url := testDaemonClusters(t, "lab", "medium")
	t.Setenv("DROVER_TOKEN", remoteOperator)
	ids := map[string]string{}
	for _, cl := range []string{"lab", "medium"} { // medium's run is the newest
		out, errOut, code := runCLI(t, "apply", "--server", url, "--cluster-name", cl, "--yes", "--json")
		if code != 0 {
			t.Fatalf("apply %s: exit %d\n%s\n%s", cl, code, out, errOut)
		}
		var rep report.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Cluster != cl {
			t.Fatalf("apply %s: report %+v, %v", cl, rep, err)
		}
		ids[cl] = rep.ID
	}
	out, errOut, code := runCLI(t, "runs", "show", "last", "--json", "--server", url, "--cluster-name", "lab")
	var rep report.Report
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.ID != ids["lab"] {
		t.Errorf("--cluster-name lab runs show last: exit %d, run %q, want lab's run %s\n%s", code, rep.ID, ids["lab"], errOut)
	}
	out, errOut, code = runCLI(t, "runs", "report", "last", "--format", "json", "--server", url, "--cluster-name", "lab")
	if code != 0 || !strings.Contains(out, ids["lab"]) || strings.Contains(out, ids["medium"]) {
		t.Errorf("--cluster-name lab runs report last: exit %d, want lab's run %s\n%s%s", code, ids["lab"], out, errOut)
	}
	for _, action := range []string{"stop", "resume", "approve"} {
		_, errOut, code := runCLI(t, "runs", action, ids["medium"], "--server", url, "--cluster-name", "lab")
		if code != 2 || !strings.Contains(errOut, "run "+ids["medium"]+" belongs to cluster medium, not lab") {
			t.Errorf("--cluster-name lab runs %s <medium's run>: exit %d, want 2 and a refusal naming both clusters\n%s", action, code, errOut)
		}
	}
	// Without --cluster-name on a daemon of two clusters, "last" is ambiguous.
	_, errOut, code = runCLI(t, "runs", "stop", "last", "--server", url)
	if code != 2 || !strings.Contains(errOut, "the daemon runs 2 clusters: name one with --cluster-name") {
		t.Errorf("runs stop last without --cluster-name: exit %d\n%s", code, errOut)
	}
}

// TestRuns_LastIsTheClustersLastRunLocally: the same rule on the state file (issue
// 10, item 2).
func TestRuns_LastIsTheClustersLastRunLocally(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cluster.yaml"), []byte(smallCluster), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "drover.yaml")
	if err := os.WriteFile(cfg, []byte("state: state.db\nclusters:\n  - {name: lab, driver: sim, sim: {cluster_file: cluster.yaml, time_scale: 500}}\n  - {name: medium, driver: sim, sim: {cluster_file: cluster.yaml, time_scale: 500}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, cl := range []string{"lab", "medium"} {
		out, errOut, code := runCLI(t, "--config", cfg, "--cluster-name", cl, "apply", "--yes", "--json")
		var rep report.Report
		if code != 0 || json.Unmarshal([]byte(out), &rep) != nil {
			t.Fatalf("apply %s: exit %d\n%s", cl, code, errOut)
		}
		ids[cl] = rep.ID
	}
	out, errOut, code := runCLI(t, "--config", cfg, "--cluster-name", "lab", "runs", "show", "last", "--json")
	var rep report.Report
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.ID != ids["lab"] {
		t.Errorf("runs show last: exit %d, run %q, want %s\n%s", code, rep.ID, ids["lab"], errOut)
	}
	for _, action := range []string{"stop", "resume", "approve"} {
		_, errOut, code := runCLI(t, "--config", cfg, "--cluster-name", "lab", "runs", action, ids["medium"])
		if code != 2 || !strings.Contains(errOut, "run "+ids["medium"]+" belongs to cluster medium, not lab: give --cluster-name medium") {
			t.Errorf("runs %s <medium's run>: exit %d, want 2\n%s", action, code, errOut)
		}
	}
}
