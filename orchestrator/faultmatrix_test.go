package orchestrator_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/sim"
	"github.com/droverhq/drover/drivers/updaters"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

// TestEngine_FaultMatrix covers the faults TestEngine_Faults does not, or not as
// closely: a migration that always fails (the node is resumed, not patched), an
// install that fails in the real command plug-in, a VM that does not converge, a
// target or source node that dies mid-drain, a node that does not come back with no
// failure budget left, API errors beyond the client's retries, API hangs beyond its
// timeout, a state file that can no longer be written (mid-drain, and while a node
// reboots), and wall-clock jumps. Every case checks the outcome it expects and that
// drover lost no VM (a VM may only stop with a node that crashed).
//
// Covered elsewhere, not repeated here: a migration that fails once, an install
// that fails once or always in the sim, a node that does not come back within the
// budget, 5xx bursts within the retries (TestEngine_Faults); a crash of the drover
// process around every action (TestEngine_CrashAroundEachAction).
func TestEngine_FaultMatrix(t *testing.T) {
	type fixture struct {
		t   *testing.T
		h   *harness
		ctx context.Context
		// crashed is the node a case crashed through the sim's admin API.
		crashed atomic.Value
		// dir is a case's own folder.
		dir string
	}
	tests := []struct {
		name    string
		cluster string
		policy  func(*orchestrator.Policy)
		// setup runs before the run starts (wrap the driver, watch events).
		setup func(f *fixture)
		// run replaces the plain Prepare/Start/Execute when set.
		run       func(f *fixture) report.Report
		wantRun   runs.State
		wantNodes map[string]string
		check     func(f *fixture, rep report.Report)
	}{
		{
			// v1 cannot leave a, v2 can: a is half drained when it gives up. It
			// must be resumed (its capacity is back in use), neither updated nor
			// rebooted, with v1 still running on it.
			name:      "migration-always-fails-node-resumed-unpatched",
			cluster:   withFaults(small, "  - {kind: migration_fail, vm: v1, always: true}\n"),
			wantRun:   runs.StatePartiallyFailed,
			wantNodes: map[string]string{"a": "failed", "b": "done", "c": "done"},
			check: func(f *fixture, rep report.Report) {
				a := f.h.node(rep, "a")
				if !strings.Contains(a.Failure, "v1") || a.UpdatesInstalled != 0 || a.LeftPaused != "" {
					f.t.Errorf("node a failure %q, %d updates installed, left paused %q; want v1 named, none, not paused", a.Failure, a.UpdatesInstalled, a.LeftPaused)
				}
				inv := f.h.inventory()
				if n, _ := inv.Node("a"); n.Paused || !n.Ready() {
					f.t.Errorf("node a = %s paused=%v after its drain failed, want resumed", n.State, n.Paused)
				}
				if vm, _ := inv.VM("v1"); vm.Node != "a" || !vm.Running() {
					f.t.Errorf("v1 = %s on %s, want running on a", vm.Power, vm.Node)
				}
				if r := f.h.stats().Reboots["a"]; r != 0 {
					f.t.Errorf("node a rebooted %d times", r)
				}
				if pending, err := f.h.drv.Scan(f.ctx, "a"); err != nil || len(pending) == 0 {
					f.t.Errorf("node a pending updates %v, %v: want its kernel update still pending", pending, err)
				}
			},
		},
		{
			// The real command plug-in, its install failing on b as a broken
			// package manager would: b is retried, fails, is resumed and never
			// rebooted; the operator reads the command's own error.
			name:    "update-plugin-install-fails-node-resumed-not-rebooted",
			cluster: small,
			setup: func(f *fixture) {
				dir := f.t.TempDir()
				for _, n := range []string{"a", "b", "c"} {
					if err := os.WriteFile(filepath.Join(dir, n), []byte("kernel 2\n"), 0o600); err != nil {
						f.t.Fatal(err)
					}
				}
				q := updaters.ShellQuote(dir)
				u := updaters.NewCommandUpdater(updaters.CommandConfig{
					Scan: "cat " + q + `/"$DROVER_NODE"`,
					Install: `if [ "$DROVER_NODE" = b ]; then echo "E: dpkg was interrupted" >&2; exit 100; fi; : > ` +
						q + `/"$DROVER_NODE"`,
					Timeout: time.Minute,
				}, updaters.LocalRunner{}, nil)
				f.h.engineWith(f.h.drv, u)
				f.dir = dir
			},
			wantRun:   runs.StatePartiallyFailed,
			wantNodes: map[string]string{"a": "done", "b": "failed", "c": "done"},
			check: func(f *fixture, rep report.Report) {
				b := f.h.node(rep, "b")
				for _, want := range []string{"install updates on b: 4 attempts failed", "exit status 100", "dpkg was interrupted"} {
					if !strings.Contains(b.Failure, want) {
						f.t.Errorf("node b failure %q does not say %q", b.Failure, want)
					}
				}
				if n, _ := f.h.inventory().Node("b"); n.Paused || b.LeftPaused != "" {
					f.t.Errorf("node b paused=%v, left paused %q: want resumed", n.Paused, b.LeftPaused)
				}
				st := f.h.stats()
				if st.Reboots["b"] != 0 || st.Reboots["a"] != 1 || st.Reboots["c"] != 1 {
					f.t.Errorf("reboots %v, want a and c once, b never", st.Reboots)
				}
				if data, err := os.ReadFile(filepath.Join(f.dir, "b")); err != nil || string(data) != "kernel 2\n" {
					f.t.Errorf("node b updates %q, %v: want still pending", data, err)
				}
			},
		},
		{
			name:      "vm-does-not-converge-node-fails-unpatched",
			cluster:   small + "  - {name: hot, node: b, memory_mib: 4096, vcpus: 2, dirty_mib_s: 600}\n",
			wantRun:   runs.StatePartiallyFailed,
			wantNodes: map[string]string{"a": "done", "b": "failed", "c": "done"},
			check: func(f *fixture, rep report.Report) {
				b := f.h.node(rep, "b")
				if !strings.Contains(b.Failure, "hot") || !strings.Contains(b.Failure, "converge") {
					f.t.Errorf("node b failure %q, want vm hot named as not converging", b.Failure)
				}
				if r := f.h.stats().Reboots["b"]; r != 0 {
					f.t.Errorf("node b rebooted %d times with vm hot on it", r)
				}
				if vm, _ := f.h.inventory().VM("hot"); vm.Node != "b" || !vm.Running() {
					f.t.Errorf("hot = %s on %s, want running on b", vm.Power, vm.Node)
				}
			},
		},
		{
			// The first migration (v3, b to c) starts at 0 s and copies 2 GiB
			// after a 2 s setup: c dies 5 s in, under it. v3 goes to a instead
			// and b is patched; then the health gate finds c down and stops the
			// run before the next node: nothing more is paused.
			name:      "target-node-dies-during-a-migration",
			cluster:   withFaults(small, "  - {kind: node_crash, node: c, at_seconds: 5}\n"),
			setup:     func(f *fixture) { f.crashed.Store("c") },
			wantRun:   runs.StateStopped,
			wantNodes: map[string]string{"b": "done", "c": "skipped", "a": "skipped"},
			check: func(f *fixture, rep report.Report) {
				dead := "c"
				hit := false
				for _, m := range f.h.stats().Migrations {
					hit = hit || (m.To == dead && !m.OK && strings.Contains(m.Error, "crashed"))
				}
				if !hit {
					f.t.Errorf("no migration into %s was in flight when it crashed: the case tests nothing", dead)
				}
				if !strings.Contains(rep.Error, dead+" is down") {
					f.t.Errorf("run error %q does not name the dead node", rep.Error)
				}
				if vm, _ := f.h.inventory().VM("v3"); !vm.Running() || vm.Node == "b" || vm.Node == dead {
					f.t.Errorf("v3 = %s on %s, want running on a", vm.Power, vm.Node)
				}
				if r := f.h.stats().Reboots[dead]; r != 0 {
					f.t.Errorf("drover rebooted the crashed node %s %d times", dead, r)
				}
			},
		},
		{
			// a's two VMs move in parallel; a dies when the first has arrived,
			// under the second.
			name:    "source-node-dies-during-its-drain",
			cluster: small,
			setup: func(f *fixture) {
				var once sync.Once
				f.h.events.check = func(e orchestrator.Event) {
					if e.Kind == orchestrator.EventMigrationDone && e.From == "a" {
						once.Do(func() {
							f.crashed.Store("a")
							if err := f.h.drv.CrashNode(f.ctx, "a"); err != nil {
								f.t.Errorf("crash a: %v", err)
							}
						})
					}
				}
			},
			wantRun:   runs.StatePartiallyFailed,
			wantNodes: map[string]string{"a": "failed", "b": "done", "c": "done"},
			check: func(f *fixture, rep report.Report) {
				a := f.h.node(rep, "a")
				if a.LeftPaused == "" || !strings.Contains(a.LeftPaused, "down") {
					f.t.Errorf("node a left paused %q, want the reason (down) reported", a.LeftPaused)
				}
				st := f.h.stats()
				if r := st.Reboots["a"]; r != 0 {
					f.t.Errorf("drover rebooted the crashed node a %d times", r)
				}
				if st.VMsLostByCrash != 1 {
					f.t.Errorf("%d VMs went down with a, want the one in flight: the case tests nothing", st.VMsLostByCrash)
				}
			},
		},
		{
			name:    "node-does-not-come-back-budget-stops-the-run",
			cluster: withFaults(small, "  - {kind: node_no_return, node: b}\n"),
			policy: func(p *orchestrator.Policy) {
				p.MaxFailedNodes = 0
				p.RebootTimeout = orchestrator.Duration(5 * time.Minute)
			},
			wantRun:   runs.StateFailed,
			wantNodes: map[string]string{"b": "failed", "c": "skipped", "a": "skipped"},
			check: func(f *fixture, rep report.Report) {
				b := f.h.node(rep, "b")
				if !strings.Contains(b.Failure, "did not come back") || b.LeftPaused == "" {
					f.t.Errorf("node b failure %q left paused %q, want both", b.Failure, b.LeftPaused)
				}
				if !strings.Contains(rep.Error, "max_failed_nodes") {
					f.t.Errorf("run error %q does not name policy.max_failed_nodes", rep.Error)
				}
				st := f.h.stats()
				if st.Reboots["a"]+st.Reboots["c"] != 0 {
					f.t.Errorf("nodes after the budget ran out were rebooted: %v", st.Reboots)
				}
			},
		},
		{
			name:      "api-errors-beyond-the-retries-fail-the-node-cleanly",
			cluster:   withFaults(small, "  - {kind: api_errors, path: /v1/nodes/b/pause, burst: 10}\n"),
			wantRun:   runs.StatePartiallyFailed,
			wantNodes: map[string]string{"a": "done", "b": "failed", "c": "done"},
			check: func(f *fixture, rep report.Report) {
				if b := f.h.node(rep, "b"); !strings.Contains(b.Failure, "pause node b") {
					f.t.Errorf("node b failure %q, want the pause named", b.Failure)
				}
				if r := f.h.stats().Reboots["b"]; r != 0 {
					f.t.Errorf("node b rebooted %d times though it was never paused", r)
				}
			},
		},
		{
			name: "api-hangs-beyond-the-client-timeout-are-retried",
			cluster: withFaults(small, "  - {kind: api_hang, path: /v1/inventory, burst: 2, after_requests: 3, delay_ms: 15000}\n"+
				"  - {kind: api_hang, path: /v1/migrations, burst: 2, after_requests: 1, delay_ms: 15000}\n"+
				"  - {kind: api_hang, path: /v1/nodes/a/reboot, burst: 1, delay_ms: 15000}\n"),
			wantRun:   runs.StateSucceeded,
			wantNodes: map[string]string{"a": "done", "b": "done", "c": "done"},
			check: func(f *fixture, rep report.Report) {
				if got := f.h.stats().APIFaults; got != 5 {
					f.t.Errorf("api faults = %d, want the 5 hangs hit", got)
				}
				if r := f.h.stats().Reboots["a"]; r != 1 {
					f.t.Errorf("node a rebooted %d times after its reboot request hung, want 1", r)
				}
			},
		},
		{
			name:    "state-file-unwritable-mid-drain-stops-cleanly-and-resumes",
			cluster: small,
			run: func(f *fixture) report.Report {
				h := f.h
				// The disk goes read-only (or full) while a migration is in flight:
				// from then on every write of the state file fails. Closing the
				// store under the engine makes every Update fail the same way.
				var once sync.Once
				h.events.check = func(e orchestrator.Event) {
					if e.Kind == orchestrator.EventMigrationStarted {
						once.Do(func() { h.store.Close() })
					}
				}
				id := h.start(f.ctx, testPolicy(nil))
				_, err := h.eng.Execute(f.ctx, id)
				h.events.check = nil
				if err == nil || errors.Is(err, orchestrator.ErrInterrupted) {
					f.t.Fatalf("Execute = %v, want a state file error", err)
				}
				for _, want := range []string{"state file", "left paused", "drover runs resume " + id} {
					if !strings.Contains(err.Error(), want) {
						f.t.Errorf("error %q does not say %q", err, want)
					}
				}
				st := h.stats()
				for node, r := range st.Reboots {
					if r != 0 {
						f.t.Errorf("node %s rebooted after the state file failed", node)
					}
				}
				if st.ActiveMigrations != 0 {
					f.t.Errorf("%d migrations still in flight after the run stopped", st.ActiveMigrations)
				}
				// The disk is fixed; a new process resumes the run.
				h.openStore()
				if _, err := h.eng.Execute(context.Background(), id); err != nil {
					f.t.Fatalf("resumed Execute: %v", err)
				}
				return h.report(id)
			},
			wantRun:   runs.StateSucceeded,
			wantNodes: map[string]string{"a": "done", "b": "done", "c": "done"},
		},
		{
			// The disk fills while a node reboots: the reboot was asked for, its
			// outcome cannot be journaled. The run stops without acting further,
			// naming the node left in maintenance; resumed once the disk is
			// fixed, it finds the reboot done and does not reboot the node again.
			name:    "state-file-unwritable-during-a-reboot-stops-cleanly-and-resumes",
			cluster: small,
			run: func(f *fixture) report.Report {
				h := f.h
				rd := &rebootThenFail{Driver: h.drv, fail: func() { h.store.Close() }}
				h.swapDriver(rd)
				id := h.start(f.ctx, testPolicy(nil))
				_, err := h.eng.Execute(f.ctx, id)
				if err == nil || errors.Is(err, orchestrator.ErrInterrupted) {
					f.t.Fatalf("Execute = %v, want a state file error", err)
				}
				node := rd.node
				for _, want := range []string{"state file", "nodes left paused: " + node + " (rebooting)", "drover runs resume " + id} {
					if !strings.Contains(err.Error(), want) {
						f.t.Errorf("error %q does not say %q", err, want)
					}
				}
				if st := h.stats(); st.Reboots[node] != 1 || len(st.Reboots) != 1 {
					f.t.Errorf("reboots %v when the run stopped, want %s once and no other", st.Reboots, node)
				}
				// The disk is fixed a while later (the bubble's clock): the node has
				// long come back. A new process finds the run unfinished, the node
				// rebooting.
				time.Sleep(10 * time.Minute)
				h.openStore()
				if rep := h.report(id); rep.State != string(runs.StateRunning) || h.node(rep, node).State != orchestrator.NodeRebooting {
					f.t.Errorf("state file says run %s, node %s %s; want running, rebooting", rep.State, node, h.node(rep, node).State)
				}
				if _, err := h.eng.Execute(context.Background(), id); err != nil {
					f.t.Fatalf("resumed Execute: %v", err)
				}
				return h.report(id)
			},
			wantRun:   runs.StateSucceeded,
			wantNodes: map[string]string{"a": "done", "b": "done", "c": "done"},
			check: func(f *fixture, rep report.Report) {
				for node, r := range f.h.stats().Reboots {
					if r != 1 {
						f.t.Errorf("node %s rebooted %d times, want once", node, r)
					}
				}
			},
		},
		{
			name:    "wall-clock-jumps-back-and-forth",
			cluster: small,
			setup: func(f *fixture) {
				jd := &jumpingDriver{Driver: f.h.drv}
				jd.clock = &jumpingClock{inner: f.h.drv.Clock()}
				f.h.swapDriver(jd)
				f.h.events.check = func(e orchestrator.Event) {
					if e.Kind != orchestrator.EventNodeState {
						return
					}
					switch e.State {
					case orchestrator.NodeDraining:
						jd.clock.jump(-time.Hour) // NTP steps the clock back mid-drain
					case orchestrator.NodeRebooting:
						jd.clock.jump(3 * time.Hour) // and forward during a reboot
					}
				}
			},
			wantRun:   runs.StateSucceeded,
			wantNodes: map[string]string{"a": "done", "b": "done", "c": "done"},
			check: func(f *fixture, rep report.Report) {
				for _, n := range rep.Nodes {
					if n.Seconds < 0 {
						f.t.Errorf("node %s took %v s", n.Name, n.Seconds)
					}
					for _, p := range n.Phases {
						if p.Seconds < 0 {
							f.t.Errorf("node %s phase %s took %v s", n.Name, p.Name, p.Seconds)
						}
					}
					for _, m := range n.Migrations {
						if m.Seconds < 0 {
							f.t.Errorf("migration of %s took %v s", m.VM, m.Seconds)
						}
					}
				}
				ts, err := f.h.store.Timings("test")
				if err != nil {
					f.t.Fatal(err)
				}
				for _, tm := range ts {
					if tm.Seconds < 0 {
						f.t.Errorf("timing %s of %s recorded as %v s: estimates would trust it", tm.Kind, tm.Node, tm.Seconds)
					}
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fixture{t: t, h: newHarness(t, tt.cluster), ctx: context.Background()}
				if tt.setup != nil {
					tt.setup(f)
				}
				var rep report.Report
				if tt.run != nil {
					rep = tt.run(f)
				} else {
					var err error
					rep, err = f.h.apply(f.ctx, testPolicy(tt.policy))
					if err != nil && tt.wantRun == runs.StateSucceeded {
						t.Fatalf("Execute: %v", err)
					}
				}
				f.h.events.check = nil
				if rep.State != string(tt.wantRun) {
					t.Errorf("run = %s (%s), want %s", rep.State, rep.Error, tt.wantRun)
				}
				for name, want := range tt.wantNodes {
					if n := f.h.node(rep, name); n.State != want {
						t.Errorf("node %s = %s (%s%s), want %s", name, n.State, n.Failure, n.SkipReason, want)
					}
				}
				// No VM lost by drover: only a node crash may stop VMs, only those
				// on the crashed node.
				var allowed []string
				dead, _ := f.crashed.Load().(string)
				for _, k := range f.h.stats().KilledVMs {
					if k.Cause != "crash" || k.Node != dead {
						t.Errorf("vm %s killed by %s of %s", k.VM, k.Cause, k.Node)
					}
					allowed = append(allowed, k.VM)
				}
				f.h.checkSafety(rep, allowed...)
				if tt.check != nil {
					tt.check(f, rep)
				}
			})
		})
	}
}

