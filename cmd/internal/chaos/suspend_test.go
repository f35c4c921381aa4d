package chaos

import (
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers/sim"
	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

var chaosCluster = filepath.Join("..", "..", "..", "testdata", "clusters", "chaos.yaml")

func TestSuspendVMs(t *testing.T) {
	orig, err := sim.LoadCluster(chaosCluster)
	if err != nil {
		t.Fatal(err)
	}
	path, names, err := suspendVMs(chaosCluster, t.TempDir(), 3, 7)
	if err != nil {
		t.Fatal(err)
	}
	got, err := sim.LoadCluster(path)
	if err != nil {
		t.Fatalf("the sim cannot read the copy: %v", err)
	}
	if len(names) != 3 || !slices.IsSorted(names) {
		t.Fatalf("suspended %v, want 3 names in order", names)
	}
	for i := range orig.VMs {
		if slices.Contains(names, orig.VMs[i].Name) {
			if orig.VMs[i].Power != cluster.PowerRunning || !orig.VMs[i].Migratable {
				t.Errorf("suspended %s, which was %s (migratable %t)", orig.VMs[i].Name, orig.VMs[i].Power, orig.VMs[i].Migratable)
			}
			orig.VMs[i].Power = cluster.PowerSuspended
		}
	}
	if !reflect.DeepEqual(got, orig) {
		t.Errorf("the copy differs from the original in more than the suspended vms:\n%+v\n%+v", got, orig)
	}
	_, again, _ := suspendVMs(chaosCluster, t.TempDir(), 3, 7)
	if !slices.Equal(again, names) {
		t.Errorf("seed 7 suspended %v, then %v; want the same choice", names, again)
	}
	if _, _, err := suspendVMs(chaosCluster, t.TempDir(), 40, 7); err == nil || !strings.Contains(err.Error(), "40 asked") {
		t.Errorf("40 of 30 vms: %v, want an error", err)
	}
}

// rollingRun patches every node of m one at a time the way a drover run does it,
// straight on the sim model: pause, move the VMs off (running ones, and suspended
// ones when moveSuspended), shut down the ones that cannot move, install, reboot,
// wait, resume, restart. It returns what a chaos round would check.
func rollingRun(t *testing.T, m *sim.Model, moveSuspended bool) CheckInput {
	t.Helper()
	before := m.Inventory()
	rep := report.Report{ID: "r", State: string(runs.StateSucceeded)}
	for _, n := range before.Nodes {
		must(t, func() error { _, err := m.PauseNode(n.Name, ""); return err })
		var stopped []string
		for _, v := range m.Inventory().VMs {
			if v.Node != n.Name {
				continue
			}
			switch {
			case v.Running() && !v.Migratable:
				must(t, func() error { _, err := m.ShutdownVM(v.Name); return err })
				stopped = append(stopped, v.Name)
			case v.Running(), moveSuspended && v.Power == cluster.PowerSuspended:
				move(t, m, v)
			}
		}
		res, err := m.InstallUpdates(n.Name)
		if err != nil {
			t.Fatal(err)
		}
		must(t, func() error { _, err := m.RebootNode(n.Name); return err })
		for {
			if st, _ := m.Node(n.Name); st.State != cluster.NodeRebooting {
				break
			}
			if _, ok := m.Step(); !ok {
				t.Fatalf("node %s never came back", n.Name)
			}
		}
		must(t, func() error { _, err := m.ResumeNode(n.Name); return err })
		for _, v := range stopped {
			must(t, func() error { _, err := m.StartVM(v); return err })
		}
		rep.Nodes = append(rep.Nodes, report.Node{Name: n.Name, State: "done", UpdatesInstalled: len(res.Installed)})
	}
	pending := map[string][]cluster.Update{}
	for _, n := range before.Nodes {
		pending[n.Name], _ = m.ScanUpdates(n.Name)
	}
	return CheckInput{Before: before, After: m.Inventory(), Stats: m.Stats(), Report: rep, Pending: pending, Failback: "none", ReserveNodes: 1}
}

// move migrates v to the first node that is up, has the memory and holds no VM
// of v's hard anti-affinity group, and waits until it is there.
func move(t *testing.T, m *sim.Model, v cluster.VM) {
	t.Helper()
	inv := m.Inventory()
	for _, n := range inv.Nodes {
		if n.Name == v.Node || n.State != cluster.NodeUp {
			continue
		}
		if free, _ := m.FreeMiB(n.Name); free < v.MemoryMiB {
			continue
		}
		if v.AntiAffinityHard && slices.ContainsFunc(inv.VMs, func(o cluster.VM) bool {
			return o.Node == n.Name && o.AntiAffinity == v.AntiAffinity && o.AntiAffinityHard
		}) {
			continue
		}
		st, _, err := m.StartMigration(v.Name, v.Node, n.Name)
		if err != nil {
			t.Fatal(err)
		}
		for !st.Done() {
			if _, ok := m.Step(); !ok {
				t.Fatalf("migration of %s stalled", v.Name)
			}
			st, _ = m.Migration(st.ID)
		}
		if st.Phase != sim.PhaseCompleted {
			t.Fatalf("migration of %s %s: %s", v.Name, st.Phase, st.Error)
		}
		return
	}
	t.Fatalf("no target for %s", v.Name)
}

func must(t *testing.T, f func() error) {
	t.Helper()
	if err := f(); err != nil {
		t.Fatal(err)
	}
}

// The checker counts what the sim really records: a run that drains only the
// running VMs (what the engine did before it knew suspended ones) reboots the
// node under a suspended VM and loses it; a run that moves it loses nothing.
func TestCheck_SimRunWithSuspendedVMs(t *testing.T) {
	path, names, err := suspendVMs(chaosCluster, t.TempDir(), 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name          string
		moveSuspended bool
		wantLost      int
	}{
		{name: "suspended-left-behind", moveSuspended: false, wantLost: 2},
		{name: "suspended-moved", moveSuspended: true, wantLost: 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := sim.LoadCluster(path)
			if err != nil {
				t.Fatal(err)
			}
			m, err := sim.NewModel(c, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			f := Check(rollingRun(t, m, tt.moveSuspended))
			if len(f.LostSuspended) != tt.wantLost {
				t.Errorf("lost suspended %q, want %d of %v", f.LostSuspended, tt.wantLost, names)
			}
			for _, name := range names[:tt.wantLost] {
				if !containsText(f.LostSuspended, "vm "+name+" lost its suspended state in a reboot") {
					t.Errorf("lost suspended %q do not name %s", f.LostSuspended, name)
				}
			}
			f.LostSuspended = nil
			if !f.Clean() {
				t.Errorf("other findings: %q", f.All())
			}
		})
	}
}
