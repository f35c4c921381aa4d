package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/droverhq/drover/cmd/internal/chaos"
	"github.com/droverhq/drover/drivers/sim"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
)

// hardCluster is a small simulated cluster: three nodes, a VM each.
const hardCluster = `nodes:
  - {name: a, memory_mib: 32768, cpus: 16, reboot_seconds: 30, updates: [{name: kernel, version: "2"}]}
  - {name: b, memory_mib: 32768, cpus: 16, reboot_seconds: 30, updates: [{name: kernel, version: "2"}]}
  - {name: c, memory_mib: 32768, cpus: 16, reboot_seconds: 30, updates: [{name: kernel, version: "2"}]}
vms:
  - {name: v1, node: a, memory_mib: 2048, vcpus: 2}
  - {name: v2, node: b, memory_mib: 2048, vcpus: 2}
  - {name: v3, node: c, memory_mib: 2048, vcpus: 2}
`

// hardSetup writes the cluster and a daemon config (embedded sim at scale, a
// state file, tokens, extra lines) in a new folder and returns the folder.
func hardSetup(t *testing.T, scale float64, extra string) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cluster.yaml"), hardCluster)
	writeFile(t, filepath.Join(dir, "serve.yaml"), fmt.Sprintf(`state: %s
log: {level: debug}
cluster: {name: h, driver: sim, sim: {cluster_file: %s, time_scale: %g}}
policy: {poll_interval: 1s}
server:
  listen: 127.0.0.1:0
  tokens:
    - {name: v, role: viewer, sha256: %s}
    - {name: o, role: operator, sha256: %s}
%s`, filepath.Join(dir, "state.db"), filepath.Join(dir, "cluster.yaml"), scale, sha(e2eViewer), sha(e2eOperator), extra))
	return dir
}

