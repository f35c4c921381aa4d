// Package wsmantest is the proof of the hyperv driver that runs without Windows: a
// WS-Man (MS-WSMV) server for the Windows Remote Shell, written from the protocol and
// the exchanges masterzen/winrm and pywinrm record, an SSH server for the same
// commands, and a stateful model of a Hyper-V failover cluster behind both.
//
// The servers decode each powershell.exe -EncodedCommand line and answer only the
// scripts the driver ships (package scripts), byte for byte; anything else is refused
// and recorded, so a test that passes ran the scripts Drover sends to real clusters.
// What the scripts do on Windows is modelled here, not run: that part awaits a real
// cluster (see drivers/hyperv/README.md).
package wsmantest
