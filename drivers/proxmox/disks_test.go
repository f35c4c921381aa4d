package proxmox

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/proxmox/pvesim"
	"github.com/droverhq/drover/policies"
)

func TestParseVolume(t *testing.T) {
	for _, tc := range []struct {
		name, typ, key, value string
		ok                    bool
		want                  Volume
		err                   bool
	}{
		{name: "scsi-on-lvm", typ: "qemu", key: "scsi0", value: "local-lvm:vm-103-disk-0,iothread=1,size=32G", ok: true, want: Volume{Key: "scsi0", VolID: "local-lvm:vm-103-disk-0", Bytes: 32 << 30}},
		{name: "explicit-file", typ: "qemu", key: "virtio1", value: "file=ceph-vm:vm-103-disk-1,size=1536M", ok: true, want: Volume{Key: "virtio1", VolID: "ceph-vm:vm-103-disk-1", Bytes: 1536 << 20}},
		{name: "cdrom-iso", typ: "qemu", key: "ide2", value: "local:iso/debian.iso,media=cdrom,size=600M", ok: true, want: Volume{Key: "ide2", VolID: "local:iso/debian.iso", Bytes: 600 << 20, CDROM: true}},
		{name: "cdrom-none", typ: "qemu", key: "ide2", value: "none,media=cdrom"},
		{name: "efidisk-kib", typ: "qemu", key: "efidisk0", value: "local-lvm:vm-103-disk-2,efitype=4m,size=528K", ok: true, want: Volume{Key: "efidisk0", VolID: "local-lvm:vm-103-disk-2", Bytes: 528 << 10}},
		{name: "tpmstate", typ: "qemu", key: "tpmstate0", value: "local-lvm:vm-103-disk-3,size=4M,version=v2.0", ok: true, want: Volume{Key: "tpmstate0", VolID: "local-lvm:vm-103-disk-3", Bytes: 4 << 20}},
		{name: "unused-no-size", typ: "qemu", key: "unused0", value: "local-lvm:vm-103-disk-4", ok: true, want: Volume{Key: "unused0", VolID: "local-lvm:vm-103-disk-4"}},
		{name: "marked-shared", typ: "qemu", key: "scsi2", value: "san:vm-103-disk-5,shared=1,size=10G", ok: true, want: Volume{Key: "scsi2", VolID: "san:vm-103-disk-5", Bytes: 10 << 30, Shared: true}},
		{name: "host-device", typ: "qemu", key: "sata0", value: "/dev/disk/by-id/ata-X,size=1T", ok: true, want: Volume{Key: "sata0", VolID: "/dev/disk/by-id/ata-X", Bytes: 1 << 40}},
		{name: "bytes-no-unit", typ: "qemu", key: "scsi3", value: "local-lvm:vm-103-disk-6,size=4096", ok: true, want: Volume{Key: "scsi3", VolID: "local-lvm:vm-103-disk-6", Bytes: 4096}},
		{name: "not-a-disk", typ: "qemu", key: "net0", value: "virtio=BC:24:11:00:00:01,bridge=vmbr0"},
		{name: "lxc-key-on-qemu", typ: "qemu", key: "rootfs", value: "local-lvm:vm-1-disk-0,size=8G"},
		{name: "lxc-rootfs", typ: "lxc", key: "rootfs", value: "local-lvm:vm-201-disk-0,size=8G", ok: true, want: Volume{Key: "rootfs", VolID: "local-lvm:vm-201-disk-0", Bytes: 8 << 30}},
		{name: "lxc-mountpoint", typ: "lxc", key: "mp0", value: "local-lvm:vm-201-disk-1,mp=/srv/data,backup=1,size=16G", ok: true, want: Volume{Key: "mp0", VolID: "local-lvm:vm-201-disk-1", Bytes: 16 << 30}},
		{name: "lxc-bind-mount", typ: "lxc", key: "mp1", value: "/mnt/host,mp=/srv/host", ok: true, want: Volume{Key: "mp1", VolID: "/mnt/host"}},
		{name: "bad-size", typ: "qemu", key: "scsi0", value: "local-lvm:vm-1-disk-0,size=12X", err: true},
		{name: "huge-size", typ: "qemu", key: "scsi0", value: "local-lvm:vm-1-disk-0,size=99999999999T", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, ok, err := ParseVolume(tc.typ, tc.key, tc.value)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if ok != tc.ok || v != tc.want {
				t.Errorf("ParseVolume = %+v, %v; want %+v, %v", v, ok, tc.want, tc.ok)
			}
		})
	}
}

