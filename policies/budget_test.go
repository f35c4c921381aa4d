package policies

import (
	"strings"
	"testing"
)

func TestFailureBudget(t *testing.T) {
	tests := []struct {
		name             string
		maxFailed, nodes int
		failed           int
		wantBudget       int
		wantExceeded     bool
	}{
		{name: "default-third-of-nine", maxFailed: -1, nodes: 9, failed: 3, wantBudget: 3},
		{name: "default-third-of-nine-over", maxFailed: -1, nodes: 9, failed: 4, wantBudget: 3, wantExceeded: true},
		{name: "default-two-nodes-tolerate-none", maxFailed: -1, nodes: 2, failed: 1, wantBudget: 0, wantExceeded: true},
		{name: "default-no-nodes", maxFailed: -1, nodes: -1, wantBudget: 0},
		{name: "zero-budget-first-failure", maxFailed: 0, nodes: 64, failed: 1, wantExceeded: true},
		{name: "at-the-limit", maxFailed: 2, nodes: 64, failed: 2, wantBudget: 2},
		{name: "over-the-limit", maxFailed: 2, nodes: 64, failed: 3, wantBudget: 2, wantExceeded: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewFailureBudget(tt.maxFailed, tt.nodes)
			err := b.Exceeded(tt.failed)
			if b.MaxFailedNodes != tt.wantBudget || (err != nil) != tt.wantExceeded {
				t.Errorf("budget %d, Exceeded(%d) = %v; want %d, exceeded %v", b.MaxFailedNodes, tt.failed, err, tt.wantBudget, tt.wantExceeded)
			}
			if err != nil && !strings.Contains(err.Error(), "policy.max_failed_nodes") {
				t.Errorf("error %q does not name the key", err)
			}
		})
	}
}
