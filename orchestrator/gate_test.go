package orchestrator_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	_ "time/tzdata" // failback hours in named zones must not depend on the host

	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

// pauseOrder records the order in which nodes were paused.
type pauseOrder struct {
	mu    sync.Mutex
	nodes []string
}

func (p *pauseOrder) observe(e orchestrator.Event) {
	if e.Kind == orchestrator.EventNodeState && e.State == orchestrator.NodePausing {
		p.mu.Lock()
		p.nodes = append(p.nodes, e.Node)
		p.mu.Unlock()
	}
}

func (p *pauseOrder) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.nodes, " ")
}

// ordered: fewest VMs first gives b c a d; fault domains x (c), y (a, d), z (b);
// label rack r1 (a, b) and r2 (c, d).
const ordered = `
nodes:
  - {name: a, memory_mib: 32768, cpus: 16, reboot_seconds: 60, fault_domain: y, labels: {rack: r1}, updates: [{name: k, version: "2"}]}
  - {name: b, memory_mib: 32768, cpus: 16, reboot_seconds: 60, fault_domain: z, labels: {rack: r1}, updates: [{name: k, version: "2"}]}
  - {name: c, memory_mib: 32768, cpus: 16, reboot_seconds: 60, fault_domain: x, labels: {rack: r2}, updates: [{name: k, version: "2"}]}
  - {name: d, memory_mib: 32768, cpus: 16, reboot_seconds: 60, fault_domain: y, labels: {rack: r2}, updates: [{name: k, version: "2"}]}
vms:
  - {name: v1, node: a, memory_mib: 2048, vcpus: 2}
  - {name: v2, node: a, memory_mib: 2048, vcpus: 2}
  - {name: v3, node: a, memory_mib: 2048, vcpus: 2}
  - {name: v4, node: b, memory_mib: 2048, vcpus: 2}
  - {name: v5, node: c, memory_mib: 2048, vcpus: 2}
  - {name: v6, node: c, memory_mib: 2048, vcpus: 2}
  - {name: v7, node: d, memory_mib: 2048, vcpus: 2}
  - {name: v8, node: d, memory_mib: 2048, vcpus: 2}
  - {name: v9, node: d, memory_mib: 2048, vcpus: 2}
  - {name: v10, node: d, memory_mib: 4096, vcpus: 2}
`

func TestEngine_NodeOrder(t *testing.T) {
	tests := []struct {
		name   string
		policy func(*orchestrator.Policy)
		want   string
	}{
		{name: "fewest-vms", want: "b c a d"},
		{name: "explicit", policy: func(p *orchestrator.Policy) { p.NodeOrder, p.Nodes = "explicit", []string{"d", "a", "c", "b"} }, want: "d a c b"},
		{name: "explicit-subset", policy: func(p *orchestrator.Policy) { p.NodeOrder, p.Nodes = "explicit", []string{"c", "a"} }, want: "c a"},
		{name: "fault-domain", policy: func(p *orchestrator.Policy) { p.NodeOrder = "fault-domain" }, want: "c a d b"},
		{name: "label", policy: func(p *orchestrator.Policy) { p.NodeOrder, p.OrderLabel = "label", "rack" }, want: "b a c d"},
		// Move-once takes the least loaded node, then the node whose VMs fit into the
		// room already patched: d's 10 GiB fit nowhere patched before a and c are.
		{name: "move-once", policy: func(p *orchestrator.Policy) { p.NodeOrder = "move-once" }, want: "b c a d"},
		{name: "fewest-vms-limited-to-nodes", policy: func(p *orchestrator.Policy) { p.Nodes = []string{"a", "d", "c"} }, want: "c a d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, ordered)
				var po pauseOrder
				h.events.check = po.observe
				rep, err := h.apply(context.Background(), testPolicy(tt.policy))
				if err != nil || rep.State != "succeeded" {
					t.Fatalf("run %s: %v %s", rep.State, err, rep.Error)
				}
				if got := po.String(); got != tt.want {
					t.Errorf("nodes paused in order %q, want %q", got, tt.want)
				}
				h.checkSafety(rep)
			})
		})
	}
}

