// Package updaters holds Drover's built-in update plug-ins (what "patch" means on a
// node) and the command runners they share: run a command locally, or on a node over
// SSH with host key checking.
//
// Plug-ins:
//   - "command": operator-configured shell commands for scan, install and
//     reboot-required, run locally or over SSH.
//   - "apt": Debian/Ubuntu hosts over SSH (apt list --upgradable, apt-get dist-upgrade,
//     /var/run/reboot-required).
//
// Boundary: this package runs commands and parses their output. It never decides
// whether or when a node is patched; the orchestrator does. The SSH runner is exported
// so that drivers (libvirt's reboot command) run their commands the same way.
package updaters
