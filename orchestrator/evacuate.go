package orchestrator

import (
	"fmt"

	"github.com/droverhq/drover/runs"
)

// evacuated ends an evacuated node (Policy.Evacuate, `drover evacuate NODE`): it is
// drained and stays paused for good (decommission), so it takes no VMs again; the
// report names it left paused, with the reason.
func (e *Engine) evacuated(rs *runState, name string) error {
	e.log.Info("node evacuated: left paused", "run_id", rs.id, "node", name)
	return e.transition(rs, name, evLeave, func(r *runs.NodeRecord) {
		r.LeftPaused = fmt.Sprintf("evacuated by drover evacuate (run %s): drained and left paused for good; it takes no VMs until it is resumed on the platform", rs.id)
	})
}