// call sends one API request with the operator token and returns status and body.
func (d *daemon) call(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, d.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e2eOperator)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServe_SIGHUPShutsDownCleanly: SIGHUP to a real `drover serve` with a run in
// progress does what SIGTERM does (README, Security): the run is interrupted and
// journaled, the daemon exits 0 and removes its owner side file; started again, it
// resumes the run. The shipped systemd unit restarts it always (issue 10, item 8).
func TestServe_SIGHUPShutsDownCleanly(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join(moduleRoot(t), "testdata", "drover.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(unit, []byte("\nRestart=always\n")) || !bytes.Contains(unit, []byte("\nExecReload=/bin/kill -HUP $MAINPID\n")) {
		t.Error("testdata/drover.service: want Restart=always and ExecReload sending SIGHUP")
	}
	bin := droverBinary(t)
	procs := &chaos.Procs{}
	t.Cleanup(procs.KillAll)
	dir := hardSetup(t, 5, "")
	log1 := filepath.Join(dir, "serve-1.log")
	d := startDaemon(t, procs, bin, filepath.Join(dir, "serve.yaml"), log1)
	code, body := d.call(t, "POST", "/api/v1/runs", "{}")
	if code != http.StatusAccepted {
		t.Fatalf("start a run: %d %s", code, body)
	}
	var act struct{ ID string }
	_ = json.Unmarshal([]byte(body), &act)
	waitFor(t, "the run to move a node", 30*time.Second, func() bool {
		return strings.Contains(readFile(log1), "node_state") || strings.Contains(readFile(log1), "pausing")
	})
	if err := d.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	exit, err := d.proc.Wait(60 * time.Second)
	if err != nil || exit != 0 {
		t.Fatalf("after SIGHUP: exit %d (%v), want 0 after a clean shutdown\n%s", exit, err, readFile(log1))
	}
	if !strings.Contains(readFile(log1), "shutting down") {
		t.Errorf("no clean shutdown in the log:\n%s", readFile(log1))
	}
	if _, err := os.Stat(filepath.Join(dir, "state.db.owner")); !os.IsNotExist(err) {
		t.Errorf("the owner side file is left after SIGHUP (%v)", err)
	}
	st, err := runs.Open(filepath.Join(dir, "state.db"), runs.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.Run(act.ID)
	st.Close()
	if err != nil || r.State.Terminal() {
		t.Fatalf("run after SIGHUP: %+v %v, want it interrupted (resumable)", r, err)
	}
	log2 := filepath.Join(dir, "serve-2.log")
	startDaemon(t, procs, bin, filepath.Join(dir, "serve.yaml"), log2)
	waitFor(t, "the new daemon to resume the run", 30*time.Second, func() bool {
		return strings.Contains(readFile(log2), "resuming interrupted run")
	})
}

// TestServe_StopsStartingWorkWhenItsStateFileIsReplaced: replace the state file
// under a running daemon; an API start and a scheduled start are refused, loudly:
// an ERROR in the log, the metric, and /api/v1/health (issue 10, item 4).
func TestServe_StopsStartingWorkWhenItsStateFileIsReplaced(t *testing.T) {
	bin := droverBinary(t)
	procs := &chaos.Procs{}
	t.Cleanup(procs.KillAll)
	dir := hardSetup(t, 50, "schedule: {cron: \"@every 1s\", paused: true}\n")
	logPath := filepath.Join(dir, "serve.log")
	d := startDaemon(t, procs, bin, filepath.Join(dir, "serve.yaml"), logPath)
	if code, body := d.call(t, "GET", "/api/v1/health", ""); code != http.StatusOK || !strings.Contains(body, `"status":"ok"`) {
		t.Errorf("health before: %d %s", code, body)
	}
	// Another state file takes the path (as `rm` and a second drover would).
	other := filepath.Join(dir, "other.db")
	st, err := runs.Open(other, runs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if err := os.Rename(other, filepath.Join(dir, "state.db")); err != nil {
		t.Fatal(err)
	}
	code, body := d.call(t, "POST", "/api/v1/runs", "{}")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "was replaced by another file") {
		t.Errorf("API start after the replacement: %d %s, want 503 naming the replacement", code, body)
	}
	if code, body := d.call(t, "GET", "/api/v1/health", ""); code != http.StatusServiceUnavailable || !strings.Contains(body, `"ok":false`) {
		t.Errorf("health after: %d %s", code, body)
	}
	if code, body := d.call(t, "POST", "/api/v1/clusters/h/unpause", "{}"); code != http.StatusOK {
		t.Fatalf("unpause: %d %s", code, body)
	}
	waitFor(t, "a refused scheduled start", 20*time.Second, func() bool {
		return strings.Contains(readFile(logPath), "scheduled run skipped") && strings.Contains(readFile(logPath), "was replaced")
	})
	var list []json.RawMessage
	if code := d.get(t, "/api/v1/runs", e2eViewer, &list); code != http.StatusOK || len(list) != 0 {
		t.Errorf("runs after the replacement: %d %d, want none started", code, len(list))
	}
	var metrics string
	req, _ := http.NewRequest("GET", d.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+e2eViewer)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		metrics = string(b)
	}
	if !strings.Contains(metrics, "drover_state_file_replaced 1") {
		t.Error("metric drover_state_file_replaced is not 1")
	}
	if !strings.Contains(readFile(logPath), "level=ERROR msg=\"state file replaced or deleted") {
		t.Errorf("no ERROR in the log:\n%s", readFile(logPath))
	}
}

// storeRuns writes a finished run and then an interrupted one (its owner gone) of
// cluster h into dir/state.db, with the engine, and returns their IDs.
func storeRuns(t *testing.T, dir string) (finished, interrupted string) {
	t.Helper()
	c, err := sim.ParseCluster([]byte(hardCluster))
	if err != nil {
		t.Fatal(err)
	}
	drv, err := sim.NewEmbedded(context.Background(), sim.EmbeddedOptions{Cluster: c, TimeScale: 1000})
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
	p := orchestrator.DefaultPolicy()
	p.PollInterval = orchestrator.Duration(time.Second)
	for i, owner := range []runs.Owner{runs.Self("test", time.Now()), {PID: 1 << 30, Host: host, Command: "apply"}} {
		eng, err := orchestrator.New(orchestrator.Config{Cluster: "h", Driver: drv, Updater: drv, Store: st, Owner: owner})
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
		if i == 0 {
			r, err := eng.Execute(context.Background(), id)
			if err != nil || r.State != runs.StateSucceeded {
				t.Fatalf("first run: %s %v", r.State, err)
			}
			finished = id
		} else {
			interrupted = id
		}
	}
	return finished, interrupted
}

