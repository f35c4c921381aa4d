// Package pvemark is the pause mark protocol of the proxmox driver: one small POSIX
// shell script the driver runs over SSH on a node to read, claim and release the
// marks it keeps in the cluster filesystem (/etc/pve, replicated to every node by
// pmxcfs), one file per node. The driver and the test cluster (pvesim) share it, so
// that the test sshd accepts exactly what the driver sends.
package pvemark
