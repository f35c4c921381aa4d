package orchestrator

import (
	"fmt"

	"github.com/droverhq/drover/runs"
)

// skipUntouched marks the nodes that a run ending early (stopped, or failed past
// its failure budget) never started as skipped, saying why: the run will not come
// back to them, so "queued" would claim a wait that never ends.
func (e *Engine) skipUntouched(rs *runState, runErr error) error {
	why := "not started: the run ended before this node's turn"
	if runErr != nil {
		why = fmt.Sprintf("%s: %v", why, runErr)
	}
	for _, name := range rs.order {
		if rs.node(name).State != NodeQueued {
			continue
		}
		if err := e.transition(rs, name, evSkip, func(r *runs.NodeRecord) { r.SkipReason = why }); err != nil {
			return err
		}
	}
	return nil
}
