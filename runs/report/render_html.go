package report

import (
	"fmt"
	"html/template"
	"io"
)

// RenderHTML writes the report as one self-contained HTML page: inline CSS, no
// scripts, no external assets, readable on screen and printable (each node starts
// a block that is not split across pages where it fits). Every value is escaped by
// html/template.
func RenderHTML(w io.Writer, rep Report) error {
	if err := htmlReport.Execute(w, rep); err != nil {
		return fmt.Errorf("write html report: %w", err)
	}
	return nil
}

var htmlReport = template.Must(template.New("report").Funcs(template.FuncMap{
	"times":       Times,
	"count":       Count,
	"durations":   durations,
	"clusterSpan": clusterSpan,
	"dur":         humanSeconds,
	"aborted":     Aborted,
	"stamp":       stamp,
	"note":        nodeNote,
	"mib":         func(f float64) string { return fmt.Sprintf("%.0f", f) },
	"ratio":       func(f float64) string { return fmt.Sprintf("%.2f", f) },
	"lanes":       timelineHTML,
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Drover run {{.ID}} ({{.Cluster}}): {{.State}}</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1f24; margin: 2em auto; max-width: 70em; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .2em; }
h2 { font-size: 1.2em; margin: 1.6em 0 .4em; border-bottom: 2px solid #d0d7de; padding-bottom: .2em; }
h3 { font-size: 1em; margin: 1em 0 .3em; }
table { border-collapse: collapse; width: 100%; margin: .3em 0 .8em; }
th, td { border: 1px solid #d0d7de; padding: .25em .5em; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f8fa; border: 1px solid #d0d7de; padding: .5em; white-space: pre-wrap; word-break: break-all; font-size: .9em; }
.state { font-weight: 600; padding: 0 .4em; border-radius: 3px; }
.succeeded, .done { background: #dafbe1; }
.failed, .partially_failed { background: #ffebe9; }
.stopped, .skipped, .running, .waiting_approval { background: #fff8c5; }
.warn { border-left: 4px solid #bf8700; background: #fff8c5; padding: .4em .8em; margin: .4em 0; }
.err { border-left: 4px solid #cf222e; background: #ffebe9; padding: .4em .8em; margin: .4em 0; }
.node { break-inside: avoid-page; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; }
dt { font-weight: 600; }
dd { margin: 0; }
@media print {
  body { margin: 0; max-width: none; font-size: 11px; }
  h2 { break-after: avoid; }
  tr { break-inside: avoid; }
  .state, th, .warn, .err { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
@page { margin: 1.5cm; }
</style>
</head>
<body>
<h1>Drover run {{.ID}}</h1>
<dl>
<dt>Cluster</dt><dd>{{.Cluster}}</dd>
<dt>State</dt><dd><span class="state {{.State}}">{{.State}}</span></dd>
<dt>Started</dt><dd>{{stamp .StartedAt}}</dd>
{{- if not .FinishedAt.IsZero}}
<dt>Finished</dt><dd>{{stamp .FinishedAt}} ({{durations .}})</dd>
{{- end}}
{{- if not .ClusterStartedAt.IsZero}}
<dt>Cluster clock</dt><dd>{{clusterSpan .}}</dd>
{{- end}}
{{- if .Resumes}}
<dt>Resumed</dt><dd>{{times .Resumes}}</dd>
{{- end}}
<dt>Nodes</dt><dd>{{.Summary.NodesDone}} done, {{.Summary.NodesFailed}} failed, {{.Summary.NodesSkipped}} skipped of {{.Summary.Nodes}}</dd>
<dt>Updates</dt><dd>{{.Summary.UpdatesInstalled}} installed, {{.Summary.UpdatesFailed}} failed</dd>
<dt>Migrations</dt><dd>{{.Summary.Migrations}} ({{count .Summary.FailedMigrations "failed attempt" "failed attempts"}}{{aborted .Summary.AbortedMigrations}}), {{count .Summary.VMsMoved "VM" "VMs"}} moved, {{count .Summary.MovedMoreThanOnce "VM" "VMs"}} moved more than once, {{ratio .Summary.MigrationsPerVM}} drain moves per VM, {{mib .Summary.TransferredMiB}} MiB</dd>
</dl>
{{lanes .}}
{{- if .Error}}
<div class="err">{{.Error}}</div>
{{- end}}
{{- range .Summary.VMsLeftRunning}}
<div class="warn">VM {{.}} was left running through its node's reboot.</div>
{{- end}}
{{- range .Summary.LeftPaused}}
<div class="warn">Node {{.}} is left paused.</div>
{{- end}}
{{- range .Summary.VMsAway}}
<div class="warn">{{.String}}.</div>
{{- end}}

<h2>Nodes</h2>
<table>
<tr><th>Node</th><th>State</th><th>Updates</th><th>Migrations</th><th>Time (cluster clock)</th><th>Note</th></tr>
{{- range .Nodes}}
<tr><td>{{.Name}}</td><td><span class="state {{.State}}">{{.State}}</span></td><td>{{.UpdatesInstalled}} installed, {{.UpdatesFailed}} failed</td><td class="num">{{len .Migrations}} ({{len .FailedMigrations}} failed)</td><td class="num">{{dur .Seconds}}</td><td>{{note .}}</td></tr>
{{- end}}
</table>
{{range .Nodes}}
<section class="node">
<h2>Node {{.Name}}: <span class="state {{.State}}">{{.State}}</span></h2>
{{- if .Failure}}<div class="err">Failed: {{.Failure}}</div>{{end}}
{{- if .SkipReason}}<div class="warn">Skipped: {{.SkipReason}}</div>{{end}}
{{- if .LeftPaused}}<div class="err">Left paused: {{.LeftPaused}}</div>{{end}}
{{- if or .Installed .FailedUpdates}}
<h3>Updates</h3>
<table><tr><th>Update</th><th>Version</th><th>Result</th></tr>
{{- range .Installed}}<tr><td>{{.Name}}</td><td>{{.Version}}</td><td>installed</td></tr>{{end}}
{{- range .FailedUpdates}}<tr><td>{{.Name}}</td><td>{{.Version}}</td><td>failed: {{.Error}}</td></tr>{{end}}
</table>
{{- end}}
{{- if or .Migrations .FailedMigrations .AbortedMigrations}}
<h3>Migrations</h3>
<table><tr><th>VM</th><th>From</th><th>To</th><th>Kind</th><th>Time</th><th>MiB</th><th>Result</th></tr>
{{- range .Migrations}}<tr><td>{{.VM}}</td><td>{{.From}}</td><td>{{.To}}</td><td>{{.Kind}}</td><td class="num">{{dur .Seconds}}</td><td class="num">{{mib .TransferredMiB}}</td><td>ok</td></tr>{{end}}
{{- range .FailedMigrations}}<tr><td>{{.VM}}</td><td>{{.From}}</td><td>{{.To}}</td><td>{{.Kind}}</td><td class="num">{{dur .Seconds}}</td><td class="num">{{mib .TransferredMiB}}</td><td>failed (attempt {{.Attempt}}): {{.Error}}</td></tr>{{end}}
{{- range .AbortedMigrations}}<tr><td>{{.VM}}</td><td>{{.From}}</td><td>{{.To}}</td><td>{{.Kind}}</td><td class="num">{{dur .Seconds}}</td><td class="num">{{mib .TransferredMiB}}</td><td>aborted by the run (not a failed attempt)</td></tr>{{end}}
</table>
{{- end}}
{{- if .Phases}}
<h3>Phases</h3>
<table><tr><th>Phase</th><th>Started (cluster clock)</th><th>Time (cluster clock)</th></tr>
{{- range .Phases}}<tr><td>{{.Name}}</td><td>{{stamp .Start}}</td><td class="num">{{dur .Seconds}}</td></tr>{{end}}
</table>
{{- end}}
{{- if .VMsLeft}}
<h3>VMs not moved</h3>
<table><tr><th>VM</th><th>Action</th><th>Reason</th></tr>
{{- range .VMsLeft}}<tr><td>{{.VM}}</td><td>{{.Action}}</td><td>{{.Reason}}{{if .Restarted}} (restarted){{end}}</td></tr>{{end}}
</table>
{{- end}}
{{- range .Hooks}}
<h3>Hook {{.Name}}: exit {{.ExitCode}} after {{dur .Seconds}}</h3>
{{- if .Error}}<div class="err">{{.Error}}</div>{{end}}
{{- if .Output}}<pre>{{.Output}}</pre>{{end}}
{{- end}}
{{- range .Errors}}<div class="err">{{.}}</div>{{end}}
{{- range .Notes}}<div class="warn">{{.}}</div>{{end}}
</section>
{{- end}}
</body>
</html>
`))
