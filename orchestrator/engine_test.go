package orchestrator_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/sim"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
)

// small is a 3-node cluster: b and c run one VM each, a runs two, so the default
// order (fewest VMs first) is b, c, a.
const small = `
seed: 1
nodes:
  - {name: a, memory_mib: 32768, cpus: 16, reboot_seconds: 60, updates: [{name: kernel, version: "2"}]}
  - {name: b, memory_mib: 32768, cpus: 16, reboot_seconds: 60, updates: [{name: kernel, version: "2"}, {name: tzdata, version: "b", reboot: false}]}
  - {name: c, memory_mib: 32768, cpus: 16, reboot_seconds: 60, updates: [{name: kernel, version: "2"}]}
vms:
  - {name: v1, node: a, memory_mib: 2048, vcpus: 2, dirty_mib_s: 10, preferred_node: a}
  - {name: v2, node: a, memory_mib: 4096, vcpus: 2, dirty_mib_s: 20, preferred_node: a}
  - {name: v3, node: b, memory_mib: 2048, vcpus: 2, dirty_mib_s: 10, preferred_node: b}
  - {name: v4, node: c, memory_mib: 2048, vcpus: 2, dirty_mib_s: 10}
`

func withFaults(cluster, faults string) string { return cluster + "faults:\n" + faults }

func TestEngine_RollingRunMedium(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, "../testdata/clusters/medium.yaml")
		ctx := context.Background()
		rep, err := h.apply(ctx, testPolicy(func(p *orchestrator.Policy) {
			p.NonMigratable = orchestrator.NonMigratableShutdown
			p.MaxParallelMigrations = 8
			p.MaxMigrationsPerNode = 3
		}))
		if err != nil {
			t.Fatalf("Execute: %v", err)
		}
		if rep.State != string(runs.StateSucceeded) {
			t.Fatalf("run state = %s (%s), want succeeded", rep.State, rep.Error)
		}
		st := h.stats()
		for _, n := range rep.Nodes {
			if n.State != orchestrator.NodeDone {
				t.Errorf("node %s = %s (%s%s)", n.Name, n.State, n.Failure, n.SkipReason)
			}
			if n.UpdatesInstalled == 0 || !n.Rebooted {
				t.Errorf("node %s: %d updates installed, rebooted %v", n.Name, n.UpdatesInstalled, n.Rebooted)
			}
			if st.Reboots[n.Name] != 1 {
				t.Errorf("node %s rebooted %d times, want 1", n.Name, st.Reboots[n.Name])
			}
			if peak := st.PeakMigrations[n.Name]; peak > 3 {
				t.Errorf("node %s had %d migrations at once, limit 3", n.Name, peak)
			}
		}
		var shutdown []string
		for _, n := range rep.Nodes {
			for _, l := range n.VMsLeft {
				shutdown = append(shutdown, l.VM)
				if !l.Restarted {
					t.Errorf("vm %s was shut down for %s and not restarted", l.VM, n.Name)
				}
			}
		}
		h.checkSafety(rep)
		if rep.Summary.Migrations < 150 {
			t.Errorf("only %d migrations on a 200-VM cluster", rep.Summary.Migrations)
		}
		t.Logf("medium: %d migrations, %.2f per VM, %d VMs shut down and restarted", rep.Summary.Migrations, rep.Summary.MigrationsPerVM, len(shutdown))
	})
}

