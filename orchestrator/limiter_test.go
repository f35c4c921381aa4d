package orchestrator

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/policies"
)

// TestLimiter_NoLostWakeup: a caller gets its answer (a node still receives a
// migration; nothing may start) and then waits for the board to change. A release
// that lands between the answer and the wait must still wake it: the channel comes
// with the answer, under the same lock. Fetching the channel afterwards (as the
// engine did) returns a fresh one that no release will close: with
// max_parallel_nodes > 1 the run hung there.
func TestLimiter_NoLostWakeup(t *testing.T) {
	vm := cluster.VM{Name: "v", Node: "a", MemoryMiB: 1024, Migratable: true, Power: cluster.PowerRunning}
	woken := func(t *testing.T, ch <-chan struct{}) bool {
		done := make(chan struct{})
		go func() {
			select {
			case <-ch:
				close(done)
			case <-time.After(time.Hour):
			}
		}()
		synctest.Wait()
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	t.Run("claim", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := newLimiter(policies.DrainOptions{Mode: policies.DrainFixed, MaxParallel: 1, MaxPerNode: 1}, nil)
			l.join(time.Now(), vm, "a", "b")
			clear, changed := l.claim("b")
			if clear {
				t.Fatal("claim of b is clear while a migration moves to b")
			}
			l.release("v") // the migration ends before the caller waits
			if !woken(t, changed) {
				t.Error("the waiter for b missed the release: lost wake-up")
			}
			if clear, _ := l.claim("b"); !clear {
				t.Error("claim of b not clear once nothing moves to it")
			}
		})
	})
	t.Run("decide", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := newLimiter(policies.DrainOptions{Mode: policies.DrainFixed, MaxParallel: 1, MaxPerNode: 1}, nil)
			l.join(time.Now(), vm, "a", "b")
			other := vm
			other.Name = "w"
			dec, changed := l.decide(time.Now(), []policies.DrainJob{{VM: other, To: "c"}}, nil, nil)
			if len(dec.Start) != 0 {
				t.Fatalf("decided to start %+v over max_parallel 1", dec.Start)
			}
			l.release("v")
			if !woken(t, changed) {
				t.Error("the drain waiting after its decision missed the release: lost wake-up")
			}
		})
	})
}
