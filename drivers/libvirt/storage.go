package libvirt

import (
	"context"
	"encoding/xml"
	"fmt"
	"slices"
	"sync"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/droverhq/drover/drivers"
)

// Storage migration: a guest with disks on a host's own storage moves live with them.
// libvirt copies them (VIR_MIGRATE_NON_SHARED_DISK, migrate_disks naming only the local
// ones) over an NBD server the target's QEMU opens in the migration port range, before
// and while memory moves. The target volume must exist or be pre-creatable: libvirt
// creates a file disk's volume when a storage pool on the target has the disk's folder
// as its path (same capacity and format), a pool volume in the pool of the same name.
// What libvirt leaves to the caller is done here: the source's copy is deleted once the
// guest runs on the target and the source has let go of it; a target volume a failed
// copy created is deleted when the guest stays on its source.

// localPoolTypes are storage pool types whose volumes live on the host itself: only
// their volumes are ever deleted (a netfs pool's file is the target's file too).
var localPoolTypes = []string{"dir", "fs", "logical", "disk"}

// withDisks adds the copy of disks (storage migration) to a migration's parameters
// and flags.
func withDisks(params []golibvirt.TypedParam, disks []diskSource) ([]golibvirt.TypedParam, golibvirt.DomainMigrateFlags) {
	flags := golibvirt.DomainMigrateFlags(migrateFlags)
	if len(disks) == 0 {
		return params, flags
	}
	for _, s := range disks {
		params = append(params, golibvirt.TypedParam{Field: golibvirt.MigrateParamMigrateDisks, Value: *golibvirt.NewTypedParamValueString(s.Dev)})
	}
	return params, flags | golibvirt.MigrateNonSharedDisk
}

// readDisks lists the domain's disks, with sizes the capacity of the local ones (what
// a copy needs on the target). A size not read stays 0 (unknown).
func (d *Driver) readDisks(lv *golibvirt.Libvirt, dom golibvirt.Domain, xmlDesc string, sizes bool) []diskSource {
	ds, err := listDisks(xmlDesc, d.cfg.SharedStorage)
	if err != nil {
		return nil // parseDomainXML reports the unreadable XML
	}
	for i, s := range ds {
		if !s.Local || !sizes {
			continue
		}
		if _, capacity, _, err := lv.DomainGetBlockInfo(dom, s.Dev, 0); err == nil {
			ds[i].SizeMiB = int64((capacity + 1<<20 - 1) >> 20)
		}
	}
	return ds
}

// localPoolFreeMiB is the free space of the host's largest active local storage pool
// (0 when it has none or the storage driver does not answer): where copied disks land.
func (d *Driver) localPoolFreeMiB(lv *golibvirt.Libvirt, host string) int64 {
	flags := golibvirt.ConnectListStoragePoolsActive | golibvirt.ConnectListStoragePoolsDir | golibvirt.ConnectListStoragePoolsFs |
		golibvirt.ConnectListStoragePoolsLogical | golibvirt.ConnectListStoragePoolsDisk
	pools, _, err := lv.ConnectListAllStoragePools(1, flags)
	if err != nil {
		d.log.Debug("storage pools unknown", "node", host, "error", err)
		return 0
	}
	var best uint64
	for _, p := range pools {
		if _, _, _, avail, err := lv.StoragePoolGetInfo(p); err == nil {
			best = max(best, avail)
		}
	}
	return int64(best >> 20)
}

// performWithDisks runs perform, copying the local disks along; afterwards it removes
// what libvirt leaves behind: the source's copy after a success, a target volume the
// failed copy created.
func (d *Driver) performWithDisks(ctx context.Context, req drivers.MigrateRequest, src, to *hostState, disks []diskSource, progress func(drivers.MigrationProgress)) (drivers.MigrationResult, error) {
	if len(disks) == 0 {
		return d.perform(ctx, req, src, to, nil, progress)
	}
	if err := d.checkTargetPaths(ctx, req.VM, to, disks); err != nil {
		return drivers.MigrationResult{}, err
	}
	before := d.volumesOn(ctx, to, disks)
	d.log.Info("storage migration", "vm", req.VM, "from", src.Name, "to", to.Name, "disks", diskDevs(disks))
	var seen diskSeen
	res, err := d.perform(ctx, req, src, to, disks, seen.watch(progress))
	if err != nil {
		d.dropPrecreated(ctx, req.VM, to, disks, before)
		return res, err
	}
	d.deleteVolumes(ctx, req.VM, src, disks, "source copy of a moved disk")
	return seen.complete(res), nil
}

