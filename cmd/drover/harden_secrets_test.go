package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/cmd/internal/chaos"
)

// TestHealthGateURLSecretStaysOut: a health gate URL with its key in the query
// (?api_key=...) fails; the key reaches the health endpoint (the run uses it) but
// no output: run errors, logs at debug, reports in every format, analyze (local and
// through the viewer API), the daemon's webhook notifications, and not the bytes of
// the state files either (issue 10, item 10).
func TestHealthGateURLSecretStaysOut(t *testing.T) {
	bin := droverBinary(t)
	root := moduleRoot(t)
	procs := &chaos.Procs{}
	t.Cleanup(procs.KillAll)
	key := "gatekey-" + randomHex(t, 12)
	token := "tok-" + randomHex(t, 12)
	var withKey atomic.Int32
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("api_key") == key {
			withKey.Add(1)
		}
		http.Error(w, "unhealthy", http.StatusServiceUnavailable)
	}))
	t.Cleanup(gate.Close)
	hooks := startHookReceivers(t)
	dir := t.TempDir()
	sum := sha256.Sum256([]byte(token))
	cfg := fmt.Sprintf(`state: %%s
log: {level: debug}
cluster: {name: g, driver: sim, sim: {cluster_file: %s, time_scale: 200}}
policy:
  health_gate: {url: "%s/health?api_key=%s&region=eu", retries: 0, timeout: 2s, interval: 1s}
server:
  listen: 127.0.0.1:0
  tokens: [{name: ci, role: operator, sha256: %s}]
webhooks:
  - {url: "%s/hook", retries: 0, events: [run_started, run_finished, node_failed]}
`, filepath.Join(root, "testdata", "clusters", "demo.yaml"), gate.URL, key, hex.EncodeToString(sum[:]), hooks.refusing)
	writeFile(t, filepath.Join(dir, "drover.yaml"), fmt.Sprintf(cfg, "state.db"))
	writeFile(t, filepath.Join(dir, "serve.yaml"), fmt.Sprintf(cfg, "serve.db"))

	var outputs []string
	run := func(env []string, args ...string) (int, string) {
		t.Helper()
		code, stdout, stderr := runDroverOut(t, bin, dir, env, args...)
		outputs = append(outputs, fmt.Sprintf("drover %v\n%s\n%s", args, stdout, stderr))
		return code, stdout + stderr
	}
	code, out := run(nil, "--config", "drover.yaml", "apply", "--yes", "--json")
	if code != 1 || !strings.Contains(out, "api_key=xxxxx") {
		t.Fatalf("apply: exit %d, want 1 with the gate failing on the masked URL\n%s", code, out)
	}
	run(nil, "--config", "drover.yaml", "analyze", "--json")
	run(nil, "--config", "drover.yaml", "runs", "list")
	run(nil, "--config", "drover.yaml", "runs", "show", "last")
	for _, f := range []string{"html", "md", "csv", "json"} {
		run(nil, "--config", "drover.yaml", "runs", "report", "last", "--format", f)
	}
	if withKey.Load() == 0 {
		t.Fatal("the gate was never called with its key: the run must use the real URL")
	}
	daemonLog := filepath.Join(dir, "serve.log")
	url := startServe(t, procs, bin, dir, daemonLog)
	env := []string{"DROVER_TOKEN=" + token}
	run(env, "--server", url, "analyze", "--json")
	run(env, "--server", url, "apply", "--yes", "--json")
	run(env, "--server", url, "runs", "report", "last", "--format", "md")
	waitFor(t, "the run_finished notification", 30*time.Second, func() bool { return strings.Contains(hooks.bodies(), "run_finished") })
	procs.KillAll()
	outputs = append(outputs, "webhooks\n"+hooks.bodies(), "daemon log\n"+readFile(daemonLog))
	for _, o := range outputs {
		if strings.Contains(o, key) {
			t.Errorf("the gate's key shows in %s", strings.SplitN(o, "\n", 2)[0])
		}
	}
	for _, name := range []string{"state.db", "serve.db"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(key)) {
			t.Errorf("the gate's key is stored in %s", name)
		}
	}
}
