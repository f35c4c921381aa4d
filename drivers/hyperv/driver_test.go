package hyperv_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/hyperv/wsmantest"
)

func TestInventoryOverWinRM(t *testing.T) {
	m := threeNodes(2, wsmantest.Timing{})
	m.SetEnforcedAntiAffinity(true)
	c := startCluster(t, m)
	d := mustDriver(t, c, nil)
	inv, err := d.Inventory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Nodes) != 3 || len(inv.VMs) != 5 {
		t.Fatalf("inventory: %d nodes, %d VMs; want 3, 5: %+v", len(inv.Nodes), len(inv.VMs), inv)
	}
	for _, n := range inv.Nodes {
		if n.State != cluster.NodeUp || n.MemoryMiB != 65536 || n.CPUs != 32 || n.BootID == "" || n.Paused {
			t.Errorf("node %+v: want up, 65536 MiB, 32 CPUs, a boot id", n)
		}
	}
	sql, _ := inv.VM("sql01")
	if sql.Node != "HV1" || sql.MemoryMiB != 8192 || sql.VCPUs != 4 || sql.Power != cluster.PowerRunning || !sql.Migratable ||
		sql.AntiAffinity != "SQL" || !sql.AntiAffinityHard || sql.PreferredNode != "HV1" {
		t.Errorf("sql01: %+v", sql)
	}
	b, _ := inv.VM("build01")
	if b.Migratable || !strings.Contains(b.NotMigratableReason, `D:\VMs\build01.vhdx`) {
		t.Errorf("build01 with a local disk: migratable %v, reason %q; want not migratable, naming the disk", b.Migratable, b.NotMigratableReason)
	}
	noRejected(t, m)
}

func TestPauseMarkAndResume(t *testing.T) {
	m := threeNodes(2, wsmantest.Timing{})
	c := startCluster(t, m)
	d := mustDriver(t, c, nil)
	ctx := t.Context()
	mark := drivers.PauseMark("run-1")
	if err := d.PauseNode(ctx, "HV2", mark); err != nil {
		t.Fatal(err)
	}
	inv, err := d.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := inv.Node("HV2")
	if n.State != cluster.NodePaused || !n.Paused || n.PausedBy != mark {
		t.Fatalf("HV2 after pause: %+v; want paused by %s", n, mark)
	}
	if err := d.PauseNode(ctx, "HV2", mark); err != nil {
		t.Errorf("pause again by the same owner: %v", err)
	}
	err = d.PauseNode(ctx, "HV2", drivers.PauseMark("run-2"))
	if !errors.Is(err, drivers.ErrPausedByOther) {
		t.Errorf("pause by another owner: %v; want ErrPausedByOther", err)
	}
	if err := d.PauseNode(ctx, "HV9", mark); !errors.Is(err, drivers.ErrNotFound) {
		t.Errorf("pause of an unknown node: %v; want ErrNotFound", err)
	}
	if err := d.ResumeNode(ctx, "HV2"); err != nil {
		t.Fatal(err)
	}
	for _, n := range m.Nodes() {
		if n.State != "Up" || n.Description != "" {
			t.Errorf("model node %s after resume: state %s, description %q", n.Name, n.State, n.Description)
		}
	}
	noRejected(t, m)
}