// diskCluster: a VM with local, shared, CD-ROM, unused and shared=1 volumes; a VM with
// a host device; a container without HA on local storage; pve3's local-lvm almost full.
func diskCluster() pvesim.Options {
	o := pvesim.Options{
		Nodes: []pvesim.Node{
			{Name: "pve1", MemoryMiB: 65536, CPUs: 16},
			{Name: "pve2", MemoryMiB: 65536, CPUs: 16},
			{Name: "pve3", MemoryMiB: 65536, CPUs: 16},
		},
		Storages: []pvesim.Storage{
			{ID: "local", Type: "dir", Content: "iso,vztmpl,backup", SizeMiB: 100 << 10},
			{ID: "local-lvm", Type: "lvmthin", Content: "images,rootdir", SizeMiB: 8 << 10},
			{ID: "ceph-vm", Type: "rbd", Shared: true, Content: "images,rootdir", SizeMiB: 1 << 20},
		},
		Guests: []pvesim.Guest{
			{VMID: 103, Name: "db1", Type: "qemu", Node: "pve1", MaxMemMiB: 512, CPUs: 2, Disks: []pvesim.Disk{
				{Key: "scsi0", VolID: "local-lvm:vm-103-disk-0", Size: 2 << 30},
				{Key: "scsi1", VolID: "ceph-vm:vm-103-disk-1", Size: 32 << 30},
				{Key: "efidisk0", VolID: "local-lvm:vm-103-disk-2", Size: 528 << 10},
				{Key: "ide2", VolID: "local:iso/debian.iso", Size: 600 << 20, Media: "cdrom"},
				{Key: "unused0", VolID: "local-lvm:vm-103-disk-3", Size: 1 << 30},
				{Key: "scsi2", VolID: "local:103/vm-103-disk-4.qcow2", Size: 3 << 30, Shared: true},
			}},
			{VMID: 104, Name: "app1", Type: "qemu", Node: "pve2", MaxMemMiB: 512, CPUs: 1, Disks: []pvesim.Disk{{Key: "scsi0", VolID: "ceph-vm:vm-104-disk-0", Size: 16 << 30}}},
			{VMID: 106, Name: "raw1", Type: "qemu", Node: "pve2", MaxMemMiB: 512, CPUs: 1, Disks: []pvesim.Disk{{Key: "sata0", VolID: "/dev/disk/by-id/ata-X", Size: 1 << 30}}},
			{VMID: 201, Name: "mon1", Type: "lxc", Node: "pve2", MaxMemMiB: 512, CPUs: 1, Disks: []pvesim.Disk{{Key: "rootfs", VolID: "local-lvm:vm-201-disk-0", Size: 4 << 30}}},
			{VMID: 301, Name: "big1", Type: "qemu", Node: "pve3", Status: "stopped", MaxMemMiB: 512, CPUs: 1, Disks: []pvesim.Disk{{Key: "scsi0", VolID: "local-lvm:vm-301-disk-0", Size: 7 << 30}}},
		},
	}
	o.Timing = pvesim.DefaultTiming()
	o.Timing.MigrationMiBs = 2048
	return o
}

