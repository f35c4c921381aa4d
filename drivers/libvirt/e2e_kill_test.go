package libvirt_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// aim is a moment inside a migration at which the test kills drover.
type aim struct {
	name string
	// ready says, from the source's job and the target's copy, that the moment has come.
	ready func(j migState) bool
}

// migState is one look at a migration of a guest from one host to another.
type migState struct {
	processedMiB, remainingMiB float64
	job                        bool   // an outgoing migration job on the source
	onSource                   bool   // the source still has the domain
	target                     string // the target's copy: "" (none), "paused", "running", ...
}

// phase is the part of a migration a look falls in.
func (s migState) phase() string {
	switch {
	case !s.onSource:
		return "finished"
	case s.target == "running" || s.job && s.processedMiB > 20 && s.remainingMiB < 6:
		return "switch-over"
	case s.job && s.processedMiB >= 35:
		return "late-precopy"
	case s.job && s.processedMiB > 0:
		return "early-precopy"
	}
	return "setup"
}

func (s migState) String() string {
	switch {
	case !s.onSource && s.target == "running":
		return "finished"
	case s.job:
		return fmt.Sprintf("precopy %.0f MiB sent, %.0f left, target %s", s.processedMiB, s.remainingMiB, orNone(s.target))
	case s.onSource && s.target == "running":
		return "target running, source not gone"
	}
	return fmt.Sprintf("no job yet, target %s", orNone(s.target))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

var (
	jobRemainingRE = regexp.MustCompile(`Data remaining:\s+([0-9.]+) (B|KiB|MiB|GiB)`)
	domstateRE     = regexp.MustCompile(`^(\S+)`)
)

func mib(v float64, unit string) float64 {
	switch unit {
	case "B":
		return v / (1 << 20)
	case "KiB":
		return v / 1024
	case "GiB":
		return v * 1024
	}
	return v
}

// look reads where a migration of vm from src to dst is.
func look(l *lab, vm, src, dst string) migState {
	var s migState
	if out, err := l.run("virsh", src, "domjobinfo", vm); err == nil {
		s.onSource = true
		if strings.Contains(out, "Outgoing migration") {
			s.job = true
			if m := jobProcessedRE.FindStringSubmatch(out); m != nil {
				fmt.Sscan(m[1], &s.processedMiB)
				s.processedMiB = mib(s.processedMiB, m[2])
			}
			if m := jobRemainingRE.FindStringSubmatch(out); m != nil {
				fmt.Sscan(m[1], &s.remainingMiB)
				s.remainingMiB = mib(s.remainingMiB, m[2])
			}
		}
	}
	if out, err := l.run("virsh", dst, "domstate", vm); err == nil {
		if m := domstateRE.FindStringSubmatch(strings.TrimSpace(out)); m != nil {
			s.target = m[1]
		}
	}
	return s
}

// The moments, in the order the kills go through them: as soon as drover says it
// migrates (libvirt may not have the job yet), as soon as the target has its
// paused copy, a few MiB into pre-copy, half way, near the end (the switch-over and
// the finish phase, when the guest exists on both hosts and may already run on the
// target while the job still runs on the source).
var aims = []aim{
	{name: "migrate-issued", ready: func(migState) bool { return true }},
	{name: "target-copy-exists", ready: func(s migState) bool { return s.target != "" }},
	{name: "precopy-4MiB", ready: func(s migState) bool { return s.processedMiB >= 4 }},
	{name: "precopy-half", ready: func(s migState) bool { return s.processedMiB >= 35 }},
	{name: "switch-over", ready: func(s migState) bool {
		return s.job && s.processedMiB > 20 && s.remainingMiB < 6 || s.target == "running"
	}},
}

var migrateLineRE = regexp.MustCompile(`migrate (vm[0-9]) (host[ABC]) -> (host[ABC])`)

// slowGuests keeps every guest's migrations at 8 MiB/s (about 10 s for a lab guest)
// wherever it runs, until stop is closed: a guest that arrived on a host gets a
// new QEMU with the default (unlimited) speed.
func slowGuests(l *lab, stop <-chan struct{}) {
	for {
		for _, vm := range labVMs {
			for h, st := range l.definedOn(vm) {
				if st == "running" {
					_, _ = l.run("virsh", h, "migrate-setspeed", vm, "8")
				}
			}
		}
		select {
		case <-stop:
			return
		case <-time.After(time.Second):
		}
	}
}

// TestLabKillMidMigration kill -9s drover again and again, each time at another
// moment inside a live migration (from "drover said it migrates" to the finish
// phase, when the guest exists on both hosts), and resumes the run each time. The
// run must end with every guest on exactly one host, running, never restarted,
// every host patched and rebooted, none left paused.
func TestLabKillMidMigration(t *testing.T) {
	if os.Getenv("DROVER_LIBVIRT_LAB") != "1" {
		t.Skip("set DROVER_LIBVIRT_LAB=1 (as root, after lab/lab.sh deps) to run the libvirt lab tests")
	}
	bin := droverBinary(t)
	l := startLabForApply(t)
	// Every host holds guests at its turn, so that every drain migrates.
	l.must("migrate", "vm3", "hostB")
	l.must("migrate", "vm4", "hostC")
	guests := waitGuests(t, l)
	hosts := readHosts(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { slowGuests(l, stop) })
	defer func() { close(stop); wg.Wait() }()

	const maxKills = 10
	d := newDrover(t, bin)
	args := []string{"apply", "--yes", "--json"}
	hit := map[string]int{}
	phases := map[string]int{}
	var (
		last  *proc
		runID string
		kills int
	)
	began := time.Now()
	for {
		p := d.start(args...)
		last = p
		if kills >= maxKills {
			break
		}
		// The first migration this process works on that libvirt has not finished
		// yet (a resumed run names the ones it joins, and the finished ones it
		// finds, first).
		var vm, from, to string
		var at migState
		a := aims[kills%len(aims)]
		for n := 0; vm == ""; n++ {
			m := p.stderr.waitFor(nthMatch(migrateLineRE, n), 3*time.Minute, p.exited)
			if m == nil {
				break // the run ended (or drover exited) without another migration
			}
			if at = look(l, m[1], m[2], m[3]); at.onSource {
				vm, from, to = m[1], m[2], m[3]
			}
		}
		if vm == "" {
			break
		}
		poll(time.Minute, func() bool {
			at = look(l, vm, from, to)
			return a.ready(at) || !at.onSource
		})
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			break // already gone: the run ended
		}
		<-p.exited
		kills++
		after := look(l, vm, from, to)
		hit[a.name]++
		phases[at.phase()]++
		t.Logf("kill %d aimed at %s: %s %s -> %s, before the kill: %s; after: %s", kills, a.name, vm, from, to, at, after)
		if runID == "" {
			list, code := d.run("runs", "list", "--json")
			var rl []struct {
				ID    string `json:"id"`
				State string `json:"state"`
			}
			if code != 0 || json.Unmarshal([]byte(list.stdout.String()), &rl) != nil || len(rl) != 1 {
				t.Fatalf("runs list after the kill: exit %d, %s", code, list.stdout)
			}
			runID = rl[0].ID
			args = []string{"runs", "resume", runID, "--json"}
		}
	}
	code := last.wait(t, 5*time.Minute)
	t.Logf("%d kills in %s; the last drover exited %d after joining %d migration(s) in flight", kills, time.Since(began).Round(time.Second), code,
		strings.Count(last.stderr.String(), "joining migration in flight"))
	t.Logf("kills by aim %v, by the phase seen just before %v", hit, phases)
	if inside := kills - phases["finished"]; inside < len(aims) {
		t.Errorf("only %d kills landed inside migrations, want at least %d (one per moment)", inside, len(aims))
	}
	for _, a := range aims {
		if hit[a.name] == 0 {
			t.Errorf("no kill aimed at %s", a.name)
		}
	}
	if len(phases)-min(phases["finished"], 1) < 3 {
		t.Errorf("the kills hit %v, want at least 3 different phases of a migration", phases)
	}
	if code != 0 {
		t.Fatalf("the last drover exited %d:\n%s", code, last.stderr)
	}
	rep := last.report(t)
	if rep.State != "succeeded" || rep.Summary.NodesDone != 3 || rep.Resumes < kills {
		t.Fatalf("report: state %s, %d nodes done, %d resumes; want succeeded, 3, %d", rep.State, rep.Summary.NodesDone, rep.Resumes, kills)
	}
	for _, n := range rep.Nodes {
		if n.State != "done" || !n.Rebooted || n.LeftPaused != "" {
			t.Errorf("report: node %+v; want done, rebooted, not left paused", n)
		}
	}
	for _, h := range labHosts {
		if now := readHost(t, h); now.bootID == hosts[h].bootID {
			t.Errorf("host %s was not rebooted", h)
		}
	}
	if p := pausedHosts(t); len(p) > 0 {
		t.Errorf("hosts left paused: %v", p)
	}
	// Each guest on exactly one host, running, with the boot id it had before.
	checkGuestsKeptRunning(t, l, guests)
	t.Logf("report: %d migrations, %d resumes, %.1f s", rep.Summary.Migrations, rep.Resumes, rep.Summary.Seconds)
}

