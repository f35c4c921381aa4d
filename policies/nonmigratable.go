package policies

import (
	"slices"

	"github.com/droverhq/drover/cluster"
)

// NonMigratableMode says what to do with running VMs that cannot live-migrate when
// their node must be rebooted.
type NonMigratableMode string

const (
	// NonMigratableFail: the node is not maintained while such a VM runs on it (default).
	NonMigratableFail NonMigratableMode = "fail"
	// NonMigratableShutdown: shut the VM down before the reboot, start it after.
	NonMigratableShutdown NonMigratableMode = "shutdown"
	// NonMigratableSkip: leave it running; it goes down with the reboot (reported loudly).
	NonMigratableSkip NonMigratableMode = "skip"
)

// ParseNonMigratableMode checks a mode name; "" is NonMigratableFail.
func ParseNonMigratableMode(s string) (NonMigratableMode, error) {
	switch m := NonMigratableMode(s); m {
	case "":
		return NonMigratableFail, nil
	case NonMigratableFail, NonMigratableShutdown, NonMigratableSkip:
		return m, nil
	}
	return "", fieldf("non_migratable", "use fail, shutdown or skip", "unknown mode %q", s)
}

// VMNote is a VM with a reason, for reports.
type VMNote struct {
	VM     string `json:"vm"`
	Reason string `json:"reason"`
}

// Split is what maintenance of a node does with each of its VMs.
type Split struct {
	// Migrate: live-migrate off the node (running or suspended, migratable, or a
	// migration already in flight).
	Migrate []cluster.VM `json:"migrate,omitempty"`
	// Shutdown: non-migratable VMs to shut down before the reboot and start after.
	Shutdown []cluster.VM `json:"shutdown,omitempty"`
	// Skip: non-migratable VMs left running; they go down with the reboot.
	Skip []VMNote `json:"skip,omitempty"`
	// Blocking: the node cannot be maintained while these are on it.
	Blocking []VMNote `json:"blocking,omitempty"`
	// Stay: stopped VMs; a reboot does not hurt them.
	Stay []VMNote `json:"stay,omitempty"`
}

// Blocked reports whether the node cannot be maintained.
func (s Split) Blocked() bool { return len(s.Blocking) > 0 }

// SplitVMs sorts a node's VMs by what maintenance does with them. A VM in an unknown
// power state blocks in every mode (we cannot tell whether the reboot would hurt it);
// an unknown mode acts as NonMigratableFail (fail closed).
func SplitVMs(vms []cluster.VM, mode NonMigratableMode) Split {
	return SplitVMsLocal(vms, mode, LocalStorage{})
}

// SplitVMsLocal is SplitVMs where local_storage decides for VMs with local disks
// (LocalStorage.NonMigratableFor); vms should have passed LocalStorage.Apply.
func SplitVMsLocal(vms []cluster.VM, nonMigratable NonMigratableMode, ls LocalStorage) Split {
	var s Split
	for _, v := range vms {
		switch {
		case v.Power == cluster.PowerStopped:
			s.Stay = append(s.Stay, VMNote{v.Name, "stopped"})
		case v.Power != cluster.PowerRunning && v.Power != cluster.PowerSuspended:
			s.Blocking = append(s.Blocking, VMNote{v.Name, "power state unknown"})
		case v.Migratable || v.MigratingTo != "":
			s.Migrate = append(s.Migrate, v)
		default:
			why := "not migratable"
			if v.NotMigratableReason != "" {
				why += ": " + v.NotMigratableReason
			}
			switch ls.NonMigratableFor(v, nonMigratable) {
			case NonMigratableShutdown:
				s.Shutdown = append(s.Shutdown, v)
			case NonMigratableSkip:
				s.Skip = append(s.Skip, VMNote{v.Name, why + "; left running, goes down with the reboot"})
			default:
				s.Blocking = append(s.Blocking, VMNote{v.Name, why})
			}
		}
	}
	// Largest first: they are the hardest to place and the slowest to move, so a drain
	// that starts with them fails early and finishes sooner.
	slices.SortStableFunc(s.Migrate, func(a, b cluster.VM) int {
		switch {
		case a.MemoryMiB > b.MemoryMiB:
			return -1
		case a.MemoryMiB < b.MemoryMiB:
			return 1
		}
		return 0
	})
	return s
}
