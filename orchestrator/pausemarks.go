package orchestrator

import (
	"fmt"
	"sort"
	"strings"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/runs"
)

// runOfMark returns the run whose pause mark is mark, if it is a drover run's mark.
func runOfMark(mark string) (string, bool) {
	id, ok := strings.CutPrefix(mark, drivers.PauseMark(""))
	return id, ok && id != ""
}

// PausedByOtherRunError: nodes of the cluster are paused by a drover run that is not
// the one about to act. Two drovers must never work on one cluster: the run refuses
// to start until that run is over (or its pause is lifted).
type PausedByOtherRunError struct {
	// Runs maps each foreign run ID to the nodes it holds paused.
	Runs map[string][]string
	// Ours lists the runs of this state file that are unfinished (resume them).
	Ours map[string]bool
}

func (e *PausedByOtherRunError) Error() string {
	ids := make([]string, 0, len(e.Runs))
	for id := range e.Runs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var parts []string
	for _, id := range ids {
		nodes := strings.Join(e.Runs[id], ", ")
		if e.Ours[id] {
			parts = append(parts, fmt.Sprintf("node(s) %s paused by this state file's unfinished run %s: let it finish, or if it was interrupted resume run %s with `drover runs resume %s` (or end it with `drover runs stop %s`)", nodes, id, id, id, id))
			continue
		}
		parts = append(parts, fmt.Sprintf("node(s) %s paused by drover run %s, which is not in this state file: another drover works on this cluster; wait for it to finish, or, if that run is gone for good, resume the nodes on the platform", nodes, id))
	}
	return "refusing to start: " + strings.Join(parts, "; ")
}

// foreignPauses returns the nodes paused by a drover run other than self ("" for a
// run not started yet), by run.
func foreignPauses(inv cluster.Inventory, self string) map[string][]string {
	out := map[string][]string{}
	for _, n := range inv.Nodes {
		if !n.Paused {
			continue
		}
		if id, ok := runOfMark(n.PausedBy); ok && id != self {
			out[id] = append(out[id], n.Name)
		}
	}
	return out
}

// checkForeignPauses fails a new run (and analyze) when nodes are paused by another
// drover run; store (may be nil) tells this state file's unfinished runs apart.
func checkForeignPauses(inv cluster.Inventory, store *runs.Store, cluster string) error {
	foreign := foreignPauses(inv, "")
	if len(foreign) == 0 {
		return nil
	}
	err := &PausedByOtherRunError{Runs: foreign, Ours: map[string]bool{}}
	if store != nil {
		if rs, rerr := store.Runs(cluster); rerr == nil {
			for _, r := range rs {
				if _, ok := foreign[r.ID]; ok && !r.State.Terminal() {
					err.Ours[r.ID] = true
				}
			}
		}
	}
	return err
}

// pauseIsOurs reports whether this run may resume node: its pause carries this run's
// mark, or the platform holds no mark and this run paused it.
func (e *Engine) pauseIsOurs(rs *runState, node cluster.Node) (bool, error) {
	if node.PausedBy != "" {
		return node.PausedBy == drivers.PauseMark(rs.id), nil
	}
	if rs.node(node.Name).PausedByUs {
		return true, nil
	}
	// The pause may have taken effect with its outcome lost in a crash.
	seq, err := e.openIntent(rs, runs.Entry{Op: runs.OpPause, Node: node.Name})
	return seq != 0, err
}