// nthMatch matches the output once re has matched n+1 times, with the n+1-th match's
// groups.
type nthRE struct {
	re *regexp.Regexp
	n  int
}

func nthMatch(re *regexp.Regexp, n int) *nthRE { return &nthRE{re: re, n: n} }

func (r *nthRE) FindStringSubmatch(s string) []string {
	all := r.re.FindAllStringSubmatch(s, r.n+1)
	if len(all) <= r.n {
		return nil
	}
	return all[r.n]
}

var incomingRE = regexp.MustCompile(`guest=(vm[0-9])`)

// freezeIncoming stops (SIGSTOP) the first QEMU a host starts for an incoming
// migration, as soon as it exists: its domain stays "paused (starting up)" on the
// target while the job runs on the source. It returns the QEMU's pid and guest.
func freezeIncoming(t *testing.T, timeout time.Duration) (int, string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		out, _ := exec.Command("pgrep", "-f", `qemu-system.*guest=vm[0-9].*-incoming`).Output()
		for _, f := range strings.Fields(string(out)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				continue
			}
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			m := incomingRE.FindStringSubmatch(strings.ReplaceAll(string(cmdline), "\x00", " "))
			if m == nil {
				_ = syscall.Kill(pid, syscall.SIGCONT)
				continue
			}
			t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
			return pid, m[1]
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no incoming migration started")
	return 0, ""
}

