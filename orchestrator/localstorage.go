package orchestrator

import (
	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/policies"
)

// Local storage modes (policy.local_storage): what maintenance does with running VMs
// that have local disks. "" is the default: migrate where the driver can, else the VMs
// fall under policy.non_migratable as before.
const (
	LocalStorageMigrate  = "migrate"
	LocalStorageFail     = "fail"
	LocalStorageShutdown = "shutdown"
	LocalStorageSkip     = "skip"
)

// resolveLocalStorage fixes policy.local_storage for the driver a run starts with, so
// that the stored policy says what the run does and a resumed run does the same: the
// default becomes migrate when the driver has storage_migration. An explicit migrate
// with a driver that cannot is a configuration error.
func (p Policy) resolveLocalStorage(caps drivers.Capabilities) (Policy, error) {
	switch {
	case p.LocalStorage == "" && caps.StorageMigration:
		p.LocalStorage = LocalStorageMigrate
	case p.LocalStorage == LocalStorageMigrate && !caps.StorageMigration:
		return p, drivers.Fieldf("policy.local_storage",
			"use fail, shutdown or skip with this driver, or a driver that declares storage_migration",
			"is migrate, but the driver cannot migrate VMs together with their local disks")
	}
	return p, nil
}

// localStorage is the planner's view of a resolved policy.local_storage.
func (p Policy) localStorage() policies.LocalStorage {
	m := policies.LocalStorageMode(p.LocalStorage)
	return policies.LocalStorage{Mode: m, Capable: m == policies.LocalStorageMigrate}
}

// movableInventory is inv with the VMs whose local disks may not move marked not
// migratable (policies.LocalStorage.Apply).
func (p Policy) movableInventory(inv cluster.Inventory) cluster.Inventory {
	return p.localStorage().Apply(inv)
}
