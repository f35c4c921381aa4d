package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/runs"
)

// hostileReport is a run whose names and outputs carry markup, formulas and table
// separators, as a cluster (untrusted) could report them.
func hostileReport() Report {
	t0 := time.Date(2026, 11, 3, 22, 0, 0, 0, time.UTC)
	run := runs.Run{ID: "20261103-220000-abcdef", Cluster: "prod", State: runs.StatePartiallyFailed, StartedAt: t0, FinishedAt: t0.Add(95 * time.Minute), Error: "1 of 2 nodes failed", Resumes: 1}
	nodes := []runs.NodeRecord{
		{
			Name: "n|1", State: "done",
			Installed: []runs.Update{{Name: "kernel", Version: "6.1.0-31"}, {Name: "=cmd|' /C calc'!A0", Version: "1"}},
			Migrations: []runs.Migration{
				{VM: "<script>alert(1)</script>", From: "n|1", To: "n2", Kind: runs.KindDrain, Seconds: 12.5, TransferredMiB: 2048, OK: true, Attempt: 1},
				{VM: "db-1", From: "n|1", To: "n2", Kind: runs.KindDrain, Seconds: 30, OK: false, Error: "did not converge", Attempt: 1},
				{VM: "db-1", From: "n|1", To: "n2", Kind: runs.KindDrain, Seconds: 61, TransferredMiB: 4096, OK: true, Attempt: 2},
			},
			Phases:  []runs.Phase{{Name: "draining", Start: t0, Seconds: 91}, {Name: "rebooting", Start: t0.Add(2 * time.Minute), Seconds: 75}},
			Hooks:   []runs.HookRun{{Name: "pre", ExitCode: 0, Output: "ok ``` </pre><img src=https://evil.example/x>", Seconds: 1.5}},
			VMsLeft: []runs.VMLeft{{VM: "gpu-1", Action: "shutdown", Reason: "passthrough GPU", Restarted: true}},
			Notes:   []string{"install output: done"},
		},
		{
			Name: "n2", State: "failed", Failure: "node n2 did not come back within policy.reboot_timeout",
			FailedUpdates: []runs.UpdateFailure{{Update: runs.Update{Name: "qemu", Version: "8.2.4"}, Error: "dpkg: error"}},
			LeftPaused:    "resume failed: unreachable",
			Errors:        []string{"post hook: exit 3"},
		},
	}
	return Build(run, nodes)
}

func TestRender_EveryFormatCarriesTheFacts(t *testing.T) {
	rep := hostileReport()
	facts := []string{"20261103-220000-abcdef", "prod", "kernel", "6.1.0-31", "db-1", "did not converge", "passthrough GPU", "dpkg: error", "reboot_timeout", "post hook: exit 3", "draining", "rebooting"}
	for _, format := range Formats() {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Render(&buf, rep, format); err != nil {
				t.Fatalf("Render: %v", err)
			}
			out := buf.String()
			for _, f := range facts {
				if !strings.Contains(out, f) {
					t.Errorf("%s report lacks %q", format, f)
				}
			}
		})
	}
}

func TestRender_UnknownFormat(t *testing.T) {
	err := Render(&bytes.Buffer{}, hostileReport(), "pdf")
	if err == nil || !strings.Contains(err.Error(), "json, html, csv, md") {
		t.Fatalf("err = %v, want the list of formats", err)
	}
}

func TestRenderJSON_IsTheContract(t *testing.T) {
	rep := hostileReport()
	var buf bytes.Buffer
	if err := RenderJSON(&buf, rep); err != nil {
		t.Fatal(err)
	}
	if strings.Count(buf.String(), "\n") != 1 {
		t.Errorf("JSON report is not one line: %q", buf.String())
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Summary, rep.Summary) || len(back.Nodes) != 2 || back.Nodes[0].Migrations[0].VM != "<script>alert(1)</script>" {
		t.Errorf("JSON round trip changed the report: %+v", back)
	}
}

