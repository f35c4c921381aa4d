package proxmox

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
)

// storageInfo is one storage of one node as /cluster/resources reports it.
type storageInfo struct {
	shared  bool
	disks   bool // content holds guest volumes (images or rootdir)
	active  bool
	freeMiB int64
}

// storagesOf reads the storage items of /cluster/resources: by node, by storage ID.
// The shared flag is storage.cfg's as PVE reports it; pve-storage sets it itself for
// the network types (rbd, nfs, cifs, iscsi, ...), so the flag alone decides, as it does
// for qemu-server's migrate pre-check.
func storagesOf(rs []resource) map[string]map[string]storageInfo {
	out := map[string]map[string]storageInfo{}
	for _, r := range rs {
		if r.Type != "storage" || r.Node == "" || r.Storage == "" {
			continue
		}
		si := storageInfo{shared: truthy(r.Shared), active: r.Status == "available", freeMiB: max(r.MaxDisk-r.DiskUsed, 0) >> 20}
		for _, c := range strings.Split(r.Content, ",") {
			if c == "images" || c == "rootdir" {
				si.disks = true
			}
		}
		if out[r.Node] == nil {
			out[r.Node] = map[string]storageInfo{}
		}
		out[r.Node][r.Storage] = si
	}
	return out
}

// localStorageMiB is the node's free space for disks that move with their guests:
// its active, unshared storages that hold guest volumes. PVE copies a disk to the
// storage of the same ID on the target, and a node usually has one such storage
// (local-lvm or local-zfs); with several, the sum is an upper bound and PVE's
// allocation on the target has the last word.
func localStorageMiB(st map[string]storageInfo) int64 {
	var n int64
	for _, s := range st {
		if s.active && s.disks && !s.shared {
			n += s.freeMiB
		}
	}
	return n
}

var (
	qemuDiskKeyRe = regexp.MustCompile(`^(?:(?:ide|sata|scsi|virtio|unused)\d{1,3}|efidisk0|tpmstate0)$`)
	lxcDiskKeyRe  = regexp.MustCompile(`^(?:rootfs|(?:mp|unused)\d{1,3})$`)
	sizeRe        = regexp.MustCompile(`^(\d+(?:\.\d+)?)([KMGT]?)$`)
)

// Volume is one disk entry of a guest config.
type Volume struct {
	Key string
	// VolID is "STORAGE:NAME", or a host path for a pass-through disk or bind mount.
	VolID string
	// Bytes is size= (0 when the entry has none, as unused disks).
	Bytes  int64
	CDROM  bool
	Shared bool // the drive option shared=1
}

// Storage is the storage ID of a volume ("" for a host path).
func (v Volume) Storage() string {
	if strings.HasPrefix(v.VolID, "/") {
		return ""
	}
	id, _, ok := strings.Cut(v.VolID, ":")
	if !ok {
		return ""
	}
	return id
}

// ParseVolume parses a config entry such as "local-lvm:vm-103-disk-0,size=32G" or
// "local:iso/x.iso,media=cdrom" for key (scsi0, rootfs, mp1, ...); ok is false for
// keys that are not disks and for entries without a volume ("none").
func ParseVolume(typ, key, value string) (Volume, bool, error) {
	re := qemuDiskKeyRe
	if typ == "lxc" {
		re = lxcDiskKeyRe
	}
	if !re.MatchString(key) {
		return Volume{}, false, nil
	}
	if len(value) > 4096 {
		return Volume{}, false, fmt.Errorf("%s: entry too long", key)
	}
	v := Volume{Key: key}
	for i, part := range strings.Split(value, ",") {
		k, val, hasEq := strings.Cut(part, "=")
		if i == 0 && (!hasEq || strings.Contains(k, ":") || strings.HasPrefix(k, "/")) {
			v.VolID = part
			continue
		}
		switch k {
		case "file", "volume":
			v.VolID = val
		case "media":
			v.CDROM = val == "cdrom"
		case "shared":
			v.Shared = val == "1"
		case "size":
			b, err := ParseSize(val)
			if err != nil {
				return Volume{}, false, fmt.Errorf("%s: %w", key, err)
			}
			v.Bytes = b
		}
	}
	if v.VolID == "" || v.VolID == "none" || v.VolID == "cdrom" {
		return Volume{}, false, nil
	}
	return v, true, nil
}

// ParseSize parses PVE's disk-size format: a number with an optional K, M, G or T
// (binary units); no unit is bytes.
func ParseSize(s string) (int64, error) {
	m := sizeRe.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("size %q: want a number with K, M, G or T", clip(s))
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", clip(s), err)
	}
	shift := map[string]uint{"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[m[2]]
	b := f * float64(int64(1)<<shift)
	if b > 1<<60 {
		return 0, fmt.Errorf("size %q: too large", clip(s))
	}
	return int64(math.Ceil(b)), nil
}

// guestConfig is a cached guest config's volumes.
type guestConfig struct {
	volumes []Volume
	at      time.Time
}

// volumes reads the disks of a guest's config, cached like the pre-checks: disks
// change rarely, and an inventory should not read every config every time.
func (d *Driver) volumes(ctx context.Context, r resource) ([]Volume, error) {
	d.mu.Lock()
	gc, ok := d.configs[r.VMID]
	d.mu.Unlock()
	if ok && d.now().Sub(gc.at) < precheckTTL {
		return gc.volumes, nil
	}
	var cfg map[string]any
	if err := d.api.get(ctx, fmt.Sprintf("/nodes/%s/%s/%d/config", url.PathEscape(r.Node), r.Type, r.VMID), nil, &cfg); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var vols []Volume
	for _, k := range keys {
		s, isStr := cfg[k].(string)
		if !isStr {
			continue
		}
		v, ok, err := ParseVolume(r.Type, k, s)
		if err != nil {
			return nil, fmt.Errorf("config of guest %d: %w", r.VMID, err)
		}
		if ok {
			vols = append(vols, v)
		}
	}
	d.mu.Lock()
	d.configs[r.VMID] = guestConfig{volumes: vols, at: d.now()}
	d.mu.Unlock()
	return vols, nil
}

// disksOf fills vm.Disks from the guest's config: a volume is local unless its
// storage is shared or the drive says shared=1 (qemu-server's rule); CD-ROMs are left
// out. A disk without size= takes its size from the migrate pre-check when there is
// one (unused disks). A host path cannot be copied: the guest is not migratable.
func (d *Driver) disksOf(ctx context.Context, r resource, vm *cluster.VM, st map[string]storageInfo, pc *precheck, label string) error {
	vols, err := d.volumes(ctx, r)
	if err != nil {
		if errors.Is(err, drivers.ErrUnavailable) || errors.Is(err, drivers.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("read config of %s: %w", label, err)
	}
	sizes := map[string]int64{}
	if pc != nil {
		for _, ld := range pc.LocalDisks {
			sizes[ld.VolID] = ld.Size
		}
	}
	for _, v := range vols {
		if v.CDROM {
			continue
		}
		local := !v.Shared
		if s, ok := st[v.Storage()]; ok && s.shared {
			local = false
		}
		if v.Storage() == "" && local && vm.Migratable {
			vm.Migratable = false
			vm.NotMigratableReason = fmt.Sprintf("%s has %s on a host path (%s), which only moves by hand", label, v.Key, v.VolID)
		}
		b := v.Bytes
		if b == 0 {
			b = sizes[v.VolID]
		}
		vm.Disks = append(vm.Disks, cluster.Disk{Name: v.Key, SizeMiB: (b + 1<<20 - 1) >> 20, Local: local})
	}
	return nil
}
