package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/cmd/drover/internal/server"
	"github.com/droverhq/drover/cmd/internal/chaos"
	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

const (
	e2eViewer   = "e2e-viewer-3c9d1b"
	e2eOperator = "e2e-operator-8f2a4e"
)

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

var apiLine = regexp.MustCompile(`^drover serve: API on (http://\S+) `)

// daemon is one `drover serve` process.
type daemon struct {
	proc *chaos.Proc
	url  string
}

// startDaemon starts `drover --config cfg serve` in a process group of its own and
// waits for the line that gives its address.
func startDaemon(t *testing.T, procs *chaos.Procs, bin, cfg, logPath string) *daemon {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfg, "serve")
	cmd.Stdout = pw
	p, err := procs.Start("serve", cmd, false, logPath)
	pw.Close()
	if err != nil {
		pr.Close()
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	go func() {
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := apiLine.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
	}()
	select {
	case u := <-urls:
		return &daemon{proc: p, url: u}
	case <-p.Done():
		t.Fatalf("drover serve exited (code %d) before listening; log:\n%s", p.Cmd.ProcessState.ExitCode(), readFile(logPath))
	case <-time.After(30 * time.Second):
		t.Fatalf("drover serve printed no address within 30s; log:\n%s", readFile(logPath))
	}
	return nil
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// get calls the API with a token and decodes the JSON answer into out.
func (d *daemon) get(t *testing.T, path, token string, out any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, d.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil && !strings.HasPrefix(path, "/metrics") {
			t.Fatalf("GET %s: %v in %s", path, err, b)
		}
	}
	return resp.StatusCode
}

// waitFor polls cond every 100 ms until it holds or the deadline passes.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		<-tick.C
	}
}

