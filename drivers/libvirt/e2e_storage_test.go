package libvirt_test

// End-to-end test of storage migration (issue 13) against the lab: guests on local
// qcow2 disks (lab.sh LAB_GUESTS "vm:host:disk", a file in each host's own storage
// pool) move live with their disks while drover patches every host, and a kill -9 of
// drover in the middle of a disk copy is resumed.
//
//	DROVER_LIBVIRT_LAB=1 go test -count=1 -v -run TestLabStorage ./drivers/libvirt/

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/droverhq/drover/drivers"
)

// diskVMs have a local disk in TestLabStorage; the other lab guests are diskless.
var diskVMs = []string{"vm1", "vm2"}

var diskLineRE = regexp.MustCompile(`DISK boot=([0-9a-f-]+) (?:wrote sum=([0-9a-f]+)|n=([0-9]+) (ok|BAD) sum=([0-9a-f]+))`)

// diskCheck is what a guest's init said about its disk: the checksum of the data it
// wrote at boot, and each later check (data intact, last counter written read back).
type diskCheck struct {
	boot    string
	wrote   string
	checks  int
	lastN   int
	bad     []string
	badBoot bool
}

func readDiskChecks(t *testing.T, vm, boot string) diskCheck {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(labDir, "logs", vm+".log"))
	if err != nil {
		t.Fatal(err)
	}
	c := diskCheck{boot: boot, lastN: -1}
	for _, m := range diskLineRE.FindAllStringSubmatch(string(data), -1) {
		if m[1] != boot {
			c.badBoot = true
			continue
		}
		if m[2] != "" {
			c.wrote = m[2]
			continue
		}
		c.checks++
		c.lastN, _ = strconv.Atoi(m[3])
		if m[4] != "ok" || m[5] != c.wrote {
			c.bad = append(c.bad, m[0])
		}
	}
	return c
}

var fileProcessedRE = regexp.MustCompile(`File processed:\s+([0-9.]+) (B|KiB|MiB|GiB)`)

// diskCopiedMiB returns how much of vm's disks an outgoing migration on host has
// copied (-1 when vm has no such job there).
func diskCopiedMiB(l *lab, host, vm string) float64 {
	out, err := l.run("virsh", host, "domjobinfo", vm)
	if err != nil || !strings.Contains(out, "Outgoing migration") {
		return -1
	}
	m := fileProcessedRE.FindStringSubmatch(out)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return mib(v, m[2])
}