// joinWithDisks joins a migration in flight (see join), completing its result with
// the disk copy its progress showed.
func (d *Driver) joinWithDisks(ctx context.Context, req drivers.MigrateRequest, src, to *hostState, progress func(drivers.MigrationProgress)) (drivers.MigrationResult, error) {
	var seen diskSeen
	res, err := d.join(ctx, req, src, to, seen.watch(progress))
	if err != nil {
		return res, err
	}
	return seen.complete(res), nil
}

// diskSeen remembers the disk copy a migration's progress showed. libvirt 9.0's
// statistics of a completed migration, read on the target, leave the disks out
// (data_processed is memory only, no disk_processed); the source's job, while it ran,
// counted them (in data_processed too).
type diskSeen struct {
	mu  sync.Mutex
	mib float64
}

func (s *diskSeen) watch(progress func(drivers.MigrationProgress)) func(drivers.MigrationProgress) {
	return func(p drivers.MigrationProgress) {
		s.mu.Lock()
		s.mib = max(s.mib, p.DiskMiB)
		s.mu.Unlock()
		if progress != nil {
			progress(p)
		}
	}
}

// complete adds the disk copy seen to a result whose statistics lack it.
func (s *diskSeen) complete(res drivers.MigrationResult) drivers.MigrationResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	if res.DiskMiB == 0 && s.mib > 0 {
		res.DiskMiB = s.mib
		res.TransferredMiB += s.mib
	}
	return res
}

// dropSourceDisks deletes from host from (the source) the copies of the local disks
// the VM runs on at to, once a migration is over; with from "" or to, nothing.
func (d *Driver) dropSourceDisks(ctx context.Context, vm string, loc location, to, from string) {
	if from == "" || from == to {
		return
	}
	tgt, ok := loc.on(to)
	src, known := d.byName[from]
	if !ok || !known {
		return
	}
	if disks := localOnly(tgt.disks); len(disks) > 0 {
		d.deleteVolumes(ctx, vm, src, disks, "source copy of a moved disk")
	}
}

// dropPrecreated deletes the target volumes a failed storage migration created: those
// of disks that were not there before (before) while the VM has no domain on the
// target. Whatever existed before the attempt stays.
func (d *Driver) dropPrecreated(ctx context.Context, vm string, to *hostState, disks []diskSource, before map[string]bool) {
	var created []diskSource
	for _, s := range disks {
		if !before[s.where()] {
			created = append(created, s)
		}
	}
	if len(created) > 0 {
		d.deleteVolumes(ctx, vm, to, created, "target volume of a failed storage migration")
	}
}