// corruptRecord flips the first byte of every stored copy of run id's record.
func corruptRecord(t *testing.T, path, id string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	needle := []byte(`{"id":"` + id + `"`)
	n := bytes.Count(b, needle)
	if n == 0 {
		t.Fatalf("run %s not found in %s", id, path)
	}
	for i := bytes.Index(b, needle); i >= 0; {
		b[i] ^= 0x01
		j := bytes.Index(b[i+1:], needle)
		if j < 0 {
			break
		}
		i += 1 + j
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestServe_CorruptRecordIsQuarantined: one flipped byte in an old finished run's
// record; the daemon quarantines it (log, metric, health, `drover state check`),
// answers /runs with 200 and resumes the interrupted run (issue 10, item 6).
func TestServe_CorruptRecordIsQuarantined(t *testing.T) {
	bin := droverBinary(t)
	procs := &chaos.Procs{}
	t.Cleanup(procs.KillAll)
	dir := hardSetup(t, 200, "")
	finished, interrupted := storeRuns(t, dir)
	corruptRecord(t, filepath.Join(dir, "state.db"), finished)
	logPath := filepath.Join(dir, "serve.log")
	d := startDaemon(t, procs, bin, filepath.Join(dir, "serve.yaml"), logPath)
	var list []struct{ ID, State string }
	if code := d.get(t, "/api/v1/runs", e2eViewer, &list); code != http.StatusOK || len(list) != 1 || list[0].ID != interrupted {
		t.Fatalf("GET /api/v1/runs: %d %+v, want 200 and the interrupted run only", code, list)
	}
	waitFor(t, "the interrupted run to be resumed to its end", 60*time.Second, func() bool {
		var l []struct{ ID, State string }
		d.get(t, "/api/v1/runs", e2eViewer, &l)
		return len(l) == 1 && l[0].State == "succeeded"
	})
	if code, body := d.call(t, "GET", "/api/v1/health", ""); !strings.Contains(body, finished) {
		t.Errorf("health: %d %s, want the quarantined record", code, body)
	}
	if !strings.Contains(readFile(logPath), "unreadable run record quarantined") {
		t.Errorf("no log of the quarantine:\n%s", readFile(logPath))
	}
	if err := d.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, err := d.proc.Wait(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runDroverOut(t, bin, dir, nil, "--state", "state.db", "state", "check")
	if code != 0 || !strings.Contains(out, "quarantined run records (moved aside, unreadable): \""+finished+"\"") {
		t.Errorf("state check: exit %d\n%s%s", code, out, errOut)
	}
}

// TestCLI_DamagedStateFile: a truncated state file gives a clean "damaged state
// file" error naming the path and `drover state repair`, exit 1, no stack trace;
// state check says so (exit 1), state repair copies out what it can and keeps the
// damaged file; a 0-byte file is refused by serve, not re-initialised (issue 10,
// item 7).
func TestCLI_DamagedStateFile(t *testing.T) {
	bin := droverBinary(t)
	dir := hardSetup(t, 1000, "")
	storeRuns(t, dir)
	path := filepath.Join(dir, "state.db")
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{len(full) / 8, len(full) / 3, len(full)/2 + 4096} {
		t.Run(strconv.Itoa(cut), func(t *testing.T) {
			if err := os.WriteFile(path, full[:cut], 0o600); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"runs", "list"}, {"runs", "show", "last"}, {"apply", "--yes"}} {
				code, out, errOut := runDroverOut(t, bin, dir, nil, append([]string{"--config", "serve.yaml"}, args...)...)
				if code != 1 || !strings.Contains(errOut, "damaged state file "+path) || !strings.Contains(errOut, "drover state repair") || strings.Contains(out+errOut, "goroutine") {
					t.Errorf("%v: exit %d, want 1 and a clean damaged-file error\n%s%s", args, code, out, errOut)
				}
			}
			if code, out, _ := runDroverOut(t, bin, dir, nil, "--config", "serve.yaml", "state", "check"); code != 1 || !strings.Contains(out, "DAMAGED") {
				t.Errorf("state check: exit %d\n%s", code, out)
			}
			if b, _ := os.ReadFile(path); len(b) != cut {
				t.Fatalf("the damaged file was changed (%d bytes, was %d)", len(b), cut)
			}
		})
	}
	// Repair copies out what can be read. Which pages a cut loses depends on where
	// bbolt put each bucket, so cut less and less until a repair recovers a run; at
	// least one of these cuts must.
	recovered := false
	for i, cut := range []int{len(full) - 4096, len(full) - 8192, len(full) * 3 / 4, len(full)/2 + 4096} {
		if err := os.WriteFile(path, full[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runDroverOut(t, bin, dir, nil, "--config", "serve.yaml", "state", "repair")
		if code != 0 || !strings.Contains(out, "repaired") {
			t.Fatalf("state repair of a cut at %d: exit %d\n%s%s", cut, code, out, errOut)
		}
		kept, _ := filepath.Glob(path + ".damaged-*")
		if len(kept) != i+1 {
			t.Errorf("damaged files kept as %v, want %d .damaged-TIMESTAMP", kept, i+1)
		}
		if code, out, _ := runDroverOut(t, bin, dir, nil, "--config", "serve.yaml", "state", "check"); code != 0 {
			t.Errorf("state check after repair: exit %d\n%s", code, out)
		}
		code, out, errOut = runDroverOut(t, bin, dir, nil, "--config", "serve.yaml", "runs", "list", "--json")
		if code != 0 {
			t.Fatalf("runs list after repair: exit %d\n%s%s", code, out, errOut)
		}
		if strings.Contains(out, `"id"`) {
			recovered = true
			break
		}
	}
	if !recovered {
		t.Errorf("no repair of a truncated state file recovered a single run")
	}
	// An empty file is not a new state: serve refuses it and leaves it as it is.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runDroverOut(t, bin, dir, nil, "--config", "serve.yaml", "serve")
	if code != 1 || !strings.Contains(errOut, "damaged state file "+path+": the file is empty") {
		t.Errorf("serve on an empty state file: exit %d\n%s", code, errOut)
	}
	if st, err := os.Stat(path); err != nil || st.Size() != 0 {
		t.Errorf("the empty state file was written (%v)", err)
	}
}

// TestRunsStop_SignalsOnlyADroverHoldingTheFile: `runs stop` signals the process
// an owner side file names only when the state file's lock is held, the side file
// is the user's own, and the process runs drover. A `sleep` named by a stale side
// file, a `sleep` holding the lock (through flock), and a side file of another
// user all survive (issue 10, item 5).
func TestRunsStop_SignalsOnlyADroverHoldingTheFile(t *testing.T) {
	bin := droverBinary(t)
	dir := hardSetup(t, 1000, "")
	storeRuns(t, dir)
	path := filepath.Join(dir, "state.db")
	host, _ := os.Hostname()
	victim := func(t *testing.T, lock bool) *exec.Cmd {
		t.Helper()
		cmd := exec.Command("sleep", "60")
		if lock {
			cmd = exec.Command("flock", "-x", path, "sleep", "60")
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	sideFile := func(t *testing.T, pid int) {
		t.Helper()
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		ticks, _ := strconv.ParseUint(fields[19], 10, 64)
		o, _ := json.Marshal(runs.Owner{PID: pid, Host: host, StartTicks: ticks, Command: "apply", Since: time.Now()})
		writeFile(t, path+".owner", string(o))
	}
	// alive: the process did not end within a second of drover's exit (a signal
	// drover sent has been delivered by then; a dead child shows as a zombie).
	alive := func(cmd *exec.Cmd) bool {
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
			if err != nil {
				return false
			}
			if f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])); len(f) > 0 && (f[0] == "Z" || f[0] == "X") {
				return false
			}
			time.Sleep(50 * time.Millisecond)
		}
		return true
	}
	t.Run("stale-side-file", func(t *testing.T) {
		v := victim(t, false)
		sideFile(t, v.Process.Pid)
		code, out, errOut := runDroverOut(t, bin, dir, nil, "--config", "serve.yaml", "runs", "stop", "last", "--wait", "3s")
		if !alive(v) {
			t.Fatalf("sleep %d was signalled (exit %d)\n%s%s", v.Process.Pid, code, out, errOut)
		}
	})
	t.Run("lock-held-by-another-program", func(t *testing.T) {
		v := victim(t, true)
		waitFor(t, "flock to hold the state file", 10*time.Second, func() bool {
			return exec.Command("flock", "-n", "-s", path, "true").Run() != nil
		})
		sideFile(t, v.Process.Pid)
		code, _, errOut := runDroverOut(t, bin, dir, nil, "--config", "serve.yaml", "runs", "stop", "last", "--wait", "3s")
		if !alive(v) {
			t.Fatalf("flock %d was signalled (exit %d)\n%s", v.Process.Pid, code, errOut)
		}
		if code != 1 || !strings.Contains(errOut, "not drover") {
			t.Errorf("exit %d, want 1 saying the holder is not drover\n%s", code, errOut)
		}
		_ = v.Process.Kill()
		_ = v.Wait()
	})
	t.Run("side-file-of-another-user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root")
		}
		v := victim(t, true)
		waitFor(t, "flock to hold the state file", 10*time.Second, func() bool {
			return exec.Command("flock", "-n", "-s", path, "true").Run() != nil
		})
		sideFile(t, v.Process.Pid)
		if err := os.Chown(path+".owner", 65534, 65534); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := runDroverOut(t, bin, dir, nil, "--config", "serve.yaml", "runs", "stop", "last", "--wait", "3s")
		if !alive(v) || code != 1 || !strings.Contains(errOut, "belongs to") {
			t.Errorf("alive %v, exit %d\n%s", alive(v), code, errOut)
		}
	})
}

