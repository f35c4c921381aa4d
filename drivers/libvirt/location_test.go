package libvirt

import (
	"testing"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// The states a VM's instances go through during a peer-to-peer migration, as
// libvirt 9 reports them in the lab (virsh domstate --reason, domjobinfo): the
// target's copy is "paused (starting up)", then "paused (migrating)", then
// "running (migrated)", while the source runs with an outgoing job, then is gone.
// Job statistics exist only on the source ("migration statistics are available
// only on the source host").
var (
	srcRunning   = domainInstance{host: "hostA", state: golibvirt.DomainRunning}
	srcMigrating = domainInstance{host: "hostA", state: golibvirt.DomainRunning, jobActive: true, jobOp: golibvirt.DomainJobOperationStrMigrationOut}
	srcSwitching = domainInstance{host: "hostA", state: golibvirt.DomainPaused, reason: int32(golibvirt.DomainPausedMigration), jobActive: true, jobOp: golibvirt.DomainJobOperationStrMigrationOut}
	srcPausedMig = domainInstance{host: "hostA", state: golibvirt.DomainPaused, reason: int32(golibvirt.DomainPausedMigration)}
	srcShutoff   = domainInstance{host: "hostA", state: golibvirt.DomainShutoff}
	dstStarting  = domainInstance{host: "hostB", state: golibvirt.DomainPaused, reason: int32(golibvirt.DomainPausedStartingUp)}
	dstIncoming  = domainInstance{host: "hostB", state: golibvirt.DomainPaused, reason: int32(golibvirt.DomainPausedMigration)}
	dstRunning   = domainInstance{host: "hostB", state: golibvirt.DomainRunning, reason: int32(golibvirt.DomainRunningMigrated)}
)

func TestLocation_MigrationDoneOnlyWhenGoneFromSource(t *testing.T) {
	tests := []struct {
		name    string
		insts   []domainInstance
		settled bool // the migration to hostB is done
		onTwo   bool
		// where the inventory reports the VM, and MigratingTo.
		node, migratingTo string
	}{
		{name: "not-started", insts: []domainInstance{srcRunning}, node: "hostA"},
		{name: "target-starting-up", insts: []domainInstance{srcMigrating, dstStarting}, onTwo: true, node: "hostA", migratingTo: "hostB"},
		{name: "target-starting-up-job-unseen", insts: []domainInstance{dstStarting, srcRunning}, onTwo: true, node: "hostA"},
		{name: "precopy", insts: []domainInstance{srcMigrating, dstIncoming}, onTwo: true, node: "hostA", migratingTo: "hostB"},
		{name: "switchover", insts: []domainInstance{srcSwitching, dstIncoming}, onTwo: true, node: "hostA", migratingTo: "hostB"},
		{name: "target-resumed-source-confirming", insts: []domainInstance{dstRunning, srcSwitching}, onTwo: true, node: "hostA", migratingTo: "hostB"},
		{name: "target-runs-source-leftover", insts: []domainInstance{srcPausedMig, dstRunning}, onTwo: true, node: "hostB"},
		{name: "done", insts: []domainInstance{dstRunning}, settled: true, node: "hostB"},
		{name: "done-source-definition-left", insts: []domainInstance{srcShutoff, dstRunning}, settled: true, node: "hostB"},
		{name: "failed-leftover-incoming", insts: []domainInstance{srcRunning, dstIncoming}, onTwo: true, node: "hostA"},
	}
	d := &Driver{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc := location{insts: tt.insts}
			if got := loc.settledOn("hostB"); got != tt.settled {
				t.Errorf("settledOn(hostB) = %t, want %t", got, tt.settled)
			}
			if got := loc.onTwo("hostB"); got != tt.onTwo {
				t.Errorf("onTwo(hostB) = %t, want %t", got, tt.onTwo)
			}
			vms := d.mergeDomains(tt.insts)
			if len(vms) != 1 {
				t.Fatalf("inventory reports %d vms, want 1", len(vms))
			}
			if vms[0].Node != tt.node || vms[0].MigratingTo != tt.migratingTo {
				t.Errorf("inventory: on %s migrating to %q, want on %s migrating to %q", vms[0].Node, vms[0].MigratingTo, tt.node, tt.migratingTo)
			}
		})
	}
}
