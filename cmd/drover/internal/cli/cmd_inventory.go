package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/runs/report"
	"github.com/spf13/cobra"
)

// printJSON writes v as one line of JSON.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// InventoryOptions are the options of `drover inventory`.
type InventoryOptions struct {
	f    *Factory
	JSON bool
}

// NewCmdInventory builds `drover inventory`.
func NewCmdInventory(f *Factory, runF func(context.Context, *InventoryOptions) error) *cobra.Command {
	opts := &InventoryOptions{f: f}
	cmd := &cobra.Command{
		Use:   "inventory",
		Short: "Show the cluster's nodes and VMs as the driver sees them",
		Long: `Show the cluster's nodes and VMs as the driver sees them.

With --json: {"nodes":[{"name","state","vms":[{"name","memory_mib","power",...}],...}]}.
A node's state is up (ready, accepts placements), paused, rebooting or down.

Exit status: 0 success, 1 the driver failed or no node answers, 2 a usage or
config error. A node that does not answer is down, with the driver's error.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(commandContext(cmd), opts)
			}
			return inventoryRun(commandContext(cmd), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print JSON")
	return cmd
}

// inventoryNode is the JSON shape of a node in `drover inventory --json`.
type inventoryNode struct {
	cluster.Node
	VMs []cluster.VM `json:"vms"`
}

func inventoryRun(ctx context.Context, opts *InventoryOptions) error {
	s, err := opts.f.openSession(ctx, sessionOptions{driver: true, command: "inventory"})
	if err != nil {
		return err
	}
	defer s.Close()
	inv, err := s.driver.Inventory(ctx)
	if err != nil {
		return failedErr(fmt.Errorf("read inventory: %w", err))
	}
	nodes := make([]inventoryNode, 0, len(inv.Nodes))
	for _, n := range inv.Nodes {
		vms := inv.VMsOn(n.Name)
		if vms == nil {
			vms = []cluster.VM{}
		}
		nodes = append(nodes, inventoryNode{Node: n, VMs: vms})
	}
	out := opts.f.IO.Out
	if opts.JSON {
		if err := printJSON(out, map[string]any{"cluster": s.cfg.Cluster.Name, "nodes": nodes}); err != nil {
			return err
		}
		return noNodeAnswers(s.cfg.Cluster.Name, inv)
	}
	tw := tabwriter.NewWriter(report.SafeWriter(out), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tMEMORY\tCPUS\tVMS\tMEMORY USED\tRUNNING")
	for _, n := range nodes {
		var used int64
		var running []string
		for _, vm := range n.VMs {
			if vm.Running() {
				used += vm.MemoryMiB
				running = append(running, vm.Name)
			}
		}
		sort.Strings(running)
		memory, cpus, usedS := mib(n.MemoryMiB), fmt.Sprint(n.CPUs), mib(used)
		if n.State == cluster.NodeDown && n.MemoryMiB == 0 {
			memory, cpus, usedS = "?", "?", "?" // not "0 MiB": a node that does not answer does not say
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", n.Name, n.State, memory, cpus, len(n.VMs), usedS, strings.Join(running, " "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	w := report.SafeWriter(out)
	for _, n := range nodes {
		if n.State == cluster.NodeDown {
			fmt.Fprintf(w, "WARNING: node %s does not answer: %s\n", n.Name, orUnknown(n.Problem))
		}
	}
	return noNodeAnswers(s.cfg.Cluster.Name, inv)
}

func orUnknown(problem string) string {
	if problem == "" {
		return "the driver does not say why"
	}
	return problem
}

// noNodeAnswers is the runtime error of an inventory none of whose nodes answers:
// the table alone, with exit 0, would look like an empty but healthy cluster.
func noNodeAnswers(name string, inv cluster.Inventory) error {
	for _, n := range inv.Nodes {
		if n.State != cluster.NodeDown {
			return nil
		}
	}
	if len(inv.Nodes) == 0 {
		return nil
	}
	return failedErr(fmt.Errorf("no node of cluster %s answers: check that the hosts are up and reachable, and the driver's addresses and credentials", name))
}

// mib formats a size in MiB for people.
func mib(v int64) string {
	if v >= 1024 {
		return fmt.Sprintf("%.1f GiB", float64(v)/1024)
	}
	return fmt.Sprintf("%d MiB", v)
}
