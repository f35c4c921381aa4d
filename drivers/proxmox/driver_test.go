package proxmox

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/proxmox/pvesim"
)

func TestInventory(t *testing.T) {
	l := newLab(t, testCluster())
	d := l.open(t)
	inv, err := d.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Nodes) != 3 {
		t.Fatalf("nodes %+v", inv.Nodes)
	}
	for _, n := range inv.Nodes {
		if n.State != cluster.NodeUp || n.MemoryMiB != 65536 || n.CPUs != 16 || n.BootID == "" || n.Labels["kernel"] == "" {
			t.Errorf("node %+v", n)
		}
	}
	for _, tc := range []struct {
		vm         string
		migratable bool
		reason     string
	}{
		{"101", true, ""},
		{"103", true, ""}, // local disks: migratable with with-local-disks
		{"105", false, "hostpci0"},
		{"200", true, ""}, // HA moves it by restart

		{"201", false, "CT 201 (mon1)"},
	} {
		vm, ok := inv.VM(tc.vm)
		if !ok {
			t.Errorf("vm %s missing", tc.vm)
			continue
		}
		if vm.Migratable != tc.migratable || !strings.Contains(vm.NotMigratableReason, tc.reason) {
			t.Errorf("vm %s: migratable=%v reason %q, want %v and %q", tc.vm, vm.Migratable, vm.NotMigratableReason, tc.migratable, tc.reason)
		}
	}
	if vm, _ := inv.VM("103"); vm.MemoryMiB != 4096 || vm.VCPUs != 4 || vm.Power != cluster.PowerRunning || vm.Node != "pve1" {
		t.Errorf("vm 103 %+v", vm)
	}
}

