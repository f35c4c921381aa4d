package orchestrator

// PendingStops is how many runs' stop switches the engine keeps, for tests.
func (e *Engine) PendingStops() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.stops)
}