func TestEngine_NoPendingUpdates(t *testing.T) {
	// Node c has nothing to install: it is skipped and not rebooted, unless forced.
	cluster := `
nodes:
  - {name: a, memory_mib: 32768, cpus: 16, reboot_seconds: 60, updates: [{name: k, version: "2"}]}
  - {name: b, memory_mib: 32768, cpus: 16, reboot_seconds: 60, updates: [{name: k, version: "2"}]}
  - {name: c, memory_mib: 32768, cpus: 16, reboot_seconds: 60}
vms:
  - {name: v1, node: c, memory_mib: 2048, vcpus: 2}
`
	for _, force := range []bool{false, true} {
		t.Run(fmt.Sprintf("force-%v", force), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, cluster)
				rep, err := h.apply(context.Background(), testPolicy(func(p *orchestrator.Policy) { p.Force = force }))
				if err != nil || rep.State != "succeeded" {
					t.Fatalf("run %s: %v %s", rep.State, err, rep.Error)
				}
				c := h.node(rep, "c")
				reboots := h.stats().Reboots["c"]
				if force {
					if c.State != orchestrator.NodeDone || reboots != 1 {
						t.Errorf("forced: node c = %s with %d reboots, want done and rebooted once", c.State, reboots)
					}
				} else if c.State != orchestrator.NodeSkipped || !strings.Contains(c.SkipReason, "no pending updates") || reboots != 0 {
					t.Errorf("node c = %s (%s) with %d reboots, want skipped for no pending updates, not rebooted", c.State, c.SkipReason, reboots)
				}
				h.checkSafety(rep)
			})
		})
	}
}

func TestEngine_RequireAllNodesOnline(t *testing.T) {
	down := strings.Replace(small, "vms:\n", "  - {name: d, memory_mib: 32768, cpus: 16, down: true, updates: [{name: kernel, version: \"2\"}]}\nvms:\n", 1)
	tests := []struct {
		name     string
		cluster  string
		require  bool
		startErr string
		wantRun  runs.State
		want     map[string]string
	}{
		{name: "down-node-refuses-the-start", cluster: down, require: true, startErr: "policy.require_all_nodes_online: 1 of 4 nodes are not up (d is down)"},
		// Without the option a majority must still be up: a run that skipped every
		// unreachable node would otherwise report success.
		{name: "no-majority-refuses-the-start-without-it", cluster: strings.Replace(down, "vms:\n",
			"  - {name: e, memory_mib: 32768, cpus: 16, down: true}\n  - {name: f, memory_mib: 32768, cpus: 16, down: true}\n  - {name: g, memory_mib: 32768, cpus: 16, down: true}\nvms:\n", 1),
			startErr: "only 3 of 7 nodes are up (d is down, e is down, f is down, g is down): no majority"},
		{name: "down-node-is-left-out-without-it", cluster: down, wantRun: runs.StateSucceeded,
			want: map[string]string{"a": "done", "b": "done", "c": "done", "d": "skipped"}},
		// b does not come back: with the option the run stops before the next node.
		{name: "node-lost-mid-run-stops-the-run", cluster: withFaults(small, "  - {kind: node_no_return, node: b}\n"), require: true, wantRun: runs.StateStopped,
			want: map[string]string{"b": "failed", "c": "skipped", "a": "skipped"}},
		{name: "node-lost-mid-run-goes-on-without-it", cluster: withFaults(small, "  - {kind: node_no_return, node: b}\n"), wantRun: runs.StatePartiallyFailed,
			want: map[string]string{"b": "failed", "c": "done", "a": "done"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, tt.cluster)
				p := testPolicy(func(p *orchestrator.Policy) {
					p.RequireAllNodesOnline = tt.require
					p.RebootTimeout = orchestrator.Duration(5 * time.Minute)
					p.HealthGate.ReadyTimeout = orchestrator.Duration(2 * time.Minute)
				})
				prep, err := h.eng.Prepare(context.Background(), p)
				if tt.startErr != "" {
					if err == nil || !strings.Contains(err.Error(), tt.startErr) {
						t.Fatalf("Prepare = %v, want %q", err, tt.startErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				id, err := h.eng.Start(context.Background(), prep)
				if err != nil {
					t.Fatal(err)
				}
				run, _ := h.eng.Execute(context.Background(), id)
				rep := h.report(id)
				if run.State != tt.wantRun {
					t.Errorf("run = %s (%s), want %s", run.State, run.Error, tt.wantRun)
				}
				for name, want := range tt.want {
					if n := h.node(rep, name); n.State != want {
						t.Errorf("node %s = %s (%s%s), want %s", name, n.State, n.Failure, n.SkipReason, want)
					}
				}
				if tt.wantRun == runs.StateStopped {
					if !strings.Contains(run.Error, "health gate failed before node c") || !strings.Contains(run.Error, "b is") {
						t.Errorf("run error %q does not say the gate failed on b", run.Error)
					}
					if r := h.stats().Reboots; r["a"]+r["c"] != 0 {
						t.Errorf("nodes after the loss were rebooted: %v", r)
					}
				}
				h.checkSafety(rep)
			})
		})
	}
}

