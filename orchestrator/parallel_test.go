package orchestrator_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
)

// maintenanceWatch records the most nodes seen in maintenance at once.
type maintenanceWatch struct {
	mu   sync.Mutex
	in   map[string]bool
	peak int
}

func (m *maintenanceWatch) observe(e orchestrator.Event) {
	if e.Kind != orchestrator.EventNodeState {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch e.State {
	case orchestrator.NodePausing, orchestrator.NodeDraining, orchestrator.NodePatching, orchestrator.NodeRebooting, orchestrator.NodeVerifying:
		m.in[e.Node] = true
	default:
		delete(m.in, e.Node)
	}
	m.peak = max(m.peak, len(m.in))
}

// clusterOf builds a cluster: nodes of memGiB, each running vms VMs of vmGiB.
func clusterOf(nodes []string, memGiB int, vms map[string]int, vmGiB int) string {
	var b strings.Builder
	b.WriteString("seed: 3\nnodes:\n")
	for _, n := range nodes {
		fmt.Fprintf(&b, "  - {name: %s, memory_mib: %d, cpus: 64, reboot_seconds: 90, updates: [{name: kernel, version: \"2\"}]}\n", n, memGiB*1024)
	}
	b.WriteString("vms:\n")
	i := 0
	for _, n := range nodes {
		for range vms[n] {
			i++
			fmt.Fprintf(&b, "  - {name: v%03d, node: %s, memory_mib: %d, vcpus: 1, dirty_mib_s: 10}\n", i, n, vmGiB*1024)
		}
	}
	return b.String()
}

func TestEngine_MaxParallelNodes(t *testing.T) {
	six := []string{"n1", "n2", "n3", "n4", "n5", "n6"}
	tests := []struct {
		name     string
		cluster  string
		parallel int
		reserve  int
		wantPeak int
	}{
		{
			// 6 nodes of 64 GiB with 16 GiB each: three out, and one more failing,
			// still leave room for everything.
			name:     "reserve-allows-three",
			cluster:  clusterOf(six, 64, map[string]int{"n1": 4, "n2": 4, "n3": 4, "n4": 4, "n5": 4, "n6": 4}, 4),
			parallel: 3, reserve: 1, wantPeak: 3,
		},
		{
			// 6 nodes of 64 GiB with 36 GiB each (216 GiB): one out plus one failure
			// leaves 4 x 64 = 256 GiB; two out plus one failure leaves 192 GiB.
			name:     "reserve-allows-one",
			cluster:  clusterOf(six, 64, map[string]int{"n1": 9, "n2": 9, "n3": 9, "n4": 9, "n5": 9, "n6": 9}, 4),
			parallel: 3, reserve: 1, wantPeak: 1,
		},
		{
			// No reserve, but capacity: 4 nodes of 32 GiB with 20 GiB each; with two
			// out, 40 GiB of VMs do not fit into the other two's 24 GiB free.
			name:     "capacity-allows-one",
			cluster:  clusterOf([]string{"n1", "n2", "n3", "n4"}, 32, map[string]int{"n1": 5, "n2": 5, "n3": 5, "n4": 5}, 4),
			parallel: 2, reserve: 0, wantPeak: 1,
		},
		{
			// Two loaded nodes (48 GiB each) drain at once into two empty ones of 64
			// and 32 GiB: exactly enough together. Two drains placing on models of
			// their own would both put 40 GiB on the bigger target and the platform
			// would refuse (checkSafety).
			name: "shared-placement-two-drains",
			cluster: strings.Replace(clusterOf([]string{"a1", "a2", "t1", "t2"}, 64, map[string]int{"a1": 12, "a2": 12}, 4),
				"name: t2, memory_mib: 65536", "name: t2, memory_mib: 32768", 1),
			parallel: 2, reserve: 0, wantPeak: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, tt.cluster)
				watch := &maintenanceWatch{in: map[string]bool{}}
				h.events.check = watch.observe
				rep, err := h.apply(context.Background(), testPolicy(func(p *orchestrator.Policy) {
					p.MaxParallelNodes = tt.parallel
					p.ReserveNodes = tt.reserve
					p.Force = true
				}))
				if err != nil {
					t.Fatalf("Execute: %v", err)
				}
				if rep.State != string(runs.StateSucceeded) {
					t.Errorf("run = %s (%s), want succeeded", rep.State, rep.Error)
				}
				for _, n := range rep.Nodes {
					if n.State != orchestrator.NodeDone {
						t.Errorf("node %s = %s (%s%s)", n.Name, n.State, n.Failure, n.SkipReason)
					}
				}
				if watch.peak != tt.wantPeak {
					t.Errorf("peak nodes in maintenance = %d, want %d", watch.peak, tt.wantPeak)
				}
				if st := h.stats(); len(st.Migrations) == 0 {
					t.Error("no migration happened: the test proves nothing")
				}
				h.checkSafety(rep)
			})
		})
	}
}

