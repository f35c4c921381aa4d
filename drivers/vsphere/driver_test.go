package vsphere

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/vsphere/vcsimstrict"
)

const passEnv = "DROVER_TEST_VSPHERE_PASSWORD"

func startSim(t *testing.T, opts vcsimstrict.Options) *vcsimstrict.Sim {
	t.Helper()
	sim, err := vcsimstrict.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	return sim
}

func simConfig(sim *vcsimstrict.Sim) *Config {
	c := NewConfig()
	c.URL = sim.URL.String()
	c.Username = sim.Options().Username
	c.PasswordEnv = passEnv
	c.Datacenter = "DC0"
	c.Cluster = "DC0_C0"
	c.PollInterval = 20 * time.Millisecond
	c.MaintenanceTimeout = 20 * time.Second
	if sim.URL.Scheme == "https" {
		c.Insecure = true
	}
	return c
}

func openSim(t *testing.T, sim *vcsimstrict.Sim) *Driver {
	t.Helper()
	t.Setenv(passEnv, sim.Options().Password)
	d, err := simConfig(sim).Open(context.Background(), drivers.Env{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d.(*Driver)
}

func inventory(t *testing.T, d *Driver) cluster.Inventory {
	t.Helper()
	inv, err := d.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := inv.Validate(); err != nil {
		t.Fatalf("inventory does not validate: %v", err)
	}
	return inv
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// setDRS sets the simulated cluster's DRS automation directly in vcsim's model.
func setDRS(t *testing.T, sim *vcsimstrict.Sim, b types.DrsBehavior) {
	t.Helper()
	cl := sim.Model().Map().Any("ClusterComputeResource").(*simulator.ClusterComputeResource)
	ctx := sim.Model().Service.Context
	ctx.WithLock(cl, func() {
		cfg := cl.ConfigurationEx.(*types.ClusterConfigInfoEx)
		cfg.DrsConfig.Enabled = types.NewBool(true)
		cfg.DrsConfig.DefaultVmBehavior = b
	})
}

func drsBehavior(t *testing.T, d *Driver) types.DrsBehavior {
	t.Helper()
	drs, _, _, err := d.drsConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return drs.DefaultVmBehavior
}

func TestInventoryOfTheSimulator(t *testing.T) {
	sim := startSim(t, vcsimstrict.Options{})
	d := openSim(t, sim)
	inv := inventory(t, d)
	if len(inv.Nodes) != 4 || len(inv.VMs) != 16 {
		t.Fatalf("%d nodes, %d VMs; want 4, 16", len(inv.Nodes), len(inv.VMs))
	}
	for _, n := range inv.Nodes {
		if n.State != cluster.NodeUp || n.MemoryMiB < 4000 || n.CPUs == 0 || n.BootID == "" || n.Labels["vsphere.build"] != sim.Options().Build {
			t.Errorf("node %+v", n)
		}
		if got := len(inv.VMsOn(n.Name)); got != 4 {
			t.Errorf("node %s runs %d VMs, want 4", n.Name, got)
		}
	}
	for _, v := range inv.VMs {
		if !v.Migratable || v.Power != cluster.PowerRunning || v.MemoryMiB != 512 || len(v.Networks) == 0 {
			t.Errorf("vm %+v", v)
		}
	}
	if c := d.Capabilities(); !c.BootID || !c.PauseOwner {
		t.Errorf("capabilities %+v", c)
	}
}

// drain moves every VM off node with the driver, round-robin over the others.
func drain(t *testing.T, d *Driver, node string) {
	t.Helper()
	inv := inventory(t, d)
	var others []string
	for _, n := range inv.Nodes {
		if n.Name != node {
			others = append(others, n.Name)
		}
	}
	for i, vm := range inv.VMsOn(node) {
		res, err := d.Migrate(context.Background(), drivers.MigrateRequest{VM: vm.Name, From: node, To: others[i%len(others)]}, nil)
		if err != nil || res.AlreadyThere {
			t.Fatalf("migrate %s: %+v %v", vm.Name, res, err)
		}
	}
}

func TestPauseDrainRebootResume(t *testing.T) {
	sim := startSim(t, vcsimstrict.Options{RelocateDuration: 100 * time.Millisecond, RebootDuration: 300 * time.Millisecond})
	setDRS(t, sim, types.DrsBehaviorFullyAutomated)
	d := openSim(t, sim)
	ctx := context.Background()
	inv := inventory(t, d)
	node := inv.Nodes[0].Name
	bootBefore := inv.Nodes[0].BootID
	owner := drivers.PauseMark("run-1")

	if err := d.PauseNode(ctx, node, owner); err != nil {
		t.Fatal(err)
	}
	if err := d.PauseNode(ctx, node, owner); err != nil {
		t.Fatalf("a second pause by the same owner: %v", err)
	}
	if err := d.PauseNode(ctx, node, drivers.PauseMark("run-2")); !errors.Is(err, drivers.ErrPausedByOther) {
		t.Fatalf("pause by another owner: %v, want ErrPausedByOther", err)
	}
	n, _ := inventory(t, d).Node(node)
	if !n.Paused || n.PausedBy != owner || n.State != cluster.NodePaused {
		t.Fatalf("paused node %+v", n)
	}
	if b := drsBehavior(t, d); b != types.DrsBehaviorManual {
		t.Fatalf("DRS %s while drover holds a host, want manual", b)
	}
	// vCenter places nothing on a host entering maintenance.
	var other cluster.VM
	for _, v := range inventory(t, d).VMs {
		if v.Node != node {
			other = v
			break
		}
	}
	if _, err := d.Migrate(ctx, drivers.MigrateRequest{VM: other.Name, From: other.Node, To: node}, nil); !errors.Is(err, drivers.ErrRejected) {
		t.Fatalf("migration onto a paused host: %v, want ErrRejected", err)
	}
	drain(t, d, node)
	if err := d.RebootNode(ctx, node); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the host back with a new boot id", 60*time.Second, func() bool {
		ready, err := d.NodeReady(ctx, node)
		n, _ := inventory(t, d).Node(node)
		return err == nil && ready && n.BootID != bootBefore
	})
	if err := d.ResumeNode(ctx, node); err != nil {
		t.Fatal(err)
	}
	n, _ = inventory(t, d).Node(node)
	if n.Paused || n.PausedBy != "" || n.State != cluster.NodeUp {
		t.Fatalf("resumed node %+v", n)
	}
	if b := drsBehavior(t, d); b != types.DrsBehaviorFullyAutomated {
		t.Fatalf("DRS %s after the last resume, want fullyAutomated back", b)
	}
	st := sim.Stats()
	if len(st.Refused) != 1 || len(st.LostVMs) != 0 || st.Reboots[node] != 1 {
		t.Fatalf("strict sim: refused %v, lost %v, reboots %v", st.Refused, st.LostVMs, st.Reboots)
	}
}

func TestRebootRefusedWhileVMsRemainAndResumeCancelsTheWay(t *testing.T) {
	sim := startSim(t, vcsimstrict.Options{RelocateDuration: 50 * time.Millisecond})
	d := openSim(t, sim)
	d.cfg.MaintenanceTimeout = 300 * time.Millisecond
	ctx := context.Background()
	node := inventory(t, d).Nodes[1].Name
	if err := d.PauseNode(ctx, node, "drover-run:x"); err != nil {
		t.Fatal(err)
	}
	err := d.RebootNode(ctx, node)
	if !errors.Is(err, drivers.ErrRejected) || !strings.Contains(err.Error(), "maintenance_timeout") {
		t.Fatalf("reboot with VMs on the host: %v", err)
	}
	if sim.Stats().Reboots[node] != 0 {
		t.Fatal("the host rebooted with VMs on it")
	}
	if err := d.ResumeNode(ctx, node); err != nil {
		t.Fatal(err)
	}
	h, err := d.host(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	if running, _ := d.runningTask(ctx, h.RecentTask, enterTaskPrefix); running != nil {
		t.Fatal("EnterMaintenanceMode_Task still running after resume")
	}
	// Placements work again.
	inv := inventory(t, d)
	for _, v := range inv.VMs {
		if v.Node != node {
			if _, err := d.Migrate(ctx, drivers.MigrateRequest{VM: v.Name, From: v.Node, To: node}, nil); err != nil {
				t.Fatalf("migration onto the resumed host: %v", err)
			}
			break
		}
	}
}

func TestMigrateFaults(t *testing.T) {
	cases := []struct {
		name     string
		fault    types.BaseMethodFault
		maxCount int
		want     error // nil: the migration succeeds
		thenOK   bool
	}{
		{"insufficient-resources", &types.InsufficientResourcesFault{}, 0, drivers.ErrRejected, false},
		{"invalid-state", &types.InvalidState{}, 0, drivers.ErrRejected, false},
		{"vmotion-failure", &types.GenericVmConfigFault{}, 0, drivers.ErrRejected, false},
		{"system-error", &types.SystemError{Reason: "vMotion stream broke"}, 0, drivers.ErrMigrationFailed, false},
		{"fail-once-then-succeed", &types.InsufficientResourcesFault{}, 1, drivers.ErrRejected, true},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			sim := startSim(t, vcsimstrict.Options{RelocateDuration: 20 * time.Millisecond})
			d := openSim(t, sim)
			sim.AddFaultRule(&simulator.FaultInjectionRule{
				MethodName: "RelocateVM_Task", ObjectType: "VirtualMachine", ObjectName: "*", FaultType: simulator.FaultTypeCustom,
				Probability: 1, Fault: tt.fault, MaxCount: tt.maxCount, Enabled: true,
			})
			inv := inventory(t, d)
			vm := inv.VMsOn(inv.Nodes[0].Name)[0]
			req := drivers.MigrateRequest{VM: vm.Name, From: vm.Node, To: inv.Nodes[1].Name}
			_, err := d.Migrate(context.Background(), req, nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("migrate: %v, want %v", err, tt.want)
			}
			if now, _ := inventory(t, d).VM(vm.Name); now.Node != vm.Node {
				t.Fatalf("a failed migration moved the vm to %s", now.Node)
			}
			if !tt.thenOK {
				return
			}
			if _, err := d.Migrate(context.Background(), req, nil); err != nil {
				t.Fatalf("second attempt: %v", err)
			}
			if now, _ := inventory(t, d).VM(vm.Name); now.Node != req.To {
				t.Fatalf("after the retry the vm is on %s", now.Node)
			}
		})
	}
}