func TestEngine_FailbackPolicy(t *testing.T) {
	// small: v1, v2 prefer a, v3 prefers b, v4 prefers no node. The sim's clock starts
	// at 2030-01-01 00:00 UTC and the run takes minutes, so it runs at 00:xx UTC,
	// 01:xx in Berlin.
	tests := []struct {
		name, hours, tz string
		wantBack        []string // VMs failed back, sorted
		wantHeldNote    bool
	}{
		{name: "any-time", wantBack: []string{"v1", "v2", "v3"}},
		{name: "inside-the-hours", hours: "22:00-06:00", wantBack: []string{"v1", "v2", "v3"}},
		{name: "outside-the-hours", hours: "12:00-13:00", wantHeldNote: true},
		{name: "hours-in-their-zone", hours: "01:00-02:00", tz: "Europe/Berlin", wantBack: []string{"v1", "v2", "v3"}},
		{name: "same-hours-in-utc", hours: "01:00-02:00", wantHeldNote: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, small)
				rep, err := h.apply(context.Background(), testPolicy(func(p *orchestrator.Policy) {
					p.Failback, p.FailbackHours, p.FailbackTZ = orchestrator.FailbackPolicy, tt.hours, tt.tz
				}))
				if err != nil || rep.State != "succeeded" {
					t.Fatalf("run %s: %v %s", rep.State, err, rep.Error)
				}
				var back []string
				for _, n := range rep.Nodes {
					for _, m := range n.Migrations {
						if m.Kind == runs.KindFailback {
							back = append(back, m.VM)
							if pref, _ := h.before.VM(m.VM); m.To != pref.PreferredNode {
								t.Errorf("vm %s failed back to %s, its preferred node is %q", m.VM, m.To, pref.PreferredNode)
							}
						}
					}
				}
				slices.Sort(back)
				if fmt.Sprint(back) != fmt.Sprint(tt.wantBack) {
					t.Errorf("VMs failed back: %v, want %v", back, tt.wantBack)
				}
				held := false
				for _, n := range rep.Nodes {
					for _, note := range n.Notes {
						held = held || strings.Contains(note, "outside failback hours")
					}
				}
				if held != tt.wantHeldNote {
					t.Errorf("report notes a failback held by the hours: %v, want %v", held, tt.wantHeldNote)
				}
				if t.Failed() {
					for _, n := range rep.Nodes {
						t.Logf("node %s: notes %q, phases %+v", n.Name, n.Notes, n.Phases)
					}
				}
				h.checkSafety(rep)
			})
		})
	}
}