func TestEngine_Faults(t *testing.T) {
	tests := []struct {
		name      string
		faults    string
		policy    func(*orchestrator.Policy)
		wantRun   runs.State
		wantNodes map[string]string
		check     func(t *testing.T, h *harness)
	}{
		{
			name:      "migration-fails-once-is-retried",
			faults:    "  - {kind: migration_fail, vm: v1, times: 1}\n",
			wantRun:   runs.StateSucceeded,
			wantNodes: map[string]string{"a": "done", "b": "done", "c": "done"},
			check: func(t *testing.T, h *harness) {
				if got := len(h.node(h.lastReport(), "a").FailedMigrations); got != 1 {
					t.Errorf("node a: %d failed migration attempts, want 1", got)
				}
			},
		},
		{
			name:      "migration-always-fails-node-fails-unpatched-and-resumed",
			faults:    "  - {kind: migration_fail, vm: v1, always: true}\n",
			wantRun:   runs.StatePartiallyFailed,
			wantNodes: map[string]string{"a": "failed", "b": "done", "c": "done"},
			check: func(t *testing.T, h *harness) {
				st := h.stats()
				if st.Reboots["a"] != 0 {
					t.Errorf("node a rebooted %d times; a node whose drain failed must not be rebooted", st.Reboots["a"])
				}
				inv := h.inventory()
				if vm, _ := inv.VM("v1"); vm.Node != "a" || !vm.Running() {
					t.Errorf("v1 = %+v, want running on a", vm)
				}
				n := h.node(h.lastReport(), "a")
				if !strings.Contains(n.Failure, "v1") || len(n.FailedMigrations) != 4 {
					t.Errorf("node a failure %q with %d failed attempts, want v1 named and 1+3 retries", n.Failure, len(n.FailedMigrations))
				}
			},
		},
		{
			name:      "install-fails-once-is-retried",
			faults:    "  - {kind: install_fail, node: b, times: 1}\n",
			wantRun:   runs.StateSucceeded,
			wantNodes: map[string]string{"a": "done", "b": "done", "c": "done"},
		},
		{
			name:      "install-always-fails-node-not-rebooted",
			faults:    "  - {kind: install_fail, node: b, always: true}\n",
			wantRun:   runs.StatePartiallyFailed,
			wantNodes: map[string]string{"a": "done", "b": "failed", "c": "done"},
			check: func(t *testing.T, h *harness) {
				if r := h.stats().Reboots["b"]; r != 0 {
					t.Errorf("node b rebooted %d times after its install failed", r)
				}
			},
		},
		{
			name:      "node-does-not-come-back",
			faults:    "  - {kind: node_no_return, node: b}\n",
			policy:    func(p *orchestrator.Policy) { p.RebootTimeout = orchestrator.Duration(5 * time.Minute) },
			wantRun:   runs.StatePartiallyFailed,
			wantNodes: map[string]string{"a": "done", "b": "failed", "c": "done"},
			check: func(t *testing.T, h *harness) {
				n := h.node(h.lastReport(), "b")
				if !strings.Contains(n.Failure, "did not come back") || n.LeftPaused == "" {
					t.Errorf("node b: failure %q, left paused %q", n.Failure, n.LeftPaused)
				}
			},
		},
		{
			name:      "failure-budget-exceeded-stops-the-run",
			faults:    "  - {kind: migration_fail, vm: v3, always: true}\n",
			policy:    func(p *orchestrator.Policy) { p.MaxFailedNodes = 0 },
			wantRun:   runs.StateFailed,
			wantNodes: map[string]string{"b": "failed", "c": "skipped", "a": "skipped"},
			check: func(t *testing.T, h *harness) {
				st := h.stats()
				if st.Reboots["a"]+st.Reboots["c"] != 0 {
					t.Errorf("nodes after the budget was exceeded were rebooted: %v", st.Reboots)
				}
			},
		},
		{
			name:      "api-5xx-bursts-are-retried",
			faults:    "  - {kind: api_errors, burst: 3, after_requests: 20}\n  - {kind: api_errors, burst: 2, after_requests: 60, after_apply: true}\n",
			wantRun:   runs.StateSucceeded,
			wantNodes: map[string]string{"a": "done", "b": "done", "c": "done"},
			check: func(t *testing.T, h *harness) {
				if h.stats().APIFaults != 5 {
					t.Errorf("api faults = %d, want 5 (the bursts must have been hit)", h.stats().APIFaults)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, withFaults(small, tt.faults))
				rep, err := h.apply(context.Background(), testPolicy(tt.policy))
				if err != nil && tt.wantRun == runs.StateSucceeded {
					t.Fatalf("Execute: %v", err)
				}
				h.last = rep.ID
				if rep.State != string(tt.wantRun) {
					t.Errorf("run = %s (%s), want %s", rep.State, rep.Error, tt.wantRun)
				}
				for name, want := range tt.wantNodes {
					if n := h.node(rep, name); n.State != want {
						t.Errorf("node %s = %s (%s), want %s", name, n.State, n.Failure, want)
					}
				}
				h.checkSafety(rep)
				if tt.check != nil {
					tt.check(t, h)
				}
			})
		})
	}
}

