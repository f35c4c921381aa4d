package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// csvHeader is the CSV report's columns: one row per fact, its kind in "record"
// (run, node, update, update_failed, migration, migration_failed, phase, hook,
// vm_left, note, error), so a spreadsheet filter on "record" gives each table.
var csvHeader = []string{"record", "run_id", "cluster", "node", "item", "version", "state", "from", "to", "kind", "started", "seconds", "mib", "attempt", "exit_code", "detail"}

// RenderCSV writes the report as one CSV table (RFC 4180, header first).
func RenderCSV(w io.Writer, rep Report) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return fmt.Errorf("write csv report: %w", err)
	}
	row := func(rec map[string]string) {
		out := make([]string, len(csvHeader))
		for i, col := range csvHeader {
			out[i] = cell(rec[col])
		}
		_ = cw.Write(out) // errors surface in cw.Error below
	}
	base := func(record, node string) map[string]string {
		return map[string]string{"record": record, "run_id": rep.ID, "cluster": rep.Cluster, "node": node}
	}
	r := base("run", "")
	r["state"], r["started"], r["seconds"], r["detail"] = rep.State, stamp(rep.StartedAt), num(rep.Summary.Seconds), rep.Error
	row(r)
	for _, n := range rep.Nodes {
		r := base("node", n.Name)
		r["state"], r["seconds"], r["detail"] = n.State, num(n.Seconds), nodeNote(n)
		row(r)
		for _, u := range n.Installed {
			r := base("update", n.Name)
			r["item"], r["version"], r["state"] = u.Name, u.Version, "installed"
			row(r)
		}
		for _, u := range n.FailedUpdates {
			r := base("update_failed", n.Name)
			r["item"], r["version"], r["state"], r["detail"] = u.Name, u.Version, "failed", u.Error
			row(r)
		}
		for _, list := range []struct {
			record, state string
			ms            []Migration
		}{{"migration", "ok", n.Migrations}, {"migration_failed", "failed", n.FailedMigrations}, {"migration_aborted", "aborted", n.AbortedMigrations}} {
			for _, m := range list.ms {
				r := base(list.record, n.Name)
				r["item"], r["state"], r["from"], r["to"], r["kind"] = m.VM, list.state, m.From, m.To, m.Kind
				r["seconds"], r["mib"], r["detail"] = num(m.Seconds), num(m.TransferredMiB), m.Error
				if m.Attempt > 0 {
					r["attempt"] = strconv.Itoa(m.Attempt)
				}
				row(r)
			}
		}
		for _, p := range n.Phases {
			r := base("phase", n.Name)
			r["item"], r["started"], r["seconds"] = p.Name, stamp(p.Start), num(p.Seconds)
			row(r)
		}
		for _, h := range n.Hooks {
			r := base("hook", n.Name)
			r["item"], r["exit_code"], r["seconds"] = h.Name, strconv.Itoa(h.ExitCode), num(h.Seconds)
			r["detail"] = strings.TrimSpace(strings.Join([]string{h.Error, h.Output}, "\n"))
			row(r)
		}
		for _, v := range n.VMsLeft {
			r := base("vm_left", n.Name)
			r["item"], r["state"], r["detail"] = v.VM, v.Action, v.Reason
			if v.Restarted {
				r["detail"] += " (restarted)"
			}
			row(r)
		}
		for _, note := range n.Notes {
			r := base("note", n.Name)
			r["detail"] = note
			row(r)
		}
		for _, e := range n.Errors {
			r := base("error", n.Name)
			r["detail"] = e
			row(r)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv report: %w", err)
	}
	return nil
}

func num(f float64) string {
	if f == 0 {
		return "0"
	}
	return strconv.FormatFloat(f, 'f', 1, 64)
}

// cell defuses text a spreadsheet would run as a formula (names come from the
// cluster, which is not trusted to be harmless): a leading = + - @ tab or CR gets a
// quote in front.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