// writeScript writes an executable shell script into dir.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestEngine_Hooks(t *testing.T) {
	// The hook logs its phase, node and run ID, prints padded output, and fails
	// with status 3 for the node and phase named in FAIL_ON.
	const body = `echo "$DROVER_PHASE $DROVER_NODE $DROVER_RUN_ID" >> "$(dirname "$0")/hooks.log"
echo "  checked $DROVER_NODE  "
[ "$DROVER_PHASE $DROVER_NODE" = "$FAIL_ON" ] && { echo "refused" >&2; exit 3; }
exit 0`
	tests := []struct {
		name     string
		failOn   string
		wantRun  runs.State
		wantB    string
		wantFail string
		rebootB  int
		pausedB  bool // b was paused at some point
	}{
		{name: "both-pass", wantRun: runs.StateSucceeded, wantB: "done", rebootB: 1, pausedB: true},
		{name: "pre-hook-fails-node-untouched", failOn: "pre b", wantRun: runs.StatePartiallyFailed, wantB: "failed", wantFail: "pre-hook", rebootB: 0},
		{name: "post-hook-fails-node-patched-and-resumed", failOn: "post b", wantRun: runs.StatePartiallyFailed, wantB: "failed", wantFail: "post-hook", rebootB: 1, pausedB: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dir := t.TempDir()
				hook := writeScript(t, dir, "hook.sh", body)
				t.Setenv("FAIL_ON", tt.failOn)
				h := newHarness(t, small)
				var po pauseOrder
				h.events.check = po.observe
				rep, _ := h.apply(context.Background(), testPolicy(func(p *orchestrator.Policy) {
					p.PreHook = orchestrator.Hook{Command: []string{hook}, Timeout: orchestrator.Duration(time.Minute)}
					p.PostHook = orchestrator.Hook{Command: []string{hook}, Timeout: orchestrator.Duration(time.Minute)}
				}))
				if rep.State != string(tt.wantRun) {
					t.Errorf("run = %s (%s), want %s", rep.State, rep.Error, tt.wantRun)
				}
				b := h.node(rep, "b")
				if b.State != tt.wantB || !strings.Contains(b.Failure, tt.wantFail) {
					t.Errorf("node b = %s (%s), want %s naming %q", b.State, b.Failure, tt.wantB, tt.wantFail)
				}
				if r := h.stats().Reboots["b"]; r != tt.rebootB {
					t.Errorf("node b rebooted %d times, want %d", r, tt.rebootB)
				}
				if paused := strings.Contains(" "+po.String()+" ", " b "); paused != tt.pausedB {
					t.Errorf("node b paused = %v, want %v (paused: %s)", paused, tt.pausedB, po.String())
				}
				if b.LeftPaused != "" {
					t.Errorf("node b left paused: %s", b.LeftPaused)
				}
				// Every node's hooks ran in order with the right environment, and their
				// output is recorded, trimmed.
				logged, err := os.ReadFile(filepath.Join(dir, "hooks.log"))
				if err != nil {
					t.Fatal(err)
				}
				var want []string
				for _, n := range []string{"b", "c", "a"} {
					want = append(want, "pre "+n+" "+rep.ID)
					if n == "b" && tt.failOn == "pre b" {
						continue
					}
					want = append(want, "post "+n+" "+rep.ID)
				}
				if got := strings.TrimSpace(string(logged)); got != strings.Join(want, "\n") {
					t.Errorf("hooks ran:\n%s\nwant:\n%s", logged, strings.Join(want, "\n"))
				}
				for _, n := range rep.Nodes {
					for _, hr := range n.Hooks {
						wantOut := "checked " + n.Name // trimmed
						failed := tt.failOn == hr.Name+" "+n.Name
						if failed {
							wantOut += "  \nrefused"
						}
						if hr.Output != wantOut || (hr.ExitCode == 3) != failed || (hr.Error != "") != failed {
							t.Errorf("node %s hook %s = %+v, want output %q, failed %v", n.Name, hr.Name, hr, wantOut, failed)
						}
					}
				}
				h.checkSafety(rep)
			})
		})
	}
}

