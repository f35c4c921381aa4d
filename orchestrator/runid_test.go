package orchestrator_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/droverhq/drover/drivers"
)

// runIDUpdater records the run ID each install was given.
type runIDUpdater struct {
	drivers.Updater
	mu   sync.Mutex
	seen []string
}

func (u *runIDUpdater) Install(ctx context.Context, node string) (drivers.InstallResult, error) {
	u.mu.Lock()
	u.seen = append(u.seen, drivers.RunIDFrom(ctx))
	u.mu.Unlock()
	return u.Updater.Install(ctx, node)
}

// Plug-ins that leave work running on a node (the apt plug-in's detached upgrade) key
// it by run: every install must know the run it belongs to.
func TestEngine_InstallKnowsItsRun(t *testing.T) {
	synctest.Test(t, testInstallKnowsItsRun)
}

func testInstallKnowsItsRun(t *testing.T) {
	h := newHarness(t, small)
	u := &runIDUpdater{Updater: h.drv}
	h.upd = u
	h.newEngine()
	rep, err := h.apply(context.Background(), testPolicy(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(u.seen) == 0 {
		t.Fatal("no install ran")
	}
	for i, id := range u.seen {
		if id != rep.ID {
			t.Errorf("install %d ran with run ID %q, want %q", i, id, rep.ID)
		}
	}
}
