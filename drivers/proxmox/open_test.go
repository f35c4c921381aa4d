package proxmox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/proxmox/pvesim"
)

// TestOpen_Errors: a bad token, a failed TLS check and unknown nodes fail Open with an
// error naming the key to fix; the secret never appears in it.
func TestOpen_Errors(t *testing.T) {
	l := newLab(t, testCluster())
	otherCA := filepath.Join(l.dir, "other.pem")
	other, err := pvesim.NewServer(pvesim.NewModel(pvesim.Options{}), "x@pve!y", "z", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(otherCA, other.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(c *Config)
		field  string
	}{
		{"bad-secret", func(c *Config) { c.TokenSecretEnv = "DROVER_TEST_WRONG_SECRET" }, "token_id"},
		{"unknown-token", func(c *Config) { c.TokenID = "drover@pve!other" }, "token_id"},
		{"wrong-ca", func(c *Config) { c.CAFile = otherCA }, "ca_file"},
		{"system-cas", func(c *Config) { c.CAFile = "" }, "ca_file"},
		{"wrong-fingerprint", func(c *Config) { c.CAFile = ""; c.Fingerprint = strings.Repeat("AB:", 31) + "AB" }, "fingerprint"},
		{"unknown-node", func(c *Config) { c.Nodes["pve9"] = "127.0.0.1:1" }, "nodes.pve9"},
		{"node-without-address", func(c *Config) { delete(c.Nodes, "pve2") }, "nodes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("DROVER_TEST_WRONG_SECRET", "not-the-secret-"+testSecret[:4])
			cfg := l.cfg
			cfg.Nodes = map[string]string{}
			for k, v := range l.cfg.Nodes {
				cfg.Nodes[k] = v
			}
			cfg.RequestTimeout = 3 * time.Second
			tc.mutate(&cfg)
			_, err := cfg.Open(context.Background(), drivers.Env{BaseDir: l.dir})
			var fe *drivers.FieldError
			if !errors.As(err, &fe) || fe.Field != "cluster.proxmox."+tc.field || fe.Fix == "" {
				t.Fatalf("Open = %v, want a field error on %s", err, tc.field)
			}
			if strings.Contains(err.Error(), testSecret) {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
	t.Run("fingerprint-ok", func(t *testing.T) {
		cfg := l.cfg
		cfg.CAFile = ""
		cfg.Fingerprint = l.c.API.Fingerprint
		if _, err := cfg.Open(context.Background(), drivers.Env{BaseDir: l.dir}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestMigrate_JoinsAfterRestart: a driver of a new process finds the migration a
// crashed one started (lock migrate), reports its target and joins it.
func TestMigrate_JoinsAfterRestart(t *testing.T) {
	opts := testCluster()
	opts.Timing = slowTiming()
	l := newLab(t, opts)
	first := l.open(t)
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{}, 1)
	go func() {
		_, _ = first.Migrate(ctx, drivers.MigrateRequest{VM: "104", From: "pve2", To: "pve3"}, func(drivers.MigrationProgress) {
			select {
			case started <- struct{}{}:
			default:
			}
		})
	}()
	<-started
	second := l.open(t)
	inv, err := second.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if vm, _ := inv.VM("104"); vm.MigratingTo != "pve3" || vm.Node != "pve2" {
		t.Fatalf("vm 104 in a new process's inventory: %+v, want migrating to pve3", vm)
	}
	if _, err := second.Migrate(context.Background(), drivers.MigrateRequest{VM: "104", From: "pve2", To: "pve3"}, nil); err != nil {
		t.Fatal(err)
	}
	cancel()
	s := l.c.Model.Snapshot()
	if g := guestOn(s, 104); g.Node != "pve3" || g.Moves != 1 || s.Stats.Migrations != 1 {
		t.Errorf("vm 104 %+v after joining, %d migrations; want one migration to pve3", g, s.Stats.Migrations)
	}
}

func TestReadiness(t *testing.T) {
	opts := testCluster()
	opts.TokenPrivs = []string{"Sys.Audit", "VM.Audit"}
	opts.Nodes[1].RebootRequired = true
	opts.Nodes[1].Maintenance = true
	opts.Nodes[2].Maintenance = true
	l := newLab(t, opts)
	l.c.Model.SetMark("pve2", "drover-run:R")
	d := l.open(t)
	checks, err := d.Readiness(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]drivers.ReadinessCheck{}
	for _, c := range checks {
		got[c.Name] = c
	}
	for _, want := range []struct{ name, status, contains string }{
		{"proxmox_token", "fail", "VM.Migrate"},
		{"proxmox_ssh", "pass", ""},
		{"proxmox_pending_reboot", "warn", "pve2"},
		{"proxmox_quorum", "pass", ""},
		{"proxmox_ha", "pass", ""},
		{"proxmox_maintenance", "warn", "pve2 (mark drover-run:R), pve3 (no drover mark)"},
		{"proxmox_local_devices", "warn", "VM 105 (gpu1): hostpci0"},
		{"proxmox_containers", "warn", "CT 201 (mon1)"},
		{"proxmox_ceph", "pass", ""},
	} {
		c, ok := got[want.name]
		if !ok || c.Status != want.status || !strings.Contains(c.Message, want.contains) {
			t.Errorf("%s = %+v, want %s containing %q", want.name, c, want.status, want.contains)
		}
	}
}
