package orchestrator_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
)

// localStorageCluster: three nodes with room for local disks; "db" and "cache" keep a
// local disk, "web" only a shared one.
const localStorageCluster = `
nodes:
  - {name: n1, memory_mib: 32768, cpus: 16, storage_mib: 204800, updates: [{name: kernel}]}
  - {name: n2, memory_mib: 32768, cpus: 16, storage_mib: 204800, updates: [{name: kernel}]}
  - {name: n3, memory_mib: 32768, cpus: 16, storage_mib: 204800, updates: [{name: kernel}]}
vms:
  - {name: db, node: n1, memory_mib: 4096, disks: [{name: root, size_mib: 40960, local: true}]}
  - {name: cache, node: n2, memory_mib: 2048, disks: [{name: root, size_mib: 10240, local: true}]}
  - {name: web, node: n3, memory_mib: 2048, disks: [{name: data, size_mib: 102400, local: false}]}
`

func TestLocalStorage_MigrateMovesDisksAndPatchesEveryNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, localStorageCluster)
		rep, err := h.apply(context.Background(), testPolicy(nil)) // default: migrate, the sim can
		if err != nil || rep.State != string(runs.StateSucceeded) {
			t.Fatalf("run = %s (%s), %v", rep.State, rep.Error, err)
		}
		h.checkSafety(rep)
		disks := map[string]float64{}
		for _, n := range rep.Nodes {
			if n.State != orchestrator.NodeDone || !n.Rebooted {
				t.Errorf("node %s = %s, rebooted %v", n.Name, n.State, n.Rebooted)
			}
			for _, m := range n.Migrations {
				disks[m.VM] += m.DiskMiB
				if m.DiskMiB > m.TransferredMiB {
					t.Errorf("%s: disk_mib %.0f above transferred_mib %.0f", m.VM, m.DiskMiB, m.TransferredMiB)
				}
			}
		}
		// Every VM moved at least once; disks moved with db and cache only.
		if disks["db"] < 40960 || disks["cache"] < 10240 || disks["web"] != 0 {
			t.Errorf("disk MiB moved per VM %v, want db >= 40960, cache >= 10240, web 0", disks)
		}
		if rep.Summary.DiskMiB < 51200 {
			t.Errorf("summary disk_mib %.0f, want at least 51200", rep.Summary.DiskMiB)
		}
		// Space follows the disks: the cluster's free storage is what it was.
		var before, after int64
		for _, n := range h.before.Nodes {
			before += n.StorageMiB
		}
		for _, n := range h.inventory().Nodes {
			after += n.StorageMiB
		}
		if before != after {
			t.Errorf("free storage %d MiB after the run, %d before: space leaked", after, before)
		}
	})
}

func TestLocalStorage_ModesOtherThanMigrate(t *testing.T) {
	tests := []struct {
		name string
		mode string
		// wantDB: the state of n1 (db's node); web is moved in every mode.
		wantN1      string
		wantDBMoved bool
	}{
		{name: "fail-leaves-the-node-unpatched", mode: "fail", wantN1: orchestrator.NodeFailed},
		{name: "shutdown-patches-with-the-vm-off", mode: "shutdown", wantN1: orchestrator.NodeDone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, localStorageCluster)
				rep, _ := h.apply(context.Background(), testPolicy(func(p *orchestrator.Policy) {
					p.LocalStorage = tt.mode
					p.MaxFailedNodes = 3
				}))
				n1 := h.node(rep, "n1")
				if n1.State != tt.wantN1 {
					t.Errorf("n1 = %s (%s), want %s", n1.State, n1.Failure, tt.wantN1)
				}
				if tt.mode == "fail" && !strings.Contains(n1.Failure, "local disks") {
					t.Errorf("n1 failure %q does not name the local disks", n1.Failure)
				}
				for _, n := range rep.Nodes {
					for _, m := range n.Migrations {
						if m.VM == "db" || m.VM == "cache" {
							t.Errorf("%s moved (%s -> %s) under local_storage=%s", m.VM, m.From, m.To, tt.mode)
						}
					}
				}
				if v, _ := h.inventory().VM("db"); v.Node != "n1" || v.Power != cluster.PowerRunning {
					t.Errorf("db on %s %s after the run, want on n1 running", v.Node, v.Power)
				}
			})
		})
	}
}

// noStorage is the sim without storage migration, as a driver that cannot do it.
type noStorage struct{ drivers.Driver }

func (d noStorage) Capabilities() drivers.Capabilities {
	c := d.Driver.Capabilities()
	c.StorageMigration = false
	return c
}

