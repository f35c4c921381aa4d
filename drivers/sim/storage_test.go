package sim

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
)

const storageCluster = `
model: {setup_seconds: 2}
nodes:
  - {name: n1, memory_mib: 65536, cpus: 8, nic_mbps: 8388.608, stream_mbps: 8388.608, storage_mib: 100000}
  - {name: n2, memory_mib: 65536, cpus: 8, nic_mbps: 8388.608, stream_mbps: 8388.608, storage_mib: 30000}
  - {name: n3, memory_mib: 65536, cpus: 8, nic_mbps: 8388.608, stream_mbps: 8388.608, storage_mib: 1000}
vms:
  - name: a
    node: n1
    memory_mib: 1000
    disks:
      - {name: root, size_mib: 20000, local: true}
      - {name: data, size_mib: 50000, local: false}
  - {name: b, node: n1, memory_mib: 1000}
`

// 8388.608 Mb/s is exactly 1000 MiB/s, so times are easy to read.

func TestModel_StorageMigrationCopiesLocalDisksOnTheSameLink(t *testing.T) {
	tests := []struct {
		name     string
		vm       string
		wantDisk float64
		wantSecs float64 // setup + (memory + local disks) / 1000 MiB/s
	}{
		{name: "local-disk-is-copied-shared-is-not", vm: "a", wantDisk: 20000, wantSecs: 2 + 21},
		{name: "vm-without-disks-moves-memory-only", vm: "b", wantDisk: 0, wantSecs: 2 + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustModel(t, mustParse(t, storageCluster))
			ids := startAll(t, m, [2]string{tt.vm, "n2"})
			st := runUntilDone(t, m, ids[0])
			if st.Phase != PhaseCompleted {
				t.Fatalf("phase %s (%s), want completed", st.Phase, st.Error)
			}
			if !approx(st.DiskMiB, tt.wantDisk, 1e-6) {
				t.Errorf("disk_mib %.1f, want %.1f", st.DiskMiB, tt.wantDisk)
			}
			if !approx(st.TransferredMiB, 1000+tt.wantDisk, 1) {
				t.Errorf("transferred_mib %.1f, want memory and disks %.1f", st.TransferredMiB, 1000+tt.wantDisk)
			}
			if !approx(st.Elapsed.Seconds(), tt.wantSecs, 0.01) {
				t.Errorf("took %v, want %.2fs", st.Elapsed, tt.wantSecs)
			}
			n1, _ := m.Node("n1")
			n2, _ := m.Node("n2")
			if n1.StorageMiB != 100000+int64(tt.wantDisk) || n2.StorageMiB != 30000-int64(tt.wantDisk) {
				t.Errorf("storage after the move: n1 %d, n2 %d MiB free; want the disks' space freed on n1 and used on n2", n1.StorageMiB, n2.StorageMiB)
			}
		})
	}
}

func TestModel_StorageMigrationProgressCountsDiskFirst(t *testing.T) {
	m := mustModel(t, mustParse(t, storageCluster))
	ids := startAll(t, m, [2]string{"a", "n2"})
	if st, _ := m.Migration(ids[0]); st.RemainingMiB != 21000 {
		t.Fatalf("remaining in setup %.1f, want memory and local disks 21000", st.RemainingMiB)
	}
	m.AdvanceTo(m.Now().Add(12 * time.Second)) // 10 s of copying at 1000 MiB/s
	st, _ := m.Migration(ids[0])
	if !approx(st.DiskMiB, 10000, 1) || !approx(st.TransferredMiB, 10000, 1) || !approx(st.RemainingMiB, 11000, 1) {
		t.Errorf("after 10 s: disk %.1f, transferred %.1f, remaining %.1f; want 10000, 10000, 11000", st.DiskMiB, st.TransferredMiB, st.RemainingMiB)
	}
	n2, _ := m.Node("n2")
	if n2.StorageMiB != 10000 {
		t.Errorf("target storage in flight %d MiB free, want 10000 (the disks' space is held from the start)", n2.StorageMiB)
	}
}

func TestModel_StorageMigrationRejectsTargetWithoutSpace(t *testing.T) {
	m := mustModel(t, mustParse(t, storageCluster))
	_, _, err := m.StartMigration("a", "", "n3")
	var e *Error
	if !errors.As(err, &e) || e.Reason != ReasonInsufficientStorage || !strings.Contains(e.Msg, "needs 20000 MiB") {
		t.Fatalf("StartMigration to a node with 1000 MiB free = %v, want rejected insufficient_storage", err)
	}
	// A VM without local disks does not need storage there.
	if _, out, err := m.StartMigration("b", "", "n3"); err != nil || out != OutcomeStarted {
		t.Fatalf("vm without local disks to n3 = %v, %v", out, err)
	}
}

