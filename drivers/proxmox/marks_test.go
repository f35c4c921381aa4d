package proxmox

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
)

func nodeOf(t *testing.T, d *Driver, name string) cluster.Node {
	t.Helper()
	inv, err := d.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n, ok := inv.Node(name)
	if !ok {
		t.Fatalf("node %s missing", name)
	}
	return n
}

// TestPauseMarks: two Drovers (two driver instances) on one cluster. The first one's
// mark is written in the cluster filesystem with its maintenance and reported as
// PausedBy, also from another node while the marked node reboots; the second is
// refused; resume removes the mark; a stale mark on a node out of maintenance names
// nobody and is replaced; an admin's maintenance carries no mark.
func TestPauseMarks(t *testing.T) {
	opts := testCluster()
	opts.Guests = opts.Guests[:3] // all on pve1: pve2 and pve3 reboot empty
	l := newLab(t, opts)
	a, b := l.open(t), l.open(t)
	ctx := context.Background()
	if !a.Capabilities().PauseOwner {
		t.Fatal("pause_owner not declared")
	}

	if err := a.PauseNode(ctx, "pve2", "drover-run:A"); err != nil {
		t.Fatal(err)
	}
	if n := nodeOf(t, b, "pve2"); !n.Paused || n.PausedBy != "drover-run:A" {
		t.Fatalf("pve2 seen by the second drover: paused=%v by %q", n.Paused, n.PausedBy)
	}
	if err := b.PauseNode(ctx, "pve2", "drover-run:B"); !errors.Is(err, drivers.ErrPausedByOther) {
		t.Fatalf("second drover's pause of pve2 = %v, want ErrPausedByOther", err)
	}
	if err := a.PauseNode(ctx, "pve2", "drover-run:A"); err != nil {
		t.Fatalf("pausing again under the same mark: %v", err)
	}
	if m := l.c.Model.Marks(); m["pve2"] != "drover-run:A" {
		t.Fatalf("marks in /etc/pve: %v", m)
	}

	// The mark is read from another node while pve2 reboots.
	if err := a.RebootNode(ctx, "pve2"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "pve2 down", 20*time.Second, func() bool { return !l.c.Model.Online("pve2") })
	if n := nodeOf(t, b, "pve2"); !n.Paused || n.PausedBy != "drover-run:A" {
		t.Errorf("pve2 while down: paused=%v by %q", n.Paused, n.PausedBy)
	}
	waitUntil(t, "pve2 ready", 30*time.Second, func() bool {
		ok, err := a.NodeReady(ctx, "pve2")
		return err == nil && ok
	})
	if err := a.ResumeNode(ctx, "pve2"); err != nil {
		t.Fatal(err)
	}
	if n := nodeOf(t, b, "pve2"); n.Paused || n.PausedBy != "" || len(l.c.Model.Marks()) != 0 {
		t.Fatalf("after resume: paused=%v by %q, marks %v", n.Paused, n.PausedBy, l.c.Model.Marks())
	}

	// A mark left behind (a crash between disabling maintenance and removing it).
	l.c.Model.SetMark("pve3", "drover-run:Z")
	if n := nodeOf(t, a, "pve3"); n.Paused || n.PausedBy != "" {
		t.Errorf("stale mark on a node out of maintenance: paused=%v by %q", n.Paused, n.PausedBy)
	}
	if err := b.PauseNode(ctx, "pve3", "drover-run:B"); err != nil {
		t.Fatalf("pause over a stale mark: %v", err)
	}
	if n := nodeOf(t, a, "pve3"); n.PausedBy != "drover-run:B" {
		t.Errorf("pve3 paused by %q, want drover-run:B", n.PausedBy)
	}
	if err := b.ResumeNode(ctx, "pve3"); err != nil {
		t.Fatal(err)
	}

	// An admin's maintenance (ha-manager by hand) has no mark.
	if err := l.c.Model.SetMaintenance("pve3", true); err != nil {
		t.Fatal(err)
	}
	if n := nodeOf(t, a, "pve3"); !n.Paused || n.PausedBy != "" {
		t.Errorf("admin's maintenance: paused=%v by %q", n.Paused, n.PausedBy)
	}
	if s := l.c.Model.Snapshot(); s.Stats.MarkClaims != 2 {
		t.Errorf("marks written %d, want 2 (A once, B once)", s.Stats.MarkClaims)
	}
}
