// Package all links every built-in driver and update plug-in into the binary; each
// registers itself from its init function.
package all

import (
	_ "github.com/droverhq/drover/drivers/hyperv"
	_ "github.com/droverhq/drover/drivers/libvirt"
	_ "github.com/droverhq/drover/drivers/proxmox"
	_ "github.com/droverhq/drover/drivers/sim"
	_ "github.com/droverhq/drover/drivers/updaters"
	_ "github.com/droverhq/drover/drivers/vsphere"
)
