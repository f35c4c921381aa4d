// Package libvirt is Drover's driver for libvirt/KVM (QEMU) hosts: a cluster is a list
// of libvirtd hosts, reached over TCP or their UNIX socket with
// github.com/digitalocean/go-libvirt.
//
// What the driver does: inventory from every libvirtd (node info, domains, a VM that is
// mid-migration reported once, where it runs), peer-to-peer live migration with
// progress and abort, reboot and readiness through configured commands (locally or over
// SSH with the runner of drivers/updaters), and a pause flag per host.
//
// libvirt has no maintenance mode: the driver persists which hosts are paused in a file
// of its own (atomic write, mode 0600) and refuses to migrate onto a paused host.
//
// Marking a VM non-migratable: list it in the config's pinned_vms, or give the domain a
// metadata element in Drover's namespace:
//
//	virsh metadata VM https://droverhq.github.io/xmlns/libvirt/1 --key drover \
//	    --config --live --set "<drover migratable='no' reason='licensed to this host'/>"
//
// The same element may carry anti_affinity, anti_affinity_hard='yes' and preferred_node.
// Domains with host devices, local (non-network) disks outside shared_storage, or
// passthrough filesystems are non-migratable without any marker.
//
// README.md next to this file is the user guide: what the hosts need, the config, the
// update plug-ins over SSH, and the lab (lab/lab.sh, make e2e-libvirt).
//
// Boundary: the driver acts and reports; it never picks targets or orders nodes.
package libvirt
