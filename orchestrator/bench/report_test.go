package bench

import (
	"bytes"
	"strings"
	"testing"
)

func TestGoals(t *testing.T) {
	row := func(strategy string, drain, run float64) Row {
		return Row{Name: "s", Strategy: strategy, DrainSeconds: drain, RunSeconds: run, LowerBoundDrainSeconds: 100,
			NICMbps: 10000, StreamMbps: 3000, Nodes: 16, MigrationsPerVM: 1.02, MinMigrationsPerVM: 1.01}
	}
	tests := []struct {
		name string
		rows []Row
		// want maps a goal's prefix to "met", "missed" or "n/a".
		want map[string]string
	}{
		{
			name: "all-met",
			rows: []Row{row("serial", 400, 4000), row("fixed-2", 200, 3000), row("fixed-8", 120, 2000), row("per-source-1", 400, 4000), row("drover", 105, 1900)},
			want: map[string]string{"s: drain within": "met", "s: at least 1.5x": "met", "s: never slower": "met", "s (16 nodes)": "met"},
		},
		{
			name: "over-the-bound-and-slower-than-fixed-8",
			rows: []Row{row("fixed-2", 200, 3000), row("fixed-8", 111, 2000), row("drover", 112, 1900)},
			want: map[string]string{"s: drain within": "missed", "s: at least 1.5x": "met", "s: never slower": "missed"},
		},
		{
			// fixed-2 within 1.5x of the bound: no schedule can be 1.5x faster.
			name: "speedup-physically-impossible",
			rows: []Row{row("fixed-2", 140, 3000), row("drover", 101, 1900)},
			want: map[string]string{"s: at least 1.5x": "n/a"},
		},
		{
			name: "run-slower-than-a-fixed-strategy",
			rows: []Row{row("fixed-8", 120, 1800), row("drover", 101, 1900)},
			want: map[string]string{"s: never slower": "missed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]string{}
			for _, g := range Goals(tt.rows, nil) {
				state := "met"
				switch {
				case g.NotApplicable:
					state = "n/a"
				case !g.Met:
					state = "missed"
				}
				for prefix := range tt.want {
					if strings.HasPrefix(g.Goal, prefix) {
						got[prefix] = state
					}
				}
			}
			for prefix, want := range tt.want {
				if got[prefix] != want {
					t.Errorf("goal %q = %q, want %q", prefix, got[prefix], want)
				}
			}
		})
	}
}

func TestWriteTable(t *testing.T) {
	rows := []Row{
		{Name: "s", Strategy: "fixed-2", DrainSeconds: 200, RunSeconds: 3000, LowerBoundDrainSeconds: 100, DrainedNodes: []string{"n1"}},
		{Name: "s", Strategy: "drover", DrainSeconds: 100, RunSeconds: 1500, LowerBoundDrainSeconds: 100, DrainedNodes: []string{"n1"}},
	}
	var b bytes.Buffer
	WriteTable(&b, rows)
	out := b.String()
	for _, want := range []string{"s: 0 nodes", "lower bound 100.0 s", "fixed-2", "200.0", "2.00x", "drover", "1.00x"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
