package sim

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/cluster"
)

const gbit10 = 10000 * mibPerMbit // 10 Gb/s in MiB/s

func approx(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// startAll starts the given migrations (vm->to) and returns their IDs.
func startAll(t *testing.T, m *Model, moves ...[2]string) []string {
	t.Helper()
	var ids []string
	for _, mv := range moves {
		st, out, err := m.StartMigration(mv[0], "", mv[1])
		if err != nil || out != OutcomeStarted {
			t.Fatalf("StartMigration(%s -> %s) = %v, %v", mv[0], mv[1], out, err)
		}
		ids = append(ids, st.ID)
	}
	return ids
}

// runUntilDone steps the model until migration id has ended.
func runUntilDone(t *testing.T, m *Model, id string) MigrationStatus {
	t.Helper()
	for range 100000 {
		st, err := m.Migration(id)
		if err != nil {
			t.Fatal(err)
		}
		if st.Done() {
			return st
		}
		if _, ok := m.Step(); !ok {
			t.Fatalf("migration %s stalled in %s", id, st.Phase)
		}
	}
	t.Fatalf("migration %s did not end", id)
	return MigrationStatus{}
}

func TestModel_BandwidthSharing(t *testing.T) {
	tests := []struct {
		name  string
		nodes string // node lines
		moves [][2]string
		want  []float64 // MiB/s per migration once all transfer
	}{
		{
			name: "two-out-of-one-node-get-half",
			nodes: `
  - {name: n1, memory_mib: 65536, cpus: 8, nic_mbps: 10000, stream_mbps: 10000}
  - {name: n2, memory_mib: 65536, cpus: 8, nic_mbps: 10000, stream_mbps: 10000}
  - {name: n3, memory_mib: 65536, cpus: 8, nic_mbps: 10000, stream_mbps: 10000}`,
			moves: [][2]string{{"a", "n2"}, {"b", "n3"}},
			want:  []float64{gbit10 / 2, gbit10 / 2},
		},
		{
			name: "stream-cap-limits-single-stream-on-fast-link",
			nodes: `
  - {name: n1, memory_mib: 65536, cpus: 8, nic_mbps: 25000, stream_mbps: 3000}
  - {name: n2, memory_mib: 65536, cpus: 8, nic_mbps: 25000, stream_mbps: 3000}
  - {name: n3, memory_mib: 65536, cpus: 8, nic_mbps: 25000, stream_mbps: 3000}`,
			moves: [][2]string{{"a", "n2"}},
			want:  []float64{3000 * mibPerMbit},
		},
		{
			name: "stream-cap-is-min-of-both-ends",
			nodes: `
  - {name: n1, memory_mib: 65536, cpus: 8, nic_mbps: 25000, stream_mbps: 5000}
  - {name: n2, memory_mib: 65536, cpus: 8, nic_mbps: 25000, stream_mbps: 2000}
  - {name: n3, memory_mib: 65536, cpus: 8, nic_mbps: 25000, stream_mbps: 5000}`,
			moves: [][2]string{{"a", "n2"}, {"b", "n3"}},
			want:  []float64{2000 * mibPerMbit, 5000 * mibPerMbit},
		},
		{
			name: "target-receiving-from-two-sources-is-bottleneck",
			nodes: `
  - {name: n1, memory_mib: 65536, cpus: 8, nic_mbps: 10000, stream_mbps: 10000}
  - {name: n2, memory_mib: 65536, cpus: 8, nic_mbps: 10000, stream_mbps: 10000}
  - {name: n3, memory_mib: 65536, cpus: 8, nic_mbps: 4000, stream_mbps: 10000}`,
			moves: [][2]string{{"a", "n3"}, {"c", "n3"}},
			want:  []float64{2000 * mibPerMbit, 2000 * mibPerMbit},
		},
		{
			name: "max-min-gives-leftover-to-unconstrained-stream",
			nodes: `
  - {name: n1, memory_mib: 65536, cpus: 8, nic_mbps: 10000, stream_mbps: 10000}
  - {name: n2, memory_mib: 65536, cpus: 8, nic_mbps: 10000, stream_mbps: 10000}
  - {name: n3, memory_mib: 65536, cpus: 8, nic_mbps: 2000, stream_mbps: 10000}`,
			moves: [][2]string{{"a", "n2"}, {"b", "n3"}},
			want:  []float64{gbit10 - 2000*mibPerMbit, 2000 * mibPerMbit},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustModel(t, mustParse(t, "nodes:"+tt.nodes+`
vms:
  - {name: a, node: n1, memory_mib: 16384}
  - {name: b, node: n1, memory_mib: 16384}
  - {name: c, node: n2, memory_mib: 16384}
`))
			ids := startAll(t, m, tt.moves...)
			m.AdvanceTo(m.Now().Add(3 * time.Second)) // past the 2 s setup
			for i, id := range ids {
				st, _ := m.Migration(id)
				if st.Phase != PhasePrecopy || !approx(st.RateMiBs, tt.want[i], 1e-6) {
					t.Errorf("%s: phase %s rate %.4f MiB/s, want precopy at %.4f", st.VM, st.Phase, st.RateMiBs, tt.want[i])
				}
			}
		})
	}
}

