package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/runs"
)

func TestTimeline_LanesOnOneAxis(t *testing.T) {
	t0 := time.Date(2026, 11, 3, 22, 0, 0, 0, time.UTC)
	rep := Build(runs.Run{ID: "r", Cluster: "c", State: runs.StateSucceeded}, []runs.NodeRecord{
		{Name: "a", State: "done", Phases: []runs.Phase{{Name: "draining", Start: t0, Seconds: 60}, {Name: "rebooting", Start: t0.Add(time.Minute), Seconds: 60}}},
		{Name: "b", State: "failed", Phases: []runs.Phase{{Name: "draining", Start: t0.Add(2 * time.Minute), Seconds: 120}}},
		{Name: "c", State: "skipped"},
	})
	tl, ok := buildTimeline(rep)
	if !ok {
		t.Fatal("no timeline for a report with phases")
	}
	if len(tl.Lanes) != 3 {
		t.Fatalf("%d lanes, want one per node (3)", len(tl.Lanes))
	}
	a, b := tl.Lanes[0], tl.Lanes[1]
	// Shared axis: b starts where a's second phase ends, and is twice as long as
	// each of a's phases.
	if got, want := b.Bars[0].X, a.Bars[1].X+a.Bars[1].W; abs(got-want) > 0.01 {
		t.Errorf("b starts at x=%.2f, want %.2f (the end of a's reboot)", got, want)
	}
	if got, want := b.Bars[0].W, 2*a.Bars[0].W; abs(got-want) > 0.01 {
		t.Errorf("b's 120 s bar is %.2f wide, want %.2f (twice a's 60 s)", got, want)
	}
	if a.Bars[0].Color != stateColours["draining"] || a.Bars[1].Color != stateColours["rebooting"] || b.EndColor != stateColours["failed"] || a.EndColor != stateColours["done"] {
		t.Errorf("colours by state are wrong: a=%+v b=%+v", a, b)
	}
	if len(tl.Lanes[2].Bars) != 0 || tl.Lanes[2].EndColor != "" {
		t.Errorf("skipped node c has bars: %+v", tl.Lanes[2])
	}
	if _, ok := buildTimeline(Build(runs.Run{ID: "r"}, []runs.NodeRecord{{Name: "a", State: "queued"}})); ok {
		t.Error("a report without phases drew a timeline")
	}
}

func TestTimeline_EscapesNames(t *testing.T) {
	const evil = `<img src=x onerror=alert(1)>"'`
	t0 := time.Date(2026, 11, 3, 22, 0, 0, 0, time.UTC)
	rep := Build(runs.Run{ID: "r", Cluster: "c", State: runs.StateSucceeded}, []runs.NodeRecord{
		{Name: evil, State: "done", Phases: []runs.Phase{{Name: "draining", Start: t0, Seconds: 60}}},
	})
	var buf bytes.Buffer
	if err := RenderHTML(&buf, rep); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	i := strings.Index(out, `<svg class="timeline"`)
	if i < 0 {
		t.Fatal("the HTML report has no timeline")
	}
	svg := out[i : i+strings.Index(out[i:], "</svg>")]
	if strings.Count(svg, `<g class="lane"`) != 1 || !strings.Contains(svg, "&lt;img src=x onerror=alert(1)&gt;") {
		t.Errorf("timeline does not show the node's name escaped:\n%s", svg)
	}
	if strings.Contains(svg, "<img") || strings.Contains(svg, `"'"`) {
		t.Errorf("timeline holds markup from the cluster:\n%s", svg)
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}
