package policies

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/cluster"
)

func localDisk(sizeMiB int64) func(*cluster.VM) {
	return func(v *cluster.VM) {
		v.Disks = append(v.Disks, cluster.Disk{Name: "root", SizeMiB: sizeMiB, Local: true})
	}
}

func sharedDisk(sizeMiB int64) func(*cluster.VM) {
	return func(v *cluster.VM) {
		v.Disks = append(v.Disks, cluster.Disk{Name: "data", SizeMiB: sizeMiB})
	}
}

func withStorage(miB int64) func(*cluster.Node) { return func(n *cluster.Node) { n.StorageMiB = miB } }

func TestParseLocalStorageMode(t *testing.T) {
	for _, ok := range []string{"", "migrate", "fail", "shutdown", "skip"} {
		if m, err := ParseLocalStorageMode(ok); err != nil || string(m) != ok {
			t.Errorf("ParseLocalStorageMode(%q) = %q, %v", ok, m, err)
		}
	}
	_, err := ParseLocalStorageMode("copy")
	var fe *cluster.FieldError
	if !errors.As(err, &fe) || fe.Field != "local_storage" || !strings.Contains(err.Error(), "migrate, fail, shutdown or skip") {
		t.Fatalf("ParseLocalStorageMode(copy) = %v, want a field error naming local_storage and the modes", err)
	}
}

func TestLocalStorage_SplitDecidesPerVM(t *testing.T) {
	vms := []cluster.VM{
		vm("local", "n1", 1024, 1, localDisk(20480)),
		vm("shared", "n1", 1024, 1, sharedDisk(20480)),
		vm("pinned", "n1", 1024, 1, notMigratable("pci passthrough")),
	}
	tests := []struct {
		name string
		ls   LocalStorage
		// want: what happens to local, shared and pinned (non_migratable=skip)
		want string
	}{
		{"migrate-with-capability-moves-local", LocalStorage{Mode: LocalStorageMigrate, Capable: true}, "migrate migrate skip"},
		{"default-with-capability-moves-local", LocalStorage{Capable: true}, "migrate migrate skip"},
		{"default-without-capability-follows-non-migratable", LocalStorage{}, "skip migrate skip"},
		{"migrate-without-capability-blocks", LocalStorage{Mode: LocalStorageMigrate}, "block migrate skip"},
		{"fail-blocks-local-only", LocalStorage{Mode: LocalStorageFail, Capable: true}, "block migrate skip"},
		{"shutdown-shuts-local-only", LocalStorage{Mode: LocalStorageShutdown, Capable: true}, "shutdown migrate skip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.ls.Apply(cluster.Inventory{VMs: vms})
			// Every VM but "local" passes unchanged.
			if !in.VMs[1].Migratable || in.VMs[2].NotMigratableReason != "pci passthrough" {
				t.Fatalf("Apply changed VMs without local disks: %+v", in.VMs[1:])
			}
			if !vms[0].Migratable {
				t.Fatal("Apply changed its input")
			}
			s := SplitVMs(in.VMs, SplitOptions{Mode: NonMigratableSkip, LocalStorage: tt.ls})
			what := map[string]string{}
			for _, v := range s.Migrate {
				what[v.Name] = "migrate"
			}
			for _, v := range s.Shutdown {
				what[v.Name] = "shutdown"
			}
			for _, n := range s.Skip {
				what[n.VM] = "skip"
			}
			for _, n := range s.Blocking {
				what[n.VM] = "block"
				if n.VM == "local" && !strings.Contains(n.Reason, "local disks (20480 MiB)") {
					t.Errorf("blocking reason %q does not name the local disks", n.Reason)
				}
			}
			if got := what["local"] + " " + what["shared"] + " " + what["pinned"]; got != tt.want {
				t.Errorf("local shared pinned = %q, want %q", got, tt.want)
			}
			// SplitVMs applies local_storage itself: the raw VMs split the same way.
			if raw := SplitVMs(vms, SplitOptions{Mode: NonMigratableSkip, LocalStorage: tt.ls}); !reflect.DeepEqual(raw, s) {
				t.Errorf("split of the raw VMs = %+v, want %+v as after Apply", raw, s)
			}
		})
	}
}

