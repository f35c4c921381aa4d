package orchestrator

import (
	"context"
	"fmt"
	"sync"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/policies"
)

// nodeWorkers runs up to policy.max_parallel_nodes nodes through their state
// machines at once. With one node at a time it runs each inline, as before.
type nodeWorkers struct {
	e     *Engine
	rs    *runState
	limit int

	mu     sync.Mutex
	active map[string]bool
	err    error         // the first error that ends the run (journal, interrupt)
	ended  chan struct{} // closed and replaced when a node ends
	wg     sync.WaitGroup
}

func newNodeWorkers(e *Engine, rs *runState) *nodeWorkers {
	return &nodeWorkers{e: e, rs: rs, limit: max(rs.policy.MaxParallelNodes, 1), active: map[string]bool{}, ended: make(chan struct{})}
}

// start runs node name (the index-th of the run) through its states; in parallel
// mode in its own goroutine.
func (w *nodeWorkers) start(ctx context.Context, name string, index int) {
	w.mu.Lock()
	w.active[name] = true
	w.mu.Unlock()
	run := func() {
		err := w.e.processNode(ctx, w.rs, name, index)
		w.rs.limiter.unclaim(name)
		w.e.nodeEnded(w.rs, name)
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(w.active, name)
		if err != nil && w.err == nil {
			w.err = err
		}
		close(w.ended)
		w.ended = make(chan struct{})
	}
	if w.limit == 1 {
		run()
		return
	}
	w.wg.Go(run)
}

// failure returns the first error of a node that ended the run.
func (w *nodeWorkers) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// busy returns the nodes in progress and a channel closed when one ends.
func (w *nodeWorkers) busy() ([]string, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.active))
	for _, n := range w.rs.order {
		if w.active[n] {
			out = append(out, n)
		}
	}
	return out, w.ended
}

// wait waits for every node in progress and returns the first error that ended
// the run.
func (w *nodeWorkers) wait() error {
	w.wg.Wait()
	return w.failure()
}

// slot waits until the queued node name may start: fewer than max_parallel_nodes
// nodes in progress and, when some are, the reserve (policy.reserve_nodes; 0: the
// capacity alone) holds with all of them and name out. It returns false when the
// run must not start more nodes (stopped, interrupted, or a node ended it).
func (w *nodeWorkers) slot(ctx context.Context, name string) bool {
	for {
		if w.failure() != nil || ctx.Err() != nil || w.rs.stopped() {
			return false
		}
		active, ended := w.busy()
		if len(active) == 0 {
			return true
		}
		if len(active) < w.limit && w.e.mayJoin(ctx, w.rs, active, name) {
			return true
		}
		select {
		case <-ended:
		case <-ctx.Done():
		case <-w.rs.stop:
		}
	}
}

// claim keeps every migration away from node name, which is about to enter
// maintenance, and waits until none still moves to it.
func (w *nodeWorkers) claim(ctx context.Context, name string) error {
	if p := w.rs.placer.current(); p != nil {
		p.SetUnavailable(name, "about to enter maintenance")
	}
	for {
		clear, changed := w.rs.limiter.claim(name)
		if clear {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ErrInterrupted, ctx.Err())
		}
	}
}

// mayJoin reports whether node may enter maintenance while the active nodes are
// in it: the reserve (or, with k=0, the capacity) must hold with all of them out.
func (e *Engine) mayJoin(ctx context.Context, rs *runState, active []string, node string) bool {
	inv, err := e.cfg.Driver.Inventory(ctx)
	if err != nil {
		return false // cannot tell: wait for a node to end
	}
	k := rs.policy.ReserveNodes
	if rs.policy.OverrideReserve {
		k = 0
	}
	out := append(append([]string(nil), active...), node)
	res := policies.ReserveCheck(inv, k, out, policies.ReserveOptions{Placement: e.placementOptions(rs, inv)})
	if !res.Holds {
		e.log.Info("node waits for another to finish: the reserve does not hold with both out",
			"run_id", rs.id, "node", node, "in_maintenance", active, "shortfall_mib", res.ShortfallMiB)
	}
	return res.Holds
}

// nodeEnded makes a node that is back and resumed a preferred target of the drains
// still running (the shared placer learns it at once rather than at their next pass).
func (e *Engine) nodeEnded(rs *runState, name string) {
	p := rs.placer.current()
	if p == nil {
		return
	}
	rec := rs.node(name)
	if rec.State == NodeDone && rec.LeftPaused == "" {
		p.SetState(name, cluster.NodeUp, false)
		p.SetAvailable(name)
		p.SetRank(name, 0)
	}
}

// runRanker tells the drain scheduler the run's target preferences (as
// placementOptions ranks them): patched nodes 0, nodes outside the run 1, queued
// nodes 2, so a VM waits for a busy patched node rather than moving to one that is
// drained later.
type runRanker struct {
	chooser
	rs *runState
}

func (r runRanker) Rank(node string) int {
	r.rs.mu.Lock()
	defer r.rs.mu.Unlock()
	rec, ok := r.rs.nodes[node]
	switch {
	case !ok:
		return 1
	case rec.State == NodeDone || rec.State == NodeResuming || rec.State == NodeFailingBack:
		return 0
	case rec.State == NodeQueued:
		return 2
	}
	return 1
}

var (
	_ chooser         = runRanker{}
	_ policies.Ranker = runRanker{}
)