func TestEngine_NonMigratable(t *testing.T) {
	cluster := small + "  - {name: pinned, node: b, memory_mib: 1024, vcpus: 1, migratable: false}\n"
	tests := []struct {
		mode        string
		wantB       string
		wantRebootB int
		wantPinned  string // "running" or "stopped" after the run
		wantLeft    string
	}{
		{mode: orchestrator.NonMigratableFail, wantB: "failed", wantRebootB: 0, wantPinned: "running"},
		{mode: orchestrator.NonMigratableShutdown, wantB: "done", wantRebootB: 1, wantPinned: "running", wantLeft: "shutdown"},
		{mode: orchestrator.NonMigratableSkip, wantB: "done", wantRebootB: 1, wantPinned: "stopped", wantLeft: "skipped"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, cluster)
				rep, _ := h.apply(context.Background(), testPolicy(func(p *orchestrator.Policy) { p.NonMigratable = tt.mode }))
				b := h.node(rep, "b")
				if b.State != tt.wantB {
					t.Errorf("node b = %s (%s), want %s", b.State, b.Failure, tt.wantB)
				}
				st := h.stats()
				if st.Reboots["b"] != tt.wantRebootB {
					t.Errorf("node b rebooted %d times, want %d", st.Reboots["b"], tt.wantRebootB)
				}
				vm, _ := h.inventory().VM("pinned")
				if string(vm.Power) != tt.wantPinned || vm.Node != "b" {
					t.Errorf("pinned = %s on %s, want %s on b", vm.Power, vm.Node, tt.wantPinned)
				}
				if tt.wantLeft != "" && (len(b.VMsLeft) != 1 || b.VMsLeft[0].Action != tt.wantLeft) {
					t.Errorf("node b VMs left = %+v, want pinned %s", b.VMsLeft, tt.wantLeft)
				}
				if tt.mode == orchestrator.NonMigratableSkip {
					if len(rep.Summary.VMsLeftRunning) != 1 {
						t.Errorf("report does not shout the VM left running: %+v", rep.Summary)
					}
					// Skip is the one mode that lets a reboot take a VM down: the
					// sim counts it, and the report said so beforehand.
					if st.VMsKilledByReboot != 1 {
						t.Errorf("vms killed by reboot = %d, want exactly the skipped one", st.VMsKilledByReboot)
					}
					return
				}
				h.checkSafety(rep)
			})
		})
	}
}

func TestEngine_FailbackImmediate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, small)
		rep, err := h.apply(context.Background(), testPolicy(func(p *orchestrator.Policy) { p.Failback = orchestrator.FailbackImmediate }))
		if err != nil || rep.State != "succeeded" {
			t.Fatalf("run %s: %v %s", rep.State, err, rep.Error)
		}
		inv := h.inventory()
		for _, before := range h.before.VMs {
			if after, _ := inv.VM(before.Name); after.Node != before.Node {
				t.Errorf("vm %s ended on %s, want back on %s", before.Name, after.Node, before.Node)
			}
		}
		failbacks := 0
		for _, n := range rep.Nodes {
			for _, m := range n.Migrations {
				if m.Kind == runs.KindFailback {
					failbacks++
					if m.To != n.Name {
						t.Errorf("failback of %s went to %s, not %s", m.VM, m.To, n.Name)
					}
				}
			}
		}
		if failbacks != 4 {
			t.Errorf("%d failback migrations, want 4", failbacks)
		}
		h.checkSafety(rep)
	})
}

