package bench

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// Baseline is the strategy the others are compared with.
const Baseline = "drover"

// WriteTable prints one block per scenario: each strategy's drain and run times
// side by side with how much faster Drover is, and the drain against the lower
// bound.
func WriteTable(w io.Writer, rows []Row) {
	for i, sc := range groupRows(rows) {
		if i > 0 {
			fmt.Fprintln(w)
		}
		first := sc[0]
		fmt.Fprintf(w, "%s: %d nodes, %d VMs; drained %s; lower bound %.1f s (source NIC %.1f, target NICs %.1f, slowest VM %.1f)\n",
			first.Name, first.Nodes, first.VMs, strings.Join(first.DrainedNodes, "+"), first.LowerBoundDrainSeconds,
			first.Bound.SourceNIC, first.Bound.TargetNICs, first.Bound.SlowestVM)
		fmt.Fprintf(w, "  whole run: lower bound %.1f s, %d node(s) at once (longest node %.1f, spread %.1f, batches %.1f)\n",
			first.LowerBoundRunSeconds, first.RunBound.Parallel, first.RunBound.LongestNode, first.RunBound.Spread, first.RunBound.Batches)
		var base Row
		for _, r := range sc {
			if r.Strategy == Baseline {
				base = r
			}
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "strategy\tdrain s\tvs bound\tdrover faster\trun s\tvs bound\tdrover faster\tmigr/VM\tGiB moved\tfailed migr\t")
		for _, r := range sc {
			fmt.Fprintf(tw, "%s\t%.1f\t%s\t%s\t%.1f\t%s\t%s\t%.3f\t%.1f\t%d\t\n",
				r.Strategy, r.DrainSeconds, ratio(r.DrainSeconds, r.LowerBoundDrainSeconds),
				faster(r, base, r.DrainSeconds, base.DrainSeconds), r.RunSeconds, ratio(r.RunSeconds, r.LowerBoundRunSeconds),
				faster(r, base, r.RunSeconds, base.RunSeconds), r.MigrationsPerVM,
				float64(r.BytesMoved)/(1<<30), r.FailedMigrations)
		}
		tw.Flush()
		if base.RunSecondsOneNode > 0 {
			fmt.Fprintf(w, "  drover one node at a time: run %.1f s, %.3f migrations per VM; %d at once: %s faster, %.3f per VM\n",
				base.RunSecondsOneNode, base.MigrationsPerVMOneNode, base.ParallelNodes, ratio(base.RunSecondsOneNode, base.RunSeconds), base.MigrationsPerVM)
		}
	}
}

func groupRows(rows []Row) [][]Row {
	var out [][]Row
	for _, r := range rows {
		if n := len(out); n > 0 && out[n-1][0].Name == r.Name {
			out[n-1] = append(out[n-1], r)
			continue
		}
		out = append(out, []Row{r})
	}
	return out
}

