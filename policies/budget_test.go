package policies

import (
	"strings"
	"testing"
)

func TestDefaultMaxFailedNodes(t *testing.T) {
	tests := []struct{ nodes, want int }{{-1, 0}, {0, 0}, {1, 0}, {2, 0}, {3, 1}, {5, 1}, {8, 2}, {9, 3}, {64, 21}}
	for _, tt := range tests {
		if got := DefaultMaxFailedNodes(tt.nodes); got != tt.want {
			t.Errorf("DefaultMaxFailedNodes(%d) = %d, want %d", tt.nodes, got, tt.want)
		}
	}
	if b := DefaultBudget(9); b != (Budget{MaxFailedNodes: 3, RetriesPerNode: 3}) {
		t.Errorf("DefaultBudget(9) = %+v", b)
	}
}

func TestBudget_Exceeded(t *testing.T) {
	tests := []struct {
		name   string
		budget Budget
		failed int
		want   bool
	}{
		{name: "none-failed", budget: Budget{MaxFailedNodes: 0}, failed: 0, want: false},
		{name: "zero-budget-first-failure", budget: Budget{MaxFailedNodes: 0}, failed: 1, want: true},
		{name: "at-the-limit", budget: Budget{MaxFailedNodes: 2}, failed: 2, want: false},
		{name: "over-the-limit", budget: Budget{MaxFailedNodes: 2}, failed: 3, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.budget.Exceeded(tt.failed); got != tt.want {
				t.Errorf("Exceeded(%d) = %v, want %v", tt.failed, got, tt.want)
			}
		})
	}
}

func TestBudget_Retry(t *testing.T) {
	b := Budget{RetriesPerNode: 3}
	for failures, want := range []bool{true, true, true, true, false, false} {
		if got := b.Retry(failures); got != want {
			t.Errorf("Retry(%d) = %v, want %v", failures, got, want)
		}
	}
	if (Budget{}).Retry(1) {
		t.Error("zero retries allowed a retry")
	}
}

func TestBudget_Validate(t *testing.T) {
	if err := (Budget{MaxFailedNodes: 0, RetriesPerNode: 0}).Validate(); err != nil {
		t.Errorf("zero budget: %v", err)
	}
	err := Budget{MaxFailedNodes: -1, RetriesPerNode: -2}.Validate()
	if err == nil || !strings.Contains(err.Error(), "max_failed_nodes: -1 is negative") || !strings.Contains(err.Error(), "retries_per_node: -2") {
		t.Errorf("Validate = %v", err)
	}
}
