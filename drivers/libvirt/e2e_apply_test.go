package libvirt_test

// End-to-end tests of the drover binary against the lab (lab/lab.sh), with the config
// a user would use, testdata/libvirt/lab.yaml: its "command" updater patches a host by
// writing a marker file and its reboot_command is `lab.sh reboot-host`, which kills the
// host's libvirtd and every process of the host (its guests die) and starts it again.
//
//	DROVER_LIBVIRT_LAB=1 go test -count=1 -v -run TestLabApply ./drivers/libvirt/
//
// DROVER_BIN names a drover binary to test; without it the test builds ./cmd/drover.
// Each case gets a fresh lab and tears it down, also when it fails.

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/droverhq/drover/runs/report"
)

const (
	// labDir is where lab.sh keeps the running lab (its default LAB_DIR); lab.yaml
	// names the sockets, markers and the pause file below it.
	labDir = "/tmp/drover-lab"
	// labYAML is the config the tests give drover, relative to this package.
	labYAML = "../../testdata/libvirt/lab.yaml"
)

var labVMs = []string{"vm1", "vm2", "vm3", "vm4"}

// droverBinary returns DROVER_BIN or a drover built from this checkout.
func droverBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("DROVER_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(abs); err != nil {
			t.Fatalf("DROVER_BIN: %v", err)
		}
		return abs
	}
	out := filepath.Join(t.TempDir(), "drover")
	if b, err := exec.Command("go", "build", "-o", out, "../../cmd/drover").CombinedOutput(); err != nil {
		t.Fatalf("build drover: %v\n%s", err, b)
	}
	return out
}

// watchBuffer keeps a process's output and wakes up waiters on every write.
type watchBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newWatchBuffer() *watchBuffer { return &watchBuffer{changed: make(chan struct{}, 1)} }

func (w *watchBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf.Write(p)
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (w *watchBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitFor waits until the output matches re and returns the match, or nil when the
// deadline passes or exited is closed first.
func (w *watchBuffer) waitFor(re interface{ FindStringSubmatch(string) []string }, timeout time.Duration, exited <-chan struct{}) []string {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if m := re.FindStringSubmatch(w.String()); m != nil {
			return m
		}
		select {
		case <-w.changed:
		case <-exited:
			return re.FindStringSubmatch(w.String())
		case <-deadline.C:
			return nil
		}
	}
}

// drover runs the binary against the lab with a state file of the test's own.
type drover struct {
	t     *testing.T
	bin   string
	state string
}

func newDrover(t *testing.T, bin string) *drover {
	return &drover{t: t, bin: bin, state: filepath.Join(t.TempDir(), "drover.db")}
}

// proc is a drover process.
type proc struct {
	cmd    *exec.Cmd
	stdout *watchBuffer
	stderr *watchBuffer
	exited chan struct{}
	err    error
}

// start starts drover with args after the global flags; the process is killed when
// the test ends, if it is still running.
func (d *drover) start(args ...string) *proc {
	d.t.Helper()
	full := append([]string{"--config", labYAML, "--state", d.state, "--log-level", "info"}, args...)
	p := &proc{cmd: exec.Command(d.bin, full...), stdout: newWatchBuffer(), stderr: newWatchBuffer(), exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		d.t.Fatalf("start drover: %v", err)
	}
	d.t.Logf("started drover %s (pid %d)", strings.Join(args, " "), p.cmd.Process.Pid)
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	d.t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if d.t.Failed() {
			d.t.Logf("drover %s: stderr:\n%s", strings.Join(args, " "), p.stderr)
		}
	})
	return p
}

// wait waits for the process to exit and returns its exit status.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Fatalf("drover did not finish within %s", timeout)
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee) && ee.ExitCode() >= 0:
		return ee.ExitCode()
	}
	t.Fatalf("drover: %v", p.err)
	return -1
}

// run runs drover to its end and returns its exit status.
func (d *drover) run(args ...string) (*proc, int) {
	d.t.Helper()
	p := d.start(args...)
	code := p.wait(d.t, 5*time.Minute)
	return p, code
}

// report decodes the one line of JSON a --json command printed.
func (p *proc) report(t *testing.T) report.Report {
	t.Helper()
	var rep report.Report
	if err := json.Unmarshal([]byte(p.stdout.String()), &rep); err != nil {
		t.Fatalf("decode report: %v\nstdout:\n%s", err, p.stdout)
	}
	return rep
}