func TestMigrateCancelAndProgress(t *testing.T) {
	sim := startSim(t, vcsimstrict.Options{RelocateDuration: 20 * time.Second})
	d := openSim(t, sim)
	inv := inventory(t, d)
	vm := inv.VMsOn(inv.Nodes[0].Name)[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := make(chan drivers.MigrationProgress, 100)
	done := make(chan error, 1)
	go func() {
		_, err := d.Migrate(ctx, drivers.MigrateRequest{VM: vm.Name, From: vm.Node, To: inv.Nodes[1].Name}, func(p drivers.MigrationProgress) {
			select {
			case seen <- p:
			default:
			}
		})
		done <- err
	}()
	var p drivers.MigrationProgress
	waitUntil(t, "progress with a transferred amount", 30*time.Second, func() bool {
		select {
		case p = <-seen:
		default:
		}
		return p.TransferredMiB > 0
	})
	if p.VM != vm.Name || p.RemainingMiB <= 0 || p.RemainingMiB >= 512 {
		t.Fatalf("progress %+v", p)
	}
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "stays on "+vm.Node) {
		t.Fatalf("cancelled migration: %v", err)
	}
	// The relocation would take 20 s: it stops well before if the cancel reached it.
	waitUntil(t, "the simulator to stop the cancelled relocation", 10*time.Second, func() bool { return sim.Stats().InFlight == 0 })
	if now, _ := inventory(t, d).VM(vm.Name); now.Node != vm.Node {
		t.Fatalf("a cancelled migration moved the vm to %s", now.Node)
	}
}