// TestCLI_RefusesAStateFileOthersCanWrite: the real binary refuses a state file of
// another user and one in a world-writable folder, naming the path, the owner and
// the fix, and changes nothing (issue 10, item 3).
func TestCLI_RefusesAStateFileOthersCanWrite(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
	bin := droverBinary(t)
	dir := hardSetup(t, 1000, "")
	storeRuns(t, dir)
	path := filepath.Join(dir, "state.db")
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	for _, args := range [][]string{{"runs", "list"}, {"apply", "--yes"}, {"runs", "resume", "last"}} {
		code, _, errOut := runDroverOut(t, bin, dir, nil, append([]string{"--config", "serve.yaml"}, args...)...)
		if code != 2 || !strings.Contains(errOut, "state file "+path+": it belongs to") || !strings.Contains(errOut, "uid 65534") || !strings.Contains(errOut, "chown root") {
			t.Errorf("%v on a state file of another user: exit %d\n%s", args, code, errOut)
		}
	}
	if after := snapshot(t, dir); after != before {
		t.Errorf("the folder changed:\n%s\n%s", before, after)
	}
	if err := os.Chown(path, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runDroverOut(t, bin, dir, nil, "--config", "serve.yaml", "runs", "list")
	if code != 2 || !strings.Contains(errOut, "its folder "+dir+" is writable by everyone") || !strings.Contains(errOut, "chmod go-w") {
		t.Errorf("state file in a world-writable folder: exit %d\n%s", code, errOut)
	}
}

// TestServe_ClusterPolicyIsItsOwn: with two clusters where only the first has
// policy overrides, the daemon's /api/v1/clusters and `plan` (local and through the
// daemon) show the second running the top-level policy (issue 10, item 1).
func TestServe_ClusterPolicyIsItsOwn(t *testing.T) {
	bin := droverBinary(t)
	procs := &chaos.Procs{}
	t.Cleanup(procs.KillAll)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cluster.yaml"), hardCluster)
	cfg := filepath.Join(dir, "serve.yaml")
	writeFile(t, cfg, fmt.Sprintf(`state: %s
policy: {max_parallel_migrations: 3}
clusters:
  - {name: a, driver: sim, sim: {cluster_file: cluster.yaml}, policy: {canary: true, non_migratable: skip, override_reserve: true}}
  - {name: b, driver: sim, sim: {cluster_file: cluster.yaml}}
server:
  listen: 127.0.0.1:0
  tokens: [{name: v, role: viewer, sha256: %s}]
`, filepath.Join(dir, "state.db"), sha(e2eViewer)))
	d := startDaemon(t, procs, bin, cfg, filepath.Join(dir, "serve.log"))
	var list []struct {
		Name   string
		Policy map[string]any
	}
	if code := d.get(t, "/api/v1/clusters", e2eViewer, &list); code != http.StatusOK || len(list) != 2 {
		t.Fatalf("GET /api/v1/clusters: %d %+v", code, list)
	}
	for _, c := range list {
		leaked := c.Policy["canary"] == true || c.Policy["non_migratable"] != "fail" || c.Policy["override_reserve"] == true
		if c.Name == "b" && leaked {
			t.Errorf("cluster b's policy has cluster a's overrides: %v", c.Policy)
		}
		if c.Name == "a" && (c.Policy["canary"] != true || c.Policy["non_migratable"] != "skip") {
			t.Errorf("cluster a's policy lacks its overrides: %v", c.Policy)
		}
	}
	for _, via := range [][]string{{"--config", cfg, "--state", "local.db"}, {"--server", d.url}} {
		code, out, errOut := runDroverOut(t, bin, dir, []string{"DROVER_TOKEN=" + e2eViewer}, append(via, "--cluster-name", "b", "plan")...)
		line := ""
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "Policy of cluster b: ") {
				line = l
			}
		}
		if code != 0 || line == "" || strings.Contains(line, "canary=true") || !strings.Contains(line, "non_migratable=fail") || !strings.Contains(line, "max_parallel_migrations=3") {
			t.Errorf("%v --cluster-name b plan: exit %d, policy line %q\n%s", via, code, line, errOut)
		}
	}
}
