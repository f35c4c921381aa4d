package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/drivers/sim"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
)

// interruptedRun stores a run of cluster t started with policy p and left as a
// crash leaves it (running, its owner gone), and returns its ID.
func interruptedRun(t *testing.T, dir string, p orchestrator.Policy) string {
	t.Helper()
	c, err := sim.ParseCluster([]byte(smallCluster))
	if err != nil {
		t.Fatal(err)
	}
	drv, err := sim.NewEmbedded(context.Background(), sim.EmbeddedOptions{Cluster: c, TimeScale: 500})
	if err != nil {
		t.Fatal(err)
	}
	defer drv.Close()
	st, err := runs.Open(filepath.Join(dir, "state.db"), runs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	host, _ := os.Hostname()
	gone := runs.Owner{PID: 1 << 30, Host: host, Command: "apply", Since: time.Now()}
	eng, err := orchestrator.New(orchestrator.Config{Cluster: "t", Driver: drv, Updater: drv, Store: st, Owner: gone, HealthGateURL: p.HealthGate.URL})
	if err != nil {
		t.Fatal(err)
	}
	prep, err := eng.Prepare(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	id, err := eng.Start(context.Background(), prep)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestResume_RefusesAStoredPolicyThatIsNotTheConfigs: a run whose stored hook
// commands differ from the config's is not resumed (nor stopped or approved, which
// execute it too); the error names the key, never the command; with
// --accept-stored-policy it resumes (issue 10, item 3).
func TestResume_RefusesAStoredPolicyThatIsNotTheConfigs(t *testing.T) {
	cfg := testSetup(t, smallCluster, "  pre_hook: {command: [/bin/true, config-arg]}\n  poll_interval: 100ms\n")
	dir := filepath.Dir(cfg)
	p := orchestrator.DefaultPolicy()
	p.PollInterval = orchestrator.Duration(100 * time.Millisecond)
	p.PreHook.Command = []string{"/bin/true", "planted-by-someone-SECRETARG"}
	id := interruptedRun(t, dir, p)
	for _, args := range [][]string{{"runs", "resume", id}, {"runs", "approve", id}, {"apply", "--yes"}} {
		_, errOut, code := runCLI(t, append([]string{"--config", cfg}, args...)...)
		if code != 1 || !strings.Contains(errOut, "run "+id+" was started with another policy.pre_hook.command than the config has") || !strings.Contains(errOut, "--accept-stored-policy") {
			t.Errorf("%v: exit %d, want 1 and the refusal\n%s", args, code, errOut)
		}
		if strings.Contains(errOut, "SECRETARG") {
			t.Errorf("%v: the stored command shows in the error", args)
		}
	}
	if r := runOf(t, dir, id); r.State != runs.StateRunning || r.Resumes != 0 {
		t.Fatalf("after the refusals the run is %s (resumes %d), want untouched", r.State, r.Resumes)
	}
	out, errOut, code := runCLI(t, "--config", cfg, "--accept-stored-policy", "runs", "resume", id)
	if code != 0 {
		t.Fatalf("resume --accept-stored-policy: exit %d\n%s\n%s", code, out, errOut)
	}
	if r := runOf(t, dir, id); r.State != runs.StateSucceeded {
		t.Errorf("run %s after an accepted resume", r.State)
	}
}

// TestResume_SameStoredPolicyResumes: the rule refuses differences only.
func TestResume_SameStoredPolicyResumes(t *testing.T) {
	cfg := testSetup(t, smallCluster, "  pre_hook: {command: [/bin/true]}\n  health_gate: {url: \"http://127.0.0.1:1/health?api_key=k1\"}\n  poll_interval: 100ms\n")
	dir := filepath.Dir(cfg)
	p := orchestrator.DefaultPolicy()
	p.PollInterval = orchestrator.Duration(100 * time.Millisecond)
	p.PreHook.Command = []string{"/bin/true"}
	p.HealthGate.URL = "http://127.0.0.1:1/health?api_key=k1"
	id := interruptedRun(t, dir, p)
	_, errOut, _ := runCLI(t, "--config", cfg, "runs", "resume", id)
	if strings.Contains(errOut, "was started with another") {
		t.Errorf("same policy refused:\n%s", errOut)
	}
	if r := runOf(t, dir, id); r.Resumes != 1 {
		t.Errorf("run not resumed: %+v", r)
	}
}

func runOf(t *testing.T, dir, id string) runs.Run {
	t.Helper()
	st, err := runs.Open(filepath.Join(dir, "state.db"), runs.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := st.Run(id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
