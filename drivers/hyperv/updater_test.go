package hyperv_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/hyperv"
	"github.com/droverhq/drover/drivers/hyperv/wsmantest"
)

func openUpdater(t *testing.T, d drivers.Driver, raw map[string]any) (drivers.Updater, error) {
	t.Helper()
	cfg := hyperv.NewUpdaterConfig()
	if err := drivers.Decode(raw, cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.Open(context.Background(), drivers.Env{Driver: d})
}

func TestWindowsUpdateScanInstallAndSystemTaskFallback(t *testing.T) {
	upd := []wsmantest.Update{{Title: "2026-11 Cumulative Update (KB5070001)", KB: "5070001", ID: "u1"}, {Title: "Defender platform (KB4052623)", KB: "4052623", ID: "u2"}}
	m := wsmantest.NewModel("HVCLUSTER01", 1, wsmantest.Timing{Install: 300 * time.Millisecond},
		[]wsmantest.NodeSpec{{Name: "HV1", MemoryMiB: 1024, Updates: upd}, {Name: "HV2", MemoryMiB: 1024, Updates: upd, RefuseNetworkWU: true}}, nil)
	c := startCluster(t, m)
	d := mustDriver(t, c, nil)
	u, err := openUpdater(t, d, map[string]any{"poll_interval": "50ms"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, node := range []string{"HV1", "HV2"} {
		pending, err := u.Scan(ctx, node)
		if err != nil || len(pending) != 2 || pending[0].Version != "KB5070001" {
			t.Fatalf("scan %s: %+v, %v", node, pending, err)
		}
		res, err := u.Install(ctx, node)
		if err != nil {
			t.Fatalf("install %s: %v", node, err)
		}
		if len(res.Installed) != 2 || !res.RebootRequired {
			t.Errorf("install %s: %+v; want 2 installed, reboot required", node, res)
		}
		if pending, err := u.Scan(ctx, node); err != nil || len(pending) != 0 {
			t.Errorf("scan %s after install: %+v, %v; want none", node, pending, err)
		}
		res, err = u.Install(ctx, node)
		if err != nil || len(res.Installed) != 0 || res.RebootRequired {
			t.Errorf("install %s with nothing pending: %+v, %v; want an empty result", node, res, err)
		}
	}
	noRejected(t, m)

	m2 := wsmantest.NewModel("HVCLUSTER01", 1, wsmantest.Timing{}, []wsmantest.NodeSpec{{Name: "HV1", Updates: upd, RefuseNetworkWU: true}}, nil)
	c2 := startCluster(t, m2)
	d2 := mustDriver(t, c2, nil)
	never, err := openUpdater(t, d2, map[string]any{"fallback": "never"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := never.Install(ctx, "HV1"); err == nil || !strings.Contains(err.Error(), "wu_denied") {
		t.Errorf("install refused to the network logon with fallback never: %v", err)
	}
}

func TestWindowsUpdateConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		raw   map[string]any
		field string
	}{
		{"criteria-over-the-command-line-limit", map[string]any{"criteria": strings.Repeat("IsInstalled=0 and ", 200)}, "criteria"},
		{"empty-criteria", map[string]any{"criteria": " "}, "criteria"},
		{"unknown-fallback", map[string]any{"fallback": "sometimes"}, "fallback"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := hyperv.NewUpdaterConfig()
			if err := drivers.Decode(tc.raw, cfg); err != nil {
				t.Fatal(err)
			}
			err := cfg.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
				t.Errorf("validate: %v; want an error naming %s", err, tc.field)
			}
		})
	}
	if err := hyperv.NewUpdaterConfig().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	if hyperv.NewUpdaterConfig().Criteria != "IsInstalled=0 and Type='Software' and IsHidden=0 and IsAssigned=1" {
		t.Error("the default criteria is not CAU's")
	}
	if _, err := openUpdater(t, nil, map[string]any{}); err == nil || !strings.Contains(err.Error(), "cluster.driver: hyperv") {
		t.Errorf("windows_update without the hyperv driver: %v", err)
	}
}