// A Drover process that died while a relocation ran: the next one joins it.
func TestMigrateJoinsARelocationInFlight(t *testing.T) {
	sim := startSim(t, vcsimstrict.Options{RelocateDuration: 8 * time.Second})
	first := openSim(t, sim)
	second := openSim(t, sim)
	inv := inventory(t, first)
	vm := inv.VMsOn(inv.Nodes[0].Name)[0]
	req := drivers.MigrateRequest{VM: vm.Name, From: vm.Node, To: inv.Nodes[2].Name}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _, _ = first.Migrate(ctx, req, nil) }()
	waitUntil(t, "relocation in flight", 30*time.Second, func() bool { return sim.Stats().MaxInFlightTotal == 1 })
	// Another process sees the relocation in flight, with its target.
	if now, _ := inventory(t, second).VM(vm.Name); now.MigratingTo != req.To || now.Node != vm.Node {
		t.Fatalf("vm in flight reported as %+v, want on %s migrating to %s", now, vm.Node, req.To)
	}
	res, err := second.Migrate(context.Background(), req, nil)
	cancel()
	if err != nil || !res.AlreadyThere {
		t.Fatalf("joined migration: %+v %v", res, err)
	}
	st := sim.Stats()
	if len(st.Refused) != 0 || st.Relocations[vm.Name] != 1 {
		t.Fatalf("refused %v, relocations %v", st.Refused, st.Relocations)
	}
}

