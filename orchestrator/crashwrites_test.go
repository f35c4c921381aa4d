package orchestrator_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/droverhq/drover/orchestrator"
)

// TestEngine_CrashAfterEachStoreWrite kills the process right after each write to
// the state file of a whole run, one crash point per subtest, and resumes the run in
// a new process after the platform went on without it for ten minutes (migrations
// in flight end, a reboot completes). Every resumed run must end as a clean run
// does: no VM lost or moved twice, no node rebooted twice, no hook run twice, no
// intent left open, no node left paused. With one migration at a time, each
// migration's outcome is written in one transaction with the next one's intent, so
// the sweep also crashes right after such shared writes.
func TestEngine_CrashAfterEachStoreWrite(t *testing.T) {
	cluster := small + "  - {name: pinned, node: b, memory_mib: 1024, vcpus: 1, migratable: false}\n"
	tried := 0
	for _, oneAtATime := range []bool{false, true} {
		name := map[bool]string{false: "parallel-migrations", true: "one-migration-at-a-time"}[oneAtATime]
		t.Run(name, func(t *testing.T) {
			var total int
			t.Run("clean", func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) { total = crashAfterWrite(t, cluster, 0, oneAtATime) })
			})
			if total < 30 {
				t.Fatalf("a clean run wrote the state file %d times; the sweep needs the real count", total)
			}
			for n := 1; n <= total; n++ {
				tried++
				t.Run(fmt.Sprintf("write-%d", n), func(t *testing.T) {
					synctest.Test(t, func(t *testing.T) { crashAfterWrite(t, cluster, n, oneAtATime) })
				})
			}
			t.Logf("%s: every write of a %d-write run", name, total)
		})
	}
	t.Logf("store-write crash sweep: %d crash points tried", tried)
}

// crashAfterWrite runs the cluster with failback, a shut-down VM and both hooks,
// dying after the n-th store write (n = 0: never), then resumes and checks the
// outcome. It returns how many writes the first process committed.
func crashAfterWrite(t *testing.T, cluster string, n int, oneAtATime bool) int {
	h := newHarness(t, cluster)
	hookLog := filepath.Join(h.dir, "hooks.log")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dd := &detachingDriver{Driver: h.drv}
	h.engineWith(dd, dd)
	h.store.CrashAfter(n, func() {
		dd.crashed.Store(true)
		cancel()
	})
	hook := orchestrator.Hook{
		Command: []string{"/bin/sh", "-c", `echo "$DROVER_NODE $DROVER_PHASE" >> "$0"`, hookLog},
		Timeout: orchestrator.Duration(time.Minute),
	}
	p := testPolicy(func(p *orchestrator.Policy) {
		p.Failback = orchestrator.FailbackImmediate
		p.NonMigratable = orchestrator.NonMigratableShutdown
		p.PreHook, p.PostHook = hook, hook
		if oneAtATime {
			p.MaxParallelMigrations = 1
		}
	})
	prep, err := h.eng.Prepare(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	id, err := h.eng.Start(ctx, prep)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	_, runErr := h.eng.Execute(ctx, id)
	commits := h.store.Commits()
	if n == 0 && runErr != nil {
		t.Fatalf("clean run: %v", runErr)
	}
	if n > 0 && commits < n {
		t.Fatalf("the run ended after %d writes, before the crash point %d (%v)", commits, n, runErr)
	}
	dd.wg.Wait() // migrations of the dead process end on the platform
	time.Sleep(10 * time.Minute)
	h.openStore()
	h.engineWith(h.drv, h.drv)
	if _, err := h.eng.Execute(context.Background(), id); err != nil {
		t.Fatalf("resumed Execute after a crash at write %d: %v", n, err)
	}
	rep := checkPatchedOnce(t, h, id)
	open, err := h.store.OpenIntents(id)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range open {
		t.Errorf("intent left open: %s node %s vm %s", e.Op, e.Node, e.VM)
	}
	raw, err := os.ReadFile(hookLog)
	if err != nil {
		t.Fatalf("hooks never ran: %v", err)
	}
	lines := strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(raw)), " ", "/"))
	sort.Strings(lines)
	if want := "[a/post a/pre b/post b/pre c/post c/pre]"; fmt.Sprint(lines) != want {
		t.Errorf("hooks ran %v, want each once: %s", lines, want)
	}
	if vm, _ := h.inventory().VM("pinned"); !vm.Running() || vm.Node != "b" {
		t.Errorf("pinned = %s on %s, want running on b", vm.Power, vm.Node)
	}
	h.checkSafety(rep)
	return commits
}
