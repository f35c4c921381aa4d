package sim

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
)

const suspendedCluster = `
nodes:
  - {name: n1, memory_mib: 65536, cpus: 8, reboot_seconds: 60, nic_mbps: 8000, stream_mbps: 8000}
  - {name: n2, memory_mib: 65536, cpus: 8, nic_mbps: 8000, stream_mbps: 8000}
vms:
  - {name: saved, node: n1, memory_mib: 8192, dirty_mib_s: 900, power: suspended}
  - {name: web, node: n1, memory_mib: 2048}
  - {name: off, node: n1, memory_mib: 2048, power: stopped}
`

// A suspended VM with a dirty rate no live migration could follow moves in one
// round at link speed, without downtime, and stays suspended on the target.
func TestModel_SuspendedMigratesAsSavedState(t *testing.T) {
	m := mustModel(t, mustParse(t, suspendedCluster))
	t0 := m.Now()
	ids := startAll(t, m, [2]string{"saved", "n2"})
	if v, _ := m.VM("saved"); v.MigratingTo != "n2" || v.Power != cluster.PowerSuspended {
		t.Errorf("during the move: migrating to %q, power %s; want n2, suspended", v.MigratingTo, v.Power)
	}
	if _, err := m.StartVM("saved"); !isKind(err, KindRejected) {
		t.Errorf("StartVM of a moving suspended vm = %v, want rejected", err)
	}
	st := runUntilDone(t, m, ids[0])
	if st.Phase != PhaseCompleted || st.Round != 1 || st.Downtime != 0 {
		t.Fatalf("migration ended %s round %d downtime %s (%s); want completed in round 1 without downtime", st.Phase, st.Round, st.Downtime, st.Error)
	}
	if !approx(st.TransferredMiB, 8192, 0.01) {
		t.Errorf("transferred %.1f MiB, want the 8192 MiB of saved state once", st.TransferredMiB)
	}
	// 2 s setup + 8192 MiB at 8000 Mb/s.
	want := 2 + 8192/(8000*mibPerMbit)
	if got := st.Ended.Sub(t0).Seconds(); !approx(got, want, 0.01) {
		t.Errorf("moved in %.2f s, want %.2f s (setup + memory at link speed)", got, want)
	}
	v, _ := m.VM("saved")
	if v.Node != "n2" || v.Power != cluster.PowerSuspended || v.MigratingTo != "" {
		t.Errorf("after the move: %s %s migrating %q; want suspended on n2", v.Node, v.Power, v.MigratingTo)
	}
	if _, out, err := m.StartMigration("saved", "n1", "n2"); err != nil || out != OutcomeAlreadyThere {
		t.Errorf("repeated move = %s, %v; want already_there", out, err)
	}
	if _, _, err := m.StartMigration("off", "", "n2"); !isKind(err, KindRejected) {
		t.Errorf("move of a stopped vm = %v, want rejected", err)
	}
	if _, err := m.RebootNode("n1"); err != nil {
		t.Fatal(err)
	}
	if s := m.Stats(); s.SuspendedLostByReboot != 0 || s.SuccessfulMigrations["saved"] != 1 {
		t.Errorf("lost suspended %d, moves of saved %d; want 0, 1", s.SuspendedLostByReboot, s.SuccessfulMigrations["saved"])
	}
}

// A reboot of a node that still holds a suspended VM discards its saved state:
// the VM comes back stopped and the stats count it, apart from the killed running
// VMs; every reboot of a node is counted.
func TestModel_RebootLosesSuspendedVM(t *testing.T) {
	m := mustModel(t, mustParse(t, suspendedCluster))
	if _, err := m.RebootNode("n1"); err != nil {
		t.Fatal(err)
	}
	s := m.Stats()
	if s.SuspendedLostByReboot != 1 || len(s.LostSuspendedVMs) != 1 || s.LostSuspendedVMs[0].VM != "saved" || s.LostSuspendedVMs[0].Cause != "reboot" {
		t.Errorf("lost suspended %d %+v, want saved lost by the reboot", s.SuspendedLostByReboot, s.LostSuspendedVMs)
	}
	if s.VMsKilledByReboot != 1 || len(s.KilledVMs) != 1 || s.KilledVMs[0].VM != "web" {
		t.Errorf("killed running %d %+v, want web alone", s.VMsKilledByReboot, s.KilledVMs)
	}
	m.AdvanceTo(m.Now().Add(60 * time.Second))
	if v, _ := m.VM("saved"); v.Power != cluster.PowerStopped || v.Node != "n1" {
		t.Errorf("after the reboot saved is %s on %s, want stopped on n1", v.Power, v.Node)
	}
	if _, err := m.RebootNode("n1"); err != nil {
		t.Fatal(err)
	}
	m.AdvanceTo(m.Now().Add(60 * time.Second))
	if s := m.Stats(); s.Reboots["n1"] != 2 || s.SuspendedLostByReboot != 1 {
		t.Errorf("reboots of n1 %d, lost suspended %d; want 2 (a double reboot shows), 1", s.Reboots["n1"], s.SuspendedLostByReboot)
	}
}

