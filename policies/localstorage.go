package policies

import (
	"fmt"

	"github.com/droverhq/drover/cluster"
)

// LocalStorageMode says what maintenance does with running VMs that have local disks
// (cluster.Disk.Local): disks on the node's own storage, which only move by copying.
type LocalStorageMode string

const (
	// LocalStorageMigrate: live-migrate the VM together with its local disks (storage
	// migration); needs a driver with Capabilities.StorageMigration.
	LocalStorageMigrate LocalStorageMode = "migrate"
	// LocalStorageFail: the node is not maintained while such a VM runs on it.
	LocalStorageFail LocalStorageMode = "fail"
	// LocalStorageShutdown: shut the VM down before the reboot, start it after.
	LocalStorageShutdown LocalStorageMode = "shutdown"
	// LocalStorageSkip: leave it running; it goes down with the reboot.
	LocalStorageSkip LocalStorageMode = "skip"
)

// ParseLocalStorageMode checks a mode name. "" is the default: migrate where the
// driver can, else whatever the driver and non_migratable say (the behaviour before
// storage migration existed).
func ParseLocalStorageMode(s string) (LocalStorageMode, error) {
	switch m := LocalStorageMode(s); m {
	case "", LocalStorageMigrate, LocalStorageFail, LocalStorageShutdown, LocalStorageSkip:
		return m, nil
	}
	return "", fieldf("local_storage", "use migrate, fail, shutdown or skip", "unknown mode %q", s)
}

// LocalStorage is a run's local_storage mode with what its driver can do. The zero
// value is a driver without storage migration under the default mode: VMs with local
// disks cannot move and fall under non_migratable, as before storage migration.
type LocalStorage struct {
	Mode LocalStorageMode `json:"mode,omitempty"`
	// Capable is the driver's Capabilities.StorageMigration.
	Capable bool `json:"capable,omitempty"`
}

// Migrates reports whether VMs with local disks move with their disks.
func (ls LocalStorage) Migrates() bool {
	return ls.Capable && (ls.Mode == "" || ls.Mode == LocalStorageMigrate)
}

// Apply returns inv with every running or suspended VM that has local disks and may
// not move with them marked not migratable, naming why; the rest of the planner and
// the run then treat it like any other VM that cannot live-migrate. inv is not changed.
func (ls LocalStorage) Apply(inv cluster.Inventory) cluster.Inventory {
	if ls.Migrates() {
		return inv
	}
	out := inv
	out.VMs = nil
	for _, v := range inv.VMs {
		out.VMs = append(out.VMs, ls.applyVM(v))
	}
	return out
}

// applyVM is Apply for one VM; applying it twice changes nothing more.
func (ls LocalStorage) applyVM(v cluster.VM) cluster.VM {
	if ls.Migrates() || !v.Migratable || !v.HasLocalDisks() {
		return v
	}
	v.Migratable = false
	if ls.Mode == LocalStorageMigrate || ls.Mode == "" {
		v.NotMigratableReason = fmt.Sprintf("local disks (%d MiB) and the driver cannot migrate storage", v.LocalDiskMiB())
	} else {
		v.NotMigratableReason = fmt.Sprintf("local disks (%d MiB) with policy.local_storage=%s", v.LocalDiskMiB(), ls.Mode)
	}
	return v
}

// NonMigratableFor is the mode that handles v when it cannot live-migrate: for a VM
// with local disks, local_storage's fail, shutdown or skip (migrate without the
// driver's capability fails: the operator asked for a move that cannot happen); for
// every other VM, and under the default, nonMigratable.
func (ls LocalStorage) NonMigratableFor(v cluster.VM, nonMigratable NonMigratableMode) NonMigratableMode {
	if !v.HasLocalDisks() {
		return nonMigratable
	}
	switch ls.Mode {
	case LocalStorageFail:
		return NonMigratableFail
	case LocalStorageShutdown:
		return NonMigratableShutdown
	case LocalStorageSkip:
		return NonMigratableSkip
	case LocalStorageMigrate:
		if !ls.Capable {
			return NonMigratableFail
		}
	}
	return nonMigratable
}