func TestLabStorage(t *testing.T) {
	if os.Getenv("DROVER_LIBVIRT_LAB") != "1" {
		t.Skip("set DROVER_LIBVIRT_LAB=1 (as root, after lab/lab.sh deps) to run the libvirt lab tests")
	}
	bin := droverBinary(t)
	t.Setenv("LAB_GUESTS", "vm1:hostA:disk vm2:hostA:disk vm3:hostA vm4:hostA")
	l := startLabForApply(t)
	t.Cleanup(func() { keepLabLogs(t) }) // runs before the lab's teardown
	guests := waitGuests(t, l)
	for _, vm := range diskVMs {
		if !poll(guestBootTimeout, func() bool { return readDiskChecks(t, vm, guests[vm].boot).checks > 0 }) {
			t.Fatalf("vm %s never checked its disk", vm)
		}
	}

	// The driver reports the disks (local, with their size), the hosts' free pool
	// space, and storage migration.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	drv, err := openDriver(ctx, labConfig(l.script, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	inv, err := drv.Inventory(ctx)
	caps := drv.Capabilities()
	drv.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !caps.StorageMigration {
		t.Error("the driver does not declare storage_migration")
	}
	for _, vm := range labVMs {
		v := vmOf(t, inv, vm)
		want := int64(0)
		if slices.Contains(diskVMs, vm) {
			want = 64
			if len(v.Disks) != 1 || v.Disks[0].Name != "vda" || !v.Disks[0].Local {
				t.Errorf("vm %s disks %+v, want one local vda", vm, v.Disks)
			}
		}
		if got := v.LocalDiskMiB(); got != want || !v.Migratable {
			t.Errorf("vm %s: %d MiB of local disks, migratable %v (%s); want %d MiB, migratable", vm, got, v.Migratable, v.NotMigratableReason, want)
		}
	}
	for _, n := range inv.Nodes {
		if n.StorageMiB < 64 {
			t.Errorf("node %s: storage_mib %d, want the free space of its pool", n.Name, n.StorageMiB)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// 8 MiB/s (memory and disk copy alike): the first disk guest's move takes long
	// enough to be killed in the middle of its disk copy.
	speed := l.must("virsh", "hostA", "migrate-getspeed", "vm1")
	for _, vm := range diskVMs {
		l.must("virsh", "hostA", "migrate-setspeed", vm, "8")
	}
	hostA := readHost(t, "hostA")
	began := time.Now()
	d := newDrover(t, bin)
	p := d.start("apply", "--yes", "--json")
	var vm string
	var copied float64
	if !poll(3*time.Minute, func() bool {
		for _, v := range diskVMs {
			if c := diskCopiedMiB(l, "hostA", v); c > 0 {
				vm, copied = v, c
				return true
			}
		}
		select {
		case <-p.exited:
			return true
		default:
			return false
		}
	}) || vm == "" {
		t.Fatalf("no disk copy of hostA's guests seen in libvirt (drover exited: %v)\n%s", p.err, p.stderr)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	after := diskCopiedMiB(l, "hostA", vm)
	t.Logf("drover killed with %s's disk copy in flight: %.1f MiB copied (%.1f MiB after the kill)", vm, copied, after)
	if after < 0 {
		t.Logf("%s's migration finished before it was checked again", vm)
	}
	for _, v := range diskVMs {
		if v != vm {
			l.must("virsh", "hostA", "migrate-setspeed", v, speed)
		}
	}

	list, code := d.run("runs", "list", "--json")
	var rl []struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if code != 0 || json.Unmarshal([]byte(list.stdout.String()), &rl) != nil || len(rl) != 1 || rl[0].State != "running" {
		t.Fatalf("runs list after the kill: exit %d, %s", code, list.stdout)
	}
	resumed, code := d.run("runs", "resume", rl[0].ID, "--json")
	took := time.Since(began)
	if code != 0 {
		t.Fatalf("drover runs resume: exit %d\n%s", code, resumed.stderr)
	}
	rep := resumed.report(t)
	if rep.State != "succeeded" || rep.Resumes < 1 || rep.Summary.NodesDone != 3 {
		t.Fatalf("report after resume: state %s, resumes %d, %d nodes done", rep.State, rep.Resumes, rep.Summary.NodesDone)
	}
	for _, n := range rep.Nodes {
		if n.State != "done" || !n.Rebooted {
			t.Errorf("report: node %s %s, rebooted %v; want every host patched and rebooted", n.Name, n.State, n.Rebooted)
		}
	}
	if now := readHost(t, "hostA"); now.bootID == hostA.bootID {
		t.Errorf("hostA not rebooted")
	}
	if p := pausedHosts(t); len(p) > 0 {
		t.Errorf("hosts left paused: %v", p)
	}

	// Every guest kept running (one boot id, heartbeat rising) on exactly one host.
	where := checkGuestsKeptRunning(t, l, guests)
	ends, _ := checkMigrationChain(t, rep, map[string]string{"vm1": "hostA", "vm2": "hostA", "vm3": "hostA", "vm4": "hostA"})
	for _, v := range labVMs {
		if ends[v] != where[v] {
			t.Errorf("vm %s runs on %s, the report says %s", v, where[v], ends[v])
		}
	}
	// The disks arrived: the data written at boot and the last counter written read
	// back intact on the target, and the guests go on checking there.
	for _, v := range diskVMs {
		c := readDiskChecks(t, v, guests[v].boot)
		if c.badBoot || c.wrote == "" || len(c.bad) > 0 {
			t.Errorf("vm %s disk checks: %+v", v, c)
		}
		last := c.lastN
		if !poll(time.Minute, func() bool { c = readDiskChecks(t, v, guests[v].boot); return c.lastN > last }) {
			t.Errorf("vm %s stopped checking its disk after the run (last check n=%d)", v, last)
		}
		if len(c.bad) > 0 {
			t.Errorf("vm %s: its disk is damaged on %s: %v", v, where[v], c.bad)
		}
		t.Logf("vm %s: disk written at boot (md5 %s), %d checks ok, on %s", v, c.wrote[:8], c.checks, where[v])
	}
	// No volume left behind: each disk file exists only where its guest runs.
	files, _ := filepath.Glob(filepath.Join(labDir, "host?", "var/lib/libvirt/images", "*"))
	var want []string
	for _, v := range diskVMs {
		want = append(want, filepath.Join(labDir, where[v], "var/lib/libvirt/images", v+".qcow2"))
	}
	slices.Sort(files)
	slices.Sort(want)
	if !slices.Equal(files, want) {
		t.Errorf("disk files in the hosts' pools: %v\nwant exactly %v (no orphaned volume on any side)", files, want)
	}

	if after >= 0 && !strings.Contains(resumed.stderr.String(), "joining migration in flight") {
		t.Logf("%s's copy was in flight after the kill but the resumed run found it finished", vm)
	}

	driverMoves(t, l, where)
	for _, v := range diskVMs {
		c := readDiskChecks(t, v, guests[v].boot)
		last := c.lastN
		if !poll(time.Minute, func() bool { c = readDiskChecks(t, v, guests[v].boot); return c.lastN > last }) || len(c.bad) > 0 || c.badBoot {
			t.Errorf("vm %s after the driver's moves: disk checks %+v", v, c)
		}
	}

	evacuateHost(t, l, bin, guests)

	// Figures: storage migrations next to memory-only ones of the same run.
	var storSec, storMiB, storDisk, memSec, memMiB float64
	var nStor, nMem int
	for _, n := range rep.Nodes {
		for _, m := range n.Migrations {
			if slices.Contains(diskVMs, m.VM) {
				if m.DiskMiB <= 0 {
					t.Errorf("report: storage migration %+v without disk_mib", m)
				}
				nStor++
				storSec += m.Seconds
				storMiB += m.TransferredMiB
				storDisk += m.DiskMiB
				continue
			}
			if m.DiskMiB != 0 {
				t.Errorf("report: memory-only migration %+v with disk_mib", m)
			}
			nMem++
			memSec += m.Seconds
			memMiB += m.TransferredMiB
		}
	}
	if nStor == 0 || nMem == 0 {
		t.Fatalf("report lists %d storage and %d memory-only migrations", nStor, nMem)
	}
	var drainA float64
	for _, n := range rep.Nodes {
		if n.Name == "hostA" {
			for _, ph := range n.Phases {
				if ph.Name == "draining" {
					drainA += ph.Seconds
				}
			}
		}
	}
	t.Logf("FIGURES storage migration: %d moves, %.2f s and %.1f MiB each (%.1f MiB of it disk); memory-only: %d moves, %.2f s and %.1f MiB each; hostA drain (killed and resumed once) %.1f s; summary %.1f MiB sent, %.1f MiB disks; whole run %s",
		nStor, storSec/float64(nStor), storMiB/float64(nStor), storDisk/float64(nStor), nMem, memSec/float64(nMem), memMiB/float64(nMem),
		drainA, rep.Summary.TransferredMiB, rep.Summary.DiskMiB, took.Round(time.Second))
}

// driverMoves moves guests with the driver itself, after the run: a storage migration
// and a memory-only one measured one at a time (the run's were killed and resumed, or
// ran side by side), and a storage migration cancelled in the middle of its disk
// copy, which leaves the guest on its source and no volume on the target.
func driverMoves(t *testing.T, l *lab, where map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	drv, err := openDriver(ctx, labConfig(l.script, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer drv.Close()
	other := func(h string) string {
		for _, o := range labHosts {
			if o != h && o != "hostA" {
				return o
			}
		}
		return "hostA"
	}
	// A guest on the target already uses a disk at vm1's path (local paths are per
	// host): the copy would overwrite it, so the driver refuses, and nothing moves.
	squat := other(where["vm1"])
	sq := filepath.Join(labDir, "squatter.xml")
	if err := os.WriteFile(sq, []byte(`<domain type='qemu'><name>squatter</name><memory unit='MiB'>64</memory><os><type arch='x86_64' machine='pc'>hvm</type></os>`+
		`<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/var/lib/libvirt/images/vm1.qcow2'/><target dev='vda' bus='virtio'/></disk></devices></domain>`), 0o600); err != nil {
		t.Fatal(err)
	}
	l.must("virsh", squat, "define", sq)
	_, err = drv.Migrate(ctx, drivers.MigrateRequest{VM: "vm1", From: where["vm1"], To: squat}, nil)
	if !errors.Is(err, drivers.ErrRejected) || !strings.Contains(err.Error(), "would overwrite") {
		t.Errorf("migrate vm1 onto %s where another domain uses its disk path: %v, want a refusal", squat, err)
	}
	if on := l.definedOn("vm1"); len(on) != 1 || on[where["vm1"]] != "running" {
		t.Errorf("after the refused move vm1 is %v", on)
	}
	l.must("virsh", squat, "undefine", "squatter")
	if got := strings.Fields(l.must("disk-files", "vm1")); !slices.Equal(got, []string{where["vm1"]}) {
		t.Errorf("after the refused move vm1's disk file is on %v", got)
	}

	var figures []string
	for _, vm := range []string{"vm1", "vm3"} {
		from := where[vm]
		to := other(from)
		var last drivers.MigrationProgress
		res, err := drv.Migrate(ctx, drivers.MigrateRequest{VM: vm, From: from, To: to}, func(p drivers.MigrationProgress) { last = p })
		if err != nil {
			t.Fatalf("migrate %s %s -> %s: %v", vm, from, to, err)
		}
		if got := strings.Fields(l.must("disk-files", vm)); slices.Contains(diskVMs, vm) && !slices.Equal(got, []string{to}) {
			t.Errorf("after moving %s to %s its disk file is on %v", vm, to, got)
		}
		if slices.Contains(diskVMs, vm) != (res.DiskMiB > 0) || res.DiskMiB > res.TransferredMiB {
			t.Errorf("migrate %s: result %+v (last progress %+v)", vm, res, last)
		}
		where[vm] = to
		figures = append(figures, fmt.Sprintf("%s %s -> %s %.2f s, %.1f MiB sent, %.1f MiB of it disk (last progress: %.1f MiB, %.1f disk)",
			vm, from, to, res.Duration.Seconds(), res.TransferredMiB, res.DiskMiB, last.TransferredMiB, last.DiskMiB))
	}
	t.Logf("FIGURES driver, one at a time: %s", strings.Join(figures, "; "))

	// Cancelled mid-copy: the guest stays, the target's pre-created volume goes.
	vm := "vm2"
	from := where[vm]
	to := other(from)
	speed := l.must("virsh", from, "migrate-getspeed", vm)
	l.must("virsh", from, "migrate-setspeed", vm, "4")
	// Back to full speed afterwards: at 4 MiB/s the guest's own disk checks (8 MiB
	// read into its page cache every 2 s) dirty memory as fast as it moves, and a
	// later move of vm2 would never converge.
	defer l.must("virsh", from, "migrate-setspeed", vm, speed)
	mctx, mcancel := context.WithCancel(ctx)
	defer mcancel()
	var sawDisk bool
	_, err = drv.Migrate(mctx, drivers.MigrateRequest{VM: vm, From: from, To: to}, func(p drivers.MigrationProgress) {
		if p.DiskMiB > 0 && !sawDisk {
			sawDisk = true
			mcancel()
		}
	})
	if err == nil || !sawDisk {
		t.Fatalf("migrate %s cancelled mid-copy: err %v, disk copy seen %v", vm, err, sawDisk)
	}
	if on := l.definedOn(vm); len(on) != 1 || on[from] != "running" {
		t.Errorf("after the cancelled copy %s is %v, want running on %s only", vm, on, from)
	}
	if got := strings.Fields(l.must("disk-files", vm)); !slices.Equal(got, []string{from}) {
		t.Errorf("after the cancelled copy %s's disk file is on %v, want only %s (no orphaned volume)", vm, got, from)
	}
	t.Logf("storage migration of %s cancelled mid-copy: %v", vm, err)
}

// keepLabLogs copies the guests' consoles and the hosts' QEMU logs out of the lab
// when the test failed: the lab's teardown removes them.
func keepLabLogs(t *testing.T) {
	if !t.Failed() {
		return
	}
	dst, err := os.MkdirTemp("", "drover-lab-logs-")
	if err != nil {
		t.Logf("keep lab logs: %v", err)
		return
	}
	for _, pat := range []string{"logs/*.log", "host?/var/log/libvirt/qemu/*.log"} {
		files, _ := filepath.Glob(filepath.Join(labDir, pat))
		for _, f := range files {
			rel, _ := filepath.Rel(labDir, f)
			data, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			out := filepath.Join(dst, strings.ReplaceAll(rel, "/", "_"))
			_ = os.WriteFile(out, data, 0o600)
		}
	}
	t.Logf("lab logs kept in %s", dst)
}

// evacuateHost empties the host vm1 runs on for good with `drover evacuate HOST`: its
// guests move (vm1 with its disk), keep running, and the host stays paused, reported
// so.
func evacuateHost(t *testing.T, l *lab, bin string, guests map[string]beat) {
	t.Helper()
	host := ""
	for h := range l.definedOn("vm1") {
		host = h
	}
	var on []string
	for _, v := range labVMs {
		if _, ok := l.definedOn(v)[host]; ok {
			on = append(on, v)
		}
	}
	d := newDrover(t, bin)
	p, code := d.run("evacuate", host, "--yes", "--json")
	if code != 0 {
		t.Fatalf("drover evacuate %s: exit %d\n%s", host, code, p.stderr)
	}
	rep := p.report(t)
	if rep.State != "succeeded" || len(rep.Nodes) != 1 || rep.Nodes[0].Name != host || rep.Nodes[0].LeftPaused == "" || rep.Nodes[0].Rebooted {
		t.Fatalf("evacuate report: %+v", rep)
	}
	if _, paused := pausedHosts(t)[host]; !paused {
		t.Errorf("%s is not left paused after its evacuation", host)
	}
	moved := map[string]bool{}
	for _, m := range rep.Nodes[0].Migrations {
		moved[m.VM] = true
		if slices.Contains(diskVMs, m.VM) != (m.DiskMiB > 0) {
			t.Errorf("evacuate migration %+v", m)
		}
	}
	for _, v := range on {
		if !moved[v] {
			t.Errorf("vm %s was on %s and the evacuation report does not move it", v, host)
		}
	}
	where := checkGuestsKeptRunning(t, l, guests)
	for _, v := range labVMs {
		if where[v] == host {
			t.Errorf("vm %s still on evacuated %s", v, host)
		}
	}
	for _, v := range diskVMs {
		if got := strings.Fields(l.must("disk-files", v)); !slices.Equal(got, []string{where[v]}) {
			t.Errorf("after the evacuation %s runs on %s, its disk file is on %v", v, where[v], got)
		}
	}
	t.Logf("FIGURES evacuate %s: %d guests moved (%s), %.1f MiB sent, %.1f MiB disks, node %.1f s", host, len(on), strings.Join(on, " "),
		rep.Summary.TransferredMiB, rep.Summary.DiskMiB, rep.Nodes[0].Seconds)
}
