package policies

import "fmt"

// FailureBudget is how many nodes of a run may fail before the run stops.
type FailureBudget struct {
	// MaxFailedNodes is the most nodes that may fail.
	MaxFailedNodes int `json:"max_failed_nodes"`
}

// NewFailureBudget is the budget of a run over nodes nodes under
// policy.max_failed_nodes; -1 is CAU's default, a third of the nodes rounded down (so
// a cluster of 2 tolerates no failed node).
func NewFailureBudget(maxFailedNodes, nodes int) FailureBudget {
	if maxFailedNodes < 0 {
		return FailureBudget{MaxFailedNodes: max(nodes, 0) / 3}
	}
	return FailureBudget{MaxFailedNodes: maxFailedNodes}
}

// Exceeded returns why the run must stop when failed nodes are more than it
// tolerates, nil otherwise.
func (b FailureBudget) Exceeded(failed int) error {
	if failed > b.MaxFailedNodes {
		return fmt.Errorf("%d nodes failed, more than the budget of %d (policy.max_failed_nodes)", failed, b.MaxFailedNodes)
	}
	return nil
}