func ratio(a, b float64) string {
	if b <= 0 || a < 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func faster(r, base Row, v, b float64) string {
	if r.Strategy == Baseline || base.Strategy == "" {
		return "-"
	}
	return ratio(v, b)
}

// Goal is one of the performance goals, checked on a bench run.
type Goal struct {
	Goal   string
	Met    bool
	Detail string
	// NotApplicable: no schedule could meet it here (Detail says why).
	NotApplicable bool
}

// Goals checks the goals on rows (and the plan figures when scale is not nil).
// They are printed, never asserted: a missed goal is reported with its figure.
func Goals(rows []Row, scale *ScaleFigures) []Goal {
	var out []Goal
	for _, sc := range groupRows(rows) {
		by := map[string]Row{}
		for _, r := range sc {
			by[r.Strategy] = r
		}
		d, ok := by[Baseline]
		if !ok {
			continue
		}
		name := sc[0].Name
		lb := d.LowerBoundDrainSeconds
		out = append(out, Goal{
			Goal:   name + ": drain within 10% of the lower bound",
			Met:    lb > 0 && d.DrainSeconds <= 1.10*lb,
			Detail: fmt.Sprintf("%.1f s vs bound %.1f s (%s)", d.DrainSeconds, lb, ratio(d.DrainSeconds, lb)),
		})
		rlb := d.LowerBoundRunSeconds
		out = append(out, Goal{
			Goal:   name + ": whole run within 10% of its lower bound",
			Met:    rlb > 0 && d.RunSeconds <= 1.10*rlb,
			Detail: fmt.Sprintf("%.1f s vs bound %.1f s (%s)", d.RunSeconds, rlb, ratio(d.RunSeconds, rlb)),
		})
		if f2, ok := by["fixed-2"]; ok {
			g := Goal{
				Goal:   name + ": at least 1.5x faster than fixed-2 where bandwidth allows more",
				Met:    f2.DrainSeconds >= 1.5*d.DrainSeconds,
				Detail: fmt.Sprintf("%.1f s vs %.1f s: %s", d.DrainSeconds, f2.DrainSeconds, ratio(f2.DrainSeconds, d.DrainSeconds)),
			}
			switch {
			case d.NICMbps <= 2*d.StreamMbps:
				g.NotApplicable = true
				g.Detail = fmt.Sprintf("%.0f Mb/s NIC, %.0f Mb/s per stream: 2 streams already fill it", d.NICMbps, d.StreamMbps)
			case f2.DrainSeconds < 1.5*lb:
				g.NotApplicable = true
				g.Detail = fmt.Sprintf("1.5x faster than fixed-2's %.1f s would be %.1f s, below the %.1f s lower bound; drover: %.1f s (%s)",
					f2.DrainSeconds, f2.DrainSeconds/1.5, lb, d.DrainSeconds, ratio(f2.DrainSeconds, d.DrainSeconds))
			}
			out = append(out, g)
		}
		best, bestName := math.Inf(1), ""
		bestRun, bestRunName := math.Inf(1), ""
		for _, r := range sc {
			if r.Strategy == Baseline {
				continue
			}
			if r.DrainSeconds < best {
				best, bestName = r.DrainSeconds, r.Strategy
			}
			if r.RunSeconds < bestRun {
				bestRun, bestRunName = r.RunSeconds, r.Strategy
			}
		}
		out = append(out, Goal{
			Goal:   name + ": never slower than the best fixed strategy",
			Met:    d.DrainSeconds <= best+0.05 && d.RunSeconds <= bestRun+0.05,
			Detail: fmt.Sprintf("drain %.1f s vs %s %.1f s; run %.1f s vs %s %.1f s", d.DrainSeconds, bestName, best, d.RunSeconds, bestRunName, bestRun),
		})
		if d.Nodes == 16 || d.Nodes == 64 {
			out = append(out, Goal{
				Goal:   fmt.Sprintf("%s (%d nodes): at most 1.05 migrations per VM", name, d.Nodes),
				Met:    d.MigrationsPerVM <= 1.05,
				Detail: fmt.Sprintf("%.3f (the least possible is %.3f)", d.MigrationsPerVM, d.MinMigrationsPerVM),
			})
		}
	}
	if scale != nil {
		out = append(out, Goal{
			Goal: fmt.Sprintf("plan of %d nodes / %d VMs under 2 s and 1 GiB", scale.Nodes, scale.VMs),
			Met:  scale.PlanSeconds < 2 && scale.AllocatedBytes < 1<<30,
			Detail: fmt.Sprintf("%.2f s, %.0f MiB allocated, %.0f MiB live heap (inventory read %.2f s)",
				scale.PlanSeconds, float64(scale.AllocatedBytes)/(1<<20), float64(scale.LiveHeapBytes)/(1<<20), scale.InventorySeconds),
		})
	}
	return out
}

// WriteGoals prints the goals, one per line, met or MISSED.
func WriteGoals(w io.Writer, goals []Goal) {
	for _, g := range goals {
		mark := "met   "
		switch {
		case g.NotApplicable:
			mark = "n/a   "
		case !g.Met:
			mark = "MISSED"
		}
		fmt.Fprintf(w, "  %s  %s: %s\n", mark, g.Goal, g.Detail)
	}
}