// rebootThenFail calls fail (the state file's disk fills) right after the first
// reboot it passes on, and remembers the node.
type rebootThenFail struct {
	*sim.Driver
	once sync.Once
	fail func()
	node string
}

func (d *rebootThenFail) RebootNode(ctx context.Context, node string) error {
	err := d.Driver.RebootNode(ctx, node)
	d.once.Do(func() {
		d.node = node
		d.fail()
	})
	return err
}

// jumpingClock is the cluster clock of a platform whose wall clock is stepped
// (NTP, an operator): its readings carry no monotonic part, and jump.
type jumpingClock struct {
	inner  drivers.Clock
	offset atomic.Int64
}

func (c *jumpingClock) jump(d time.Duration) { c.offset.Add(int64(d)) }

func (c *jumpingClock) Now() time.Time {
	return c.inner.Now().Round(0).Add(time.Duration(c.offset.Load()))
}

func (c *jumpingClock) WallDuration(d time.Duration) time.Duration { return c.inner.WallDuration(d) }

type jumpingDriver struct {
	drivers.Driver
	clock *jumpingClock
}

func (d *jumpingDriver) Clock() drivers.Clock { return d.clock }

// The sim driver's optional interfaces, which the embedding hides.
func (d *jumpingDriver) ShutdownVM(ctx context.Context, vm string) error {
	return d.Driver.(drivers.PowerController).ShutdownVM(ctx, vm)
}

func (d *jumpingDriver) StartVM(ctx context.Context, vm string) error {
	return d.Driver.(drivers.PowerController).StartVM(ctx, vm)
}
