// Package proxmox is the Proxmox VE driver: inventory, migrations, reboots and
// readiness over the PVE API (go-proxmox on retrying HTTP, API token auth), HA node
// maintenance and Ceph noout over SSH (PVE has no API for them), and the apt plug-in
// over the same SSH.
//
// HA and Drover share the work of emptying a node: PauseNode asks HA for node
// maintenance, waits until the LRM reports it and HA has moved every HA-managed guest
// away, and Drover then migrates the rest itself (Migrate), with their local disks
// (with-local-disks; the inventory reports each guest's disks and each node's free
// local storage) and refusing guests with local devices. The run's pause mark is a
// file in the cluster filesystem (/etc/pve), written over the same SSH (marks.go). A node is ready after a
// reboot only when its uptime started after the reboot, the cluster is quorate, the
// PVE services run and Ceph is healthy; noout is set before each reboot and cleared
// when every node is back.
//
// The tests run against pvesim, which validates every request against PVE's own API
// schema.
package proxmox
