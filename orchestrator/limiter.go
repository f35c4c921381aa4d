package orchestrator

import "sync"

// limiter bounds live migrations: at most global in flight in the run, and at most
// perNode in flight into or out of any one node (a node's NIC carries both).
type limiter struct {
	global, perNode int

	mu       sync.Mutex
	inflight int
	byNode   map[string]int
	changed  chan struct{} // closed and replaced on every release
}

func newLimiter(global, perNode int) *limiter {
	return &limiter{global: global, perNode: perNode, byNode: map[string]int{}, changed: make(chan struct{})}
}

// tryAcquire takes a slot for a migration from -> to if the limits allow it.
func (l *limiter) tryAcquire(from, to string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inflight >= l.global || l.byNode[from] >= l.perNode || l.byNode[to] >= l.perNode {
		return false
	}
	l.inflight++
	l.byNode[from]++
	l.byNode[to]++
	return true
}

// release frees the slot of a finished migration.
func (l *limiter) release(from, to string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
	l.byNode[from]--
	l.byNode[to]--
	close(l.changed)
	l.changed = make(chan struct{})
}

// full reports whether no migration out of from can start now.
func (l *limiter) full(from string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inflight >= l.global || l.byNode[from] >= l.perNode
}

// busy returns the nodes that take no further migration now.
func (l *limiter) busy() map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]bool{}
	for n, c := range l.byNode {
		if c >= l.perNode {
			out[n] = true
		}
	}
	return out
}

// wait returns a channel closed at the next release.
func (l *limiter) wait() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}
