package libvirt_test

import (
	"context"
	"testing"
	"time"

	"github.com/droverhq/drover/cluster"
)

// TestLabDirtyRate reads the drain scheduler's inputs from real libvirtd hosts:
// every running guest's dirty rate from libvirt's dirty-rate calculation (the first
// inventory starts it, a later one reads it), and the configured nic_mbps of each
// host. Run it alone with:
//
//	DROVER_LIBVIRT_LAB=1 go test -count=1 -v -run TestLabDirtyRate ./drivers/libvirt/
func TestLabDirtyRate(t *testing.T) {
	l := startLab(t)
	waitGuests(t, l)
	raw := labConfig(l.script, t.TempDir())
	for i, h := range raw["hosts"].([]any) {
		h.(map[string]any)["nic_mbps"] = 400 * (i + 1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := openDriver(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var inv cluster.Inventory
	measured := func() bool {
		if inv, err = d.Inventory(ctx); err != nil {
			t.Fatalf("inventory: %v", err)
		}
		for _, vm := range labVMs {
			if v := vmOf(t, inv, vm); v.DirtySource != "measured" {
				return false
			}
		}
		return true
	}
	// Each inventory starts a calculation of 1 s; the next reads it.
	if !poll(30*time.Second, measured) {
		for _, vm := range labVMs {
			v := vmOf(t, inv, vm)
			t.Errorf("%s: dirty rate %v MiB/s, source %q: never measured", vm, v.DirtyMiBs, v.DirtySource)
		}
	}
	for _, vm := range labVMs {
		v := vmOf(t, inv, vm)
		// An idle busybox guest printing a heartbeat dirties little; 112 MiB of
		// guest memory cannot be dirtied faster than a TCG CPU writes.
		if v.DirtyMiBs < 0 || v.DirtyMiBs > 1024 {
			t.Errorf("%s: dirty rate %v MiB/s", vm, v.DirtyMiBs)
		}
		t.Logf("%s on %s: dirty rate %v MiB/s (%s)", vm, v.Node, v.DirtyMiBs, v.DirtySource)
	}
	for i, h := range labHosts {
		n, ok := inv.Node(h)
		if !ok || n.NICMbps != float64(400*(i+1)) || n.NICSource != "configured" {
			t.Errorf("host %s: nic %v Mb/s from %q, want %d configured", h, n.NICMbps, n.NICSource, 400*(i+1))
		}
	}
}
