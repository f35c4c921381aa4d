package report

import (
	"fmt"
	"strings"

	"github.com/droverhq/drover/runs"
)

// Count writes n and the noun in the right number: "1 node", "2 nodes".
func Count(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// StateAndReason joins a run's state and its error without saying a word twice:
// ("stopped", "stopped by the operator") -> "stopped by the operator"; otherwise
// "failed: node n2 ...".
func StateAndReason(state, reason string) string {
	switch {
	case reason == "":
		return state
	case reason == state || strings.HasPrefix(reason, state+" "):
		return reason
	}
	return state + ": " + reason
}

// Times is "once", "twice" or "N times".
func Times(n int) string {
	switch n {
	case 1:
		return "once"
	case 2:
		return "twice"
	}
	return fmt.Sprintf("%d times", n)
}

// movedMoreThanOnce counts the VMs with two or more completed migrations in the
// run, as policies.Plan counts them.
func movedMoreThanOnce(nodes []runs.NodeRecord) int {
	moves := map[string]int{}
	for _, n := range nodes {
		for _, m := range n.Migrations {
			if m.OK {
				moves[m.VM]++
			}
		}
	}
	n := 0
	for _, c := range moves {
		if c > 1 {
			n++
		}
	}
	return n
}

// Aborted is ", N aborted" for migrations the run cut off, "" for none: they are
// not failed attempts and are counted apart.
func Aborted(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d aborted", n)
}

// durations is the run's duration in both clocks, cluster time first (the rule:
// durations are cluster time), labelled: "9m of cluster time, 18s of wall time".
// Runs recorded without the cluster clock have wall time only.
func durations(rep Report) string {
	wall := humanSeconds(rep.Summary.Seconds) + " of wall time"
	if rep.ClusterFinishedAt.IsZero() {
		return wall
	}
	return humanSeconds(rep.Summary.ClusterSeconds) + " of cluster time, " + wall
}

// clusterSpan is the run's start and end on the cluster's clock, the one node
// phase times use, so that phases can be read against the run.
func clusterSpan(rep Report) string {
	s := "started " + stamp(rep.ClusterStartedAt)
	if !rep.ClusterFinishedAt.IsZero() {
		s += ", finished " + stamp(rep.ClusterFinishedAt)
	}
	return s + " (node and phase times are on this clock)"
}
