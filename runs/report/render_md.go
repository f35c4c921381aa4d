package report

import (
	"fmt"
	"io"
	"strings"
)

// RenderMarkdown writes the report as GitHub-flavoured Markdown: a summary, then per
// node its updates, migrations, phases, hooks and problems.
func RenderMarkdown(w io.Writer, rep Report) error {
	var b strings.Builder
	sm := rep.Summary
	fmt.Fprintf(&b, "# Drover run %s\n\n", mdText(rep.ID))
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| Cluster | %s |\n| State | **%s** |\n| Started | %s |\n", mdText(rep.Cluster), mdText(rep.State), stamp(rep.StartedAt))
	if !rep.FinishedAt.IsZero() {
		fmt.Fprintf(&b, "| Finished | %s |\n| Duration | %s |\n", stamp(rep.FinishedAt), durations(rep))
	}
	if !rep.ClusterStartedAt.IsZero() {
		fmt.Fprintf(&b, "| Cluster clock | %s |\n", clusterSpan(rep))
	}
	if rep.Resumes > 0 {
		fmt.Fprintf(&b, "| Resumed | %s |\n", Times(rep.Resumes))
	}
	if rep.Error != "" {
		fmt.Fprintf(&b, "| Error | %s |\n", mdText(rep.Error))
	}
	fmt.Fprintf(&b, "| Nodes | %d done, %d failed, %d skipped of %d |\n", sm.NodesDone, sm.NodesFailed, sm.NodesSkipped, sm.Nodes)
	fmt.Fprintf(&b, "| Updates | %d installed, %d failed |\n", sm.UpdatesInstalled, sm.UpdatesFailed)
	fmt.Fprintf(&b, "| Migrations | %d (%s%s), %s moved, %s moved more than once, %.2f drain moves per VM, %.0f MiB |\n", sm.Migrations, Count(sm.FailedMigrations, "failed attempt", "failed attempts"), Aborted(sm.AbortedMigrations), Count(sm.VMsMoved, "VM", "VMs"), Count(sm.MovedMoreThanOnce, "VM", "VMs"), sm.MigrationsPerVM, sm.TransferredMiB)
	b.WriteString("\n")
	for _, v := range sm.VMsLeftRunning {
		fmt.Fprintf(&b, "> **Warning:** vm %s was left running through its node's reboot.\n\n", mdText(v))
	}
	for _, n := range sm.LeftPaused {
		fmt.Fprintf(&b, "> **Warning:** node %s is left paused.\n\n", mdText(n))
	}
	for _, a := range sm.VMsAway {
		fmt.Fprintf(&b, "> **Warning:** %s.\n\n", mdText(a.String()))
	}
	b.WriteString("## Nodes\n\n| Node | State | Updates | Migrations | Time | Note |\n|---|---|---|---|---|---|\n")
	for _, n := range rep.Nodes {
		fmt.Fprintf(&b, "| %s | %s | %d installed, %d failed | %d (%d failed) | %s | %s |\n",
			mdText(n.Name), mdText(n.State), n.UpdatesInstalled, n.UpdatesFailed, len(n.Migrations), len(n.FailedMigrations), humanSeconds(n.Seconds), mdText(nodeNote(n)))
	}
	for _, n := range rep.Nodes {
		fmt.Fprintf(&b, "\n## Node %s: %s\n", mdText(n.Name), mdText(n.State))
		if note := nodeNote(n); note != "" {
			fmt.Fprintf(&b, "\n%s\n", mdText(note))
		}
		if len(n.Installed)+len(n.FailedUpdates) > 0 {
			b.WriteString("\n### Updates\n\n| Update | Version | Result |\n|---|---|---|\n")
			for _, u := range n.Installed {
				fmt.Fprintf(&b, "| %s | %s | installed |\n", mdText(u.Name), mdText(u.Version))
			}
			for _, u := range n.FailedUpdates {
				fmt.Fprintf(&b, "| %s | %s | failed: %s |\n", mdText(u.Name), mdText(u.Version), mdText(u.Error))
			}
		}
		if len(n.Migrations)+len(n.FailedMigrations)+len(n.AbortedMigrations) > 0 {
			b.WriteString("\n### Migrations\n\n| VM | From | To | Kind | Time | MiB | Result |\n|---|---|---|---|---|---|---|\n")
			for _, m := range n.Migrations {
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %.0f | ok |\n", mdText(m.VM), mdText(m.From), mdText(m.To), mdText(m.Kind), humanSeconds(m.Seconds), m.TransferredMiB)
			}
			for _, m := range n.FailedMigrations {
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %.0f | failed (attempt %d): %s |\n", mdText(m.VM), mdText(m.From), mdText(m.To), mdText(m.Kind), humanSeconds(m.Seconds), m.TransferredMiB, m.Attempt, mdText(m.Error))
			}
			for _, m := range n.AbortedMigrations {
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %.0f | aborted by the run (not a failed attempt) |\n", mdText(m.VM), mdText(m.From), mdText(m.To), mdText(m.Kind), humanSeconds(m.Seconds), m.TransferredMiB)
			}
		}
		if len(n.Phases) > 0 {
			b.WriteString("\n### Phases\n\n| Phase | Started | Time |\n|---|---|---|\n")
			for _, p := range n.Phases {
				fmt.Fprintf(&b, "| %s | %s | %s |\n", mdText(p.Name), stamp(p.Start), humanSeconds(p.Seconds))
			}
		}
		if len(n.VMsLeft) > 0 {
			b.WriteString("\n### VMs not moved\n\n| VM | Action | Reason |\n|---|---|---|\n")
			for _, v := range n.VMsLeft {
				reason := v.Reason
				if v.Restarted {
					reason += " (restarted)"
				}
				fmt.Fprintf(&b, "| %s | %s | %s |\n", mdText(v.VM), mdText(v.Action), mdText(reason))
			}
		}
		for _, h := range n.Hooks {
			fmt.Fprintf(&b, "\n### Hook %s: exit %d after %s\n", mdText(h.Name), h.ExitCode, humanSeconds(h.Seconds))
			if h.Error != "" {
				fmt.Fprintf(&b, "\n%s\n", mdText(h.Error))
			}
			if h.Output != "" {
				fence := codeFence(h.Output)
				fmt.Fprintf(&b, "\n%stext\n%s\n%s\n", fence, strings.TrimRight(h.Output, "\n"), fence)
			}
		}
		if len(n.Notes)+len(n.Errors) > 0 {
			b.WriteString("\n")
			for _, e := range n.Errors {
				fmt.Fprintf(&b, "- **Error:** %s\n", mdText(e))
			}
			for _, note := range n.Notes {
				fmt.Fprintf(&b, "- %s\n", mdText(note))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// mdReplacer escapes what would end a table cell or start markup.
var mdReplacer = strings.NewReplacer(
	"\\", "\\\\", "|", "\\|", "\r\n", " ", "\n", " ", "\r", " ",
	"*", "\\*", "`", "\\`", "<", "&lt;", ">", "&gt;", "[", "\\[", "]", "\\]",
)

// mdText makes text from the cluster safe inside Markdown table cells and lines.
func mdText(s string) string { return mdReplacer.Replace(s) }

// codeFence returns a backtick fence longer than any run of backticks in s.
func codeFence(s string) string {
	longest, run := 0, 0
	for _, c := range s {
		if c == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return strings.Repeat("`", max(3, longest+1))
}