func TestEngine_DrainScheduler(t *testing.T) {
	// One node of 16 VMs drained into three: on 10 Gb/s links with 3 Gb/s streams,
	// four streams fill the source's NIC; on 1 Gb/s links one stream does, and
	// eight streams share it below the VMs' dirty rate (they do not converge).
	cluster := func(nic int, dirty float64) string {
		var b strings.Builder
		b.WriteString("seed: 5\nnodes:\n")
		for _, n := range []string{"src", "t1", "t2", "t3"} {
			up := ""
			if n == "src" {
				up = `, updates: [{name: kernel, version: "2"}]`
			}
			fmt.Fprintf(&b, "  - {name: %s, memory_mib: 262144, cpus: 64, nic_mbps: %d, stream_mbps: 3000%s}\n", n, nic, up)
		}
		b.WriteString("vms:\n")
		for i := range 16 {
			fmt.Fprintf(&b, "  - {name: v%02d, node: src, memory_mib: 4096, vcpus: 1, dirty_mib_s: %g}\n", i, dirty)
		}
		return b.String()
	}
	type result struct {
		peak, failed int
		drain, mib   float64
	}
	run := func(t *testing.T, c string, mutate func(*orchestrator.Policy)) result {
		var res result
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, c)
			var mu sync.Mutex
			inFlight := 0
			h.events.check = func(e orchestrator.Event) {
				mu.Lock()
				defer mu.Unlock()
				switch e.Kind {
				case orchestrator.EventMigrationStarted:
					inFlight++
					res.peak = max(res.peak, inFlight)
				case orchestrator.EventMigrationDone:
					inFlight--
				case orchestrator.EventMigrationFailed:
					inFlight--
					res.failed++
				}
			}
			rep, err := h.apply(context.Background(), testPolicy(func(p *orchestrator.Policy) {
				p.NodeOrder = "explicit"
				p.Nodes = []string{"src"}
				mutate(p)
			}))
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			res.mib = rep.Summary.TransferredMiB
			for _, ph := range h.node(rep, "src").Phases {
				if ph.Name == orchestrator.NodeDraining {
					res.drain = ph.Seconds
				}
			}
			h.checkSafety(rep)
		})
		return res
	}
	t.Run("10g-adaptive-fills-the-link-without-the-cap", func(t *testing.T) {
		c := cluster(10000, 20)
		adaptive := run(t, c, func(p *orchestrator.Policy) {})
		fixed2 := run(t, c, func(p *orchestrator.Policy) { p.DrainScheduler = orchestrator.DrainFixed; p.MaxMigrationsPerNode = 2 })
		fixed8 := run(t, c, func(p *orchestrator.Policy) { p.DrainScheduler = orchestrator.DrainFixed })
		t.Logf("drain: adaptive %.1f s (peak %d, %.0f MiB), fixed-2 %.1f s, fixed-8 %.1f s (peak %d, %.0f MiB)",
			adaptive.drain, adaptive.peak, adaptive.mib, fixed2.drain, fixed8.drain, fixed8.peak, fixed8.mib)
		if adaptive.peak < 4 {
			t.Errorf("adaptive peak %d migrations, want at least the 4 that fill the link", adaptive.peak)
		}
		if fixed8.peak != 8 {
			t.Errorf("fixed peak %d, want the cap 8", fixed8.peak)
		}
		if adaptive.drain >= fixed2.drain {
			t.Errorf("adaptive drain %.1f s is not faster than fixed-2's %.1f s", adaptive.drain, fixed2.drain)
		}
		// Eight streams at once fill the link too, but each at a smaller share
		// re-sends more dirtied memory: the adaptive drain sends less and ends
		// sooner.
		if adaptive.drain >= fixed8.drain || adaptive.mib >= fixed8.mib {
			t.Errorf("adaptive %.1f s / %.0f MiB, fixed-8 %.1f s / %.0f MiB: want adaptive faster with fewer bytes",
				adaptive.drain, adaptive.mib, fixed8.drain, fixed8.mib)
		}
	})
	t.Run("1g-adaptive-never-starts-what-cannot-converge", func(t *testing.T) {
		c := cluster(1000, 40)
		adaptive := run(t, c, func(p *orchestrator.Policy) {})
		fixed8 := run(t, c, func(p *orchestrator.Policy) { p.DrainScheduler = orchestrator.DrainFixed; p.RetriesPerNode = 20 })
		t.Logf("adaptive %.1f s, %d failed, peak %d; fixed-8 %.1f s, %d failed", adaptive.drain, adaptive.failed, adaptive.peak, fixed8.drain, fixed8.failed)
		if adaptive.failed != 0 {
			t.Errorf("adaptive: %d migrations failed, want none", adaptive.failed)
		}
		if adaptive.peak > 2 {
			t.Errorf("adaptive peak %d on a link one stream fills, want at most 2 (one setting up)", adaptive.peak)
		}
		if fixed8.failed == 0 {
			t.Error("fixed-8 had no failed migration: the scenario does not exercise convergence")
		}
	})
}

