package policies

import (
	"slices"

	"github.com/droverhq/drover/cluster"
)

// VMClass is what a VM means for the maintenance of its node: the one classification
// that plan, drain, reboot guard and report share.
type VMClass string

const (
	// ClassStopped: the VM holds nothing on its host; a reboot does not hurt it.
	ClassStopped VMClass = "stopped"
	// ClassLive: the VM runs; its memory lives on the host.
	ClassLive VMClass = "live"
	// ClassSaved: the VM is suspended (saved or paused by the platform); its memory
	// state is kept on the host and a reboot of the host loses it.
	ClassSaved VMClass = "saved"
	// ClassUnknown: the power state is unknown; nobody can tell whether a reboot
	// hurts it, so the node is not maintained while it is there.
	ClassUnknown VMClass = "unknown"
)

// Classify returns the class of v.
func Classify(v cluster.VM) VMClass {
	switch v.Power {
	case cluster.PowerStopped:
		return ClassStopped
	case cluster.PowerRunning:
		return ClassLive
	case cluster.PowerSuspended:
		return ClassSaved
	}
	return ClassUnknown
}

// HoldsState reports whether a reboot of the VM's host would lose some of its state.
func (c VMClass) HoldsState() bool { return c == ClassLive || c == ClassSaved }

// VMNote is a VM with a reason, for reports.
type VMNote struct {
	VM     string `json:"vm"`
	Reason string `json:"reason"`
}

// Split is what maintenance of a node does with each of its VMs.
type Split struct {
	// Migrate: move off the node: running and migratable, suspended and migratable
	// when the driver moves saved state (SplitOptions.MigrateSuspended), or with a
	// migration already in flight.
	Migrate []cluster.VM `json:"migrate,omitempty"`
	// Shutdown: VMs that cannot move, shut down before the reboot and started after
	// (a suspended one loses its saved state).
	Shutdown []cluster.VM `json:"shutdown,omitempty"`
	// Skip: VMs that cannot move, left on the node; the reboot takes them down.
	Skip []VMNote `json:"skip,omitempty"`
	// Blocking: the node cannot be maintained while these are on it.
	Blocking []VMNote `json:"blocking,omitempty"`
	// Stay: stopped VMs; a reboot does not hurt them.
	Stay []VMNote `json:"stay,omitempty"`
}

// SplitOptions say what the run may do with a node's VMs.
type SplitOptions struct {
	// Mode is policy.non_migratable; an unknown mode acts as NonMigratableFail.
	Mode NonMigratableMode
	// MigrateSuspended: the driver moves a suspended VM as saved state.
	MigrateSuspended bool
	// LocalStorage is policy.local_storage with the driver's storage migration: it
	// decides for VMs with local disks (LocalStorage.NonMigratableFor); the zero value
	// leaves them to Mode and lets them move only where the driver already says so.
	LocalStorage LocalStorage
}

// SplitVMs sorts a node's VMs by what maintenance does with them. A VM in an unknown
// power state blocks in every mode; a VM that holds state and cannot move is handled
// by the mode (fail: it blocks the node), local_storage's for a VM with local disks.
// A VM whose local disks may not move counts as not migratable (LocalStorage.Apply),
// so callers need not have applied it to the inventory first.
func SplitVMs(vms []cluster.VM, opts SplitOptions) Split {
	var s Split
	for _, v := range vms {
		v = opts.LocalStorage.applyVM(v)
		class := Classify(v)
		why := ""
		switch {
		case class == ClassStopped:
			s.Stay = append(s.Stay, VMNote{v.Name, "stopped"})
			continue
		case class == ClassUnknown:
			s.Blocking = append(s.Blocking, VMNote{v.Name, "power state unknown"})
			continue
		case v.MigratingTo != "":
			s.Migrate = append(s.Migrate, v)
			continue
		case !v.Migratable:
			why = "not migratable"
			if v.NotMigratableReason != "" {
				why += ": " + v.NotMigratableReason
			}
		case class == ClassSaved && !opts.MigrateSuspended:
			why = "suspended with its memory state on the node, and the driver cannot migrate saved state"
		default:
			s.Migrate = append(s.Migrate, v)
			continue
		}
		switch opts.LocalStorage.NonMigratableFor(v, opts.Mode) {
		case NonMigratableShutdown:
			s.Shutdown = append(s.Shutdown, v)
		case NonMigratableSkip:
			left := "; left running, goes down with the reboot"
			if class == ClassSaved {
				left = "; left suspended, the reboot loses its saved state"
			}
			s.Skip = append(s.Skip, VMNote{v.Name, why + left})
		default:
			s.Blocking = append(s.Blocking, VMNote{v.Name, why})
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

// WhyStuck says why a VM of the split cannot move, for messages.
func (s Split) WhyStuck(vm string) string {
	for _, n := range append(append([]VMNote(nil), s.Blocking...), s.Skip...) {
		if n.VM == vm {
			return n.Reason
		}
	}
	return "not migratable"
}