// hostFacts is what identifies one "boot" of a lab host.
type hostFacts struct {
	bootID string // lab.sh boot-id: rewritten by every reboot-host
	pid    int    // the host's libvirtd
}

func readHost(t *testing.T, h string) hostFacts {
	t.Helper()
	boot, err := os.ReadFile(filepath.Join(labDir, h, "boot_id"))
	if err != nil {
		t.Fatal(err)
	}
	pidText, err := os.ReadFile(filepath.Join(labDir, h, "libvirtd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if err != nil {
		t.Fatalf("libvirtd.pid of %s: %v", h, err)
	}
	return hostFacts{bootID: strings.TrimSpace(string(boot)), pid: pid}
}

func readHosts(t *testing.T) map[string]hostFacts {
	out := map[string]hostFacts{}
	for _, h := range labHosts {
		out[h] = readHost(t, h)
	}
	return out
}

// pausedHosts reads the driver's pause file (cluster.libvirt.state_dir of lab.yaml).
func pausedHosts(t *testing.T) map[string]time.Time {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(labDir, "state", "paused.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Paused map[string]time.Time `json:"paused"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("pause file: %v\n%s", err, data)
	}
	return f.Paused
}

// marker returns the modification time of the "patched" marker of lab.yaml's updater.
func marker(h string) (time.Time, bool) {
	fi, err := os.Stat(filepath.Join(labDir, "patched-"+h))
	if err != nil {
		return time.Time{}, false
	}
	return fi.ModTime(), true
}

var hbLineRE = regexp.MustCompile(`HB boot=([0-9a-f-]+) n=([0-9]+)`)

type beat struct {
	boot string
	n    int
}

// consoleBeats reads every heartbeat a guest ever printed: the console log is one file
// across migrations (append='on').
func consoleBeats(t *testing.T, vm string) []beat {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(labDir, "logs", vm+".log"))
	if err != nil {
		t.Fatal(err)
	}
	var out []beat
	for _, m := range hbLineRE.FindAllStringSubmatch(string(data), -1) {
		n, _ := strconv.Atoi(m[2])
		out = append(out, beat{boot: m[1], n: n})
	}
	return out
}

// qemuStarts counts the QEMU processes libvirt started for vm on each host (the first
// boot, then one per incoming migration attempt), from the hosts' QEMU logs, which
// survive reboot-host.
func qemuStarts(t *testing.T, vm string) int {
	t.Helper()
	n := 0
	for _, h := range labHosts {
		data, err := os.ReadFile(filepath.Join(labDir, h, "var/log/libvirt/qemu", vm+".log"))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		n += strings.Count(string(data), ": starting up libvirt version")
	}
	return n
}

// waitGuests waits until every guest has printed a heartbeat and returns the last one.
func waitGuests(t *testing.T, l *lab) map[string]beat {
	t.Helper()
	out := map[string]beat{}
	for _, vm := range labVMs {
		if !poll(guestBootTimeout, func() bool { _, err := l.run("heartbeat", vm); return err == nil }) {
			t.Fatalf("vm %s never printed a heartbeat", vm)
		}
		boot, n := l.heartbeat(vm)
		out[vm] = beat{boot: boot, n: n}
	}
	return out
}

// checkGuestsKeptRunning asserts that every guest ran without interruption since
// before: one boot id in its whole console log, a counter that never restarted or
// skipped, still rising now; and that it is defined on exactly one host, running
// there. It returns where each guest is.
func checkGuestsKeptRunning(t *testing.T, l *lab, before map[string]beat) map[string]string {
	t.Helper()
	where := map[string]string{}
	for _, vm := range labVMs {
		beats := consoleBeats(t, vm)
		for i, b := range beats {
			if b.boot != before[vm].boot {
				t.Errorf("vm %s: heartbeat %d has boot id %s, was %s: the guest was restarted", vm, i, b.boot, before[vm].boot)
				break
			}
			if i > 0 && b.n != beats[i-1].n+1 {
				t.Errorf("vm %s: heartbeat counter went %d -> %d", vm, beats[i-1].n, b.n)
				break
			}
		}
		last := beats[len(beats)-1]
		now := l.waitHeartbeatAbove(vm, before[vm].boot, last.n)
		on := l.definedOn(vm)
		if len(on) != 1 {
			t.Errorf("vm %s is defined on %v, want exactly one host", vm, on)
		}
		for h, st := range on {
			if st != "running" {
				t.Errorf("vm %s is %s on %s", vm, st, h)
			}
			where[vm] = h
		}
		t.Logf("vm %s: boot %s, heartbeat %d -> %d, on %s", vm, before[vm].boot[:8], before[vm].n, now, where[vm])
	}
	return where
}