// checkTargetPaths refuses a copy onto a disk another domain on the target uses:
// local paths are per host, so another guest there may have a disk of the same name,
// and libvirt would reuse (overwrite) that file.
func (d *Driver) checkTargetPaths(ctx context.Context, vm string, to *hostState, disks []diskSource) error {
	cctx, cancel := context.WithTimeout(ctx, d.cfg.CallTimeout)
	defer cancel()
	var taken []string
	err := to.conn.do(cctx, func(lv *golibvirt.Libvirt) error {
		inUse, err := usedPaths(lv, d.cfg.SharedStorage, vm)
		if err != nil {
			return err
		}
		for _, s := range disks {
			if inUse[s.where()] {
				taken = append(taken, s.where())
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: target %s: list its domains' disks: %v", drivers.ErrUnavailable, to.Name, err)
	}
	if len(taken) > 0 {
		return fmt.Errorf("%w: a domain on %s already uses %v: the copy would overwrite it (rename the disk or choose another target)", drivers.ErrRejected, to.Name, taken)
	}
	return nil
}

// volumesOn reports which of disks have a volume on host.
func (d *Driver) volumesOn(ctx context.Context, h *hostState, disks []diskSource) map[string]bool {
	out := map[string]bool{}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.CallTimeout)
	defer cancel()
	_ = h.conn.do(cctx, func(lv *golibvirt.Libvirt) error {
		refreshPools(lv)
		for _, s := range disks {
			if _, err := lookupVolume(lv, s); err == nil {
				out[s.where()] = true
			}
		}
		return nil
	})
	return out
}

// deleteVolumes deletes the volumes of disks on host h, for a VM that must not be
// there any more: nothing is deleted while h has a domain called vm (running or only
// defined), nor a volume another domain on h uses, nor one outside a local pool.
// Failures are logged, not returned: the migration itself is over and has succeeded
// or failed; a volume left behind is named in the log.
func (d *Driver) deleteVolumes(ctx context.Context, vm string, h *hostState, disks []diskSource, what string) {
	log := d.log.With("vm", vm, "node", h.Name)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.CallTimeout)
	defer cancel()
	err := h.conn.do(cctx, func(lv *golibvirt.Libvirt) error {
		if _, err := lv.DomainLookupByName(vm); err == nil {
			return fmt.Errorf("the host still has domain %s: its disks stay", vm)
		} else if !golibvirt.IsNotFound(err) {
			return err
		}
		inUse, err := usedPaths(lv, d.cfg.SharedStorage, "")
		if err != nil {
			return err
		}
		refreshPools(lv)
		for _, s := range disks {
			vol, err := lookupVolume(lv, s)
			if golibvirt.IsNotFound(err) {
				continue // never created, or already gone
			}
			if err != nil {
				log.Warn("disk left behind: volume unknown to libvirt", "disk", s.where(), "what", what, "error", err)
				continue
			}
			path, err := lv.StorageVolGetPath(vol)
			if err != nil {
				log.Warn("disk left behind: volume path unknown", "disk", s.where(), "what", what, "error", err)
				continue
			}
			if inUse[path] || inUse[s.where()] {
				log.Warn("disk left behind: another domain on the host uses it", "disk", path, "what", what)
				continue
			}
			if typ, err := poolType(lv, vol); err != nil || !slices.Contains(localPoolTypes, typ) {
				log.Warn("disk left behind: not in a local storage pool", "disk", path, "pool_type", typ, "what", what, "error", err)
				continue
			}
			if err := lv.StorageVolDelete(vol, golibvirt.StorageVolDeleteNormal); err != nil && !golibvirt.IsNotFound(err) {
				log.Warn("disk left behind: delete failed", "disk", path, "what", what, "error", err)
				continue
			}
			log.Info("deleted disk volume", "disk", path, "what", what)
		}
		return nil
	})
	if err != nil {
		log.Warn("disks left behind", "disks", diskDevs(disks), "what", what, "error", err)
	}
}

// lookupVolume finds the volume of a disk on the host of lv.
func lookupVolume(lv *golibvirt.Libvirt, s diskSource) (golibvirt.StorageVol, error) {
	if s.Path != "" {
		return lv.StorageVolLookupByPath(s.Path)
	}
	pool, err := lv.StoragePoolLookupByName(s.Pool)
	if err != nil {
		return golibvirt.StorageVol{}, err
	}
	return lv.StorageVolLookupByName(pool, s.Vol)
}

// refreshPools rescans the active pools so that a file copied in by a migration is a
// volume libvirt knows.
func refreshPools(lv *golibvirt.Libvirt) {
	pools, _, err := lv.ConnectListAllStoragePools(1, golibvirt.ConnectListStoragePoolsActive)
	if err != nil {
		return
	}
	for _, p := range pools {
		_ = lv.StoragePoolRefresh(p, 0)
	}
}

// usedPaths returns the disks every domain of the host but except uses (defined or
// running), by diskSource.where: the path, or the pool volume.
func usedPaths(lv *golibvirt.Libvirt, shared []string, except string) (map[string]bool, error) {
	doms, _, err := lv.ConnectListAllDomains(1, 0)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	out := map[string]bool{}
	for _, dom := range doms {
		if dom.Name == except {
			continue
		}
		x, err := lv.DomainGetXMLDesc(dom, 0)
		if golibvirt.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("xml of %s: %w", dom.Name, err)
		}
		ds, err := listDisks(x, shared)
		if err != nil {
			return nil, fmt.Errorf("domain %s: %w", dom.Name, err)
		}
		for _, s := range ds {
			out[s.where()] = true
		}
	}
	return out, nil
}

// poolType returns the type of the pool holding vol ("dir", "netfs", ...).
func poolType(lv *golibvirt.Libvirt, vol golibvirt.StorageVol) (string, error) {
	pool, err := lv.StoragePoolLookupByVolume(vol)
	if err != nil {
		return "", err
	}
	x, err := lv.StoragePoolGetXMLDesc(pool, 0)
	if err != nil {
		return "", err
	}
	var p struct {
		Type string `xml:"type,attr"`
	}
	if err := xml.Unmarshal([]byte(x), &p); err != nil {
		return "", fmt.Errorf("pool xml: %w", err)
	}
	return p.Type, nil
}

func diskDevs(ds []diskSource) []string {
	out := make([]string, len(ds))
	for i, s := range ds {
		out[i] = s.Dev + "=" + s.where()
	}
	return out
}