// TestInventory_Disks: the driver reads each moving guest's config, tells local from
// shared volumes by the storage's shared flag (and shared=1), and reports each node's
// free local storage; the planner then refuses a target without room.
func TestInventory_Disks(t *testing.T) {
	l := newLab(t, diskCluster())
	d := l.open(t)
	if !d.Capabilities().StorageMigration {
		t.Fatal("storage_migration not declared")
	}
	inv, err := d.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	db, _ := inv.VM("103")
	want := map[string]cluster.Disk{
		"scsi0":    {Name: "scsi0", SizeMiB: 2048, Local: true},
		"scsi1":    {Name: "scsi1", SizeMiB: 32768},
		"efidisk0": {Name: "efidisk0", SizeMiB: 1, Local: true},
		"unused0":  {Name: "unused0", SizeMiB: 1024, Local: true}, // size from the pre-check
		"scsi2":    {Name: "scsi2", SizeMiB: 3072},                // shared=1
	}
	if len(db.Disks) != len(want) {
		t.Errorf("vm 103 disks %+v, want %d (no CD-ROM)", db.Disks, len(want))
	}
	for _, dk := range db.Disks {
		if want[dk.Name] != dk {
			t.Errorf("vm 103 disk %+v, want %+v", dk, want[dk.Name])
		}
	}
	if got := db.LocalDiskMiB(); got != 2048+1+1024 || !db.Migratable {
		t.Errorf("vm 103: local %d MiB, migratable %v", got, db.Migratable)
	}
	if vm, _ := inv.VM("104"); vm.HasLocalDisks() || len(vm.Disks) != 1 {
		t.Errorf("vm 104 (ceph only) disks %+v", vm.Disks)
	}
	if vm, _ := inv.VM("106"); vm.Migratable || !strings.Contains(vm.NotMigratableReason, "sata0") {
		t.Errorf("vm 106 (host device) migratable=%v %q", vm.Migratable, vm.NotMigratableReason)
	}
	ct, _ := inv.VM("201")
	if ct.Migratable || ct.LocalDiskMiB() != 4096 {
		t.Errorf("ct 201: migratable=%v local %d MiB", ct.Migratable, ct.LocalDiskMiB())
	}
	if vm, _ := inv.VM("301"); len(vm.Disks) != 0 {
		t.Errorf("stopped vm 301: disks read although it does not move: %+v", vm.Disks)
	}
	// local-lvm is 8 GiB per node (local holds no guest volumes by its content types);
	// pve1 holds 103's local volumes (2 GiB + 528 KiB + 1 GiB), pve3 holds 7 GiB.
	free := map[string]int64{}
	for _, n := range inv.Nodes {
		free[n.Name] = n.StorageMiB
	}
	if free["pve2"] != 8192-4096 || free["pve3"] != 8192-7168 || free["pve1"] != 8192-3072 {
		t.Errorf("free local storage %v", free)
	}
	// The planner sees it: 103 fits pve2, not pve3.
	p := policies.NewPlacer(inv, policies.PlacementOptions{})
	to, err := p.Place(db, map[string]bool{"pve1": true})
	if err != nil || to != "pve2" {
		t.Errorf("placer put vm 103 on %q (%v), want pve2: pve3 has %d MiB for %d MiB of local disks", to, err, free["pve3"], db.LocalDiskMiB())
	}
	// Ask the policy: with local_storage=fail the VM may not move and names its disks.
	ls := policies.LocalStorage{Mode: policies.LocalStorageFail, Capable: true}
	if vm, _ := ls.Apply(inv).VM("103"); vm.Migratable || !strings.Contains(vm.NotMigratableReason, "3073 MiB") {
		t.Errorf("local_storage=fail: vm 103 migratable=%v %q", vm.Migratable, vm.NotMigratableReason)
	}
}

// TestMigrate_WithLocalDisks: the driver passes with-local-disks (the model aborts a
// migration without it), the disks are copied first at the model's speed, the space
// moves from source to target, and a target without room fails the migration.
func TestMigrate_WithLocalDisks(t *testing.T) {
	opts := diskCluster()
	opts.Timing.MigrationMiBs = 1024
	l := newLab(t, opts)
	d := l.open(t)
	ctx := context.Background()

	_, err := d.Migrate(ctx, drivers.MigrateRequest{VM: "103", From: "pve1", To: "pve3"}, nil)
	if !errors.Is(err, drivers.ErrMigrationFailed) || !strings.Contains(err.Error(), "unable to allocate") {
		t.Fatalf("migrate to a full target = %v", err)
	}
	if s := l.c.Model.Snapshot(); guestOn(s, 103).Node != "pve1" || s.Stats.NoRoomMigrations != 1 {
		t.Fatalf("after a refused migration: %+v, stats %+v", guestOn(s, 103), s.Stats)
	}

	var maxRemaining float64
	start := time.Now()
	res, err := d.Migrate(ctx, drivers.MigrateRequest{VM: "103", From: "pve1", To: "pve2"}, func(p drivers.MigrationProgress) {
		maxRemaining = max(maxRemaining, p.RemainingMiB)
	})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	s := l.c.Model.Snapshot()
	if g := guestOn(s, 103); g.Node != "pve2" || g.Status != "running" {
		t.Fatalf("vm 103 after migrate: %+v", g)
	}
	// 3073 MiB of local disks and 512 MiB of memory at 1024 MiB/s.
	if s.Stats.DiskMiBMoved != 3073 {
		t.Errorf("disk MiB copied %d, want 3073", s.Stats.DiskMiBMoved)
	}
	if took < 3*time.Second {
		t.Errorf("migration with 3 GiB of local disks at 1 GiB/s took %s", took)
	}
	if maxRemaining < 1024 {
		t.Errorf("progress never showed the disk copy: max remaining %.0f MiB", maxRemaining)
	}
	if res.TransferredMiB <= 0 {
		t.Errorf("result %+v", res)
	}
	inv, err := d.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range inv.Nodes {
		if n.Name == "pve2" && n.StorageMiB != 8192-4096-3072 { // the model counts whole MiB used
			t.Errorf("pve2 free local storage %d after receiving 3073 MiB", n.StorageMiB)
		}
	}
}
