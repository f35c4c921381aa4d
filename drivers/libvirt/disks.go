package libvirt

import (
	"encoding/xml"
	"fmt"

	"github.com/droverhq/drover/cluster"
)

// diskSource is one disk of a domain as storage migration sees it.
type diskSource struct {
	// Dev is the target device (vda), what migrate_disks names.
	Dev string
	// Path is the file or block device; "" for a pool volume.
	Path string
	// Pool and Vol name a pool volume (type='volume').
	Pool, Vol string
	// Local: the disk is on the host's own storage and moves with the VM.
	Local bool
	// SizeMiB is the disk's capacity (0 = not read).
	SizeMiB int64
}

// where names the disk's storage for logs and errors.
func (s diskSource) where() string {
	if s.Path != "" {
		return s.Path
	}
	return fmt.Sprintf("volume %s of pool %s", s.Vol, s.Pool)
}

// listDisks lists a domain's disks: a file or block disk is local unless its path is
// below one of shared; a pool volume is local (pools are per host); network disks are
// shared. CD-ROMs, floppies, read-only and shareable disks are left out: they never
// move (libvirt's copy-storage skips them too).
func listDisks(data string, shared []string) ([]diskSource, error) {
	var d domainXML
	if err := xml.Unmarshal([]byte(data), &d); err != nil {
		return nil, fmt.Errorf("parse domain xml: %w", err)
	}
	var out []diskSource
	for i, disk := range d.Devices.Disks {
		if disk.Device == "cdrom" || disk.Device == "floppy" || disk.ReadOnly != nil || disk.Shareable != nil {
			continue
		}
		s := diskSource{Dev: disk.Target.Dev}
		if s.Dev == "" {
			s.Dev = fmt.Sprintf("disk%d", i)
		}
		switch disk.Type {
		case "file":
			s.Path = disk.Source.File
			s.Local = s.Path != "" && !underAny(s.Path, shared)
		case "block":
			s.Path = disk.Source.Dev
			s.Local = s.Path != "" && !underAny(s.Path, shared)
		case "volume":
			s.Pool, s.Vol = disk.Source.Pool, disk.Source.Vol
			s.Local = true
		}
		out = append(out, s)
	}
	return out, nil
}

// domainDisks lists a domain's disks as the inventory reports them (cluster.VM.Disks);
// see listDisks. SizeMiB stays 0: the domain XML does not hold it (readDisks reads it).
func domainDisks(data string, shared []string) ([]cluster.Disk, error) {
	ds, err := listDisks(data, shared)
	if err != nil {
		return nil, err
	}
	return inventoryDisks(ds), nil
}

func inventoryDisks(ds []diskSource) []cluster.Disk {
	var out []cluster.Disk
	for _, s := range ds {
		out = append(out, cluster.Disk{Name: s.Dev, SizeMiB: s.SizeMiB, Local: s.Local})
	}
	return out
}

// localOnly returns the disks that move with the VM.
func localOnly(ds []diskSource) []diskSource {
	var out []diskSource
	for _, s := range ds {
		if s.Local {
			out = append(out, s)
		}
	}
	return out
}
