package cli

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"text/tabwriter"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/runs/report"
	"github.com/spf13/cobra"
)

// PreviewOptions are the options of `drover preview`.
type PreviewOptions struct {
	f    *Factory
	JSON bool
}

// NewCmdPreview builds `drover preview` (CAU's Invoke-CauScan).
func NewCmdPreview(f *Factory, runF func(context.Context, *PreviewOptions) error) *cobra.Command {
	opts := &PreviewOptions{f: f}
	cmd := &cobra.Command{
		Use:   "preview",
		Short: "List the updates pending on every node (changes nothing)",
		Long: `List the updates pending on every node, as the update plug-in reports them.
Nothing is changed.

With --json: {"cluster","nodes":[{"name","state","updates":[{"name","version"}],"error"}]}.

Exit status: 0 success, 1 a node could not be scanned, 2 a usage or config error.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(commandContext(cmd), opts)
			}
			return previewRun(commandContext(cmd), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print JSON")
	return cmd
}

type previewNode struct {
	Name    string            `json:"name"`
	State   cluster.NodeState `json:"state"`
	Updates []cluster.Update  `json:"updates"`
	Error   string            `json:"error,omitempty"`
}

func previewRun(ctx context.Context, opts *PreviewOptions) error {
	s, err := opts.f.openSession(ctx, sessionOptions{driver: true, command: "preview"})
	if err != nil {
		return err
	}
	defer s.Close()
	inv, err := s.driver.Inventory(ctx)
	if err != nil {
		return failedErr(fmt.Errorf("read inventory: %w", err))
	}
	nodes := make([]previewNode, len(inv.Nodes))
	var wg sync.WaitGroup
	for i, n := range inv.Nodes {
		nodes[i] = previewNode{Name: n.Name, State: n.State, Updates: []cluster.Update{}}
		if !n.Ready() {
			nodes[i].Error = fmt.Sprintf("node is %s", n.State)
			continue
		}
		wg.Go(func() {
			ups, err := s.updater.Scan(ctx, n.Name)
			if err != nil {
				nodes[i].Error = err.Error()
				return
			}
			sort.Slice(ups, func(a, b int) bool { return ups[a].Name < ups[b].Name })
			nodes[i].Updates = append(nodes[i].Updates, ups...)
		})
	}
	wg.Wait()
	failed := 0
	for _, n := range nodes {
		if n.Error != "" {
			failed++
		}
	}
	out := report.SafeWriter(opts.f.IO.Out)
	if opts.JSON {
		if err := printJSON(out, map[string]any{"cluster": s.cfg.Cluster.Name, "nodes": nodes}); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tSTATE\tUPDATE\tVERSION")
		for _, n := range nodes {
			if n.Error != "" {
				fmt.Fprintf(tw, "%s\t%s\t(cannot scan: %s)\t\n", n.Name, n.State, n.Error)
				continue
			}
			if len(n.Updates) == 0 {
				fmt.Fprintf(tw, "%s\t%s\t(none pending)\t\n", n.Name, n.State)
			}
			for _, u := range n.Updates {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Name, n.State, u.Name, u.Version)
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if failed > 0 {
		return failedErr(fmt.Errorf("%d node(s) could not be scanned", failed))
	}
	return nil
}
