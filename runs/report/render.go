package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// Formats are the names Render accepts, in the order the CLI lists them.
func Formats() []string { return []string{"json", "html", "csv", "md"} }

// ContentType returns the media type of a format, for HTTP answers.
func ContentType(format string) string {
	switch format {
	case "html":
		return "text/html; charset=utf-8"
	case "csv":
		return "text/csv; charset=utf-8"
	case "md":
		return "text/markdown; charset=utf-8"
	}
	return "application/json"
}

// Render writes rep in format (json, html, csv or md).
func Render(w io.Writer, rep Report, format string) error {
	switch format {
	case "json":
		return RenderJSON(w, rep)
	case "html":
		return RenderHTML(w, rep)
	case "csv":
		// Both end up in terminals, spreadsheets and tickets: no control characters.
		return RenderCSV(SafeWriter(w), rep)
	case "md":
		return RenderMarkdown(SafeWriter(w), rep)
	}
	return fmt.Errorf("report format %q: use one of %s", format, strings.Join(Formats(), ", "))
}

// RenderJSON writes the report's JSON contract on one line, as `runs show --json` does.
func RenderJSON(w io.Writer, rep Report) error {
	b, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// humanSeconds writes a duration in seconds as people read it: 42s, 3m05s, 2h01m.
func humanSeconds(s float64) string {
	if s <= 0 || math.IsNaN(s) || math.IsInf(s, 0) {
		return "0s"
	}
	if s < 10 {
		return fmt.Sprintf("%.1fs", s)
	}
	d := time.Duration(math.Round(s)) * time.Second
	h, m, sec := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	switch {
	case h > 0:
		return fmt.Sprintf("%dh%02dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm%02ds", m, sec)
	}
	return fmt.Sprintf("%ds", sec)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// nodeNote is the one-line reason shown next to a node's state.
func nodeNote(n Node) string {
	var parts []string
	if n.Failure != "" {
		parts = append(parts, n.Failure)
	}
	if n.SkipReason != "" {
		parts = append(parts, n.SkipReason)
	}
	if n.LeftPaused != "" {
		parts = append(parts, "LEFT PAUSED: "+n.LeftPaused)
	}
	return strings.Join(parts, "; ")
}
