package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers/sim"
)

func nodeOf(name string, nic, stream float64) cluster.Node {
	return cluster.Node{Name: name, State: cluster.NodeUp, MemoryMiB: 1 << 20, CPUs: 64, NICMbps: nic, StreamMbps: stream}
}

func vmOf(name, on string, mem int64, dirty float64) cluster.VM {
	return cluster.VM{Name: name, Node: on, MemoryMiB: mem, VCPUs: 1, Power: cluster.PowerRunning, Migratable: true, DirtyMiBs: dirty}
}

func TestLowerBound(t *testing.T) {
	p := sim.ModelParams{SetupSeconds: 2, MaxDowntimeMs: 300, MaxRounds: 30}
	// 8 Mb/s = 0.9537 MiB/s: convenient small numbers.
	const mb = 1e6 / 8 / (1 << 20)
	tests := []struct {
		name    string
		inv     cluster.Inventory
		sources []string
		want    Bound
	}{
		{
			// Two VMs of 100 MiB, no dirtying, one source of 80 Mb/s, streams of
			// 80: the source NIC carries 200 MiB at 80·mb.
			name: "source-nic",
			inv: cluster.Inventory{
				Nodes: []cluster.Node{nodeOf("s", 80, 80), nodeOf("t1", 80, 80), nodeOf("t2", 80, 80)},
				VMs:   []cluster.VM{vmOf("a", "s", 100, 0), vmOf("b", "s", 100, 0)},
			},
			sources: []string{"s"},
			want: Bound{SourceNIC: 2 + 200/(80*mb), TargetNICs: 2 + 200/(160*mb), SlowestVM: 2 + 100/(80*mb),
				Seconds: 2 + 200/(80*mb), Bytes: 200 * (1 << 20), Converges: true},
		},
		{
			// One VM with a slow stream cap: it alone takes longer than the NIC
			// needs for everything.
			name: "slowest-vm",
			inv: cluster.Inventory{
				Nodes: []cluster.Node{nodeOf("s", 800, 8), nodeOf("t", 800, 8)},
				VMs:   []cluster.VM{vmOf("a", "s", 100, 0)},
			},
			sources: []string{"s"},
			want: Bound{SourceNIC: 2 + 100/(800*mb), TargetNICs: 2 + 100/(800*mb), SlowestVM: 2 + 100/(8*mb),
				Seconds: 2 + 100/(8*mb), Bytes: 100 * (1 << 20), Converges: true},
		},
		{
			// Two sources drain at once into one target with a small NIC: the
			// target's inbound link binds.
			name: "target-nic",
			inv: cluster.Inventory{
				Nodes: []cluster.Node{nodeOf("s1", 800, 800), nodeOf("s2", 800, 800), nodeOf("t", 80, 800)},
				VMs:   []cluster.VM{vmOf("a", "s1", 100, 0), vmOf("b", "s2", 100, 0)},
			},
			sources: []string{"s1", "s2"},
			want: Bound{SourceNIC: 2 + 100/(800*mb), TargetNICs: 2 + 200/(80*mb), SlowestVM: 2 + 100/(80*mb),
				Seconds: 2 + 200/(80*mb), Bytes: 200 * (1 << 20), Converges: true},
		},
		{
			// Dirtying at half the best rate: rounds of 1024, 512, ... until a
			// round fits in 0.3 s at 8·mb·128 = 122 MiB/s: 1024·0.5ⁿ <= 36.6 first
			// at n = 5 (32 MiB): 1024+512+256+128+64+32 = 2016 MiB.
			name: "dirty-rounds",
			inv: cluster.Inventory{
				Nodes: []cluster.Node{nodeOf("s", 1024, 1024), nodeOf("t", 1024, 1024)},
				VMs:   []cluster.VM{vmOf("a", "s", 1024, 1024*mb/2)},
			},
			sources: []string{"s"},
			want: Bound{SourceNIC: 2 + 2016/(1024*mb), TargetNICs: 2 + 2016/(1024*mb), SlowestVM: 2 + 2016/(1024*mb),
				Seconds: 2 + 2016/(1024*mb), Bytes: 2016 * (1 << 20), Converges: true},
		},
		{
			name: "cannot-converge",
			inv: cluster.Inventory{
				Nodes: []cluster.Node{nodeOf("s", 8, 8), nodeOf("t", 8, 8)},
				VMs:   []cluster.VM{vmOf("a", "s", 1024, 8*mb)},
			},
			sources: []string{"s"},
			want:    Bound{Seconds: math.Inf(1), SlowestVM: math.Inf(1), Converges: false},
		},
	}
	near := func(a, b float64) bool {
		if math.IsInf(a, 1) || math.IsInf(b, 1) {
			return a == b
		}
		return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := LowerBound(tt.inv, p, tt.sources)
			if got.Converges != tt.want.Converges || !near(got.Seconds, tt.want.Seconds) || !near(got.SlowestVM, tt.want.SlowestVM) ||
				(tt.want.Converges && (!near(got.SourceNIC, tt.want.SourceNIC) || !near(got.TargetNICs, tt.want.TargetNICs) || !near(got.Bytes, tt.want.Bytes))) {
				t.Errorf("LowerBound =\n  %+v\nwant\n  %+v", got, tt.want)
			}
		})
	}
}

// TestLowerBound_NoScheduleBeatsIt plays random small drains under every strategy
// on the model: none may finish before the bound, nor send fewer bytes.
func TestLowerBound_NoScheduleBeatsIt(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	checked := 0
	for i := range 30 {
		c := newCluster(uint64(i + 1))
		nodes := 2 + rng.IntN(4)
		for n := range nodes {
			nic := []float64{1000, 10000, 25000}[rng.IntN(3)]
			stream := []float64{1000, 3000, 5000}[rng.IntN(3)]
			addNode(c, fmt.Sprintf("n%d", n), 512, 64, nic, stream, 60)
		}
		for range 2 + rng.IntN(10) {
			addVM(c, "n0", int64(512*(1+rng.IntN(16))), 40*rng.Float64())
		}
		sc := Scenario{Name: fmt.Sprintf("random-%d", i), Cluster: c, ParallelNodes: 1}
		inv, err := initialInventory(sc)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range Strategies() {
			r, err := newRunner(sc, st)
			if err != nil {
				t.Fatal(err)
			}
			r.order = []string{"n0"} // drain n0 alone
			out, err := r.run()
			if err != nil {
				t.Fatalf("%s/%s: %v", sc.Name, st.Name, err)
			}
			b := LowerBound(inv, c.Model, out.DrainedNodes)
			if !b.Converges || out.FailedMigrations > 0 {
				continue // failed attempts end early: no bound to hold them to
			}
			checked++
			if out.DrainSeconds < b.Seconds-1e-6 {
				t.Errorf("%s/%s: drain %.3f s beats the bound %.3f s (%+v)", sc.Name, st.Name, out.DrainSeconds, b.Seconds, b)
			}
			if out.DrainMiB*(1<<20) < b.Bytes*(1-1e-9) {
				t.Errorf("%s/%s: drain sent %.0f MiB, the bound says at least %.0f", sc.Name, st.Name, out.DrainMiB, b.Bytes/(1<<20))
			}
		}
	}
	if checked < 100 {
		t.Errorf("only %d of 150 drains were checked against the bound", checked)
	}
}