// checkMigrationChain replays the report's migrations from where the guests were
// before the run: each starts where the guest is at that point. It returns where the
// report says each guest ends and how often each moved.
func checkMigrationChain(t *testing.T, rep report.Report, start map[string]string) (map[string]string, map[string]int) {
	t.Helper()
	at := map[string]string{}
	for vm, h := range start {
		at[vm] = h
	}
	moves := map[string]int{}
	for _, n := range rep.Nodes { // nodes in run order: a guest moves once per drain at most
		for _, m := range n.Migrations {
			if m.From != at[m.VM] {
				t.Errorf("report: %s migrated %s -> %s while it was on %s", m.VM, m.From, m.To, at[m.VM])
			}
			if m.From != n.Name || m.Kind != "drain" {
				t.Errorf("report: node %s lists migration %+v, want a drain from it", n.Name, m)
			}
			if m.TransferredMiB < 1 {
				t.Errorf("report: migration %+v without the transfer libvirt measured", m)
			}
			at[m.VM] = m.To
			moves[m.VM]++
		}
	}
	return at, moves
}

func startLabForApply(t *testing.T) *lab {
	t.Helper()
	if d := os.Getenv("LAB_DIR"); d != "" && d != labDir {
		t.Fatalf("LAB_DIR=%s: testdata/libvirt/lab.yaml expects the lab in %s", d, labDir)
	}
	return startLab(t)
}

