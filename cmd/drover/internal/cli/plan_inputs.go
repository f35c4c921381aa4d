package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/policies"
	"github.com/droverhq/drover/runs/report"
)

// printSchedulerInputs writes the drain scheduler's inputs per node and the source
// of each: measured (the platform), learned (Drover's own migrations), configured
// (nic_mbps) or assumed (unknown: the scheduler runs 2 per node there).
func printSchedulerInputs(w io.Writer, p *orchestrator.RunPlan) {
	if len(p.SchedulerInputs) == 0 {
		return
	}
	fmt.Fprintln(w, "\nDrain scheduler inputs:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tLINK\tNIC MiB/s\tSTREAM MiB/s\tDIRTY RATES")
	for _, in := range p.SchedulerInputs {
		dirty := "-"
		if in.VMs > 0 {
			dirty = fmt.Sprintf("%s (%d measured of %s)", in.DirtySource, in.DirtyVMs, report.Count(in.VMs, "VM", "VMs"))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", in.Node, in.LinkSource, mibs(in.Link.NICMiBs), mibs(in.Link.StreamMiBs), dirty)
	}
	tw.Flush()
	for _, in := range p.SchedulerInputs {
		if in.LinkSource == policies.SourceAssumed {
			fmt.Fprintf(w, "  links marked assumed are unknown: the scheduler runs %d migrations per node there until it learns them (or set the driver's nic_mbps)\n", policies.DefaultUnknownLinkPerNode)
			break
		}
	}
}

func mibs(v float64) string {
	if v <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", v)
}
