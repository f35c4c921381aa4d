package proxmox_test

// End-to-end: the real drover binary patches drover-pvesim's three-node model cluster
// (its own process, API and SSH ports on 127.0.0.1), is killed with SIGKILL during a
// migration, during an apt upgrade job and right after Ceph noout was set, and
// `drover runs resume` finishes the run.
//
//	DROVER_PROXMOX_E2E=1 go test -count=1 -v -run TestE2E ./drivers/proxmox/
//
// DROVER_BIN and DROVER_PVESIM_BIN name binaries to test; without them the test
// builds ./cmd/drover and ./cmd/drover-pvesim.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/droverhq/drover/drivers/proxmox/pvesim"
)

func binary(t *testing.T, env, pkg string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// watch is a process's output that waiters can match against.
type watch struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newWatch() *watch { return &watch{changed: make(chan struct{}, 1)} }

func (w *watch) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf.Write(p)
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (w *watch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func (w *watch) waitFor(re *regexp.Regexp, timeout time.Duration, exited <-chan struct{}) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if re.MatchString(w.String()) {
			return true
		}
		select {
		case <-w.changed:
		case <-exited:
			return re.MatchString(w.String())
		case <-deadline.C:
			return false
		}
	}
}

type proc struct {
	cmd    *exec.Cmd
	out    *watch
	err    *watch
	exited chan struct{}
	werr   error
}

func start(t *testing.T, dir, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), out: newWatch(), err: newWatch(), exited: make(chan struct{})}
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.err
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.werr = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s %s: stderr tail:\n%s", filepath.Base(bin), strings.Join(args, " "), tail(p.err.String(), 4000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Fatalf("process did not finish within %s", timeout)
	}
	var ee *exec.ExitError
	if errors.As(p.werr, &ee) {
		return ee.ExitCode()
	}
	if p.werr != nil {
		t.Fatal(p.werr)
	}
	return 0
}

func (p *proc) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

