// Package vcsimstrict runs govmomi's vCenter simulator (vcsim) with extensions that
// restore vCenter's strictness where vcsim is lenient, so that the vsphere driver is
// proven against refusals a real vCenter makes:
//
//   - EnterMaintenanceMode_Task waits while powered-on VMs remain on the host (vcsim
//     sets the flag at once); a host entering or in maintenance takes no new VMs.
//   - RelocateVM_Task onto a host in or entering maintenance, not connected, or
//     without free memory for the VM fails with vCenter's fault; a relocation takes
//     time (Options.RelocateDuration), reports progress, and can be cancelled.
//   - RebootHost_Task exists: refused outside maintenance mode; the host is
//     notResponding for Options.RebootDuration, then connected with a new bootTime.
//     VMs left powered on there are lost (powered off) and counted.
//   - esxcli `software profile update [--dry-run]` answers from a per-host model of
//     pending updates (vcsim answers "not found"); an install needs maintenance mode
//     and shows as a new product build after the reboot.
//
// The extensions answer at the SOAP level in front of vcsim's HTTP handler (vcsim's
// own code casts registry objects to its concrete types, so wrapping hosts breaks
// it); everything else goes to vcsim unchanged. Every refused call, relocations in
// flight per host, power-offs and lost VMs are counted (Stats, and GET /strict/stats).
//
// This package is test infrastructure: it is linked into tests and into
// cmd/drover-vcsim, never into bin/drover.
package vcsimstrict
