package dashboard

import (
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/droverhq/drover/cmd/drover/internal/wire"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/orchestrator/readiness"
	"github.com/droverhq/drover/policies"
)

// planPage is the plan page: the picture, the nodes in order with where each VM
// goes and the reserve held while the node is out, and the readiness checks.
type planPage struct {
	Cluster     string
	Plan        *orchestrator.RunPlan
	PlanErr     string
	Chart       chart
	Analysis    readiness.Analysis
	AnalysisErr string
	Counts      map[string]int
	Unfinished  string
}

// chart is the predicted timeline as SVG geometry (user units).
type chart struct {
	Width, Height int
	Rows          []chartRow
	Ticks         []tick
}

type chartRow struct {
	Y       int
	TextY   int
	Label   string
	Bars    []bar
	Blocked bool
}

type bar struct {
	X, W  float64
	Class string
	Title string
}

type tick struct {
	X     float64
	Label string
}

const (
	chartWidth  = 1000
	chartLabelW = 130
	chartRowH   = 30
	chartTop    = 26
)

// planChart lays the plan's nodes out on one time axis: each node's predicted
// drain, install, reboot and failback.
func planChart(p *orchestrator.RunPlan) chart {
	if p == nil {
		return chart{}
	}
	total := p.ETA
	for _, n := range p.Nodes {
		total = max(total, n.End)
	}
	if total <= 0 {
		total = time.Minute
	}
	span := float64(chartWidth - chartLabelW - 10)
	x := func(d time.Duration) float64 { return chartLabelW + span*d.Seconds()/total.Seconds() }
	c := chart{Width: chartWidth, Height: chartTop + chartRowH*len(p.Nodes) + 6}
	for _, t := range axisTicks(total) {
		c.Ticks = append(c.Ticks, tick{X: x(t), Label: humanDuration(t)})
	}
	for i, n := range p.Nodes {
		row := chartRow{Y: chartTop + i*chartRowH, Label: n.Node, Blocked: n.Status != policies.NodePlanned}
		row.TextY = row.Y + chartRowH/2 + 4
		at := n.Start
		for _, ph := range []struct {
			class string
			d     time.Duration
		}{{"draining", n.Drain}, {"patching", n.Install}, {"rebooting", n.Reboot}, {"failing_back", n.FailbackTime}} {
			if ph.d <= 0 {
				continue
			}
			w := math.Max(x(at+ph.d)-x(at), 1)
			row.Bars = append(row.Bars, bar{X: x(at), W: w, Class: ph.class, Title: fmt.Sprintf("%s %s: %s", n.Node, ph.class, humanDuration(ph.d))})
			at += ph.d
		}
		c.Rows = append(c.Rows, row)
	}
	return c
}

// axisTicks are round times from 0 to total, about six of them.
func axisTicks(total time.Duration) []time.Duration {
	steps := []time.Duration{10 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour}
	step := steps[len(steps)-1]
	for _, s := range steps {
		if total/s <= 6 {
			step = s
			break
		}
	}
	var out []time.Duration
	for t := time.Duration(0); t <= total; t += step {
		out = append(out, t)
	}
	return out
}

func (d *Dashboard) handlePlan(w http.ResponseWriter, r *http.Request, u user) {
	c := r.PathValue("cluster")
	pp := planPage{Cluster: c, Counts: map[string]int{}}
	var pv wire.Preview
	if err := d.call(r, u, "GET", apiPath("/api/v1/clusters/%s/preview", c), nil, &pv); err != nil {
		if errorStatus(err) == http.StatusNotFound {
			d.fail(w, r, u, http.StatusNotFound, err.Error())
			return
		}
		pp.PlanErr = err.Error()
	} else {
		pp.Plan, pp.Unfinished = pv.Plan, pv.UnfinishedRun
		pp.Chart = planChart(pv.Plan)
	}
	if err := d.call(r, u, "GET", apiPath("/api/v1/clusters/%s/analyze", c), nil, &pp.Analysis); err != nil {
		pp.AnalysisErr = err.Error()
	}
	for _, ch := range pp.Analysis.Checks {
		pp.Counts[string(ch.Status)]++
	}
	d.render(w, http.StatusOK, "plan", pageData{Title: "Plan of " + c, Nav: "plan", User: &u, Data: pp})
}
