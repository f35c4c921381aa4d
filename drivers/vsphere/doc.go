// Package vsphere is Drover's VMware vSphere driver (govmomi): it reaches one cluster
// through vCenter. Hosts are nodes, maintenance mode is the pause, RelocateVM_Task is
// the live migration, RebootHost_Task the reboot; the esxcli update plug-in patches
// ESXi through the API's esxcli executor. See README.md for the design choices and
// what is proven against the strict simulator (package vcsimstrict).
package vsphere