func TestEngine_Limits(t *testing.T) {
	// One node with eight VMs drained into three: the global and per-node limits
	// must hold at every moment.
	cluster := `
nodes:
  - {name: src, memory_mib: 65536, cpus: 32, updates: [{name: k, version: "1"}]}
  - {name: t1, memory_mib: 65536, cpus: 32}
  - {name: t2, memory_mib: 65536, cpus: 32}
  - {name: t3, memory_mib: 65536, cpus: 32}
vms:
`
	for i := range 8 {
		cluster += fmt.Sprintf("  - {name: v%d, node: src, memory_mib: 4096, vcpus: 2, dirty_mib_s: 5}\n", i)
	}
	tests := []struct{ global, perNode, wantPeak int }{{1, 4, 1}, {4, 2, 2}, {3, 8, 3}}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("global-%d-per-node-%d", tt.global, tt.perNode), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, cluster)
				var inFlight, peak atomic.Int32
				h.events.check = func(e orchestrator.Event) {
					switch e.Kind {
					case orchestrator.EventMigrationStarted:
						if n := inFlight.Add(1); n > peak.Load() {
							peak.Store(n)
						}
					case orchestrator.EventMigrationDone, orchestrator.EventMigrationFailed:
						inFlight.Add(-1)
					}
				}
				rep, err := h.apply(context.Background(), testPolicy(func(p *orchestrator.Policy) {
					p.MaxParallelMigrations, p.MaxMigrationsPerNode = tt.global, tt.perNode
				}))
				if err != nil {
					t.Fatal(err)
				}
				if int(peak.Load()) != tt.wantPeak {
					t.Errorf("peak migrations in flight = %d, want %d", peak.Load(), tt.wantPeak)
				}
				st := h.stats()
				for node, p := range st.PeakMigrations {
					if p > tt.perNode {
						t.Errorf("node %s peaked at %d migrations, per-node limit %d", node, p, tt.perNode)
					}
				}
				h.checkSafety(rep)
			})
		})
	}
}

// detachingDriver simulates the death of the drover process: once crashed, a
// cancelled Migrate returns at once without aborting the migration on the platform,
// as if the process had vanished mid-call.
type detachingDriver struct {
	*sim.Driver
	crashed atomic.Bool
	wg      sync.WaitGroup
}

func (d *detachingDriver) Migrate(ctx context.Context, req drivers.MigrateRequest, progress func(drivers.MigrationProgress)) (drivers.MigrationResult, error) {
	type result struct {
		res drivers.MigrationResult
		err error
	}
	ch := make(chan result, 1)
	d.wg.Go(func() {
		res, err := d.Driver.Migrate(context.WithoutCancel(ctx), req, nil)
		ch <- result{res, err}
	})
	select {
	case r := <-ch:
		return r.res, r.err
	case <-ctx.Done():
		if d.crashed.Load() {
			return drivers.MigrationResult{}, ctx.Err()
		}
		r := <-ch
		return r.res, r.err
	}
}