func state(t *testing.T, control string) pvesim.Snapshot {
	t.Helper()
	res, err := http.Get(control + "/state")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var s pvesim.Snapshot
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestE2E_ApplyKillResume(t *testing.T) {
	if os.Getenv("DROVER_PROXMOX_E2E") != "1" {
		t.Skip("set DROVER_PROXMOX_E2E=1 (make e2e-proxmox) to run drover against drover-pvesim")
	}
	began := time.Now()
	drover := binary(t, "DROVER_BIN", "../../cmd/drover")
	simBin := binary(t, "DROVER_PVESIM_BIN", "../../cmd/drover-pvesim")
	dir := t.TempDir()
	sim := start(t, dir, simBin, nil, "-dir", dir, "-migration-mibs", "384")
	if !sim.out.waitFor(regexp.MustCompile(`3 nodes ready`), 30*time.Second, sim.exited) {
		t.Fatalf("drover-pvesim did not start: %s", sim.err)
	}
	t.Cleanup(func() { _ = sim.cmd.Process.Signal(syscall.SIGTERM) })
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	control := read("control.url")
	secret := read("token_secret")
	env := []string{"DROVER_PVE_TOKEN=" + secret}
	stateDB := filepath.Join(dir, "state.db")
	args := func(a ...string) []string {
		return append([]string{"--config", filepath.Join(dir, "drover.yaml"), "--state", stateDB, "--log-level", "info"}, a...)
	}
	before := state(t, control)

	// Kill 1: while drover's own migrations run.
	p := start(t, dir, drover, env, args("apply", "--yes")...)
	if !p.err.waitFor(regexp.MustCompile(`msg="migration started"`), 3*time.Minute, p.exited) {
		t.Fatalf("no migration started; stderr:\n%s", tail(p.err.String(), 3000))
	}
	time.Sleep(time.Second) // well inside a migration of at least 4 GiB at 384 MiB/s
	inFlight := state(t, control).Tasks
	p.kill9(t)
	t.Logf("kill -9 #1 during migrations (%d tasks running in the model)", inFlight)
	if inFlight == 0 {
		t.Error("no task ran in the model when drover was killed")
	}
	runID := runIDOf(t, dir, drover, env, args)

	// A second drover (its own state file) while the killed run holds a node in
	// maintenance: the run's pause mark in /etc/pve makes it refuse to start.
	held := state(t, control)
	if len(held.Marks) != 1 {
		t.Fatalf("pause marks at kill -9 #1: %v, want the paused node's", held.Marks)
	}
	other := start(t, dir, drover, env, "--config", filepath.Join(dir, "drover.yaml"), "--state", filepath.Join(dir, "other.db"), "--log-level", "info", "apply", "--yes")
	if code := other.wait(t, 2*time.Minute); code == 0 || !strings.Contains(other.err.String()+other.out.String(), "paused by drover run "+runID) {
		t.Fatalf("second drover: exit %d, want a refusal naming run %s; stderr:\n%s", code, runID, tail(other.err.String(), 2000))
	}
	if s := state(t, control); s.Stats.MaintEnables != held.Stats.MaintEnables || s.Stats.MarkClaims != held.Stats.MarkClaims {
		t.Fatalf("the refused drover changed the cluster: %+v", s.Stats)
	}
	t.Logf("a second drover refused: %s", firstLine(other.err.String(), "paused by drover run"))

	// Kill 2: while an apt upgrade job runs on a node (started, not yet finished).
	p = start(t, dir, drover, env, args("runs", "resume", runID)...)
	resume1 := p
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if s := state(t, control); s.Stats.AptJobsStarted > s.Stats.Upgrades {
			break
		}
		select {
		case <-p.exited:
			t.Fatalf("drover ended before an apt job was seen running; stderr:\n%s", tail(p.err.String(), 3000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no apt job seen running; stderr:\n%s", tail(p.err.String(), 3000))
		}
	}
	p.kill9(t)
	if s := state(t, control); s.Stats.AptJobsStarted <= s.Stats.Upgrades {
		t.Log("the apt job finished right at the kill; the resumed run reports it instead of joining it")
	}
	t.Logf("kill -9 #2 during an apt upgrade job")

	// Kill 3: right after noout was set for a reboot.
	p = start(t, dir, drover, env, args("runs", "resume", runID)...)
	resume2 := p
	if !p.err.waitFor(regexp.MustCompile(`msg="ceph noout set"`), 5*time.Minute, p.exited) {
		t.Fatalf("noout never set; stderr:\n%s", tail(p.err.String(), 3000))
	}
	p.kill9(t)
	if !state(t, control).Noout {
		t.Error("noout not set in the model at the third kill")
	}
	t.Logf("kill -9 #3 with Ceph noout set")

	p = start(t, dir, drover, env, args("runs", "resume", runID)...)
	if code := p.wait(t, 10*time.Minute); code != 0 {
		t.Fatalf("runs resume: exit %d\nstdout:\n%s", code, p.out)
	}
	t.Logf("resumed run:\n%s", p.out)
	// HA moves its guests back after each resume by itself: let it finish.
	after := state(t, control)
	for deadline := time.Now().Add(2 * time.Minute); after.Tasks > 0 && time.Now().Before(deadline); after = state(t, control) {
		time.Sleep(200 * time.Millisecond)
	}
	checkEnd(t, before, after)
	if strings.Contains(p.err.String()+p.out.String(), secret) {
		t.Error("the token's secret appears in drover's output")
	}
	// The container without HA cannot move: policy shut it down and started it again.
	show := start(t, dir, drover, env, args("runs", "show", runID, "--json")...)
	if code := show.wait(t, time.Minute); code != 0 {
		t.Fatalf("runs show: exit %d", code)
	}
	var rep struct {
		Nodes []struct {
			Name    string `json:"name"`
			VMsLeft []struct {
				VM        string `json:"vm"`
				Action    string `json:"action"`
				Restarted bool   `json:"restarted"`
			} `json:"vms_left"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(show.out.String()), &rep); err != nil {
		t.Fatalf("runs show: %v", err)
	}
	var left []string
	for _, n := range rep.Nodes {
		for _, l := range n.VMsLeft {
			left = append(left, fmt.Sprintf("%s:%s:%s:%v", n.Name, l.VM, l.Action, l.Restarted))
		}
	}
	if strings.Join(left, ",") != "pve3:201:shutdown:true" {
		t.Errorf("guests left by policy %v, want CT 201 on pve3 shut down and restarted", left)
	}
	joined := strings.Count(resume1.err.String(), `msg="joining migration in flight"`)
	// Each node's upgrade ran once, as a detached job over the sshd's job protocol;
	// the job drover was killed under was joined by the next run, not started again.
	if after.Stats.AptJobsStarted != 3 || after.Stats.Upgrades != 3 {
		t.Errorf("apt jobs started %d, upgrades %d; want 3 and 3 (one per node)", after.Stats.AptJobsStarted, after.Stats.Upgrades)
	}
	aptJoined := strings.Count(resume2.err.String(), `msg="joining the upgrade of this run"`)
	if aptJoined != 1 {
		t.Errorf("the run resumed after kill -9 #2 joined %d apt jobs, want 1", aptJoined)
	}
	// VM 103 has a disk on pve1's local-lvm: it moved with with-local-disks, its
	// 2 GiB copied each time, never to a node without room.
	if after.Stats.DiskMiBMoved < 2048 || after.Stats.DiskMiBMoved%2048 != 0 || after.Stats.NoRoomMigrations != 0 {
		t.Errorf("local disk MiB copied %d (want a multiple of 2048, at least one), refused for lack of room %d", after.Stats.DiskMiBMoved, after.Stats.NoRoomMigrations)
	}
	fmt.Printf("e2e-proxmox: 3 nodes rebooted once each; %d guests on one node each, running; migrations %d (by HA %d, by drover %d; %d in flight at kill -9 #1, %d joined by the resumed run, %d stopped); local disks copied %d MiB (with-local-disks); pause marks %d written, 1 second drover refused, 0 left; noout set %d cleared %d; maintenance enable %d disable %d; apt jobs %d (%d joined after kill -9 #2, lost %d, dpkg repairs %d); %d schema violations; %s\n",
		len(after.Guests), after.Stats.Migrations, after.Stats.HAMigrations, after.Stats.Migrations-after.Stats.HAMigrations, inFlight, joined, after.Stats.CancelledMigration, after.Stats.DiskMiBMoved, after.Stats.MarkClaims,
		after.Stats.NooutSets, after.Stats.NooutUnsets, after.Stats.MaintEnables, after.Stats.MaintDisables,
		after.Stats.AptJobsStarted, aptJoined, after.Stats.AptJobsLost, after.Stats.DpkgRepairs, len(after.Stats.Violations), time.Since(began).Round(time.Second))
}

func runIDOf(t *testing.T, dir, drover string, env []string, args func(...string) []string) string {
	t.Helper()
	p := start(t, dir, drover, env, args("runs", "list", "--json")...)
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("runs list: exit %d", code)
	}
	var rl []struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(p.out.String()), &rl); err != nil || len(rl) != 1 {
		t.Fatalf("runs list: %v %s", err, p.out)
	}
	return rl[0].ID
}

// checkEnd: every guest on exactly one node and running, every node rebooted once,
// patched, out of maintenance, noout cleared, nothing unsafe seen by the model.
func checkEnd(t *testing.T, before, after pvesim.Snapshot) {
	t.Helper()
	if len(after.Guests) != len(before.Guests) {
		t.Errorf("%d guests, had %d", len(after.Guests), len(before.Guests))
	}
	for _, g := range after.Guests {
		if g.Status != "running" || g.Node == "" || g.Lock != "" {
			t.Errorf("guest %d (%s): %s on %q lock %q, want running on one node", g.VMID, g.Name, g.Status, g.Node, g.Lock)
		}
	}
	for _, n := range after.Nodes {
		if n.Reboots != 1 || !n.Online || n.Maintenance || n.LRMMaint || len(n.Pending) > 0 {
			t.Errorf("node %+v: want rebooted once, online, out of maintenance, patched", n)
		}
	}
	if len(after.Marks) > 0 {
		t.Errorf("pause marks left in /etc/pve: %v", after.Marks)
	}
	if after.Noout {
		t.Error("Ceph noout left set")
	}
	if after.Tasks != 0 {
		t.Errorf("%d tasks still running", after.Tasks)
	}
	st := after.Stats
	if len(st.Violations) > 0 || len(st.PlacedOnMaint) > 0 || len(st.RebootedWithGuests) > 0 || len(st.RebootsNoNoout) > 0 {
		t.Errorf("unsafe or invalid: violations %v, placed on maintenance %v, rebooted with guests %v, reboots without noout %v",
			st.Violations, st.PlacedOnMaint, st.RebootedWithGuests, st.RebootsNoNoout)
	}
}

// firstLine returns the first line of s that contains sub ("" when none).
func firstLine(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