// TestLabResumeFindsMigrationStartingUp is the kill -9 of issue 19 (hole 7), made
// to happen every time: drover is killed while the target's copy of a guest is
// still "paused (starting up)" (its QEMU held stopped) and the job runs on the
// source. The resumed run must take that for a migration in flight (join it), not
// for one that is over: the guest still runs on the source.
func TestLabResumeFindsMigrationStartingUp(t *testing.T) {
	if os.Getenv("DROVER_LIBVIRT_LAB") != "1" {
		t.Skip("set DROVER_LIBVIRT_LAB=1 (as root, after lab/lab.sh deps) to run the libvirt lab tests")
	}
	bin := droverBinary(t)
	l := startLabForApply(t)
	guests := waitGuests(t, l)
	d := newDrover(t, bin)
	p := d.start("apply", "--yes", "--json")
	pid, vm := freezeIncoming(t, 3*time.Minute)
	m := p.stderr.waitFor(regexp.MustCompile(`migrate `+vm+` (host[ABC]) -> (host[ABC])`), time.Minute, p.exited)
	if m == nil {
		t.Fatalf("drover did not say it migrates %s", vm)
	}
	from, to := m[1], m[2]
	if st := strings.TrimSpace(l.must("virsh", to, "domstate", "--reason", vm)); st != "paused (starting up)" {
		t.Fatalf("%s on %s is %q, want paused (starting up)", vm, to, st)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	t.Logf("drover killed with %s %s -> %s starting up on the target (QEMU %d stopped)", vm, from, to, pid)

	list, code := d.run("runs", "list", "--json")
	var rl []struct {
		ID string `json:"id"`
	}
	if code != 0 || json.Unmarshal([]byte(list.stdout.String()), &rl) != nil || len(rl) != 1 {
		t.Fatalf("runs list after the kill: exit %d, %s", code, list.stdout)
	}
	resumed := d.start("runs", "resume", rl[0].ID, "--json")
	// Let the resumed run decide about the migration, then let the migration go on.
	decided := resumed.stderr.waitFor(regexp.MustCompile(`joining migration in flight[^\n]*vm=`+vm+`|migrated `+vm+` `), time.Minute, resumed.exited)
	t.Logf("the resumed run decided: %q", decided)
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	code = resumed.wait(t, 5*time.Minute)
	if regexp.MustCompile(`migrated ` + vm + ` \S+ -> \S+ in 0\.0s`).MatchString(resumed.stderr.String()) {
		t.Errorf("the resumed run took the migration of %s starting up for a finished one:\n%s", vm, resumed.stderr)
	}
	if code != 0 {
		t.Fatalf("drover runs resume: exit %d", code)
	}
	rep := resumed.report(t)
	if rep.State != "succeeded" || rep.Summary.NodesDone != 3 {
		t.Fatalf("report after resume: state %s, %d nodes done", rep.State, rep.Summary.NodesDone)
	}
	if p := pausedHosts(t); len(p) > 0 {
		t.Errorf("hosts left paused: %v", p)
	}
	checkGuestsKeptRunning(t, l, guests)
}
