package readiness

import (
	"testing"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/orchestrator"
)

func TestCheckRebootEvidence(t *testing.T) {
	tests := []struct {
		name     string
		bootIDs  bool
		evidence string
		want     CheckStatus
	}{
		{name: "boot-ids-strict", bootIDs: true, evidence: orchestrator.RebootEvidenceStrict, want: CheckPass},
		{name: "no-boot-ids-strict-warns", evidence: orchestrator.RebootEvidenceStrict, want: CheckWarn},
		{name: "first-ready-warns-even-with-boot-ids", bootIDs: true, evidence: orchestrator.RebootEvidenceFirstReady, want: CheckWarn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := orchestrator.DefaultPolicy()
			p.RebootEvidence = tt.evidence
			c := checkRebootEvidence(drivers.Capabilities{BootID: tt.bootIDs}, p)
			if c.Status != tt.want || (c.Status == CheckWarn && c.Remedy == "") {
				t.Errorf("check = %s %q (remedy %q), want %s with a remedy", c.Status, c.Message, c.Remedy, tt.want)
			}
		})
	}
}
