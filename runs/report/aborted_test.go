package report

import (
	"bytes"
	"strings"
	"testing"

	"github.com/droverhq/drover/runs"
)

// TestBuild_AbortedMigrationsAreNotFailedAttempts: a migration the run cut off is
// counted and rendered apart from failed attempts, in every format.
func TestBuild_AbortedMigrationsAreNotFailedAttempts(t *testing.T) {
	rep := Build(runs.Run{ID: "r1", Cluster: "c", State: runs.StateStopped}, []runs.NodeRecord{{
		Name: "n1", State: "skipped",
		Migrations: []runs.Migration{
			{VM: "v1", From: "n1", To: "n2", Kind: runs.KindDrain, OK: true, Attempt: 1},
			{VM: "v2", From: "n1", To: "n2", Kind: runs.KindDrain, Error: "aborted: context canceled", Aborted: true, Attempt: 1},
			{VM: "v3", From: "n1", To: "n2", Kind: runs.KindDrain, Error: "not converged", Attempt: 1},
		},
	}})
	if sm := rep.Summary; sm.FailedMigrations != 1 || sm.AbortedMigrations != 1 || sm.Migrations != 1 {
		t.Errorf("summary: %d ok, %d failed, %d aborted; want 1, 1, 1", sm.Migrations, sm.FailedMigrations, sm.AbortedMigrations)
	}
	if n := rep.Nodes[0]; len(n.FailedMigrations) != 1 || n.FailedMigrations[0].VM != "v3" || len(n.AbortedMigrations) != 1 || n.AbortedMigrations[0].VM != "v2" {
		t.Errorf("node: failed %+v, aborted %+v", n.FailedMigrations, n.AbortedMigrations)
	}
	for format, want := range map[string]string{
		"md":   "(1 failed attempt, 1 aborted)",
		"html": "(1 failed attempt, 1 aborted)",
		"csv":  "migration_aborted",
		"json": `"aborted_migrations":1`,
	} {
		var b bytes.Buffer
		if err := Render(&b, rep, format); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), want) {
			t.Errorf("%s report lacks %q", format, want)
		}
		if format != "json" && format != "csv" && !strings.Contains(b.String(), "aborted by the run (not a failed attempt)") {
			t.Errorf("%s report does not list v2 as aborted by the run", format)
		}
	}
}