func TestMigrateRespectsMaximumParallelMigrations(t *testing.T) {
	m := threeNodes(2, wsmantest.Timing{Migration: 400 * time.Millisecond})
	c := startCluster(t, m)
	d := mustDriver(t, c, nil)
	ctx := t.Context()
	if _, err := d.Inventory(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	progress := map[string]int{}
	errs := map[string]error{}
	for _, vm := range []string{"sql01", "web01", "web02"} {
		wg.Go(func() {
			_, err := d.Migrate(ctx, drivers.MigrateRequest{VM: vm, From: "HV1", To: "HV3"}, func(p drivers.MigrationProgress) {
				mu.Lock()
				progress[p.VM]++
				mu.Unlock()
			})
			mu.Lock()
			errs[vm] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	for vm, err := range errs {
		if err != nil {
			t.Errorf("migrate %s: %v", vm, err)
		}
	}
	for _, g := range m.Groups() {
		if g.Name == "sql01" || g.Name == "web01" || g.Name == "web02" {
			if g.Owner != "HV3" || g.State != "Online" {
				t.Errorf("%s: on %s (%s); want online on HV3", g.Name, g.Owner, g.State)
			}
		}
	}
	st := m.Stats()
	if st.PeakParallel != 2 || st.MigrationsCompleted != 3 {
		t.Errorf("model: peak %d parallel, %d completed; want 2 (MaximumParallelMigrations), 3", st.PeakParallel, st.MigrationsCompleted)
	}
	if progress["sql01"] == 0 {
		t.Errorf("no progress reported for sql01: %v", progress)
	}
	res, err := d.Migrate(ctx, drivers.MigrateRequest{VM: "sql01", From: "HV1", To: "HV3"}, nil)
	if err != nil || !res.AlreadyThere {
		t.Errorf("migrate to where it is: %+v, %v; want AlreadyThere", res, err)
	}
	noRejected(t, m)
}

func TestMigrateCancelAndFailure(t *testing.T) {
	m := threeNodes(2, wsmantest.Timing{Migration: 2 * time.Second})
	c := startCluster(t, m)
	d := mustDriver(t, c, nil)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		waitFor(t, 5*time.Second, "migration running", func() bool {
			for _, mg := range m.Migrations() {
				if mg.VM == "web01" && mg.State == "Running" {
					return true
				}
			}
			return false
		})
		cancel()
	}()
	_, err := d.Migrate(ctx, drivers.MigrateRequest{VM: "web01", From: "HV1", To: "HV2"}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("migrate cancelled: %v", err)
	}
	for _, mg := range m.Migrations() {
		if mg.VM == "web01" && mg.State != "Terminated" {
			t.Errorf("model migration after cancel: %s; want Terminated (Move-ClusterVirtualMachineRole -Cancel)", mg.State)
		}
	}
	for _, g := range m.Groups() {
		if g.Name == "web01" && g.Owner != "HV1" {
			t.Errorf("web01 on %s after cancel; want HV1", g.Owner)
		}
	}

	m.FailNextMigration("web02")
	_, err = d.Migrate(t.Context(), drivers.MigrateRequest{VM: "web02", From: "HV1", To: "HV2"}, nil)
	if !errors.Is(err, drivers.ErrMigrationFailed) {
		t.Errorf("failing migration: %v; want ErrMigrationFailed", err)
	}
	if err := d.PauseNode(t.Context(), "HV2", "drover-run:x"); err != nil {
		t.Fatal(err)
	}
	_, err = d.Migrate(t.Context(), drivers.MigrateRequest{VM: "web02", From: "HV1", To: "HV2"}, nil)
	if !errors.Is(err, drivers.ErrRejected) {
		t.Errorf("migrate to a paused node: %v; want ErrRejected", err)
	}
	_, err = d.Migrate(t.Context(), drivers.MigrateRequest{VM: "build01", From: "HV3", To: "HV1"}, nil)
	if !errors.Is(err, drivers.ErrRejected) && err == nil {
		t.Errorf("migrate a VM with local disks: %v; want a refusal", err)
	}
	noRejected(t, m)
}

func TestRebootComesBackPausedWithNewBootTime(t *testing.T) {
	m := threeNodes(2, wsmantest.Timing{Down: 700 * time.Millisecond, ServiceStart: 300 * time.Millisecond})
	c := startCluster(t, m)
	d := mustDriver(t, c, nil)
	ctx := t.Context()
	inv, err := d.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := inv.Node("HV3")
	if err := d.PauseNode(ctx, "HV3", "drover-run:r"); err != nil {
		t.Fatal(err)
	}
	if err := d.RebootNode(ctx, "HV3"); err != nil {
		t.Fatal(err)
	}
	// A repeated call (a resumed run) finds the restart scheduled: success, no second reboot.
	if err := d.RebootNode(ctx, "HV3"); err != nil {
		t.Errorf("reboot again while scheduled: %v", err)
	}
	// The command returned before the host went down: it still answers.
	if ok, err := d.NodeReady(ctx, "HV3"); ok || err != nil {
		t.Errorf("ready right after the reboot command: %v, %v; want not ready (boot time unchanged), no error", ok, err)
	}
	waitFor(t, 5*time.Second, "HV3 down", func() bool { return m.Nodes()[2].State == "Down" })
	if ok, err := d.NodeReady(ctx, "HV3"); ok || err != nil {
		t.Errorf("ready while down: %v, %v", ok, err)
	}
	waitFor(t, 10*time.Second, "HV3 ready", func() bool { ok, _ := d.NodeReady(ctx, "HV3"); return ok })
	inv, err = d.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := inv.Node("HV3")
	if after.BootID == before.BootID || after.State != cluster.NodePaused || after.PausedBy != "drover-run:r" {
		t.Errorf("HV3 after reboot: %+v; want a new boot id (was %s), still paused by drover-run:r", after, before.BootID)
	}
	if n := m.Nodes()[2]; n.Reboots != 1 {
		t.Errorf("HV3 rebooted %d times; want 1", n.Reboots)
	}
	noRejected(t, m)
}

func TestNativeDrain(t *testing.T) {
	m := threeNodes(2, wsmantest.Timing{Migration: 200 * time.Millisecond})
	c := startCluster(t, m)
	d := mustDriver(t, c, func(raw, _ map[string]any) { raw["drain"] = "cluster" })
	if !d.Capabilities().NativeDrain {
		t.Fatal("drain: cluster without the native drain capability")
	}
	if err := d.DrainNode(t.Context(), "HV1", nil); err != nil {
		t.Fatal(err)
	}
	for _, g := range m.Groups() {
		if g.Owner == "HV1" {
			t.Errorf("%s still on HV1 after the cluster's drain", g.Name)
		}
	}
	if n := m.Nodes()[0]; n.State != "Paused" || n.DrainStatus != "Completed" {
		t.Errorf("HV1: %s, drain %s; want Paused, Completed", n.State, n.DrainStatus)
	}
	noRejected(t, m)
}
