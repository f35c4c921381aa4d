package libvirt

import (
	"encoding/xml"
	"fmt"

	"github.com/droverhq/drover/cluster"
)

// domainDisks lists a domain's disks as the inventory reports them (cluster.VM.Disks):
// a file or block disk is local unless its path is below one of shared; a pool volume is
// local (pools are per host); network disks are shared. CD-ROMs, floppies, read-only and
// shareable disks are left out: they never move. SizeMiB stays 0 (unknown): the domain
// XML does not hold it, and nothing uses it before this driver has storage migration.
func domainDisks(data string, shared []string) ([]cluster.Disk, error) {
	var d domainXML
	if err := xml.Unmarshal([]byte(data), &d); err != nil {
		return nil, fmt.Errorf("parse domain xml: %w", err)
	}
	var out []cluster.Disk
	for i, disk := range d.Devices.Disks {
		if disk.Device == "cdrom" || disk.Device == "floppy" || disk.ReadOnly != nil || disk.Shareable != nil {
			continue
		}
		name := disk.Target.Dev
		if name == "" {
			name = fmt.Sprintf("disk%d", i)
		}
		local := false
		switch disk.Type {
		case "file":
			local = disk.Source.File != "" && !underAny(disk.Source.File, shared)
		case "block":
			local = disk.Source.Dev != "" && !underAny(disk.Source.Dev, shared)
		case "volume":
			local = true
		}
		out = append(out, cluster.Disk{Name: name, Local: local})
	}
	return out, nil
}