// TestPauseMigrateRebootResume walks one node through Drover's steps: HA moves its
// guests on pause, the driver moves a guest with a local disk, the reboot is seen as
// done only after uptime resets and Ceph is back, noout is set around it, and
// resume brings HA's guests back.
func TestPauseMigrateRebootResume(t *testing.T) {
	l := newLab(t, testCluster())
	d := l.open(t)
	ctx := context.Background()
	m := l.c.Model

	if err := d.PauseNode(ctx, "pve1", drivers.PauseMark("r1")); err != nil {
		t.Fatal(err)
	}
	s := m.Snapshot()
	for _, id := range []int{101, 102, 200} {
		if g := guestOn(s, id); g.Node == "pve1" {
			t.Errorf("HA guest %d still on pve1 after PauseNode", id)
		}
	}
	if g := guestOn(s, 103); g.Node != "pve1" {
		t.Errorf("non-HA guest 103 moved by HA to %s", g.Node)
	}
	inv, err := d.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := inv.Node("pve1"); !n.Paused || n.State != cluster.NodePaused {
		t.Errorf("pve1 after pause: %+v", n)
	}

	var mu sync.Mutex
	var seen []drivers.MigrationProgress
	res, err := d.Migrate(ctx, drivers.MigrateRequest{VM: "103", From: "pve1", To: "pve3"}, func(p drivers.MigrationProgress) {
		mu.Lock()
		seen = append(seen, p)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if g := guestOn(m.Snapshot(), 103); g.Node != "pve3" {
		t.Fatalf("vm 103 on %s after Migrate", g.Node)
	}
	if len(seen) == 0 || res.TransferredMiB < 4096 {
		t.Errorf("progress %d reports, transferred %.0f MiB (want memory and the 4 GiB local disk)", len(seen), res.TransferredMiB)
	}
	if again, err := d.Migrate(ctx, drivers.MigrateRequest{VM: "103", From: "pve1", To: "pve3"}, nil); err != nil || !again.AlreadyThere {
		t.Errorf("second Migrate = %+v, %v; want already there", again, err)
	}

	bootBefore, _ := inv.Node("pve1")
	if err := d.RebootNode(ctx, "pve1"); err != nil {
		t.Fatal(err)
	}
	if !m.Snapshot().Noout {
		t.Error("noout not set before the reboot")
	}
	if ready, err := d.NodeReady(ctx, "pve1"); err != nil || ready {
		t.Errorf("NodeReady right after the reboot request = %v, %v", ready, err)
	}
	// pve1 is the first endpoint: while it is down the driver reads through the next.
	waitUntil(t, "pve1 down", 10*time.Second, func() bool { return !m.Online("pve1") })
	inv, err = d.Inventory(ctx)
	if err != nil {
		t.Fatalf("inventory while pve1 (the first endpoint) is down: %v", err)
	}
	if n, _ := inv.Node("pve1"); n.State != cluster.NodeRebooting {
		t.Errorf("pve1 while down: %+v, want rebooting", n)
	}
	waitUntil(t, "pve1 ready again", 20*time.Second, func() bool {
		ok, err := d.NodeReady(ctx, "pve1")
		return err == nil && ok
	})
	s = m.Snapshot()
	if s.Nodes[0].Reboots != 1 || s.Noout {
		t.Errorf("after ready: reboots=%d noout=%v", s.Nodes[0].Reboots, s.Noout)
	}
	inv, err = d.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := inv.Node("pve1"); n.BootID == bootBefore.BootID || !n.Paused {
		t.Errorf("after reboot: boot id %q (was %q), paused %v (maintenance survives reboots)", n.BootID, bootBefore.BootID, n.Paused)
	}

	if err := d.ResumeNode(ctx, "pve1"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "HA guests back on pve1", 20*time.Second, func() bool {
		s := m.Snapshot()
		return guestOn(s, 101).Node == "pve1" && guestOn(s, 102).Node == "pve1" && guestOn(s, 200).Node == "pve1"
	})
	st := m.Snapshot().Stats
	if len(st.PlacedOnMaint) > 0 || len(st.RebootedWithGuests) > 0 || len(st.RebootsNoNoout) > 0 {
		t.Errorf("unsafe: %+v", st)
	}
}

// TestMigrate_CancelStopsTask: a cancelled Migrate stops the PVE task (DELETE) and the
// guest stays on its source.
func TestMigrate_CancelStopsTask(t *testing.T) {
	opts := testCluster()
	opts.Timing = slowTiming()
	l := newLab(t, opts)
	d := l.open(t)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		_, err := d.Migrate(ctx, drivers.MigrateRequest{VM: "104", From: "pve2", To: "pve3"}, func(drivers.MigrationProgress) {
			select {
			case got <- struct{}{}:
			default:
			}
		})
		done <- err
	}()
	select {
	case <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("no progress reported")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Migrate after cancel = %v", err)
	}
	waitUntil(t, "migration stopped", 10*time.Second, func() bool {
		s := l.c.Model.Snapshot()
		return s.Stats.CancelledMigration == 1 && guestOn(s, 104).Lock == ""
	})
	if g := guestOn(l.c.Model.Snapshot(), 104); g.Node != "pve2" || g.Status != "running" {
		t.Errorf("vm 104 after cancel: %+v", g)
	}
}

func slowTiming() pvesim.Timing {
	tm := pvesim.DefaultTiming()
	tm.MigrationMiBs = 256
	return tm
}

// TestMigrate_HAGuestFollowsNode: an HA guest's migrate only queues a request; the
// driver returns once the guest runs on the target.
func TestMigrate_HAGuestFollowsNode(t *testing.T) {
	l := newLab(t, testCluster())
	d := l.open(t)
	if _, err := d.Migrate(context.Background(), drivers.MigrateRequest{VM: "101", From: "pve1", To: "pve2"}, nil); err != nil {
		t.Fatal(err)
	}
	if g := guestOn(l.c.Model.Snapshot(), 101); g.Node != "pve2" || g.Lock != "" {
		t.Errorf("vm 101 after HA migrate: %+v", g)
	}
	if _, err := d.Migrate(context.Background(), drivers.MigrateRequest{VM: "200", From: "pve1", To: "pve3"}, nil); err != nil {
		t.Fatalf("HA container: %v", err)
	}
	if g := guestOn(l.c.Model.Snapshot(), 200); g.Node != "pve3" {
		t.Errorf("CT 200 after HA migrate: %+v", g)
	}
	if _, err := d.Migrate(context.Background(), drivers.MigrateRequest{VM: "201", From: "pve2", To: "pve3"}, nil); !errors.Is(err, drivers.ErrRejected) {
		t.Errorf("migrate of a container without HA = %v, want ErrRejected", err)
	}
	if _, err := d.Migrate(context.Background(), drivers.MigrateRequest{VM: "105", From: "pve3", To: "pve2"}, nil); !errors.Is(err, drivers.ErrRejected) {
		t.Errorf("migrate of a VM with a PCI device = %v, want ErrRejected", err)
	}
}

// TestReboot_NoCephNoNoout: ceph_noout auto on a cluster without Ceph sends no ceph
// command, and a node is still ready only after its uptime reset.
func TestReboot_NoCephNoNoout(t *testing.T) {
	opts := testCluster()
	opts.Ceph = false
	l := newLab(t, opts)
	d := l.open(t)
	ctx := context.Background()
	if err := d.RebootNode(ctx, "pve2"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "pve2 ready", 20*time.Second, func() bool {
		ok, err := d.NodeReady(ctx, "pve2")
		return err == nil && ok
	})
	s := l.c.Model.Snapshot()
	if s.Nodes[1].Reboots != 1 {
		t.Errorf("pve2 ready after %d reboots", s.Nodes[1].Reboots)
	}
	for _, c := range s.Stats.SSHCommands {
		if strings.Contains(c, "ceph") {
			t.Errorf("ceph command without Ceph: %s", c)
		}
	}
}