// wantDuration replays the pre-copy protocol at a constant rate (setup, full
// copy, dirty rounds, stop-and-copy within 300 ms), as an independent check
// of the event-driven integration.
func wantDuration(mem, dirty, rate, setup float64) (total, sent float64, rounds int) {
	total, x := setup, mem
	for rounds = 1; ; rounds++ {
		t := x / rate
		total += t
		sent += x
		next := math.Min(dirty*t, mem)
		if next/rate <= 0.3 {
			return total + next/rate, sent + next, rounds
		}
		x = next
	}
}

func TestModel_PrecopyRounds(t *testing.T) {
	rate := 3000 * mibPerMbit
	var prevDur, prevSent float64
	for _, dirty := range []float64{0, 20, 100, 250} {
		t.Run(fmt.Sprintf("dirty-%g", dirty), func(t *testing.T) {
			m := mustModel(t, mustParse(t, fmt.Sprintf(`
nodes:
  - {name: n1, memory_mib: 65536, cpus: 8}
  - {name: n2, memory_mib: 65536, cpus: 8}
vms:
  - {name: a, node: n1, memory_mib: 8192, dirty_mib_s: %g}
`, dirty)))
			ids := startAll(t, m, [2]string{"a", "n2"})
			st := runUntilDone(t, m, ids[0])
			dur, sent, rounds := wantDuration(8192, dirty, rate, 2)
			if st.Phase != PhaseCompleted {
				t.Fatalf("phase %s (%s), want completed", st.Phase, st.Error)
			}
			if got := st.Elapsed.Seconds(); !approx(got, dur, 1e-6) {
				t.Errorf("duration %.9f s, want %.9f s", got, dur)
			}
			if !approx(st.TransferredMiB, sent, 1e-3) || st.Round != rounds {
				t.Errorf("sent %.3f MiB in %d rounds, want %.3f MiB in %d", st.TransferredMiB, st.Round, sent, rounds)
			}
			if st.Downtime <= 0 && dirty > 0 || st.Downtime > 300*time.Millisecond {
				t.Errorf("downtime %s, want within (0, 300ms]", st.Downtime)
			}
			inv := m.Inventory()
			if v, _ := inv.VM("a"); v.Node != "n2" || v.MigratingTo != "" {
				t.Errorf("vm after migration: node %s migrating_to %q, want on n2", v.Node, v.MigratingTo)
			}
			if dirty > 0 && (st.Elapsed.Seconds() <= prevDur || st.TransferredMiB <= prevSent) {
				t.Errorf("dirty %g: %.2f s / %.0f MiB, not more than at the lower rate (%.2f s / %.0f MiB)", dirty, st.Elapsed.Seconds(), st.TransferredMiB, prevDur, prevSent)
			}
			prevDur, prevSent = st.Elapsed.Seconds(), st.TransferredMiB
		})
	}
}

func TestModel_BandwidthChangesMidRound(t *testing.T) {
	// b starts 5 s after a and halves a's share; a's round-1 time must
	// integrate both pieces exactly.
	m := mustModel(t, mustParse(t, `
model: {setup_seconds: 0}
nodes:
  - {name: n1, memory_mib: 65536, cpus: 8, nic_mbps: 10000, stream_mbps: 10000}
  - {name: n2, memory_mib: 65536, cpus: 8, nic_mbps: 10000, stream_mbps: 10000}
  - {name: n3, memory_mib: 65536, cpus: 8, nic_mbps: 10000, stream_mbps: 10000}
vms:
  - {name: a, node: n1, memory_mib: 16384}
  - {name: b, node: n1, memory_mib: 16384}
`))
	t0 := m.Now()
	ids := startAll(t, m, [2]string{"a", "n2"})
	m.AdvanceTo(t0.Add(5 * time.Second))
	startAll(t, m, [2]string{"b", "n3"})
	st := runUntilDone(t, m, ids[0])
	// 5 s at full rate, the rest at half rate.
	want := 5 + (16384-5*gbit10)/(gbit10/2)
	if !approx(st.Elapsed.Seconds(), want, 1e-6) {
		t.Errorf("duration %.9f s, want %.9f s", st.Elapsed.Seconds(), want)
	}
}