func TestModel_FailedStorageMigrationGivesTheSpaceBack(t *testing.T) {
	m := mustModel(t, mustParse(t, storageCluster+`
faults:
  - {kind: migration_fail, vm: a, times: 1}
`))
	ids := startAll(t, m, [2]string{"a", "n2"})
	st := runUntilDone(t, m, ids[0])
	if st.Phase != PhaseFailed {
		t.Fatalf("phase %s, want failed by the injected fault", st.Phase)
	}
	n1, _ := m.Node("n1")
	n2, _ := m.Node("n2")
	v, _ := m.VM("a")
	if v.Node != "n1" || n1.StorageMiB != 100000 || n2.StorageMiB != 30000 {
		t.Errorf("after the failure: vm on %s, n1 %d, n2 %d MiB free; want the vm on n1 and both as before", v.Node, n1.StorageMiB, n2.StorageMiB)
	}
}

func TestParseCluster_DiskErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"negative-storage", "nodes: [{name: n1, memory_mib: 1, cpus: 1, storage_mib: -1}]", "nodes[0].storage_mib"},
		{"zero-size-disk", "nodes: [{name: n1, memory_mib: 10, cpus: 1}]\nvms: [{name: a, node: n1, memory_mib: 1, disks: [{name: d, size_mib: 0, local: true}]}]", "vms[0].disks[0].size_mib"},
		{"duplicate-disk", "nodes: [{name: n1, memory_mib: 10, cpus: 1}]\nvms: [{name: a, node: n1, memory_mib: 1, disks: [{name: d, size_mib: 1}, {name: d, size_mib: 1}]}]", "vms[0].disks[1].name"},
		{"unknown-disk-key", "nodes: [{name: n1, memory_mib: 10, cpus: 1}]\nvms: [{name: a, node: n1, memory_mib: 1, disks: [{name: d, size_mib: 1, shared: true}]}]", "shared"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCluster([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseCluster = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

func TestDriver_MigrateReportsDiskBytes(t *testing.T) {
	d, err := NewEmbedded(t.Context(), EmbeddedOptions{Cluster: mustParse(t, storageCluster), TimeScale: 1000, ClientOptions: ClientOptions{Logger: testLogger(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !d.Capabilities().StorageMigration {
		t.Fatal("sim does not declare storage_migration")
	}
	inv, err := d.Inventory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := inv.VM("a"); v.LocalDiskMiB() != 20000 || len(v.Disks) != 2 {
		t.Fatalf("inventory vm a disks %+v, want root local 20000 and data shared", v.Disks)
	}
	res, err := d.Migrate(t.Context(), drivers.MigrateRequest{VM: "a", From: "n1", To: "n2"}, nil)
	if err != nil || !approx(res.DiskMiB, 20000, 1) || res.TransferredMiB < 21000-1 {
		t.Fatalf("Migrate = %+v, %v; want disk_mib 20000 within transferred_mib 21000", res, err)
	}
	inv, _ = d.Inventory(t.Context())
	if n, _ := inv.Node("n2"); n.StorageMiB != 10000 {
		t.Errorf("n2 storage_mib %d after the move, want 10000", n.StorageMiB)
	}
}

// BenchmarkModel_DrainLocalDisks drains 12 VMs of 4 GiB (dirtying 40 MiB/s, 3 at a
// time, 10 Gb/s links) twice: memory only, and with a 20 GiB local disk each moved
// with it (storage migration). model-s and MiB-sent of both show what the disks
// cost; disk-MiB is the disk part.
func BenchmarkModel_DrainLocalDisks(b *testing.B) {
	for _, tt := range []struct {
		name string
		disk int64
	}{{"memory-only", 0}, {"with-20GiB-local-disks", 20480}} {
		b.Run(tt.name, func(b *testing.B) {
			c := drainCluster(b, 12, 4096, 40)
			for i := range c.Nodes {
				c.Nodes[i].StorageMiB = 1 << 30
			}
			for i := range c.VMs {
				if tt.disk > 0 {
					c.VMs[i].Disks = []cluster.Disk{{Name: "root", SizeMiB: tt.disk, Local: true}}
				}
			}
			var last drainResult
			for b.Loop() {
				m, err := NewModel(c, time.Time{})
				if err != nil {
					b.Fatal(err)
				}
				last = drainNode(b, m, "src", []string{"t1", "t2", "t3"}, 3)
			}
			if len(last.failed) > 0 {
				b.Fatalf("%d migrations failed", len(last.failed))
			}
			b.ReportMetric(last.elapsed.Seconds(), "model-s")
			b.ReportMetric(last.transferredMiB, "MiB-sent")
			b.ReportMetric(float64(12*tt.disk), "disk-MiB")
		})
	}
}
