package orchestrator

import (
	"testing"

	"github.com/droverhq/drover/drivers"
)

func TestCheckRebootEvidence(t *testing.T) {
	tests := []struct {
		name     string
		bootIDs  bool
		evidence string
		want     CheckStatus
	}{
		{name: "boot-ids-strict", bootIDs: true, evidence: RebootEvidenceStrict, want: CheckPass},
		{name: "no-boot-ids-strict-warns", evidence: RebootEvidenceStrict, want: CheckWarn},
		{name: "first-ready-warns-even-with-boot-ids", bootIDs: true, evidence: RebootEvidenceFirstReady, want: CheckWarn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DefaultPolicy()
			p.RebootEvidence = tt.evidence
			c := checkRebootEvidence(drivers.Capabilities{BootID: tt.bootIDs}, p)
			if c.Status != tt.want || (c.Status == CheckWarn && c.Remedy == "") {
				t.Errorf("check = %s %q (remedy %q), want %s with a remedy", c.Status, c.Message, c.Remedy, tt.want)
			}
		})
	}
}