func TestEngine_Deadlines(t *testing.T) {
	// The small run takes about 6 minutes of cluster time (three reboots of 60 s
	// and the installs); b is maintained first, then c, then a.
	tests := []struct {
		name             string
		warn, stop       time.Duration
		wantRun          runs.State
		wantWarnEvent    bool
		wantStopInfo     bool
		untouched        []string
		skipped          string // the node the stop caught in its drain
		wantWarnNoteNode bool
	}{
		{name: "no-deadlines", wantRun: runs.StateSucceeded},
		{name: "warn-after", warn: 90 * time.Second, wantRun: runs.StateSucceeded, wantWarnEvent: true, wantWarnNoteNode: true},
		{name: "warn-after-not-reached", warn: 10 * time.Hour, wantRun: runs.StateSucceeded},
		{name: "stop-after", stop: 90 * time.Second, wantRun: runs.StateStopped, wantStopInfo: true, untouched: []string{"a"}},
		// One second in, b is draining: the drain is aborted, b resumed unpatched.
		{name: "stop-after-during-a-drain", stop: time.Second, wantRun: runs.StateStopped, wantStopInfo: true, untouched: []string{"c", "a"}, skipped: "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, small)
				var mu sync.Mutex
				var warnings []string
				h.events.check = func(e orchestrator.Event) {
					if e.Kind == orchestrator.EventWarning {
						mu.Lock()
						warnings = append(warnings, e.Message)
						mu.Unlock()
					}
				}
				rep, _ := h.apply(context.Background(), testPolicy(func(p *orchestrator.Policy) {
					p.WarnAfter, p.StopAfter = orchestrator.Duration(tt.warn), orchestrator.Duration(tt.stop)
				}))
				if rep.State != string(tt.wantRun) {
					t.Fatalf("run = %s (%s), want %s", rep.State, rep.Error, tt.wantRun)
				}
				warned := slices.ContainsFunc(warnings, func(m string) bool { return strings.Contains(m, "policy.warn_after") })
				if warned != tt.wantWarnEvent {
					t.Errorf("warn_after event = %v, want %v (warnings %q)", warned, tt.wantWarnEvent, warnings)
				}
				noted := false
				for _, n := range rep.Nodes {
					noted = noted || slices.ContainsFunc(n.Notes, func(s string) bool { return strings.Contains(s, "policy.warn_after") })
				}
				if noted != tt.wantWarnNoteNode {
					t.Errorf("report notes warn_after = %v, want %v", noted, tt.wantWarnNoteNode)
				}
				if tt.skipped != "" {
					if n := h.node(rep, tt.skipped); n.State != orchestrator.NodeSkipped || h.stats().Reboots[n.Name] != 0 {
						t.Errorf("node %s = %s, rebooted %d times; want skipped unpatched", n.Name, n.State, h.stats().Reboots[n.Name])
					}
				}
				if tt.wantStopInfo && !strings.Contains(rep.Error, fmt.Sprintf("policy.stop_after (%s)", tt.stop)) {
					t.Errorf("run error %q does not name stop_after", rep.Error)
				}
				for _, name := range tt.untouched {
					if n := h.node(rep, name); n.State != orchestrator.NodeSkipped || !strings.Contains(n.SkipReason, "not started") || h.stats().Reboots[name] != 0 {
						t.Errorf("node %s = %s, rebooted %d times; want untouched", name, n.State, h.stats().Reboots[name])
					}
				}
				if tt.wantStopInfo {
					// The node in maintenance at the stop was finished (patched) or
					// resumed unpatched, never left half-done.
					for _, n := range rep.Nodes {
						if n.State != orchestrator.NodeQueued && !orchestrator.NodeTerminal(n.State) {
							t.Errorf("node %s left in %s", n.Name, n.State)
						}
						if n.State == orchestrator.NodeSkipped && !strings.Contains(n.SkipReason, "stop_after") {
							t.Errorf("node %s skipped for %q, want the stop_after reason", n.Name, n.SkipReason)
						}
					}
				}
				t.Logf("run took %.0fs of cluster time; nodes %v", runSeconds(rep), nodeStates(rep))
				h.checkSafety(rep)
			})
		})
	}
}

func runSeconds(rep report.Report) float64 {
	s := 0.0
	for _, n := range rep.Nodes {
		s += n.Seconds
	}
	return s
}

func nodeStates(rep report.Report) []string {
	var out []string
	for _, n := range rep.Nodes {
		out = append(out, n.Name+"="+n.State)
	}
	return out
}

// gated is small with a node d that runs nothing and takes no VM (too small): the
// run maintains it first (order d b c a), and depends on it being up afterwards.
var gated = strings.Replace(small, "vms:\n", "  - {name: d, memory_mib: 1024, cpus: 1, reboot_seconds: 60, updates: [{name: kernel, version: \"2\"}]}\nvms:\n", 1)

