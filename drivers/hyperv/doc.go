// Package hyperv is Drover's driver for Hyper-V failover clusters, and the
// windows_update update plug-in.
//
// Drover reaches every node over WinRM (github.com/masterzen/winrm: HTTPS with Basic,
// NTLM, Kerberos or client certificates) or Windows OpenSSH, and runs one embedded
// PowerShell script per operation (package scripts). Cluster-wide reads and changes
// (Get-ClusterNode, Suspend-ClusterNode, Move-ClusterVirtualMachineRole) run locally on
// a reachable node, so no credential has to hop a second time; host facts (boot time,
// Get-VM) run on each host itself.
//
// The package wsmantest holds the proof that works without Windows: a WS-Man server
// written from MS-WSMV with a stateful Hyper-V cluster model behind it, which answers
// only the scripts shipped here, byte for byte.
package hyperv