func TestPlacer_LocalDisksNeedTargetStorage(t *testing.T) {
	const g = 1024
	in := inv([]cluster.Node{
		node("n1", 64*g, 16, withStorage(100*g)),
		node("n2", 64*g, 16, withStorage(30*g)),
		node("n3", 64*g, 16, withStorage(5*g)),
	},
		vm("a", "n1", 2*g, 1, localDisk(20*g)),
		vm("b", "n1", 2*g, 1, localDisk(20*g)),
		vm("c", "n1", 2*g, 1, sharedDisk(500*g)),
	)
	p := NewPlacer(in, PlacementOptions{})
	// n3 lacks the space; n2 takes one 20 GiB disk, not two.
	if to, err := p.Place(in.VMs[0], nil); err != nil || to != "n2" {
		t.Fatalf("Place(a) = %q, %v; want n2, the only node with 20 GiB free", to, err)
	}
	if got := p.FreeStorage("n2"); got != 10*g {
		t.Errorf("n2 storage after placing a: %d MiB, want %d", got, 10*g)
	}
	_, err := p.Place(in.VMs[1], nil)
	var nt *NoTargetError
	if !errors.As(err, &nt) || !strings.Contains(err.Error(), "needs 20480 MiB of storage for local disks, 10240 free") {
		t.Fatalf("Place(b) = %v, want no target naming n2's storage", err)
	}
	// Shared disks need no storage on the target.
	if _, err := p.Place(in.VMs[2], nil); err != nil {
		t.Fatalf("Place(c) with a shared disk = %v", err)
	}
	p.Cancel(in.VMs[0], "n2")
	if got, src := p.FreeStorage("n2"), p.FreeStorage("n1"); got != 30*g || src != 100*g {
		t.Errorf("after Cancel: n2 %d, n1 %d MiB; want both as before (%d, %d)", got, src, 30*g, 100*g)
	}
}

func TestStorageMigrationSeconds(t *testing.T) {
	// 4 GiB of memory idle, 40 GiB of disks, at 400 MiB/s with 3 s setup: 3 + 10.24 + 102.4.
	s, conv := StorageMigrationSeconds(4096, 40960, 0, 400, 3, 10)
	if !conv || math.Abs(s-115.64) > 1e-9 {
		t.Errorf("= %v, %v; want 115.64 s, converging", s, conv)
	}
	mem, _ := MigrationSeconds(4096, 0, 400, 3, 10)
	if s0, _ := StorageMigrationSeconds(4096, 0, 0, 400, 3, 10); s0 != mem {
		t.Errorf("no disks: %v, want the memory-only %v", s0, mem)
	}
}

func TestBuildPlan_CountsDiskBytes(t *testing.T) {
	const g = 1024
	nodes := []cluster.Node{
		node("n1", 64*g, 16, withStorage(100*g), withNIC(1000, 1000)),
		node("n2", 64*g, 16, withStorage(100*g), withNIC(1000, 1000)),
	}
	withDisk := inv(nodes, vm("a", "n2", 4*g, 1, localDisk(40*g)))
	without := inv(nodes, vm("a", "n2", 4*g, 1))
	opts := PlanOptions{Order: OrderOptions{Strategy: OrderExplicit, Nodes: []string{"n2"}}, LocalStorage: LocalStorage{Capable: true}}
	pd, err := BuildPlan(withDisk, opts)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := BuildPlan(without, opts)
	if err != nil {
		t.Fatal(err)
	}
	md, mm := pd.Nodes[0].Migrations[0], pm.Nodes[0].Migrations[0]
	if md.DiskMiB != 40*g || mm.DiskMiB != 0 {
		t.Fatalf("disk_mib %d and %d, want %d and 0", md.DiskMiB, mm.DiskMiB, 40*g)
	}
	// 1000 Mb/s = 119.2 MiB/s: 40 GiB of disks add 343.6 s to the move and the ETA.
	extra := time.Duration(float64(40*g) / mbpsToMiBs(1000) * float64(time.Second))
	if d := md.Duration - mm.Duration - extra; d.Abs() > 200*time.Millisecond {
		t.Errorf("move %v vs %v memory-only, want %v more", md.Duration, mm.Duration, extra)
	}
	if d := pd.ETA - pm.ETA - extra; d.Abs() > 200*time.Millisecond {
		t.Errorf("ETA %v vs %v memory-only, want %v more", pd.ETA, pm.ETA, extra)
	}
	b, _ := json.Marshal(md)
	if !strings.Contains(string(b), `"disk_mib":40960`) {
		t.Errorf("plan JSON %s lacks disk_mib", b)
	}
	if !strings.Contains(pd.String(), "disks 40960 MiB") {
		t.Errorf("plan text lacks the disks:\n%s", pd)
	}
	// Without the capability the VM cannot move and blocks its node (non_migratable fail).
	pb, err := BuildPlan(withDisk, PlanOptions{Order: opts.Order})
	if err != nil {
		t.Fatal(err)
	}
	if pb.Nodes[0].Status != NodeBlocked {
		t.Errorf("without storage migration the node is %s, want blocked", pb.Nodes[0].Status)
	}
}

func TestDrainOptions_OrderCountsDisks(t *testing.T) {
	links := map[string]Link{"src": {NICMiBs: 1192, StreamMiBs: 357.6}}
	jobs := []DrainJob{
		{VM: vm("big-memory", "src", 16384, 1)},
		{VM: vm("small-with-disk", "src", 1024, 1, localDisk(40960))},
	}
	got := DrainOptions{}.Order(jobs, links)
	if got[0].VM.Name != "small-with-disk" {
		t.Errorf("order %v, want the VM with 40 GiB of disks first (the longest move)", names(got))
	}
	if r := remainingOf(Flight{MemoryMiB: 1024, DiskMiB: 40960, Setup: true}); r != 41984 {
		t.Errorf("remaining of a flight in setup %v, want memory and disks 41984", r)
	}
}
