package orchestrator_test

import (
	"context"
	"errors"
	"testing"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/orchestrator/readiness"
)

// platformDriver is the sim driver with platform checks of its own, as the hyperv,
// vsphere and proxmox drivers have.
type platformDriver struct {
	drivers.Driver
	checks []drivers.ReadinessCheck
	err    error
}

func (d platformDriver) Readiness(context.Context) ([]drivers.ReadinessCheck, error) {
	return d.checks, d.err
}

func TestAnalyze_PlatformChecks(t *testing.T) {
	h := newHarness(t, small)
	tests := []struct {
		name      string
		checks    []drivers.ReadinessCheck
		err       error
		want      map[string]readiness.CheckStatus
		wantReady bool
	}{
		{name: "passes-are-listed", checks: []drivers.ReadinessCheck{{Name: "hv.quorum", Status: drivers.CheckPass, Message: "quorum ok"}},
			want: map[string]readiness.CheckStatus{"hv.quorum": readiness.CheckPass}, wantReady: true},
		{name: "a-warning-keeps-it-ready", checks: []drivers.ReadinessCheck{{Name: "hv.reboot_pending", Status: drivers.CheckWarn, Message: "pending on n2"}},
			want: map[string]readiness.CheckStatus{"hv.reboot_pending": readiness.CheckWarn}, wantReady: true},
		{name: "a-failure-is-not-ready", checks: []drivers.ReadinessCheck{{Name: "hv.csvs", Status: drivers.CheckFail, Message: "Cluster Disk 2 offline", Remedy: "bring it online"}},
			want: map[string]readiness.CheckStatus{"hv.csvs": readiness.CheckFail}},
		{name: "an-unknown-status-fails-closed", checks: []drivers.ReadinessCheck{{Name: "hv.odd", Status: "PASS!", Message: "fine"}},
			want: map[string]readiness.CheckStatus{"hv.odd": readiness.CheckFail}},
		{name: "checks-that-cannot-run-fail", err: errors.New("access denied"),
			want: map[string]readiness.CheckStatus{"platform": readiness.CheckFail}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			drv := platformDriver{Driver: h.drv, checks: tt.checks, err: tt.err}
			a := readiness.Analyze(context.Background(), readiness.AnalyzeConfig{
				Cluster: "test", Policy: testPolicy(nil), Driver: drv, Updater: h.drv,
			})
			for name, want := range tt.want {
				c, ok := checkOf(a, name)
				if !ok || c.Status != want {
					t.Errorf("check %s = %+v (found %v), want status %s", name, c, ok, want)
				}
			}
			if a.Ready != tt.wantReady {
				t.Errorf("ready = %v, want %v (checks %+v)", a.Ready, tt.wantReady, a.Checks)
			}
		})
	}
}
