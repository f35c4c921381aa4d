package libvirt

import (
	"slices"
	"testing"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/droverhq/drover/drivers"
)

func TestWithDisks(t *testing.T) {
	uri := golibvirt.TypedParam{Field: golibvirt.MigrateParamURI, Value: *golibvirt.NewTypedParamValueString("tcp://10.0.0.2")}
	tests := []struct {
		name      string
		disks     []diskSource
		wantDisks []string
		wantFlags golibvirt.DomainMigrateFlags
	}{
		{name: "memory-only", wantFlags: migrateFlags},
		{name: "local-disks-copied-by-name", disks: []diskSource{{Dev: "vda", Path: "/img/a.qcow2", Local: true}, {Dev: "vdc", Pool: "p", Vol: "v", Local: true}},
			wantDisks: []string{"vda", "vdc"}, wantFlags: migrateFlags | golibvirt.MigrateNonSharedDisk},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			params, flags := withDisks([]golibvirt.TypedParam{uri}, tt.disks)
			if flags != tt.wantFlags {
				t.Errorf("flags %#x, want %#x", flags, tt.wantFlags)
			}
			if params[0] != uri {
				t.Errorf("first parameter %+v, want the migration URI kept", params[0])
			}
			var got []string
			for _, p := range params[1:] {
				if p.Field != golibvirt.MigrateParamMigrateDisks {
					t.Errorf("unexpected parameter %+v", p)
				}
				got = append(got, p.Value.I.(string))
			}
			if !slices.Equal(got, tt.wantDisks) {
				t.Errorf("migrate_disks %v, want %v", got, tt.wantDisks)
			}
			// Never the incremental flag: libvirt cannot pre-create target volumes with it.
			if flags&golibvirt.MigrateNonSharedInc != 0 {
				t.Error("incremental copy requested")
			}
		})
	}
}

func TestListDisks_LocalOnly(t *testing.T) {
	x := `<domain><devices>` +
		`<disk type='file' device='disk'><source file='/var/lib/libvirt/images/a.qcow2'/><target dev='vda'/></disk>` +
		`<disk type='file' device='disk'><source file='/mnt/nfs/b.qcow2'/><target dev='vdb'/></disk>` +
		`<disk type='volume' device='disk'><source pool='images' volume='c.qcow2'/><target dev='vdc'/></disk>` +
		`<disk type='network' device='disk'><source protocol='rbd' name='p/d'/><target dev='vdd'/></disk>` +
		`</devices></domain>`
	ds, err := listDisks(x, []string{"/mnt/nfs"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range localOnly(ds) {
		got = append(got, s.Dev+"="+s.where())
	}
	want := []string{"vda=/var/lib/libvirt/images/a.qcow2", "vdc=volume c.qcow2 of pool images"}
	if !slices.Equal(got, want) {
		t.Errorf("local disks %v, want %v", got, want)
	}
}

func TestDiskSeen(t *testing.T) {
	tests := []struct {
		name     string
		progress []drivers.MigrationProgress
		res      drivers.MigrationResult
		want     drivers.MigrationResult
	}{
		{name: "target-stats-without-disks-get-the-copy-seen",
			progress: []drivers.MigrationProgress{{TransferredMiB: 30, DiskMiB: 30}, {TransferredMiB: 158.5, DiskMiB: 64}},
			res:      drivers.MigrationResult{TransferredMiB: 94.5}, want: drivers.MigrationResult{TransferredMiB: 158.5, DiskMiB: 64}},
		{name: "stats-with-disks-kept", progress: []drivers.MigrationProgress{{DiskMiB: 64}},
			res: drivers.MigrationResult{TransferredMiB: 160, DiskMiB: 64}, want: drivers.MigrationResult{TransferredMiB: 160, DiskMiB: 64}},
		{name: "memory-only", progress: []drivers.MigrationProgress{{TransferredMiB: 70}},
			res: drivers.MigrationResult{TransferredMiB: 72}, want: drivers.MigrationResult{TransferredMiB: 72}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s diskSeen
			calls := 0
			watch := s.watch(func(drivers.MigrationProgress) { calls++ })
			for _, p := range tt.progress {
				watch(p)
			}
			if got := s.complete(tt.res); got != tt.want || calls != len(tt.progress) {
				t.Errorf("complete = %+v (%d progress calls passed on), want %+v", got, calls, tt.want)
			}
		})
	}
}