// A crash takes the saved state too, counted apart from reboots (a crash is
// nobody's safety violation).
func TestModel_CrashLosesSuspendedVM(t *testing.T) {
	m := mustModel(t, mustParse(t, suspendedCluster))
	if _, err := m.CrashNode("n1"); err != nil {
		t.Fatal(err)
	}
	s := m.Stats()
	if s.SuspendedLostByCrash != 1 || s.SuspendedLostByReboot != 0 || len(s.LostSuspendedVMs) != 1 || s.LostSuspendedVMs[0].Cause != "crash" {
		t.Errorf("lost by crash %d, by reboot %d, %+v; want 1, 0", s.SuspendedLostByCrash, s.SuspendedLostByReboot, s.LostSuspendedVMs)
	}
}

// A reboot of the source in the middle of a saved-state move aborts the move
// and the VM, still on the source, loses its state.
func TestModel_RebootDuringSuspendedMove(t *testing.T) {
	m := mustModel(t, mustParse(t, suspendedCluster))
	ids := startAll(t, m, [2]string{"saved", "n2"})
	m.AdvanceTo(m.Now().Add(5 * time.Second))
	if _, err := m.RebootNode("n1"); err != nil {
		t.Fatal(err)
	}
	if st, _ := m.Migration(ids[0]); st.Phase != PhaseFailed {
		t.Errorf("move %s, want failed by the reboot", st.Phase)
	}
	if v, _ := m.VM("saved"); v.Node != "n1" || v.Power != cluster.PowerStopped {
		t.Errorf("saved %s on %s, want stopped on n1", v.Power, v.Node)
	}
	if s := m.Stats(); s.SuspendedLostByReboot != 1 {
		t.Errorf("lost suspended %d, want 1", s.SuspendedLostByReboot)
	}
}

// Over the API, Migrate moves a suspended VM as saved state: same call, same
// idempotency, the VM suspended on the target; a reboot that finds one left
// behind shows in the stats a checker reads.
func TestDriver_MigrateSuspended(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d, err := NewEmbedded(t.Context(), EmbeddedOptions{
			Cluster: mustParse(t, suspendedCluster+"  - {name: saved2, node: n1, memory_mib: 1024, power: suspended}\n"), TimeScale: 10,
			ClientOptions: ClientOptions{Logger: testLogger(t), RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		ctx := t.Context()
		if !d.Capabilities().MigrateSuspended {
			t.Errorf("capabilities %+v, want migrate_suspended", d.Capabilities())
		}
		var phases []string
		req := drivers.MigrateRequest{VM: "saved", From: "n1", To: "n2"}
		res, err := d.Migrate(ctx, req, func(p drivers.MigrationProgress) {
			if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
				phases = append(phases, p.Phase)
			}
		})
		if err != nil || res.AlreadyThere || !approx(res.TransferredMiB, 8192, 0.01) || res.Downtime != 0 {
			t.Fatalf("Migrate = %+v, %v; want 8192 MiB moved without downtime", res, err)
		}
		if strings.Join(phases, ",") != "setup,precopy" {
			t.Errorf("progress phases %v, want setup, precopy (one round, nothing to stop)", phases)
		}
		if res, err := d.Migrate(ctx, req, nil); err != nil || !res.AlreadyThere {
			t.Errorf("second Migrate = %+v, %v; want AlreadyThere", res, err)
		}
		inv, _ := d.Inventory(ctx)
		if v, _ := inv.VM("saved"); v.Node != "n2" || v.Power != cluster.PowerSuspended {
			t.Errorf("saved is %s on %s, want suspended on n2", v.Power, v.Node)
		}
		if err := d.RebootNode(ctx, "n1"); err != nil {
			t.Fatal(err)
		}
		s, err := d.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s.SuspendedLostByReboot != 1 || len(s.LostSuspendedVMs) != 1 || s.LostSuspendedVMs[0].VM != "saved2" || s.Reboots["n1"] != 1 {
			t.Errorf("lost suspended %d %+v, reboots of n1 %d; want saved2 lost, 1 reboot", s.SuspendedLostByReboot, s.LostSuspendedVMs, s.Reboots["n1"])
		}
		inv, _ = d.Inventory(ctx)
		if v, _ := inv.VM("saved2"); v.Power != cluster.PowerStopped {
			t.Errorf("saved2 is %s after the reboot, want stopped", v.Power)
		}
	})
}