func TestModel_SetupCost(t *testing.T) {
	durations := map[float64]time.Duration{}
	for _, setup := range []float64{0, 2, 10} {
		m := mustModel(t, mustParse(t, fmt.Sprintf(`
model: {setup_seconds: %g}
nodes:
  - {name: n1, memory_mib: 65536, cpus: 8}
  - {name: n2, memory_mib: 65536, cpus: 8}
vms:
  - {name: a, node: n1, memory_mib: 2048, dirty_mib_s: 10}
`, setup)))
		ids := startAll(t, m, [2]string{"a", "n2"})
		st, _ := m.Migration(ids[0])
		if wantPhase := map[bool]Phase{true: PhasePrecopy, false: PhaseSetup}[setup == 0]; st.Phase != wantPhase {
			t.Errorf("setup %g: phase right after start %s, want %s", setup, st.Phase, wantPhase)
		}
		durations[setup] = runUntilDone(t, m, ids[0]).Elapsed
	}
	if d := durations[10] - durations[0]; d != 10*time.Second {
		t.Errorf("10 s setup adds %s, want 10s", d)
	}
	if d := durations[2] - durations[0]; d != 2*time.Second {
		t.Errorf("2 s setup adds %s, want 2s", d)
	}
}

func TestModel_NonConvergence(t *testing.T) {
	tests := []struct {
		name      string
		model     string
		dirty     float64
		wantAfter time.Duration // end - start
		wantMsg   string
	}{
		{name: "dirty-rate-above-share-times-out", model: "{}", dirty: 400,
			wantAfter: 152 * time.Second, wantMsg: "no progress for 150s"},
		{name: "custom-progress-timeout", model: "{progress_timeout_seconds: 30}", dirty: 400,
			wantAfter: 32 * time.Second, wantMsg: "no progress for 30s"},
		{name: "dirty-rate-equal-to-share-times-out", model: "{}", dirty: 3000 * mibPerMbit,
			wantAfter: 152 * time.Second, wantMsg: "no progress"},
		{name: "slow-progress-hits-max-rounds", model: "{max_rounds: 5}", dirty: 300,
			wantMsg: "not converged after 5 rounds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustModel(t, mustParse(t, fmt.Sprintf(`
model: %s
nodes:
  - {name: n1, memory_mib: 65536, cpus: 8}
  - {name: n2, memory_mib: 65536, cpus: 8}
vms:
  - {name: a, node: n1, memory_mib: 4096, dirty_mib_s: %g}
`, tt.model, tt.dirty)))
			ids := startAll(t, m, [2]string{"a", "n2"})
			st := runUntilDone(t, m, ids[0])
			if st.Phase != PhaseFailed || st.ErrorKind != KindNotConverged || !strings.Contains(st.Error, tt.wantMsg) {
				t.Fatalf("got %s/%s %q, want failed/not_converged containing %q", st.Phase, st.ErrorKind, st.Error, tt.wantMsg)
			}
			if tt.wantAfter != 0 && st.Elapsed != tt.wantAfter {
				t.Errorf("failed after %s, want %s", st.Elapsed, tt.wantAfter)
			}
			v, _ := m.VM("a")
			free, _ := m.FreeMiB("n2")
			if v.Node != "n1" || v.MigratingTo != "" || free != 65536 {
				t.Errorf("after failure: vm on %s migrating_to %q, n2 free %d MiB; want on n1, no reservation", v.Node, v.MigratingTo, free)
			}
		})
	}
}

func TestModel_ConcurrencyTradeoff(t *testing.T) {
	// 40 VMs of 4 GiB dirtying 60 MiB/s off one 10 Gb/s node: the seed's warning.
	elapsed := map[int]time.Duration{}
	sent := map[int]float64{}
	for _, k := range []int{1, 3, 4, 8, 16} {
		r := drainNode(t, mustModel(t, drainCluster(t, 40, 4096, 60)), "src", []string{"t1", "t2", "t3"}, k)
		if len(r.failed) > 0 {
			t.Fatalf("k=%d: %d migrations failed: %s", k, len(r.failed), r.failed[0].Error)
		}
		elapsed[k], sent[k] = r.elapsed, r.transferredMiB
		t.Logf("k=%2d drain %v, %.0f MiB sent", k, r.elapsed.Round(time.Millisecond), r.transferredMiB)
	}
	if elapsed[3] >= elapsed[1] {
		t.Errorf("3 streams (%v) not faster than 1 (%v)", elapsed[3], elapsed[1])
	}
	if elapsed[8] <= elapsed[3] {
		t.Errorf("8 streams (%v) not slower than 3 (%v) with dirtying VMs", elapsed[8], elapsed[3])
	}
	if elapsed[16] <= elapsed[8] || sent[16] <= sent[8] || sent[8] <= sent[3] {
		t.Errorf("more streams should retransmit more and take longer: sent %v, elapsed %v", sent, elapsed)
	}
	// With heavier dirtiers, too many streams stop converging at all.
	r := drainNode(t, mustModel(t, drainCluster(t, 24, 4096, 100)), "src", []string{"t1", "t2", "t3"}, 12)
	if len(r.failed) == 0 {
		t.Errorf("12 streams of 100 MiB/s dirtiers all converged; want non-convergence")
	}
	for _, f := range r.failed {
		if f.ErrorKind != KindNotConverged {
			t.Errorf("%s failed with %s (%s), want not_converged", f.VM, f.ErrorKind, f.Error)
		}
	}
}

func TestModel_RebootKillsRunningVMs(t *testing.T) {
	m := mustModel(t, mustParse(t, `
nodes:
  - {name: n1, memory_mib: 65536, cpus: 8, reboot_seconds: 90, updates: [{name: kernel, version: "6.1"}, {name: tzdata, reboot: false}]}
  - {name: n2, memory_mib: 65536, cpus: 8}
vms:
  - {name: a, node: n1, memory_mib: 2048}
  - {name: b, node: n1, memory_mib: 2048, power: stopped}
  - {name: c, node: n2, memory_mib: 2048}
  - {name: d, node: n1, memory_mib: 2048}
`))
	t0 := m.Now()
	boot0 := m.Stats().BootIDs["n1"]
	mig := startAll(t, m, [2]string{"d", "n2"})
	if _, err := m.PauseNode("n1", ""); err != nil {
		t.Fatal(err)
	}
	res, err := m.InstallUpdates("n1")
	if err != nil || len(res.Installed) != 2 || !res.RebootRequired {
		t.Fatalf("InstallUpdates = %+v, %v; want 2 installed, reboot required", res, err)
	}
	if again, _ := m.InstallUpdates("n1"); len(again.Installed) != 0 || !again.RebootRequired {
		t.Errorf("second install = %+v, want nothing installed, reboot still required", again)
	}
	if p, _ := m.ScanUpdates("n1"); len(p) != 0 {
		t.Errorf("pending after install: %v", p)
	}
	if _, err := m.RebootNode("n1"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.RebootNode("n1"); err != nil { // idempotent while rebooting
		t.Fatal(err)
	}
	s := m.Stats()
	if s.VMsKilledByReboot != 2 || s.Reboots["n1"] != 1 {
		t.Errorf("killed %d (%v), reboots %d; want 2 killed (a, d), 1 reboot", s.VMsKilledByReboot, s.KilledVMs, s.Reboots["n1"])
	}
	if st, _ := m.Migration(mig[0]); st.Phase != PhaseFailed || !strings.Contains(st.Error, "rebooted") {
		t.Errorf("migration of d: %s %q, want failed by the reboot", st.Phase, st.Error)
	}
	n, _ := m.Node("n1")
	if n.State != cluster.NodeRebooting || n.Ready() {
		t.Errorf("state %s, want rebooting", n.State)
	}
	m.AdvanceTo(t0.Add(89 * time.Second))
	if n, _ := m.Node("n1"); n.State != cluster.NodeRebooting {
		t.Errorf("at 89 s: %s, want rebooting", n.State)
	}
	m.AdvanceTo(t0.Add(90 * time.Second))
	n, _ = m.Node("n1")
	if n.State != cluster.NodePaused || !n.Paused || n.BootID == boot0 || n.BootID == "" {
		t.Errorf("after reboot: state %s paused %t boot %q (before %q); want paused with a new boot id", n.State, n.Paused, n.BootID, boot0)
	}
	if inact, _ := m.InstalledInactive("n1"); len(inact) != 0 {
		t.Errorf("installed-but-inactive after reboot: %v", inact)
	}
	for _, name := range []string{"a", "b", "d"} {
		if v, _ := m.VM(name); v.Power != cluster.PowerStopped {
			t.Errorf("vm %s is %s after the reboot, want stopped (left for tests to see)", name, v.Power)
		}
	}
	if res, _ := m.InstallUpdates("n1"); res.RebootRequired || len(res.Installed) != 0 {
		t.Errorf("install after reboot = %+v, want empty, no reboot", res)
	}
}

func TestModel_UpdatesWithoutReboot(t *testing.T) {
	m := mustModel(t, mustParse(t, `
nodes: [{name: n1, memory_mib: 4096, cpus: 2, updates: [{name: tzdata, version: "2026a", reboot: false}]}]
vms: []
`))
	res, err := m.InstallUpdates("n1")
	if err != nil || len(res.Installed) != 1 || res.RebootRequired {
		t.Fatalf("InstallUpdates = %+v, %v; want tzdata installed, no reboot", res, err)
	}
}

func TestModel_StartMigrationIdempotent(t *testing.T) {
	m := mustModel(t, mustParse(t, `
nodes:
  - {name: n1, memory_mib: 65536, cpus: 8}
  - {name: n2, memory_mib: 65536, cpus: 8}
vms:
  - {name: a, node: n1, memory_mib: 4096}
`))
	first, out, err := m.StartMigration("a", "n1", "n2")
	if err != nil || out != OutcomeStarted {
		t.Fatalf("first start: %v %v", out, err)
	}
	m.AdvanceTo(m.Now().Add(5 * time.Second))
	again, out, err := m.StartMigration("a", "n1", "n2")
	if err != nil || out != OutcomeJoined || again.ID != first.ID {
		t.Fatalf("second start = %s %v %v, want joined %s", again.ID, out, err, first.ID)
	}
	if free, _ := m.FreeMiB("n2"); free != 65536-4096 {
		t.Errorf("n2 free %d MiB, want one reservation of 4096", free)
	}
	runUntilDone(t, m, first.ID)
	_, out, err = m.StartMigration("a", "n1", "n2")
	if err != nil || out != OutcomeAlreadyThere {
		t.Errorf("start after completion = %v %v, want already_there", out, err)
	}
	if n := len(m.Migrations("a")); n != 1 {
		t.Errorf("%d migrations of a, want 1", n)
	}
	if s := m.Stats(); s.SuccessfulMigrations["a"] != 1 {
		t.Errorf("successful migrations of a = %d, want 1", s.SuccessfulMigrations["a"])
	}
}

func TestModel_StartMigrationRejected(t *testing.T) {
	cluster := `
nodes:
  - {name: n1, memory_mib: 65536, cpus: 8, cpu_group: icelake, networks: [{name: prod, vlan: 10}]}
  - {name: n2, memory_mib: 65536, cpus: 8, cpu_group: icelake, networks: [{name: prod, vlan: 10}]}
  - {name: small, memory_mib: 4096, cpus: 8, cpu_group: icelake, networks: [{name: prod, vlan: 10}]}
  - {name: old, memory_mib: 65536, cpus: 8, cpu_group: haswell, networks: [{name: prod, vlan: 10}]}
  - {name: nonet, memory_mib: 65536, cpus: 8, cpu_group: icelake}
  - {name: paused, memory_mib: 65536, cpus: 8, cpu_group: icelake, paused: true, networks: [{name: prod, vlan: 10}]}
  - {name: down, memory_mib: 65536, cpus: 8, cpu_group: icelake, down: true, networks: [{name: prod, vlan: 10}]}
vms:
  - {name: web, node: n1, memory_mib: 8192, networks: [{name: prod, vlan: 10}]}
  - {name: plain, node: n1, memory_mib: 2048}
  - {name: off, node: n1, memory_mib: 2048, power: stopped}
  - {name: gpu, node: n1, memory_mib: 2048, migratable: false, not_migratable_reason: pci passthrough}
  - {name: busy, node: n1, memory_mib: 2048}
`
	tests := []struct {
		name, vm, from, to string
		wantKind           ErrorKind
		wantReason         string
	}{
		{name: "target-paused", vm: "web", to: "paused", wantKind: KindRejected, wantReason: ReasonTargetPaused},
		{name: "target-down", vm: "web", to: "down", wantKind: KindRejected, wantReason: ReasonTargetNotReady},
		{name: "target-full", vm: "web", to: "small", wantKind: KindRejected, wantReason: ReasonInsufficientMemory},
		{name: "vm-stopped", vm: "off", to: "n2", wantKind: KindRejected, wantReason: ReasonVMNotRunning},
		{name: "vm-not-migratable", vm: "gpu", to: "n2", wantKind: KindRejected, wantReason: ReasonVMNotMigratable},
		{name: "vm-migrating-elsewhere", vm: "busy", to: "n2", wantKind: KindRejected, wantReason: ReasonVMMigrating},
		{name: "wrong-source", vm: "web", from: "n2", to: "small", wantKind: KindRejected, wantReason: ReasonWrongSource},
		{name: "cpu-group-differs", vm: "plain", to: "old", wantKind: KindRejected, wantReason: ReasonCPUIncompatible},
		{name: "network-missing", vm: "web", to: "nonet", wantKind: KindRejected, wantReason: ReasonNetworkMissing},
		{name: "unknown-vm", vm: "nope", to: "n2", wantKind: KindNotFound},
		{name: "unknown-target", vm: "web", to: "nope", wantKind: KindNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustModel(t, mustParse(t, cluster))
			startAll(t, m, [2]string{"busy", "small"})
			_, _, err := m.StartMigration(tt.vm, tt.from, tt.to)
			var e *Error
			if !errors.As(err, &e) || e.Kind != tt.wantKind || e.Reason != tt.wantReason {
				t.Fatalf("err = %v, want kind %s reason %q", err, tt.wantKind, tt.wantReason)
			}
			rej := m.Stats().Rejections
			if tt.wantKind == KindRejected && (len(rej) != 1 || rej[0].Reason != tt.wantReason || rej[0].Node != tt.to) {
				t.Errorf("rejections = %+v, want one %s on %s", rej, tt.wantReason, tt.to)
			}
			if v, _ := m.VM("web"); v.Node != "n1" {
				t.Errorf("web moved to %s", v.Node)
			}
		})
	}
}

func TestModel_PauseResumeIdempotent(t *testing.T) {
	m := mustModel(t, mustParse(t, "nodes: [{name: n1, memory_mib: 4096, cpus: 2}]\nvms: []\n"))
	pause := func(n string) (cluster.Node, error) { return m.PauseNode(n, "drover-run:r1") }
	for i, step := range []struct {
		op   func(string) (cluster.Node, error)
		want cluster.NodeState
	}{{pause, cluster.NodePaused}, {pause, cluster.NodePaused}, {m.ResumeNode, cluster.NodeUp}, {m.ResumeNode, cluster.NodeUp}} {
		n, err := step.op("n1")
		if err != nil || n.State != step.want {
			t.Errorf("step %d: %s, %v; want %s", i, n.State, err, step.want)
		}
	}
	if _, err := m.PauseNode("ghost", ""); !isKind(err, KindNotFound) {
		t.Errorf("pause unknown node: %v, want not_found", err)
	}
	if ev := m.Stats().NodeEvents; len(ev) != 2 {
		t.Errorf("node events %v, want exactly paused and resumed", ev)
	}
}

func isKind(err error, k ErrorKind) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == k
}

// failedVMs starts migrations of vm-00..vm-19 one by one to t1 and returns
// the ones that failed.
func failedVMs(t *testing.T, seed uint64, faults ...Fault) []string {
	t.Helper()
	c := drainCluster(t, 20, 1024, 5)
	c.Seed = seed
	c.Faults = faults
	m := mustModel(t, c)
	var failed []string
	for i := range 20 {
		vm := fmt.Sprintf("vm-%02d", i)
		st, _, err := m.StartMigration(vm, "", "t1")
		if err != nil {
			t.Fatal(err)
		}
		if st = runUntilDone(t, m, st.ID); st.Phase != PhaseCompleted {
			if st.ErrorKind != KindMigrationFailed || !strings.Contains(st.Error, "injected") {
				t.Errorf("%s failed as %s %q, want injected migration_failed", vm, st.ErrorKind, st.Error)
			}
			failed = append(failed, vm)
		}
	}
	return failed
}

func TestModel_MigrationFaults(t *testing.T) {
	tests := []struct {
		name  string
		fault Fault
		want  []string
	}{
		{name: "vm-times", fault: Fault{Kind: FaultMigrationFail, VM: "vm-03", Times: 1}, want: []string{"vm-03"}},
		{name: "any-vm-times", fault: Fault{Kind: FaultMigrationFail, Times: 2}, want: []string{"vm-00", "vm-01"}},
		{name: "vm-always", fault: Fault{Kind: FaultMigrationFail, VM: "vm-07", Always: true}, want: []string{"vm-07"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := failedVMs(t, 1, tt.fault); !slices.Equal(got, tt.want) {
				t.Errorf("failed %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("probability-is-deterministic-per-seed", func(t *testing.T) {
		f := Fault{Kind: FaultMigrationFail, Probability: 0.3}
		a, b, c := failedVMs(t, 42, f), failedVMs(t, 42, f), failedVMs(t, 7, f)
		if !slices.Equal(a, b) {
			t.Errorf("same seed, different failures: %v vs %v", a, b)
		}
		if len(a) == 0 || len(a) == 20 || slices.Equal(a, c) {
			t.Errorf("seed 42 failed %v, seed 7 failed %v; want some, not all, and seed-dependent", a, c)
		}
	})
	t.Run("injected-failure-costs-setup-and-one-round", func(t *testing.T) {
		m := mustModel(t, mustParse(t, `
nodes:
  - {name: n1, memory_mib: 65536, cpus: 8}
  - {name: n2, memory_mib: 65536, cpus: 8}
vms: [{name: a, node: n1, memory_mib: 3576}]
faults: [{kind: migration_fail, vm: a, times: 1}]
`))
		st := runUntilDone(t, m, startAll(t, m, [2]string{"a", "n2"})[0])
		if want := 2 + 3576/(3000*mibPerMbit); st.Phase != PhaseFailed || !approx(st.Elapsed.Seconds(), want, 1e-6) {
			t.Errorf("%s after %v, want failed after %.3f s", st.Phase, st.Elapsed, want)
		}
		if st := runUntilDone(t, m, startAll(t, m, [2]string{"a", "n2"})[0]); st.Phase != PhaseCompleted {
			t.Errorf("retry: %s %q, want completed (times: 1)", st.Phase, st.Error)
		}
	})
}

func TestModel_NodeFaults(t *testing.T) {
	m := mustModel(t, mustParse(t, `
nodes:
  - {name: n1, memory_mib: 65536, cpus: 8, reboot_seconds: 60}
  - {name: n2, memory_mib: 65536, cpus: 8, reboot_seconds: 60, updates: [{name: kernel}, {name: qemu}]}
  - {name: n3, memory_mib: 65536, cpus: 8}
vms:
  - {name: a, node: n3, memory_mib: 1024}
faults:
  - {kind: node_no_return, node: n1, times: 1}
  - {kind: install_fail, node: n2, update: qemu}
  - {kind: node_crash, node: n3, at_seconds: 500}
`))
	t0 := m.Now()
	m.RebootNode("n1")
	m.AdvanceTo(t0.Add(60 * time.Second))
	if n, _ := m.Node("n1"); n.State != cluster.NodeDown {
		t.Errorf("n1 after faulty reboot: %s, want down", n.State)
	}
	m.RebootNode("n1") // a power cycle of a down node; the fault hit once only
	m.AdvanceTo(t0.Add(120 * time.Second))
	if n, _ := m.Node("n1"); n.State != cluster.NodeUp {
		t.Errorf("n1 after second reboot: %s, want up", n.State)
	}

	res, err := m.InstallUpdates("n2")
	if err != nil || len(res.Installed) != 1 || len(res.Failed) != 1 || res.Failed[0].Update.Name != "qemu" {
		t.Fatalf("install = %+v, %v; want kernel installed, qemu failed", res, err)
	}
	if p, _ := m.ScanUpdates("n2"); len(p) != 1 || p[0].Name != "qemu" {
		t.Errorf("pending after failed install: %v, want qemu", p)
	}
	if res, _ := m.InstallUpdates("n2"); len(res.Installed) != 1 || len(res.Failed) != 0 {
		t.Errorf("second install = %+v, want qemu installed (times defaults to 1)", res)
	}

	if next, ok := m.NextEventTime(); !ok || next != t0.Add(500*time.Second) {
		t.Errorf("next event %v, want the crash at +500 s", next)
	}
	m.AdvanceTo(t0.Add(500 * time.Second))
	s := m.Stats()
	if n, _ := m.Node("n3"); n.State != cluster.NodeDown || s.VMsLostByCrash != 1 || s.VMsKilledByReboot != 0 {
		t.Errorf("n3 %s, lost by crash %d, killed by reboot %d; want down, 1, 0", n.State, s.VMsLostByCrash, s.VMsKilledByReboot)
	}
	if _, err := m.RecoverNode("n3"); err != nil {
		t.Fatal(err)
	}
	m.AdvanceTo(t0.Add(620 * time.Second))
	if n, _ := m.Node("n3"); n.State != cluster.NodeUp {
		t.Errorf("n3 after recover: %s, want up", n.State)
	}
	if _, err := m.RecoverNode("n3"); !isKind(err, KindRejected) {
		t.Errorf("recover an up node: %v, want rejected", err)
	}
}

func TestModel_CrashAbortsMigrations(t *testing.T) {
	m := mustModel(t, mustParse(t, `
nodes:
  - {name: n1, memory_mib: 65536, cpus: 8}
  - {name: n2, memory_mib: 65536, cpus: 8}
vms: [{name: a, node: n1, memory_mib: 8192}]
`))
	id := startAll(t, m, [2]string{"a", "n2"})[0]
	m.AdvanceTo(m.Now().Add(5 * time.Second))
	if _, err := m.CrashNode("n2"); err != nil {
		t.Fatal(err)
	}
	st, _ := m.Migration(id)
	if st.Phase != PhaseFailed || st.ErrorKind != KindMigrationFailed {
		t.Errorf("migration after target crash: %s %s", st.Phase, st.ErrorKind)
	}
	if v, _ := m.VM("a"); v.Node != "n1" || v.Power != cluster.PowerRunning {
		t.Errorf("vm a %s on %s, want running on n1", v.Power, v.Node)
	}
}

func TestModel_CancelMigration(t *testing.T) {
	m := mustModel(t, mustParse(t, `
nodes:
  - {name: n1, memory_mib: 65536, cpus: 8}
  - {name: n2, memory_mib: 65536, cpus: 8}
vms: [{name: a, node: n1, memory_mib: 8192}]
`))
	id := startAll(t, m, [2]string{"a", "n2"})[0]
	m.AdvanceTo(m.Now().Add(5 * time.Second))
	st, err := m.CancelMigration(id)
	if err != nil || st.Phase != PhaseCancelled || st.ErrorKind != KindCancelled {
		t.Fatalf("cancel = %s %s %v", st.Phase, st.ErrorKind, err)
	}
	if again, _ := m.CancelMigration(id); again.Ended != st.Ended {
		t.Errorf("second cancel changed the migration")
	}
	if _, ok := m.NextEventTime(); ok {
		t.Errorf("events left after cancelling the only migration")
	}
	if free, _ := m.FreeMiB("n2"); free != 65536 {
		t.Errorf("n2 free %d after cancel, want 65536", free)
	}
}

func TestModel_HardAntiAffinityViolationRecorded(t *testing.T) {
	m := mustModel(t, mustParse(t, `
nodes:
  - {name: n1, memory_mib: 65536, cpus: 8}
  - {name: n2, memory_mib: 65536, cpus: 8}
vms:
  - {name: db-1, node: n1, memory_mib: 1024, anti_affinity: db, anti_affinity_hard: true}
  - {name: db-2, node: n2, memory_mib: 1024, anti_affinity: db, anti_affinity_hard: true}
`))
	runUntilDone(t, m, startAll(t, m, [2]string{"db-1", "n2"})[0])
	if v := m.Stats().Violations; len(v) != 1 || v[0].Kind != "hard_anti_affinity" {
		t.Errorf("violations %+v, want one hard_anti_affinity", v)
	}
}

func TestModel_PowerControl(t *testing.T) {
	m := mustModel(t, mustParse(t, `
nodes: [{name: n1, memory_mib: 4096, cpus: 4}]
vms:
  - {name: a, node: n1, memory_mib: 3072}
  - {name: b, node: n1, memory_mib: 2048, power: stopped}
`))
	if _, err := m.StartVM("b"); !isKind(err, KindRejected) {
		t.Errorf("start b without memory: %v, want rejected", err)
	}
	for range 2 {
		if v, err := m.ShutdownVM("a"); err != nil || v.Power != cluster.PowerStopped {
			t.Fatalf("shutdown a: %v %v", v.Power, err)
		}
	}
	for range 2 {
		if v, err := m.StartVM("b"); err != nil || v.Power != cluster.PowerRunning {
			t.Fatalf("start b: %v %v", v.Power, err)
		}
	}
}

func TestModel_RequestFaults(t *testing.T) {
	m := mustModel(t, mustParse(t, `
nodes: [{name: n1, memory_mib: 4096, cpus: 4}]
vms: []
faults:
  - {kind: api_errors, burst: 2, after_requests: 1, path: /v1/migrations}
  - {kind: api_hang, burst: 1, delay_ms: 1500}
`))
	var got []RequestFault
	for _, p := range []string{"/v1/migrations", "/v1/inventory", "/v1/migrations/x", "/v1/migrations", "/v1/migrations"} {
		got = append(got, m.RequestFault(p))
	}
	want := []RequestFault{{Delay: 1500 * time.Millisecond}, {}, {Status: 503}, {Status: 503}, {}}
	if !slices.Equal(got, want) {
		t.Errorf("faults %v, want %v", got, want)
	}
	if err := m.InjectFault(Fault{Kind: FaultAPIErrors, Probability: 1, Status: 502}); err != nil {
		t.Fatal(err)
	}
	if rf := m.RequestFault("/v1/clock"); rf.Status != 502 {
		t.Errorf("after runtime injection: %v, want 502", rf)
	}
	if err := m.InjectFault(Fault{Kind: FaultNodeCrash, Node: "ghost"}); !isKind(err, KindBadRequest) {
		t.Errorf("inject fault on unknown node: %v, want bad_request", err)
	}
}

func TestModel_AdvanceToIsPathIndependent(t *testing.T) {
	// Advancing in many small steps or one big step must give the same state:
	// events are processed at their exact times either way (up to float
	// rounding of the integration: nanoseconds).
	run := func(step time.Duration) Stats {
		m := mustModel(t, drainCluster(t, 6, 3000, 80))
		t0 := m.Now()
		for i := range 6 {
			startAll(t, m, [2]string{fmt.Sprintf("vm-%02d", i), []string{"t1", "t2", "t3"}[i%3]})
		}
		for at := step; at <= 10*time.Minute; at += step {
			m.AdvanceTo(t0.Add(at))
		}
		return m.Stats()
	}
	a, b := run(10*time.Minute), run(137*time.Millisecond)
	if len(a.Migrations) != 6 || len(b.Migrations) != 6 {
		t.Fatalf("finished %d and %d migrations, want 6", len(a.Migrations), len(b.Migrations))
	}
	for i := range a.Migrations {
		ra, rb := a.Migrations[i], b.Migrations[i]
		if ra.ID != rb.ID || ra.Rounds != rb.Rounds || absDur(ra.End.Sub(rb.End)) > time.Microsecond ||
			!approx(ra.TransferredMiB, rb.TransferredMiB, 1e-3) {
			t.Errorf("record %d differs: %+v vs %+v", i, ra, rb)
		}
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func TestModel_PauseMarkRefusesAnotherOwner(t *testing.T) {
	m := mustModel(t, mustParse(t, "nodes: [{name: n1, memory_mib: 4096, cpus: 2}]\nvms: []\n"))
	if _, err := m.PauseNode("n1", "drover-run:a"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.PauseNode("n1", "drover-run:b"); !isKind(err, KindRejected) {
		t.Fatalf("pause by another owner = %v, want rejected", err)
	}
	n, err := m.Node("n1")
	if err != nil || n.PausedBy != "drover-run:a" {
		t.Fatalf("node = %+v, %v; want paused_by drover-run:a", n, err)
	}
	if _, err := m.ResumeNode("n1"); err != nil {
		t.Fatal(err)
	}
	if n, _ := m.Node("n1"); n.Paused || n.PausedBy != "" {
		t.Fatalf("after resume: %+v, want unpaused and unmarked", n)
	}
	if _, err := m.PauseNode("n1", "drover-run:b"); err != nil {
		t.Fatalf("pause after resume = %v", err)
	}
}
