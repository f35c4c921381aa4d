package proxmox

import (
	"strings"
	"testing"
)

func FuzzParseUPID(f *testing.F) {
	for _, s := range []string{
		"UPID:pve1:001A2B02:003F000E:6B142323:qmigrate:103:drover@pve!rolling:",
		"UPID:node1:0031B740:0645340C:23E5BA99:vzdestroy:101:root@pam:",
		"UPID:pve:00000001:00000001:00000001:hamigrate:100:root@pam:",
		"UPID:a:1:2:3:b::c@d:", "UPID::::::::", "UPID:x/../y:1:1:1:t:1:u@p:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUPID(s)
		if err != nil {
			return
		}
		// Whatever is accepted goes into URL paths: it must carry nothing that
		// changes the path.
		if strings.ContainsAny(u.Node+u.Type+u.ID, "/?#% ") || u.Raw != s || !strings.HasPrefix(s, "UPID:"+u.Node+":") {
			t.Fatalf("accepted %q as %+v", s, u)
		}
	})
}

func FuzzParseProgress(f *testing.F) {
	for _, s := range []string{
		"2026-12-05 14:00:04 migration active, transferred 351.5 MiB of 8.0 GiB VM-state, 117.2 MiB/s",
		"2026-12-05 14:00:04 migration active, transferred 1.10 GiB of 4.00 GiB VM-state, 512.00 MiB/s",
		"migration status: active (transferred 123456, remaining 789, total 1000000)",
		"migration finished successfully (duration 00:01:02)",
		"migration active, transferred 9 TiB of 1 B VM-state",
		"2026-12-05 14:00:02 drive-scsi0: transferred 1.2 GiB of 32.0 GiB (3.75%) in 2s",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if p, ok := ParseProgress(s); ok {
			if p.TransferredMiB < 0 || p.TotalMiB < p.TransferredMiB || p.RateMiBs < 0 {
				t.Fatalf("%q -> %+v", s, p)
			}
		}
		if d, ok := ParseDuration(s); ok && d < 0 {
			t.Fatalf("%q -> %s", s, d)
		}
	})
}

func FuzzParseVolume(f *testing.F) {
	for _, s := range [][2]string{
		{"scsi0", "local-lvm:vm-103-disk-0,iothread=1,size=32G"},
		{"ide2", "none,media=cdrom"},
		{"efidisk0", "file=local-lvm:vm-1-disk-1,size=528K"},
		{"mp0", "/mnt/host,mp=/srv,shared=1"},
		{"rootfs", "volume=ceph:vm-1-disk-0,size=8.5G"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, key, value string) {
		for _, typ := range []string{"qemu", "lxc"} {
			v, ok, err := ParseVolume(typ, key, value)
			if err != nil || !ok {
				continue
			}
			// A volume is what a disk key names, with a volume and a sane size.
			if v.Key != key || v.VolID == "" || v.VolID == "none" || v.Bytes < 0 || v.Bytes > 1<<60 {
				t.Fatalf("%s %q=%q -> %+v", typ, key, value, v)
			}
		}
	})
}

func TestParseProgress(t *testing.T) {
	for _, tc := range []struct {
		name, line  string
		ok          bool
		done, total float64
		rate        float64
	}{
		{"pve8-line", "2026-12-05 14:00:04 migration active, transferred 351.5 MiB of 8.0 GiB VM-state, 117.2 MiB/s", true, 351.5, 8192, 117.2},
		{"pve-render-bytes", "migration active, transferred 1.50 GiB of 4.00 GiB VM-state, 512.00 MiB/s", true, 1536, 4096, 512},
		{"pve6-line", "migration status: active (transferred 1048576, remaining 0, total 2097152)", true, 1, 2, 0},
		{"more-than-total", "migration active, transferred 5 GiB of 4 GiB VM-state, 1 MiB/s", false, 0, 0, 0},
		{"drive-mirror", "2026-12-05 14:00:02 drive-scsi0: transferred 1.2 GiB of 32.0 GiB (3.75%) in 2s", true, 1.2 * 1024, 32768, 0},
		{"drive-mirror-ready", "drive-efidisk0: transferred 528.00 KiB of 528.00 KiB (100.00%) in 1s, ready", true, 528.0 / 1024, 528.0 / 1024, 0},
		{"mirror-start", "drive mirror is starting for drive-scsi0", false, 0, 0, 0},
		{"other-line", "start migrate command to unix:/run/qemu-server/101.migrate", false, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := ParseProgress(tc.line)
			if ok != tc.ok || p.TransferredMiB != tc.done || p.TotalMiB != tc.total || p.RateMiBs != tc.rate || (p.Drive != "") != strings.HasPrefix(tc.name, "drive-mirror") {
				t.Errorf("ParseProgress = %+v, %v", p, ok)
			}
		})
	}
}

func TestParseUPID(t *testing.T) {
	u, err := ParseUPID("UPID:pve1:001A2B02:003F000E:6B142323:qmigrate:103:drover@pve!rolling:")
	if err != nil || u.Node != "pve1" || u.Type != "qmigrate" || u.ID != "103" || u.User != "drover@pve!rolling" || u.PID != 0x1a2b02 || u.StartTime.Unix() != 0x6b142323 {
		t.Fatalf("ParseUPID = %+v, %v", u, err)
	}
	for _, bad := range []string{"", "UPID:pve1:1:2:3:qmigrate:103:root@pam", "UPID:pve/1:1:2:3:t:1:root@pam:", "UPID:pve1:xyz:2:3:t:1:root@pam:", "upid:pve1:1:2:3:t:1:root@pam:", "UPID:pve1:1:2:3:t:1/2:root@pam:"} {
		if _, err := ParseUPID(bad); err == nil {
			t.Errorf("ParseUPID(%q) accepted", bad)
		}
	}
}