func TestEngine_HealthGate(t *testing.T) {
	tests := []struct {
		name    string
		check   string // script body; "" = no command
		crashD  bool   // crash node d once b is done
		recover time.Duration
		wantRun runs.State
		want    map[string]string
		wantLog int // gate command runs
		errHas  string
	}{
		{name: "check-passes", check: "exit 0", wantRun: runs.StateSucceeded, want: map[string]string{"d": "done", "b": "done", "c": "done", "a": "done"}, wantLog: 3},
		{name: "check-fails-run-stops", check: "exit 1", wantRun: runs.StateStopped, want: map[string]string{"d": "done", "b": "skipped", "c": "skipped", "a": "skipped"},
			wantLog: 3, errHas: "health gate failed before node b: check failed 3 times"},
		{name: "check-passes-on-retry", check: `n=$(cat "$(dirname "$0")/gate.log" | wc -l); [ "$n" -ne 1 ]`, wantRun: runs.StateSucceeded,
			want: map[string]string{"d": "done", "b": "done", "c": "done", "a": "done"}, wantLog: 4},
		// d, maintained first, dies once b is done: c must not go out with d down.
		{name: "maintained-node-down-run-stops", crashD: true, wantRun: runs.StateStopped, want: map[string]string{"b": "done", "c": "skipped", "a": "skipped"},
			errHas: "health gate failed before node c: nodes not ready within policy.health_gate.ready_timeout (10m0s): d is down"},
		{name: "maintained-node-back-in-time-run-goes-on", crashD: true, recover: 3 * time.Minute, wantRun: runs.StateSucceeded, want: map[string]string{"b": "done", "c": "done", "a": "done"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dir := t.TempDir()
				h := newHarness(t, gated)
				p := testPolicy(func(p *orchestrator.Policy) {
					p.HealthGate.ReadyTimeout = orchestrator.Duration(10 * time.Minute)
					p.HealthGate.Retries = 2
					if tt.check != "" {
						p.HealthGate.Command = []string{writeScript(t, dir, "gate.sh",
							`echo "$DROVER_PHASE $DROVER_NODE" >> "$(dirname "$0")/gate.log"`+"\n"+tt.check)}
					}
				})
				if tt.crashD {
					var once sync.Once
					h.events.check = func(e orchestrator.Event) {
						if e.Kind == orchestrator.EventNodeState && e.Node == "b" && e.State == orchestrator.NodeDone {
							once.Do(func() {
								if err := h.drv.CrashNode(context.Background(), "d"); err != nil {
									t.Error(err)
								}
								if tt.recover > 0 {
									time.AfterFunc(tt.recover, func() {
										if err := h.drv.RecoverNode(context.Background(), "d"); err != nil {
											t.Error(err)
										}
									})
								}
							})
						}
					}
				}
				rep, _ := h.apply(context.Background(), p)
				if rep.State != string(tt.wantRun) || !strings.Contains(rep.Error, tt.errHas) {
					t.Errorf("run = %s (%s), want %s with %q", rep.State, rep.Error, tt.wantRun, tt.errHas)
				}
				for name, want := range tt.want {
					n := h.node(rep, name)
					if n.State != want {
						t.Errorf("node %s = %s (%s%s), want %s", name, n.State, n.Failure, n.SkipReason, want)
					}
					if want == "skipped" && !strings.Contains(n.SkipReason, "health gate failed") {
						t.Errorf("node %s skipped for %q, want the gate named", name, n.SkipReason)
					}
					if want == "skipped" && h.stats().Reboots[name] != 0 {
						t.Errorf("node %s rebooted after the gate failed", name)
					}
				}
				if tt.check != "" {
					logged, _ := os.ReadFile(filepath.Join(dir, "gate.log"))
					lines := strings.Split(strings.TrimSpace(string(logged)), "\n")
					if len(lines) != tt.wantLog || lines[0] != "gate b" {
						t.Errorf("gate ran %d times (%q), want %d, first before b", len(lines), lines, tt.wantLog)
					}
				}
				h.checkSafety(rep)
			})
		})
	}
}

