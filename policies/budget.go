package policies

import "errors"

// DefaultRetriesPerNode is CAU's MaxRetriesPerNode default.
const DefaultRetriesPerNode = 3

// DefaultMaxFailedNodes is CAU's default failure budget: a third of the nodes, rounded
// down (so a cluster of 2 tolerates no failed node).
func DefaultMaxFailedNodes(nodes int) int { return max(nodes, 0) / 3 }

// Budget is how much failure a run tolerates.
type Budget struct {
	// MaxFailedNodes is how many nodes may fail before the run stops.
	MaxFailedNodes int `json:"max_failed_nodes"`
	// RetriesPerNode is how many times a failed node is tried again.
	RetriesPerNode int `json:"retries_per_node"`
}

// DefaultBudget is the budget of a run over nodes nodes.
func DefaultBudget(nodes int) Budget {
	return Budget{MaxFailedNodes: DefaultMaxFailedNodes(nodes), RetriesPerNode: DefaultRetriesPerNode}
}

// Validate reports negative limits.
func (b Budget) Validate() error {
	var errs []error
	if b.MaxFailedNodes < 0 {
		errs = append(errs, fieldf("max_failed_nodes", "use 0 (stop at the first failure) or more", "%d is negative", b.MaxFailedNodes))
	}
	if b.RetriesPerNode < 0 {
		errs = append(errs, fieldf("retries_per_node", "use 0 (no retry) or more", "%d is negative", b.RetriesPerNode))
	}
	return errors.Join(errs...)
}

// Exceeded reports whether failed nodes are more than the run tolerates: stop the run.
func (b Budget) Exceeded(failed int) bool { return failed > b.MaxFailedNodes }

// Retry reports whether a node that has failed `failures` times may be tried again.
func (b Budget) Retry(failures int) bool { return failures <= b.RetriesPerNode }
