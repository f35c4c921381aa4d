package orchestrator_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

// crashingDriver makes the drover process die at one chosen moment: just before
// or just after the n-th call of one action took effect on the platform. Dying
// means: the context of the run is cancelled, the state file is closed (nothing
// more is written), and migrations in flight go on without the process.
type crashingDriver struct {
	*detachingDriver
	op    string
	n     int32
	after bool
	die   func()
	calls atomic.Int32
}

// at reports whether this call of op is the one to die at.
func (d *crashingDriver) at(op string) bool {
	return op == d.op && d.calls.Add(1) == d.n
}

// do runs one action with the crash around it.
func (d *crashingDriver) do(ctx context.Context, op string, act func(context.Context) error) error {
	if !d.at(op) {
		return act(ctx)
	}
	if d.after {
		if err := act(ctx); err != nil {
			return err
		}
	}
	d.crashed.Store(true)
	d.die()
	return ctx.Err()
}

func (d *crashingDriver) PauseNode(ctx context.Context, node, owner string) error {
	return d.do(ctx, "pause", func(ctx context.Context) error { return d.Driver.PauseNode(ctx, node, owner) })
}

func (d *crashingDriver) ResumeNode(ctx context.Context, node string) error {
	return d.do(ctx, "resume", func(ctx context.Context) error { return d.Driver.ResumeNode(ctx, node) })
}

func (d *crashingDriver) RebootNode(ctx context.Context, node string) error {
	return d.do(ctx, "reboot", func(ctx context.Context) error { return d.Driver.RebootNode(ctx, node) })
}

func (d *crashingDriver) ShutdownVM(ctx context.Context, vm string) error {
	return d.do(ctx, "shutdown", func(ctx context.Context) error { return d.Driver.ShutdownVM(ctx, vm) })
}

func (d *crashingDriver) StartVM(ctx context.Context, vm string) error {
	return d.do(ctx, "start", func(ctx context.Context) error { return d.Driver.StartVM(ctx, vm) })
}

func (d *crashingDriver) Install(ctx context.Context, node string) (drivers.InstallResult, error) {
	var res drivers.InstallResult
	err := d.do(ctx, "install", func(ctx context.Context) error {
		var err error
		res, err = d.Driver.Install(ctx, node)
		return err
	})
	return res, err
}

func (d *crashingDriver) Migrate(ctx context.Context, req drivers.MigrateRequest, progress func(drivers.MigrationProgress)) (drivers.MigrationResult, error) {
	var res drivers.MigrationResult
	err := d.do(ctx, "migrate", func(ctx context.Context) error {
		var err error
		res, err = d.detachingDriver.Migrate(ctx, req, progress)
		return err
	})
	return res, err
}

// engineWith gives the harness an engine on driver d with updater u (the harness's
// own engine always uses the sim as its updater).
func (h *harness) engineWith(d drivers.Driver, u drivers.Updater) {
	owner := h.owner
	eng, err := orchestrator.New(orchestrator.Config{
		Cluster: "test", Driver: d, Updater: u, Store: h.store, Logger: slog.New(slog.DiscardHandler),
		Observer: h.events, Owner: owner,
		Alive: func(o runs.Owner) runs.Liveness {
			if o == owner {
				return runs.Alive
			}
			return runs.Dead
		},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.driver, h.eng = d, eng
}

// TestEngine_CrashAroundEachAction kills the process just before and just after
// each kind of action took effect (the first and the second time it happens), then
// resumes the run in a new process: the run must end as if nothing had happened.
// Failback brings every VM home; VM pinned cannot migrate and is shut down for
// the patch of b and restarted after it.
func TestEngine_CrashAroundEachAction(t *testing.T) {
	cluster := small + "  - {name: pinned, node: b, memory_mib: 1024, vcpus: 1, migratable: false}\n"
	for _, op := range []string{"pause", "migrate", "shutdown", "install", "reboot", "start", "resume"} {
		for _, n := range []int32{1, 2} {
			if n == 2 && (op == "shutdown" || op == "start") {
				continue // one VM is shut down and started once
			}
			// before, after, or after and away for 10 minutes: the reboot or the
			// migrations in flight end before the new process looks.
			for _, when := range []string{"before", "after", "after-away"} {
				t.Run(fmt.Sprintf("%s-%d-%s", op, n, when), func(t *testing.T) {
					synctest.Test(t, func(t *testing.T) { testCrashAt(t, cluster, op, n, when) })
				})
			}
		}
	}
}

func testCrashAt(t *testing.T, cluster, op string, n int32, when string) {
	h := newHarness(t, cluster)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cd := &crashingDriver{detachingDriver: &detachingDriver{Driver: h.drv}, op: op, n: n, after: when != "before"}
	cd.die = func() {
		h.store.Close()
		cancel()
	}
	h.engineWith(cd, cd)
	p := testPolicy(func(p *orchestrator.Policy) {
		p.Failback = orchestrator.FailbackImmediate
		p.NonMigratable = orchestrator.NonMigratableShutdown
	})
	id := h.start(ctx, p)
	if _, err := h.eng.Execute(ctx, id); err == nil {
		t.Fatalf("first Execute succeeded: the crash at %s #%d never happened", op, n)
	}
	if !cd.crashed.Load() {
		t.Fatalf("the run failed before the crash at %s #%d", op, n)
	}
	cd.wg.Wait() // migrations of the dead process end on the platform
	if when == "after-away" {
		time.Sleep(10 * time.Minute) // the bubble's clock: nobody resumes for a while
	}
	h.openStore()
	if _, err := h.eng.Execute(context.Background(), id); err != nil {
		t.Fatalf("resumed Execute: %v", err)
	}
	rep := checkPatchedOnce(t, h, id)
	journal, err := h.store.Journal(id)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range runs.OpenIntents(journal) {
		t.Errorf("intent left open: %s node %s vm %s", e.Op, e.Node, e.VM)
	}
	if vm, _ := h.inventory().VM("pinned"); !vm.Running() || vm.Node != "b" {
		t.Errorf("pinned = %s on %s, want running on b", vm.Power, vm.Node)
	}
	h.checkSafety(rep)
}

// checkPatchedOnce asserts that run id of the three-node harness succeeded, with
// every node done, updated and rebooted exactly once, and returns its report.
func checkPatchedOnce(t *testing.T, h *harness, id string) report.Report {
	t.Helper()
	rep := h.report(id)
	if rep.State != string(runs.StateSucceeded) {
		t.Errorf("run = %s (%s), want succeeded", rep.State, rep.Error)
	}
	for _, nr := range rep.Nodes {
		if nr.State != orchestrator.NodeDone || nr.UpdatesInstalled == 0 {
			t.Errorf("node %s = %s with %d updates installed (%s)", nr.Name, nr.State, nr.UpdatesInstalled, nr.Failure)
		}
	}
	st := h.stats()
	for _, node := range []string{"a", "b", "c"} {
		if st.Reboots[node] != 1 {
			t.Errorf("node %s rebooted %d times, want 1", node, st.Reboots[node])
		}
	}
	return rep
}
