package cluster

import (
	"fmt"
	"unicode"
)

// CheckName refuses a name that a terminal would obey rather than show: C0 and C1
// control characters (CR, ESC, ...), DEL, and the Unicode format characters that
// reorder or hide text (U+202E and the other bidi overrides, zero-width characters).
// Names reach terminals, logs and reports; refusing them at the edge keeps a
// cluster file or a driver's answer from rewriting what an operator reads.
func CheckName(field, name string) *FieldError {
	for i, r := range name {
		if r == unicode.ReplacementChar {
			return Fieldf(field, "use printable characters only", "invalid UTF-8 or U+FFFD at byte %d", i)
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return Fieldf(field, "use printable characters only", "control or formatting character %U at byte %d", r, i)
		}
	}
	return nil
}

// checkNames runs CheckName on every name of the inventory.
func (inv Inventory) checkNames() []error {
	var errs []error
	add := func(field, name string) {
		if fe := CheckName(field, name); fe != nil {
			errs = append(errs, fe)
		}
	}
	for i, n := range inv.Nodes {
		f := fmt.Sprintf("nodes[%d]", i)
		add(f+".name", n.Name)
		add(f+".cpu_group", n.CPUGroup)
		add(f+".fault_domain", n.FaultDomain)
		for k, v := range n.Labels {
			add(f+".labels", k)
			add(fmt.Sprintf("%s.labels[%q]", f, k), v)
		}
	}
	for i, v := range inv.VMs {
		f := fmt.Sprintf("vms[%d]", i)
		add(f+".name", v.Name)
		add(f+".anti_affinity", v.AntiAffinity)
	}
	return errs
}