func TestEngine_InterruptAndResume(t *testing.T) {
	// Interrupt the run at various moments, then resume it with a new engine (a new
	// process); the run must complete with nothing lost, nothing moved twice.
	tests := []struct {
		name  string
		when  func(e orchestrator.Event) bool
		crash bool // the process dies: migrations in flight continue on the platform
	}{
		{name: "first-migration-started-clean-shutdown", when: migrationStarted(1)},
		{name: "first-migration-started-crash", when: migrationStarted(1), crash: true},
		{name: "third-migration-started-crash", when: migrationStarted(3), crash: true},
		{name: "pausing", when: nodeEntered("pausing", 2)},
		{name: "patching", when: nodeEntered("patching", 1)},
		{name: "rebooting", when: nodeEntered("rebooting", 2)},
		{name: "verifying", when: nodeEntered("verifying", 1)},
		{name: "failing-back", when: nodeEntered("failing_back", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, small)
				dd := &detachingDriver{Driver: h.drv}
				h.swapDriver(dd)
				ctx, cancel := context.WithCancel(context.Background())
				h.events.check = func(e orchestrator.Event) {
					if tt.when(e) {
						if tt.crash {
							// The process dies here: it writes nothing more, and
							// its migrations in flight go on without it.
							dd.crashed.Store(true)
							h.store.Close()
						}
						cancel()
					}
				}
				p := testPolicy(func(p *orchestrator.Policy) { p.Failback = orchestrator.FailbackImmediate })
				id := h.start(ctx, p)
				_, err := h.eng.Execute(ctx, id)
				if !tt.crash && !errors.Is(err, orchestrator.ErrInterrupted) {
					t.Fatalf("first Execute = %v, want ErrInterrupted", err)
				}
				h.events.check = nil
				dd.wg.Wait() // the "dead" process's migrations finish on the platform meanwhile
				// A new process: new owner, fresh engine over the same state file.
				h.openStore()
				h.swapDriver(h.drv)
				if r, ok, err := h.eng.Unfinished(); err != nil || !ok || r.ID != id {
					t.Fatalf("Unfinished = %v %v %v, want run %s", r.ID, ok, err, id)
				}
				if _, err := h.eng.Execute(context.Background(), id); err != nil {
					t.Fatalf("resumed Execute: %v", err)
				}
				rep := h.report(id)
				if rep.State != "succeeded" || rep.Resumes != 1 {
					t.Errorf("run = %s after %d resumes (%s), want succeeded after 1", rep.State, rep.Resumes, rep.Error)
				}
				for _, n := range rep.Nodes {
					if n.State != "done" {
						t.Errorf("node %s = %s (%s)", n.Name, n.State, n.Failure)
					}
				}
				if st := h.stats(); st.Reboots["a"] != 1 || st.Reboots["b"] != 1 || st.Reboots["c"] != 1 {
					t.Errorf("reboots = %v, want each node exactly once", st.Reboots)
				}
				journal, _ := h.store.Journal(id)
				if open := runs.OpenIntents(journal); len(open) != 0 {
					t.Errorf("intents left open after the run: %+v", open)
				}
				h.checkSafety(rep)
				if t.Failed() {
					for _, m := range h.stats().Migrations {
						t.Logf("sim: %s %s->%s ok=%v %s-%s", m.VM, m.From, m.To, m.OK, m.Start.Format("15:04:05"), m.End.Format("15:04:05"))
					}
					for _, e := range journal {
						t.Logf("journal: %+v", e)
					}
				}
			})
		})
	}
}

func migrationStarted(n int) func(orchestrator.Event) bool {
	var seen atomic.Int32
	return func(e orchestrator.Event) bool {
		return e.Kind == orchestrator.EventMigrationStarted && int(seen.Add(1)) == n
	}
}

func nodeEntered(state string, n int) func(orchestrator.Event) bool {
	var seen atomic.Int32
	return func(e orchestrator.Event) bool {
		return e.Kind == orchestrator.EventNodeState && e.State == state && int(seen.Add(1)) == n
	}
}

