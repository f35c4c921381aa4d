package cluster

import (
	"errors"
	"fmt"
)

// Validate reports what makes a snapshot unusable for planning: empty or repeated
// names, negative sizes, VMs on nodes that are not in the snapshot. Driver answers are
// untrusted input; this is the edge where they are checked. Fields are named like
// "nodes[3].memory_mib" and "vms[12].node".
func (inv Inventory) Validate() error {
	var errs []error
	nodes := make(map[string]bool, len(inv.Nodes))
	for i, n := range inv.Nodes {
		f := fmt.Sprintf("nodes[%d]", i)
		switch {
		case n.Name == "":
			errs = append(errs, Fieldf(f+".name", "the driver must name every node", "empty"))
		case nodes[n.Name]:
			errs = append(errs, Fieldf(f+".name", "node names must be unique", "%q repeated", n.Name))
		}
		nodes[n.Name] = true
		if n.MemoryMiB < 0 {
			errs = append(errs, Fieldf(f+".memory_mib", "report 0 or more", "%d is negative", n.MemoryMiB))
		}
		if n.CPUs < 0 {
			errs = append(errs, Fieldf(f+".cpus", "report 0 or more", "%d is negative", n.CPUs))
		}
	}
	vms := make(map[string]bool, len(inv.VMs))
	for i, v := range inv.VMs {
		f := fmt.Sprintf("vms[%d]", i)
		switch {
		case v.Name == "":
			errs = append(errs, Fieldf(f+".name", "the driver must name every VM", "empty"))
		case vms[v.Name]:
			errs = append(errs, Fieldf(f+".name", "VM names must be unique within a cluster", "%q repeated", v.Name))
		}
		vms[v.Name] = true
		if !nodes[v.Node] {
			errs = append(errs, Fieldf(f+".node", "every VM must be on a node of the inventory", "vm %s is on unknown node %q", v.Name, v.Node))
		}
		if v.MemoryMiB < 0 || v.VCPUs < 0 {
			errs = append(errs, Fieldf(f, "report 0 or more", "vm %s has negative memory or vCPUs", v.Name))
		}
	}
	errs = append(errs, inv.checkNames()...)
	if len(errs) > maxValidateErrors {
		more := len(errs) - maxValidateErrors
		errs = append(errs[:maxValidateErrors], fmt.Errorf("and %d more problems", more))
	}
	return errors.Join(errs...)
}

// maxValidateErrors keeps the report of a badly broken snapshot readable.
const maxValidateErrors = 20