// TestServe_KillAndResume is the daemon's end-to-end test: `drover serve` with a
// schedule of @every 2s on a simulated cluster (a separate `drover sim serve`, so the
// cluster outlives the daemon as a real one would) starts exactly one run; kill -9
// of the daemon mid-run; a new daemon resumes the run to its end; later due times
// find nothing to do; SIGTERM ends the daemon cleanly; the cluster is checked.
func TestServe_KillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 4 processes and runs ~20 s of wall time")
	}
	bin := droverBinary(t)
	procs := &chaos.Procs{}
	t.Cleanup(procs.KillAll)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	sim, err := chaos.StartSim(ctx, procs, bin, filepath.Join(moduleRoot(t), "testdata", "clusters", "demo.yaml"), 40, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	before, err := sim.Client.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state.db")
	cfg := filepath.Join(dir, "serve.yaml")
	conf := fmt.Sprintf(`state: %s
log: {level: info, format: json}
cluster:
  name: e2e
  driver: sim
  sim: {url: %q}
policy: {failback: none, max_parallel_migrations: 4, max_migrations_per_node: 2}
schedule: {cron: "@every 2s"}
server:
  listen: 127.0.0.1:0
  tokens:
    - {name: e2e-viewer, role: viewer, sha256: %s}
    - {name: e2e-operator, role: operator, sha256: %s}
`, state, sim.URL, sha(e2eViewer), sha(e2eOperator))
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	log1 := filepath.Join(dir, "serve-1.log")
	d := startDaemon(t, procs, bin, cfg, log1)
	t.Logf("daemon 1 on %s", d.url)

	// The contracts over a real socket.
	if code := d.get(t, "/metrics", e2eViewer, nil); code != http.StatusOK {
		t.Errorf("GET /metrics with a viewer token: %d", code)
	}
	req, _ := http.NewRequest(http.MethodPost, d.url+"/api/v1/runs", strings.NewReader("{}"))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /api/v1/runs without a token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// The schedule starts one run; wait until it is mid-way (a node done, not all).
	var runID string
	waitFor(t, "a run with one node done", 30*time.Second, func() bool {
		var list []server.RunSummary
		d.get(t, "/api/v1/runs", e2eViewer, &list)
		if len(list) > 1 {
			t.Fatalf("%d runs started, want exactly one: %+v", len(list), list)
		}
		if len(list) == 0 {
			return false
		}
		runID = list[0].ID
		var rep report.Report
		d.get(t, "/api/v1/runs/"+runID, e2eViewer, &rep)
		return rep.Summary.NodesDone >= 1 && rep.Summary.NodesDone < len(rep.Nodes)
	})
	if err := d.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d.proc.Done()
	t.Logf("killed daemon 1 (kill -9) during run %s", runID)

	// Offline, the state file says the run is interrupted, not ended.
	out, err := exec.Command(bin, "--config", cfg, "runs", "list", "--json").Output()
	if err != nil {
		t.Fatalf("runs list: %v", err)
	}
	var offline []server.RunSummary
	if err := json.Unmarshal(out, &offline); err != nil || len(offline) != 1 || offline[0].State != runs.StateRunning {
		t.Fatalf("after the kill: runs %s (%v), want the one run, running", out, err)
	}

	log2 := filepath.Join(dir, "serve-2.log")
	d = startDaemon(t, procs, bin, cfg, log2)
	t.Logf("daemon 2 on %s", d.url)
	waitFor(t, "the resumed run to end", 60*time.Second, func() bool {
		var rep report.Report
		d.get(t, "/api/v1/runs/"+runID, e2eViewer, &rep)
		return runs.State(rep.State).Terminal()
	})
	// Due times after the run find nothing to patch and start nothing.
	waitFor(t, "a due time with nothing to do", 20*time.Second, func() bool {
		return strings.Contains(readFile(log2), "nothing to do")
	})
	cli := exec.Command(bin, "runs", "list", "--json", "--server", d.url)
	cli.Env = append(os.Environ(), "DROVER_TOKEN="+e2eViewer)
	out, err = cli.Output()
	if err != nil {
		t.Fatalf("runs list --server: %v", err)
	}
	var list []server.RunSummary
	if err := json.Unmarshal(out, &list); err != nil || len(list) != 1 || list[0].ID != runID || list[0].State != runs.StateSucceeded {
		t.Fatalf("runs list --server = %s (%v), want exactly run %s, succeeded", out, err, runID)
	}
	if !strings.Contains(readFile(log2), `"msg":"resuming interrupted run"`) {
		t.Error("daemon 2 did not log the resume")
	}

	// SIGTERM: a clean exit, status 0.
	if err := d.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := d.proc.Wait(30 * time.Second)
	if err != nil || code != 0 {
		t.Errorf("daemon 2 after SIGTERM: exit %d, %v", code, err)
	}

	// The cluster: every node patched once, no VM lost or moved twice, nothing paused.
	st, err := runs.Open(state, runs.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := st.Run(runID)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := st.Nodes(runID)
	if err != nil {
		t.Fatal(err)
	}
	journal, err := st.Journal(runID)
	if err != nil {
		t.Fatal(err)
	}
	rep := report.Build(r, nodes)
	if rep.Resumes < 1 {
		t.Errorf("report counts %d resumes, want at least 1", rep.Resumes)
	}
	after, err := sim.Client.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stats, err := sim.Client.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pending := map[string][]cluster.Update{}
	for _, n := range after.Nodes {
		if pending[n.Name], err = sim.Client.Scan(ctx, n.Name); err != nil {
			t.Fatal(err)
		}
	}
	findings := chaos.Check(chaos.CheckInput{Before: before, After: after, Stats: stats, Report: rep, Pending: pending,
		Failback: "none", OpenIntents: runs.OpenIntents(journal), ExitCode: code})
	for _, f := range findings.All() {
		t.Error(f)
	}
	for _, p := range []string{log1, log2} {
		if text := readFile(p); strings.Contains(text, e2eViewer) || strings.Contains(text, e2eOperator) {
			t.Errorf("%s shows a token", filepath.Base(p))
		}
	}
	if t.Failed() {
		t.Logf("daemon 2 log:\n%s", readFile(log2))
	}
}
