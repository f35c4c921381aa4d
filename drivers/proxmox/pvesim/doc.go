// Package pvesim is a Proxmox VE cluster for tests: an HTTPS server of the PVE API
// (/api2/json, the {"data": ...} envelope, API token check) that validates every request
// against PVE 9.1's own API schema, per-node SSH servers that accept the exact commands
// a node would run for Drover (HA node maintenance, apt and its detached upgrade job,
// Ceph noout, boot id, the pause-mark script on the cluster filesystem), and behind both
// one cluster model: nodes that reboot (their API vanishes, uptime resets), qemu and lxc
// guests with their configs' disks on local or shared storage (storage.cfg, free space
// per node), live migrations with PVE's task logs and UPIDs (local disks mirrored first,
// taking time and the target's space), the HA
// manager's maintenance state machine (max_workers moves at a time, maintenance kept
// across reboots, guests moved back when it is disabled), the asynchronous HA migrate,
// and Ceph flags and health.
//
// The model runs in wall time with configurable durations (Timing); it never decides
// for the driver, it only behaves like a cluster, and it records what a safe rolling
// update must never do (Stats): a placement on a node in maintenance, a node rebooted
// with guests running, a reboot without Ceph noout, a request the schema refuses.
package pvesim