func TestLabApply(t *testing.T) {
	if os.Getenv("DROVER_LIBVIRT_LAB") != "1" {
		t.Skip("set DROVER_LIBVIRT_LAB=1 (as root, after lab/lab.sh deps) to run the libvirt lab tests")
	}
	bin := droverBinary(t)

	t.Run("rolling-patch-keeps-guests-running", func(t *testing.T) {
		l := startLabForApply(t)
		waitGuests(t, l)
		// Every host holds guests at its turn: vm3 and vm4 start on hostB and hostC.
		l.must("migrate", "vm3", "hostB")
		l.must("migrate", "vm4", "hostC")
		start := map[string]string{"vm1": "hostA", "vm2": "hostA", "vm3": "hostB", "vm4": "hostC"}
		guests := waitGuests(t, l)
		hosts := readHosts(t)
		startsBefore := map[string]int{}
		for _, vm := range labVMs {
			startsBefore[vm] = qemuStarts(t, vm)
		}
		began := time.Now()

		d := newDrover(t, bin)
		p, code := d.run("apply", "--yes", "--json")
		t.Logf("drover apply: exit %d after %s", code, time.Since(began).Round(10*time.Millisecond))
		if code != 0 {
			t.Fatalf("drover apply: exit %d", code)
		}
		rep := p.report(t)
		if rep.State != "succeeded" || rep.Summary.NodesDone != 3 {
			t.Fatalf("report: state %s, %d nodes done; want succeeded, 3", rep.State, rep.Summary.NodesDone)
		}

		for _, n := range rep.Nodes {
			if n.State != "done" || !n.Rebooted || n.UpdatesInstalled != 1 || n.LeftPaused != "" || len(n.FailedMigrations) > 0 {
				t.Errorf("report: node %+v; want done, 1 update, rebooted, no failed migration", n)
			}
			if len(n.Migrations) == 0 {
				t.Errorf("report: node %s held guests at its turn but lists no migration", n.Name)
			}
		}
		for _, h := range labHosts {
			now := readHost(t, h)
			if now.bootID == hosts[h].bootID || now.pid == hosts[h].pid {
				t.Errorf("host %s: boot id %s -> %s, libvirtd pid %d -> %d; want both new (rebooted)", h, hosts[h].bootID, now.bootID, hosts[h].pid, now.pid)
			}
			patched, ok := marker(h)
			if !ok || patched.Before(began.Add(-time.Second)) {
				t.Errorf("host %s: patch marker %v (exists %v), want one written by this run", h, patched, ok)
			}
			fi, err := os.Stat(filepath.Join(labDir, h, "boot_id"))
			if err != nil {
				t.Fatal(err)
			}
			if !fi.ModTime().After(patched) {
				t.Errorf("host %s: not rebooted after it was patched (boot_id %v, marker %v)", h, fi.ModTime(), patched)
			}
		}
		if p := pausedHosts(t); len(p) > 0 {
			t.Errorf("hosts left paused: %v", p)
		}

		where := checkGuestsKeptRunning(t, l, guests)
		ends, moves := checkMigrationChain(t, rep, start)
		for _, vm := range labVMs {
			if ends[vm] != where[vm] {
				t.Errorf("vm %s: the report puts it on %s, libvirt on %s", vm, ends[vm], where[vm])
			}
			// Every QEMU libvirt started for the guest is a migration the report lists.
			if got := qemuStarts(t, vm) - startsBefore[vm]; got != moves[vm] {
				t.Errorf("vm %s: libvirt started %d QEMUs for it during the run, the report lists %d migrations", vm, got, moves[vm])
			}
		}
		t.Logf("report: %d migrations, %.0f MiB moved, %.1f s", rep.Summary.Migrations, rep.Summary.TransferredMiB, rep.Summary.Seconds)
	})

	t.Run("pinned-guest-fails-its-host-safely", func(t *testing.T) {
		l := startLabForApply(t)
		guests := waitGuests(t, l)
		l.must("pin", "vm4")
		hosts := readHosts(t)
		startsBefore := map[string]int{}
		for _, vm := range labVMs {
			startsBefore[vm] = qemuStarts(t, vm)
		}

		d := newDrover(t, bin)
		p, code := d.run("apply", "--yes", "--json", "--non-migratable", "fail")
		if code != 1 {
			t.Fatalf("drover apply with a pinned guest: exit %d, want 1", code)
		}
		rep := p.report(t)
		if rep.State != "partially_failed" || rep.Summary.NodesFailed != 1 || rep.Summary.NodesDone != 2 {
			t.Fatalf("report: state %s, %d failed, %d done; want partially_failed, 1, 2", rep.State, rep.Summary.NodesFailed, rep.Summary.NodesDone)
		}
		for _, n := range rep.Nodes {
			if n.Name != "hostA" {
				if n.State != "done" || !n.Rebooted {
					t.Errorf("report: node %+v, want done and rebooted", n)
				}
				continue
			}
			if n.State != "failed" || n.Rebooted || n.UpdatesInstalled != 0 || len(n.Migrations) != 0 || n.LeftPaused != "" ||
				!strings.Contains(n.Failure, "vm4") || !strings.Contains(n.Failure, "pinned by lab.sh pin") {
				t.Errorf("report: hostA %+v; want failed naming vm4 and the pin, not patched, rebooted or drained", n)
			}
		}
		if now := readHost(t, "hostA"); now != hosts["hostA"] {
			t.Errorf("hostA: %+v -> %+v, want untouched (not rebooted)", hosts["hostA"], now)
		}
		if _, ok := marker("hostA"); ok {
			t.Error("hostA was patched")
		}
		if p := pausedHosts(t); len(p) > 0 {
			t.Errorf("hosts left paused: %v", p)
		}
		where := checkGuestsKeptRunning(t, l, guests)
		for _, vm := range labVMs {
			if where[vm] != "hostA" || qemuStarts(t, vm) != startsBefore[vm] {
				t.Errorf("vm %s moved (now on %s): nothing on a failing host moves", vm, where[vm])
			}
		}
	})

	t.Run("kill-9-mid-migration-then-resume", func(t *testing.T) {
		l := startLabForApply(t)
		guests := waitGuests(t, l)
		// 16 MiB/s: a guest's ~72 MiB take ~4.5 s, long enough to be killed in flight
		// and found in flight by the resumed run.
		speed := l.must("virsh", "hostA", "migrate-getspeed", "vm1")
		for _, vm := range labVMs {
			l.must("virsh", "hostA", "migrate-setspeed", vm, "16")
		}
		hostA := readHost(t, "hostA")
		startsBefore := map[string]int{}
		for _, vm := range labVMs {
			startsBefore[vm] = qemuStarts(t, vm)
		}

		d := newDrover(t, bin)
		p := d.start("apply", "--yes", "--json")
		m := p.stderr.waitFor(regexp.MustCompile(`migrate (vm[0-9]) hostA -> (host[BC])`), 2*time.Minute, p.exited)
		if m == nil {
			t.Fatal("no migration of hostA's guests started")
		}
		vm, to := m[1], m[2]
		var processed float64
		if !poll(time.Minute, func() bool {
			processed = jobProcessedMiB(l, "hostA", vm)
			return processed >= 8
		}) {
			t.Fatalf("migration of %s never got under way in libvirt (%.1f MiB)", vm, processed)
		}
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.exited
		t.Logf("drover killed with %s -> %s in flight at %.1f MiB", vm, to, processed)
		inFlight := map[string]bool{}
		for _, v := range labVMs {
			if jobProcessedMiB(l, "hostA", v) > 0 {
				inFlight[v] = true
			}
		}
		if !inFlight[vm] {
			t.Logf("%s finished before drover was checked again", vm)
		}
		t.Logf("migrations in libvirt after the kill: %v", inFlight)
		for _, v := range labVMs {
			if !inFlight[v] { // the others need not be slow
				l.must("virsh", "hostA", "migrate-setspeed", v, speed)
			}
		}

		list, code := d.run("runs", "list", "--json")
		var rl []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		}
		if code != 0 || json.Unmarshal([]byte(list.stdout.String()), &rl) != nil || len(rl) != 1 || rl[0].State != "running" {
			t.Fatalf("runs list after the kill: exit %d, %s", code, list.stdout)
		}
		resumed, code := d.run("runs", "resume", rl[0].ID, "--json")
		t.Logf("the resumed run joined %d migration(s) in flight", strings.Count(resumed.stderr.String(), "joining migration in flight"))
		if code != 0 {
			t.Fatalf("drover runs resume: exit %d", code)
		}
		rep := resumed.report(t)
		if rep.State != "succeeded" || rep.Resumes < 1 || rep.Summary.NodesDone != 3 {
			t.Fatalf("report after resume: state %s, resumes %d, %d nodes done", rep.State, rep.Resumes, rep.Summary.NodesDone)
		}
		var a report.Node
		for _, n := range rep.Nodes {
			if n.Name == "hostA" {
				a = n
			}
		}
		if a.State != "done" || !a.Rebooted || len(a.FailedMigrations) > 0 {
			t.Errorf("report: hostA %+v; want done, rebooted, no failed migration", a)
		}
		if now := readHost(t, "hostA"); now.bootID == hostA.bootID || now.pid == hostA.pid {
			t.Errorf("hostA not rebooted: %+v -> %+v", hostA, now)
		}
		if p := pausedHosts(t); len(p) > 0 {
			t.Errorf("hosts left paused: %v", p)
		}
		where := checkGuestsKeptRunning(t, l, guests)
		ends, moves := checkMigrationChain(t, rep, map[string]string{"vm1": "hostA", "vm2": "hostA", "vm3": "hostA", "vm4": "hostA"})
		for _, v := range labVMs {
			if where[v] == "hostA" || ends[v] != where[v] {
				t.Errorf("vm %s: on %s, the report says %s; want drained off hostA", v, where[v], ends[v])
			}
			if moves[v] != 1 {
				t.Errorf("vm %s: the report lists %d migrations, want 1", v, moves[v])
			}
			// A guest migrated twice would have had a second QEMU started for it.
			if got := qemuStarts(t, v) - startsBefore[v]; got != 1 {
				t.Errorf("vm %s: libvirt started %d QEMUs for it, want 1 (migrated exactly once)", v, got)
			}
		}
		if ends[vm] != to {
			t.Errorf("vm %s was killed in flight to %s but ended on %s", vm, to, ends[vm])
		}
	})
}

var jobProcessedRE = regexp.MustCompile(`Data processed:\s+([0-9.]+) (KiB|MiB|GiB)`)

// jobProcessedMiB returns how much an outgoing migration of vm on host has sent, 0
// when vm has no job there.
func jobProcessedMiB(l *lab, host, vm string) float64 {
	out, err := l.run("virsh", host, "domjobinfo", vm)
	if err != nil || !strings.Contains(out, "Outgoing migration") {
		return 0
	}
	m := jobProcessedRE.FindStringSubmatch(out)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	switch m[2] {
	case "KiB":
		v /= 1024
	case "GiB":
		v *= 1024
	}
	return v
}