func TestRenderHTML_SelfContainedAndEscaped(t *testing.T) {
	var buf bytes.Buffer
	if err := RenderHTML(&buf, hostileReport()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	allowed := map[string]bool{"!doctype": true, "html": true, "head": true, "meta": true, "title": true, "style": true, "body": true,
		"h1": true, "h2": true, "h3": true, "dl": true, "dt": true, "dd": true, "span": true, "div": true, "table": true,
		"tr": true, "th": true, "td": true, "section": true, "pre": true,
		"svg": true, "g": true, "rect": true, "line": true, "text": true} // the timeline picture
	for _, m := range tagRe.FindAllStringSubmatch(out, -1) {
		name := strings.ToLower(m[1])
		if !allowed[name] {
			t.Errorf("HTML report has a <%s> tag: markup from the cluster leaked or an external asset is used", name)
		}
		if attrs := strings.ToLower(m[2]); strings.Contains(attrs, "src=") || strings.Contains(attrs, "href=") || handlerRe.MatchString(attrs) {
			t.Errorf("HTML tag <%s%s> loads or runs something", m[1], m[2])
		}

	}
	style := out[strings.Index(out, "<style>"):strings.Index(out, "</style>")]
	if strings.Contains(style, "url(") || strings.Contains(style, "@import") {
		t.Error("the stylesheet loads something")
	}
	for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;/pre&gt;&lt;img src=https://evil.example/x&gt;"} {
		if !strings.Contains(out, want) {
			t.Errorf("HTML report lacks the escaped %q", want)
		}
	}
	if !strings.Contains(out, "@media print") {
		t.Error("no print stylesheet")
	}
	if got := strings.Count(out, `<section class="node">`); got != 2 {
		t.Errorf("%d node sections, want 2", got)
	}
}

// tagRe finds opening tags with their attributes.
var (
	tagRe     = regexp.MustCompile(`<([!A-Za-z][A-Za-z0-9]*)([^>]*)>`)
	handlerRe = regexp.MustCompile(`\bon[a-z]+\s*=`)
)

func TestRenderCSV_OneTableThatParsesBack(t *testing.T) {
	var buf bytes.Buffer
	if err := RenderCSV(&buf, hostileReport()); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatalf("CSV does not parse: %v", err)
	}
	if !reflect.DeepEqual(rows[0], csvHeader) {
		t.Fatalf("header = %v", rows[0])
	}
	count := map[string]int{}
	col := map[string]int{}
	for i, c := range csvHeader {
		col[c] = i
	}
	for _, r := range rows[1:] {
		count[r[col["record"]]]++
		if r[col["record"]] == "update" && strings.HasPrefix(r[col["item"]], "=") {
			t.Errorf("formula not defused: %q", r[col["item"]])
		}
	}
	want := map[string]int{"run": 1, "node": 2, "update": 2, "update_failed": 1, "migration": 2, "migration_failed": 1, "phase": 2, "hook": 1, "vm_left": 1, "note": 1, "error": 1}
	if !reflect.DeepEqual(count, want) {
		t.Errorf("rows per record = %v, want %v", count, want)
	}
	for _, r := range rows[1:] {
		if r[col["record"]] == "migration" && r[col["item"]] == "db-1" && (r[col["seconds"]] != "61.0" || r[col["mib"]] != "4096.0" || r[col["attempt"]] != "2") {
			t.Errorf("migration row = %v", r)
		}
	}
}

func TestRenderMarkdown_TablesSurviveHostileNames(t *testing.T) {
	var buf bytes.Buffer
	if err := RenderMarkdown(&buf, hostileReport()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	// Every table row must have as many unescaped cell separators as its header.
	lines := strings.Split(out, "\n")
	header := -1
	for _, l := range lines {
		if !strings.HasPrefix(l, "|") {
			header = -1
			continue
		}
		n := strings.Count(l, "|") - strings.Count(l, `\|`)
		if header < 0 {
			header = n
			continue
		}
		if n != header {
			t.Errorf("row %q has %d separators, its table %d", l, n, header)
		}
	}
	if strings.Contains(out, "<script>") {
		t.Error("raw HTML passed into Markdown")
	}
	if !strings.Contains(out, "````text\nok ``` </pre>") {
		t.Errorf("hook output with backticks not fenced by a longer fence:\n%s", out)
	}
}

func TestHumanSeconds(t *testing.T) {
	tests := []struct {
		name string
		in   float64
		want string
	}{
		{"zero", 0, "0s"}, {"fraction", 1.54, "1.5s"}, {"seconds", 42, "42s"}, {"minutes", 185, "3m05s"}, {"hours", 7260, "2h01m"}, {"negative", -3, "0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := humanSeconds(tt.in); got != tt.want {
				t.Errorf("humanSeconds(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
