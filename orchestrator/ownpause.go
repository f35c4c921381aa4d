package orchestrator

import (
	"github.com/droverhq/drover/cluster"
)

// pausedByRun is the ID of the Drover run whose mark a paused node carries ("" when
// none): a node an interrupted run paused is that run's to resume, not someone
// else's to resume on the platform.
func pausedByRun(n cluster.Node) string {
	if id, ok := runOfMark(n.PausedBy); ok && n.Paused {
		return id
	}
	return ""
}

// ownPauseNote says what to do with a node a Drover run paused.
func ownPauseNote(node, runID string) string {
	return node + " (paused by Drover run " + runID + ": resume run " + runID + " with `drover runs resume " + runID + "`)"
}

// unreachable lists the nodes that do not answer (down), as "name (down)", or
// "name (down: the driver's error)" when the driver says why.
func unreachable(inv cluster.Inventory) []string {
	var out []string
	for _, n := range inv.Nodes {
		switch {
		case n.State != cluster.NodeDown:
		case n.Problem != "":
			out = append(out, n.Name+" (down: "+n.Problem+")")
		default:
			out = append(out, n.Name+" (down)")
		}
	}
	return out
}