func TestEngine_Canary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, small)
		ctx := context.Background()
		var approvals []orchestrator.Event
		h.events.check = func(e orchestrator.Event) {
			if e.Kind == orchestrator.EventApprovalNeeded {
				approvals = append(approvals, e)
			}
		}
		id := h.start(ctx, testPolicy(func(p *orchestrator.Policy) { p.Canary = true }))
		run, err := h.eng.Execute(ctx, id)
		if err != nil || run.State != runs.StateWaitingApproval {
			t.Fatalf("first Execute = %s, %v; want waiting_approval", run.State, err)
		}
		rep := h.report(id)
		if b := h.node(rep, "b"); b.State != orchestrator.NodeDone {
			t.Errorf("canary node b = %s, want done", b.State)
		}
		for _, n := range []string{"c", "a"} {
			if s := h.node(rep, n).State; s != orchestrator.NodeQueued || h.stats().Reboots[n] != 0 {
				t.Errorf("node %s = %s before the approval, want untouched", n, s)
			}
		}
		if len(approvals) != 1 || approvals[0].Node != "b" || !strings.Contains(approvals[0].Message, "drover runs approve "+id) {
			t.Errorf("approval events = %+v, want one naming b and the command", approvals)
		}
		// A new process: without the approval the run does not go on.
		h.openStore()
		if _, err := h.eng.Execute(ctx, id); !errors.Is(err, orchestrator.ErrAwaitingApproval) {
			t.Fatalf("Execute without approval = %v, want ErrAwaitingApproval", err)
		}
		if err := h.eng.Approve(id); err != nil {
			t.Fatal(err)
		}
		run, err = h.eng.Execute(ctx, id)
		if err != nil || run.State != runs.StateSucceeded || !run.Approved {
			t.Fatalf("approved Execute = %s (approved %v), %v", run.State, run.Approved, err)
		}
		if len(approvals) != 1 {
			t.Errorf("%d approval events, want 1: an approved run does not stop again", len(approvals))
		}
		if err := h.eng.Approve(id); err == nil || !strings.Contains(err.Error(), "has ended") {
			t.Errorf("Approve of an ended run = %v", err)
		}
		h.checkSafety(h.report(id))
	})
}

func TestEngine_CanaryStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, small)
		ctx := context.Background()
		id := h.start(ctx, testPolicy(func(p *orchestrator.Policy) { p.Canary = true }))
		if run, err := h.eng.Execute(ctx, id); err != nil || run.State != runs.StateWaitingApproval {
			t.Fatalf("Execute = %s, %v", run.State, err)
		}
		h.openStore()
		h.eng.Stop(id)
		run, err := h.eng.Execute(ctx, id)
		if err != nil || run.State != runs.StateStopped {
			t.Fatalf("stopping a waiting run: %s, %v; want stopped", run.State, err)
		}
		rep := h.report(id)
		if s := h.node(rep, "c").State; s != orchestrator.NodeSkipped {
			t.Errorf("node c = %s, want untouched (skipped: not started)", s)
		}
		h.checkSafety(rep)
	})
}

func TestEngine_CanaryWaitIsNotRunTime(t *testing.T) {
	// The run takes minutes; it waits two hours for its approval. stop_after (10m)
	// counts the run's own time, not the wait: the approved run finishes.
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, small)
		ctx := context.Background()
		id := h.start(ctx, testPolicy(func(p *orchestrator.Policy) {
			p.Canary, p.StopAfter = true, orchestrator.Duration(10*time.Minute)
		}))
		if run, err := h.eng.Execute(ctx, id); err != nil || run.State != runs.StateWaitingApproval {
			t.Fatalf("Execute = %s, %v", run.State, err)
		}
		time.Sleep(2 * time.Hour) // the operator takes their time (bubble time)
		if err := h.eng.Approve(id); err != nil {
			t.Fatal(err)
		}
		run, err := h.eng.Execute(ctx, id)
		if err != nil || run.State != runs.StateSucceeded {
			t.Fatalf("approved run = %s (%s), %v; want succeeded", run.State, run.Error, err)
		}
		h.checkSafety(h.report(id))
	})
}