func TestOpenErrors(t *testing.T) {
	sim := startSim(t, vcsimstrict.Options{TLS: true})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, sim.CertificatePEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		edit  func(*Config)
		pass  string
		field string // "" = opens
	}{
		{"ca-file-trusted", func(c *Config) { c.Insecure = false; c.CAFile = ca }, "", ""},
		{"insecure", func(*Config) {}, "", ""},
		{"tls-untrusted", func(c *Config) { c.Insecure = false }, "", "cluster.vsphere.url"},
		{"wrong-thumbprint", func(c *Config) { c.Insecure = false; c.Thumbprint = strings.Repeat("AB:", 19) + "AB" }, "", "cluster.vsphere.thumbprint"},
		{"wrong-password", func(*Config) {}, "not-the-password", "cluster.vsphere.password_env"},
		{"password-unset", func(c *Config) { c.PasswordEnv = "DROVER_TEST_UNSET_VAR" }, "", "cluster.vsphere.password_env"},
		{"unknown-datacenter", func(c *Config) { c.Datacenter = "DC9" }, "", "cluster.vsphere.datacenter"},
		{"unknown-cluster", func(c *Config) { c.Cluster = "C9" }, "", "cluster.vsphere.cluster"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			pass := sim.Options().Password
			if tt.pass != "" {
				pass = tt.pass
			}
			t.Setenv(passEnv, pass)
			c := simConfig(sim)
			tt.edit(c)
			d, err := c.Open(context.Background(), drivers.Env{})
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				_ = d.Close()
				return
			}
			var fe *drivers.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || fe.Fix == "" {
				t.Fatalf("open: %v, want a field error on %s", err, tt.field)
			}
			if strings.Contains(err.Error(), sim.Options().Password) || (tt.pass != "" && strings.Contains(err.Error(), tt.pass)) {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

// Drover journals on vCenter before it acts (the saved DRS level, the pause mark, the
// relocation mark). A crash between the note and the action must leave nothing a
// repeated call cannot finish, and no note that misleads the next run.
func TestCrashBetweenJournalAndAction(t *testing.T) {
	ctx := context.Background()
	t.Run("drs-saved-then-crash-before-manual", func(t *testing.T) {
		sim := startSim(t, vcsimstrict.Options{RelocateDuration: 20 * time.Millisecond})
		setDRS(t, sim, types.DrsBehaviorFullyAutomated)
		d := openSim(t, sim)
		_, _, key, err := d.drsConfig(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.setField(ctx, d.cluster.Reference(), key, string(types.DrsBehaviorFullyAutomated)); err != nil {
			t.Fatal(err)
		}
		// The process died here. The next one pauses and resumes as usual.
		node := inventory(t, d).Nodes[0].Name
		if err := d.PauseNode(ctx, node, "drover-run:r2"); err != nil {
			t.Fatal(err)
		}
		if b := drsBehavior(t, d); b != types.DrsBehaviorManual {
			t.Fatalf("DRS %s", b)
		}
		if err := d.ResumeNode(ctx, node); err != nil {
			t.Fatal(err)
		}
		if b := drsBehavior(t, d); b != types.DrsBehaviorFullyAutomated {
			t.Fatalf("DRS %s after resume, want the saved level back", b)
		}
	})
	t.Run("relocation-marked-then-crash-before-relocate", func(t *testing.T) {
		sim := startSim(t, vcsimstrict.Options{RelocateDuration: 20 * time.Millisecond})
		d := openSim(t, sim)
		inv := inventory(t, d)
		vm := inv.VMsOn(inv.Nodes[0].Name)[0]
		where, _, err := d.findVM(ctx, vm.Name)
		if err != nil {
			t.Fatal(err)
		}
		key, err := d.fieldKey(ctx, migrateField, "VirtualMachine", true)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.setField(ctx, where.vm.Self, key, inv.Nodes[1].Name); err != nil {
			t.Fatal(err)
		}
		// The process died before RelocateVM_Task: no relocation runs, so none is
		// reported, and a new migration goes ahead.
		if now, _ := inventory(t, d).VM(vm.Name); now.MigratingTo != "" {
			t.Fatalf("a mark without a task reported as in flight: %+v", now)
		}
		if _, err := d.Migrate(ctx, drivers.MigrateRequest{VM: vm.Name, From: vm.Node, To: inv.Nodes[2].Name}, nil); err != nil {
			t.Fatal(err)
		}
		if now, _ := inventory(t, d).VM(vm.Name); now.Node != inv.Nodes[2].Name || now.MigratingTo != "" {
			t.Fatalf("vm %+v", now)
		}
	})
	t.Run("reboot-issued-then-crash", func(t *testing.T) {
		sim := startSim(t, vcsimstrict.Options{RelocateDuration: 20 * time.Millisecond, RebootDuration: 8 * time.Second})
		d := openSim(t, sim)
		node := inventory(t, d).Nodes[3].Name
		if err := d.PauseNode(ctx, node, "drover-run:r3"); err != nil {
			t.Fatal(err)
		}
		drain(t, d, node)
		before, _ := inventory(t, d).Node(node)
		if err := d.RebootNode(ctx, node); err != nil {
			t.Fatal(err)
		}
		// A new process finds the host down (the orchestrator then does not reboot
		// again) and later back with a new boot ID, still paused under its mark.
		d2 := openSim(t, sim)
		if n, _ := inventory(t, d2).Node(node); n.Ready() {
			t.Fatalf("host right after its reboot: %+v", n)
		}
		if err := d2.RebootNode(ctx, node); !errors.Is(err, drivers.ErrRejected) {
			t.Fatalf("a second reboot of a host that is down: %v", err)
		}
		waitUntil(t, "host back", 60*time.Second, func() bool {
			n, _ := inventory(t, d2).Node(node)
			return n.Ready() && n.BootID != before.BootID
		})
		n, _ := inventory(t, d2).Node(node)
		if !n.Paused || n.PausedBy != "drover-run:r3" {
			t.Fatalf("host after its reboot: %+v", n)
		}
		if st := sim.Stats(); st.Reboots[node] != 1 {
			t.Fatalf("reboots %v", st.Reboots)
		}
	})
}

func TestShutdownAndStart(t *testing.T) {
	sim := startSim(t, vcsimstrict.Options{})
	d := openSim(t, sim)
	ctx := context.Background()
	vm := inventory(t, d).VMs[0]
	if err := d.ShutdownVM(ctx, vm.Name); err != nil {
		t.Fatal(err)
	}
	if now, _ := inventory(t, d).VM(vm.Name); now.Power != cluster.PowerStopped {
		t.Fatalf("after shutdown: %s", now.Power)
	}
	if err := d.ShutdownVM(ctx, vm.Name); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
	if err := d.StartVM(ctx, vm.Name); err != nil {
		t.Fatal(err)
	}
	if now, _ := inventory(t, d).VM(vm.Name); now.Power != cluster.PowerRunning {
		t.Fatalf("after start: %s", now.Power)
	}
	if sim.Stats().PowerOffs[vm.Name] != 1 {
		t.Fatalf("power-offs %v", sim.Stats().PowerOffs)
	}
}