func TestLocalStorage_MigrateWithoutCapabilityIsAConfigError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, localStorageCluster)
		h.swapDriver(noStorage{h.drv})
		_, err := h.eng.Prepare(context.Background(), testPolicy(func(p *orchestrator.Policy) { p.LocalStorage = "migrate" }))
		var fe *drivers.FieldError
		if !errors.As(err, &fe) || fe.Field != "policy.local_storage" {
			t.Fatalf("Prepare = %v, want a field error on policy.local_storage", err)
		}
		// The default falls back to non_migratable: with fail, db's and cache's nodes
		// are blocked in the plan.
		prep, err := h.eng.Prepare(context.Background(), testPolicy(nil))
		if err != nil {
			t.Fatal(err)
		}
		if prep.Policy.LocalStorage != "" {
			t.Errorf("resolved local_storage %q without the capability, want the default kept", prep.Policy.LocalStorage)
		}
		blocked := 0
		for _, n := range prep.Plan.Nodes {
			if n.Status == "blocked" {
				blocked++
			}
		}
		if blocked != 2 {
			t.Errorf("%d nodes blocked in the plan, want 2 (db's and cache's)", blocked)
		}
	})
}

func TestPolicy_LocalStorageUnknownModeNamesTheKey(t *testing.T) {
	p := orchestrator.DefaultPolicy()
	p.LocalStorage = "copy"
	err := p.Validate()
	if err == nil || !strings.Contains(err.Error(), "policy.local_storage") || !strings.Contains(err.Error(), "migrate, fail, shutdown or skip") {
		t.Fatalf("Validate = %v, want an error naming policy.local_storage and the modes", err)
	}
}

// TestLocalStorage_CrashDuringStorageMigration kills the process while a VM is being
// moved with its disks (the first and the second migration, before and after it took
// effect), then resumes in a new process: every VM ends on exactly one node, running,
// with its disks' space accounted once, and every node is patched.
func TestLocalStorage_CrashDuringStorageMigration(t *testing.T) {
	for _, n := range []int32{1, 2} {
		for _, when := range []string{"before", "during", "after"} {
			t.Run(fmt.Sprintf("migrate-%d-%s", n, when), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					h := newHarness(t, localStorageCluster)
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					cd := &crashingDriver{detachingDriver: &detachingDriver{Driver: h.drv}, op: "migrate", n: n, after: when == "after"}
					cd.die = func() {
						h.store.Close()
						cancel()
					}
					if when == "during" {
						h.engineWith(&dyingMidCopy{crashingDriver: cd}, cd)
					} else {
						h.engineWith(cd, cd)
					}
					id := h.start(ctx, testPolicy(nil))
					if _, err := h.eng.Execute(ctx, id); err == nil || !cd.crashed.Load() {
						t.Fatalf("first Execute = %v, crashed %v: the crash never happened", err, cd.crashed.Load())
					}
					cd.wg.Wait()
					h.openStore()
					if _, err := h.eng.Execute(context.Background(), id); err != nil {
						t.Fatalf("resumed Execute: %v", err)
					}
					rep := h.report(id)
					if rep.State != string(runs.StateSucceeded) {
						t.Fatalf("run = %s (%s), want succeeded", rep.State, rep.Error)
					}
					h.checkSafety(rep)
					inv := h.inventory()
					var free int64
					for _, nd := range inv.Nodes {
						free += nd.StorageMiB
					}
					var before int64
					for _, nd := range h.before.Nodes {
						before += nd.StorageMiB
					}
					if free != before {
						t.Errorf("free storage %d MiB after the resumed run, %d before: a disk is counted twice or lost", free, before)
					}
					for _, v := range inv.VMs {
						if !v.Running() || v.MigratingTo != "" {
							t.Errorf("vm %s is %s (migrating to %q) after the run", v.Name, v.Power, v.MigratingTo)
						}
					}
				})
			})
		}
	}
}

// dyingMidCopy dies while the n-th migration copies its disks: the migration goes
// on on the platform without the process.
type dyingMidCopy struct{ *crashingDriver }

func (d *dyingMidCopy) Migrate(ctx context.Context, req drivers.MigrateRequest, progress func(drivers.MigrationProgress)) (drivers.MigrationResult, error) {
	if !d.at("migrate") {
		return d.detachingDriver.Migrate(ctx, req, progress)
	}
	d.detachingDriver.wg.Go(func() {
		d.detachingDriver.Driver.Migrate(context.WithoutCancel(ctx), req, nil)
	})
	for {
		v, err := d.detachingDriver.Driver.Inventory(ctx)
		if err != nil {
			return drivers.MigrationResult{}, err
		}
		if vm, _ := v.VM(req.VM); vm.MigratingTo == req.To {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(10 * time.Second) // into the disk copy: setup is 2 s, the disks take minutes
	d.crashed.Store(true)
	d.die()
	return drivers.MigrationResult{}, ctx.Err()
}
