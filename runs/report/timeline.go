package report

import (
	"bytes"
	"fmt"
	"html/template"
	"strings"
	"time"
)

// The timeline picture: one lane per node on a shared time axis, each state of
// the node a coloured bar, as the dashboard's run page draws it live. It is inline
// SVG with its colours in attributes, so the report stays one file without
// scripts or external assets; names are escaped by html/template.

// stateColours are the states' colours, the dashboard's palette.
var stateColours = map[string]string{
	"queued": "#d0d7de", "pausing": "#c297ff", "draining": "#3b82f6", "patching": "#f59e0b",
	"rebooting": "#ea580c", "verifying": "#14b8a6", "resuming": "#8b5cf6", "failing_back": "#0e7490",
	"done": "#22c55e", "failed": "#dc2626", "skipped": "#9ca3af",
}

// timelineStates is the legend's order.
var timelineStates = []string{"pausing", "draining", "patching", "rebooting", "verifying", "resuming", "failing_back", "done", "failed"}

type timeline struct {
	Width, Height int
	Lanes         []tlLane
	Ticks         []tlTick
	Legend        []tlLegend
}

type tlLane struct {
	Y, TextY int
	Name     string
	Label    string
	State    string
	Bars     []tlBar
	EndX     float64
	EndColor string
}

type tlBar struct {
	X, W  float64
	Color string
	Title string
}

type tlTick struct {
	X     float64
	Label string
}

type tlLegend struct {
	X     int
	Color string
	Name  string
}

const (
	tlWidth  = 1000
	tlLabelW = 120
	tlTop    = 24
	tlRowH   = 26
)

// buildTimeline lays the report's node phases out on one axis; ok is false when
// no node has a phase (nothing to draw).
func buildTimeline(rep Report) (timeline, bool) {
	var start, end time.Time
	for _, n := range rep.Nodes {
		for _, p := range n.Phases {
			pe := p.Start.Add(seconds(p.Seconds))
			if start.IsZero() || p.Start.Before(start) {
				start = p.Start
			}
			if pe.After(end) {
				end = pe
			}
		}
	}
	if start.IsZero() {
		return timeline{}, false
	}
	span := end.Sub(start)
	if span < time.Minute {
		span = time.Minute
	}
	span = span * 103 / 100
	scale := float64(tlWidth-tlLabelW-10) / span.Seconds()
	x := func(t time.Time) float64 { return tlLabelW + t.Sub(start).Seconds()*scale }
	tl := timeline{Width: tlWidth, Height: tlTop + tlRowH*len(rep.Nodes) + 30}
	step := tickStep(span)
	for t := time.Duration(0); t <= span; t += step {
		tl.Ticks = append(tl.Ticks, tlTick{X: tlLabelW + t.Seconds()*scale, Label: "+" + humanSeconds(t.Seconds())})
	}
	for i, n := range rep.Nodes {
		l := tlLane{Y: tlTop + i*tlRowH, Name: n.Name, Label: n.Name, State: n.State}
		if r := []rune(n.Name); len(r) > 16 {
			l.Label = string(r[:15]) + "…" // the whole name is the lane's title
		}
		l.TextY = l.Y + tlRowH/2 + 4
		for _, p := range n.Phases {
			w := max(p.Seconds*scale, 1.5)
			l.Bars = append(l.Bars, tlBar{X: x(p.Start), W: w, Color: colour(p.Name), Title: fmt.Sprintf("%s %s %s", n.Name, strings.ReplaceAll(p.Name, "_", " "), humanSeconds(p.Seconds))})
			l.EndX = x(p.Start) + w
		}
		if n.State == "done" || n.State == "failed" {
			l.EndColor = colour(n.State)
		}
		tl.Lanes = append(tl.Lanes, l)
	}
	for i, s := range timelineStates {
		tl.Legend = append(tl.Legend, tlLegend{X: tlLabelW + i*95, Color: colour(s), Name: strings.ReplaceAll(s, "_", " ")})
	}
	return tl, true
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func colour(state string) string {
	if c, ok := stateColours[state]; ok {
		return c
	}
	return "#8c959f"
}

func tickStep(span time.Duration) time.Duration {
	for _, s := range []time.Duration{10 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour} {
		if span/s <= 7 {
			return s
		}
	}
	return 12 * time.Hour
}

var timelineTemplate = template.Must(template.New("timeline").Parse(`<h2>Timeline</h2>
<svg class="timeline" viewBox="0 0 {{.Width}} {{.Height}}" width="100%" role="img" aria-label="timeline: one lane per node" font-family="system-ui, sans-serif" font-size="12">
{{- range .Ticks}}<line x1="{{.X}}" x2="{{.X}}" y1="16" y2="{{$.Height}}" stroke="#eaeef2"/><text x="{{.X}}" y="12" fill="#57606a" font-size="11" text-anchor="middle">{{.Label}}</text>{{end}}
{{- range .Lanes}}<g class="lane" data-node="{{.Name}}" data-state="{{.State}}"><title>{{.Name}}</title><text x="4" y="{{.TextY}}" font-weight="600" fill="#1b1f24">{{.Label}}</text>
{{- $y := .Y}}{{range .Bars}}<rect x="{{.X}}" y="{{$y}}" width="{{.W}}" height="18" rx="2" fill="{{.Color}}"><title>{{.Title}}</title></rect>{{end}}
{{- if .EndColor}}<rect x="{{.EndX}}" y="{{$y}}" width="4" height="18" fill="{{.EndColor}}"/>{{end}}</g>
{{end}}
{{- range .Legend}}<rect x="{{.X}}" y="{{$.Height}}" width="12" height="10" fill="{{.Color}}" transform="translate(0,-18)"/><text x="{{.X}}" y="{{$.Height}}" dx="16" transform="translate(0,-9)" font-size="11" fill="#57606a">{{.Name}}</text>{{end}}
</svg>`))

// timelineHTML is the picture for the HTML report ("" when there is nothing to
// draw). Its output comes from html/template, so it is safe to embed as is.
func timelineHTML(rep Report) (template.HTML, error) {
	tl, ok := buildTimeline(rep)
	if !ok {
		return "", nil
	}
	var buf bytes.Buffer
	if err := timelineTemplate.Execute(&buf, tl); err != nil {
		return "", fmt.Errorf("draw the timeline: %w", err)
	}
	return template.HTML(buf.String()), nil //nolint:gosec // produced by html/template
}
