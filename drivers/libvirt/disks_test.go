package libvirt

import (
	"fmt"
	"testing"

	"github.com/droverhq/drover/cluster"
)

func TestDomainDisks(t *testing.T) {
	const head = `<domain type='qemu'><name>vm1</name><devices>`
	tests := []struct {
		name   string
		disks  string
		shared []string
		want   string
	}{
		{name: "diskless", want: "[]"},
		{name: "local-file", disks: `<disk type='file' device='disk'><source file='/var/lib/libvirt/images/vm1.qcow2'/><target dev='vda'/></disk>`,
			want: "[vda:local]"},
		{name: "shared-and-local", shared: []string{"/mnt/nfs"},
			disks: `<disk type='file' device='disk'><source file='/mnt/nfs/vm1.qcow2'/><target dev='vda'/></disk><disk type='block' device='disk'><source dev='/dev/vg0/vm1-data'/><target dev='vdb'/></disk>`,
			want:  "[vda:shared vdb:local]"},
		{name: "network-and-pool-volume", disks: `<disk type='network' device='disk'><source protocol='rbd' name='p/vm1'/><target dev='vda'/></disk><disk type='volume' device='disk'><source pool='default' volume='v'/><target dev='vdb'/></disk>`,
			want: "[vda:shared vdb:local]"},
		{name: "cdrom-readonly-shareable-left-out", disks: `<disk type='file' device='cdrom'><source file='/iso/x.iso'/><target dev='sda'/></disk><disk type='file' device='disk'><source file='/img/base.raw'/><readonly/><target dev='vdb'/></disk><disk type='file' device='disk'><source file='/img/quorum.raw'/><shareable/><target dev='vdc'/></disk>`,
			want: "[]"},
		{name: "unnamed-target", disks: `<disk type='file' device='disk'><source file='/img/a.qcow2'/></disk>`, want: "[disk0:local]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := domainDisks(head+tt.disks+`</devices></domain>`, tt.shared)
			if err != nil {
				t.Fatal(err)
			}
			if s := diskWords(got); s != tt.want {
				t.Errorf("disks %s, want %s", s, tt.want)
			}
			// Local disks move with the guest: they never make it non-migratable.
			if info, _ := parseDomainXML(head + tt.disks + `</devices></domain>`); info.NotMigratable != "" {
				t.Errorf("disks %s make the guest non-migratable: %q", diskWords(got), info.NotMigratable)
			}
		})
	}
	if _, err := domainDisks("<domain><unclosed>", nil); err == nil {
		t.Fatal("broken XML accepted")
	}
}

func diskWords(ds []cluster.Disk) string {
	out := "["
	for i, d := range ds {
		if i > 0 {
			out += " "
		}
		kind := "shared"
		if d.Local {
			kind = "local"
		}
		out += fmt.Sprintf("%s:%s", d.Name, kind)
	}
	return out + "]"
}

func FuzzDomainDisks(f *testing.F) {
	f.Add(`<domain><devices><disk type='file' device='disk'><source file='/x'/><target dev='vda'/></disk></devices></domain>`)
	f.Add(`<domain><devices><disk type='volume'><source pool='p' volume='v'/></disk></devices></domain>`)
	f.Fuzz(func(t *testing.T, s string) {
		ds, err := domainDisks(s, []string{"/mnt/nfs"})
		if err != nil && ds != nil {
			t.Fatalf("error %v with disks %v", err, ds)
		}
		for _, d := range ds {
			if d.Name == "" || d.SizeMiB != 0 {
				t.Fatalf("disk %+v: every disk has a name and no made-up size", d)
			}
		}
	})
}