func TestEngine_Stop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, small)
		ctx := context.Background()
		id := h.start(ctx, testPolicy(nil))
		stopAt := migrationStarted(1)
		h.events.check = func(e orchestrator.Event) {
			if stopAt(e) {
				h.eng.Stop(id)
			}
		}
		run, err := h.eng.Execute(ctx, id)
		if err != nil {
			t.Fatalf("Execute: %v", err)
		}
		if run.State != runs.StateStopped {
			t.Fatalf("run = %s, want stopped", run.State)
		}
		rep := h.report(id)
		first := h.node(rep, "b")
		if first.State != "skipped" || !strings.Contains(first.SkipReason, "stopped") {
			t.Errorf("node b = %s (%s), want skipped because stopped", first.State, first.SkipReason)
		}
		for _, name := range []string{"a", "c"} {
			// Untouched, and not "queued": the ended run never comes back to them.
			if n := h.node(rep, name); n.State != "skipped" || !strings.Contains(n.SkipReason, "not started") {
				t.Errorf("node %s = %s (%s), want untouched (skipped: not started)", name, n.State, n.SkipReason)
			}
		}
		if h.stats().Reboots["b"] != 0 {
			t.Error("stopped node was rebooted")
		}
		h.checkSafety(rep)
	})
}

func TestEngine_RefusesSecondRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, small)
		ctx, cancel := context.WithCancel(context.Background())
		h.events.check = func(e orchestrator.Event) {
			if e.Kind == orchestrator.EventMigrationStarted {
				cancel()
			}
		}
		id := h.start(ctx, testPolicy(nil))
		if _, err := h.eng.Execute(ctx, id); !errors.Is(err, orchestrator.ErrInterrupted) {
			t.Fatalf("Execute = %v", err)
		}
		h.openStore() // a new drover process: the one that ran the run is gone
		// The interrupted run's pause marks on the nodes stop the new run already
		// at Prepare; without them Start refuses.
		prep, err := h.eng.Prepare(context.Background(), testPolicy(nil))
		if err == nil {
			_, err = h.eng.Start(context.Background(), prep)
		}
		var ue *orchestrator.UnfinishedRunError
		if !errors.As(err, &ue) || ue.Run.ID != id || !strings.Contains(err.Error(), "drover runs resume "+id) {
			t.Fatalf("second Start = %v, want UnfinishedRunError naming %s and how to resume", err, id)
		}
	})
}

func TestEngine_ReserveBlocksPause(t *testing.T) {
	// Three nodes of 8 GiB, 12 GiB of VMs: with one node out for maintenance, the
	// two left cannot also survive one more failure (k=1).
	cluster := `
nodes:
  - {name: a, memory_mib: 8192, cpus: 8, updates: [{name: k, version: "1"}]}
  - {name: b, memory_mib: 8192, cpus: 8, updates: [{name: k, version: "1"}]}
  - {name: c, memory_mib: 8192, cpus: 8, updates: [{name: k, version: "1"}]}
vms:
  - {name: v1, node: a, memory_mib: 4096, vcpus: 1}
  - {name: v2, node: b, memory_mib: 4096, vcpus: 1}
  - {name: v3, node: c, memory_mib: 4096, vcpus: 1}
`
	for _, override := range []bool{false, true} {
		t.Run(map[bool]string{false: "blocked", true: "overridden"}[override], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, cluster)
				rep, _ := h.apply(context.Background(), testPolicy(func(p *orchestrator.Policy) {
					p.ReserveNodes = 1
					p.OverrideReserve = override
					p.MaxFailedNodes = 3
				}))
				reboots := 0
				for _, r := range h.stats().Reboots {
					reboots += r
				}
				if override {
					if rep.State != "succeeded" || reboots != 3 {
						t.Errorf("overridden: run %s with %d reboots, want succeeded with 3", rep.State, reboots)
					}
				} else {
					if reboots != 0 {
						t.Errorf("reserve broken: %d nodes rebooted anyway", reboots)
					}
					for _, n := range rep.Nodes {
						if n.State != "failed" || !strings.Contains(n.Failure, "reserve") {
							t.Errorf("node %s = %s (%s), want failed for the reserve", n.Name, n.State, n.Failure)
						}
					}
				}
				h.checkSafety(rep)
			})
		})
	}
}