func TestEngine_MaxParallelNodesResume(t *testing.T) {
	// The process dies while three nodes are in maintenance at once; the resumed
	// run goes on with all three (they are out already) and ends with every node
	// patched once, nothing moved twice off a node.
	synctest.Test(t, func(t *testing.T) {
		six := []string{"n1", "n2", "n3", "n4", "n5", "n6"}
		h := newHarness(t, clusterOf(six, 64, map[string]int{"n1": 4, "n2": 4, "n3": 4, "n4": 4, "n5": 4, "n6": 4}, 4))
		dd := &detachingDriver{Driver: h.drv}
		h.swapDriver(dd)
		ctx, cancel := context.WithCancel(context.Background())
		watch := &maintenanceWatch{in: map[string]bool{}}
		var once sync.Once
		h.events.check = func(e orchestrator.Event) {
			watch.observe(e)
			watch.mu.Lock()
			three := len(watch.in) == 3
			watch.mu.Unlock()
			if three && e.Kind == orchestrator.EventMigrationStarted {
				once.Do(func() {
					dd.crashed.Store(true)
					h.store.Close()
					cancel()
				})
			}
		}
		p := testPolicy(func(p *orchestrator.Policy) { p.MaxParallelNodes = 3; p.ReserveNodes = 1 })
		id := h.start(ctx, p)
		_, _ = h.eng.Execute(ctx, id) // the process "dies": its error is moot
		h.events.check = nil
		dd.wg.Wait()
		h.openStore()
		h.swapDriver(h.drv)
		if _, err := h.eng.Execute(context.Background(), id); err != nil {
			t.Fatalf("resumed Execute: %v", err)
		}
		rep := h.report(id)
		if rep.State != string(runs.StateSucceeded) || rep.Resumes != 1 {
			t.Errorf("run = %s after %d resumes (%s), want succeeded after 1", rep.State, rep.Resumes, rep.Error)
		}
		if watch.peak != 3 {
			t.Errorf("peak nodes in maintenance before the crash = %d, want 3", watch.peak)
		}
		for name, r := range h.stats().Reboots {
			if r != 1 {
				t.Errorf("node %s rebooted %d times, want 1", name, r)
			}
		}
		h.checkSafety(rep)
	})
}
