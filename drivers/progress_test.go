package drivers_test

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/droverhq/drover/drivers"
)

func TestMigrationProgress_MarshalJSON(t *testing.T) {
	tests := []struct {
		name string
		p    drivers.MigrationProgress
		want map[string]any
	}{
		{name: "in-flight", p: drivers.MigrationProgress{VM: "api-2", From: "n4", To: "n1", Phase: "precopy", Round: 1, TransferredMiB: 9.75, RemainingMiB: 2038.5, Elapsed: 2027157300 * time.Nanosecond},
			want: map[string]any{"vm": "api-2", "from": "n4", "to": "n1", "phase": "precopy", "round": 1.0, "transferred_mib": 9.75, "remaining_mib": 2038.5, "elapsed_seconds": 2.0271573}},
		{name: "zero-values-are-written", p: drivers.MigrationProgress{VM: "v", Phase: "setup"},
			want: map[string]any{"vm": "v", "from": "", "to": "", "phase": "setup", "round": 0.0, "transferred_mib": 0.0, "remaining_mib": 0.0, "elapsed_seconds": 0.0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Through a pointer field, as orchestrator.Event carries it.
			b, err := json.Marshal(struct {
				P *drivers.MigrationProgress `json:"progress"`
			}{&tt.p})
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				P map[string]any `json:"progress"`
			}
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got.P, tt.want) {
				t.Errorf("JSON keys %v\n got %s\nwant %v", slices.Sorted(maps.Keys(got.P)), b, tt.want)
			}
			var back drivers.MigrationProgress
			if err := json.Unmarshal(b[len(`{"progress":`):len(b)-1], &back); err != nil {
				t.Fatal(err)
			}
			if back != tt.p {
				t.Errorf("round trip = %+v, want %+v", back, tt.p)
			}
		})
	}
}
