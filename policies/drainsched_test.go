package policies

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/droverhq/drover/cluster"
)

// drainCluster is a source "src" with n VMs of memMiB dirtying at d MiB/s and
// `targets` empty targets, every node on nic Mb/s with stream Mb/s per stream.
func drainCluster(n int, memMiB int64, d float64, targets int, nic, stream float64) (cluster.Inventory, []DrainJob) {
	in := cluster.Inventory{Nodes: []cluster.Node{node("src", 1<<20, 64, withNIC(nic, stream))}}
	for i := range targets {
		in.Nodes = append(in.Nodes, node(fmt.Sprintf("t%d", i+1), 1<<20, 64, withNIC(nic, stream)))
	}
	var jobs []DrainJob
	for i := range n {
		v := vm(fmt.Sprintf("v%02d", i), "src", memMiB, 1, dirty(d))
		in.VMs = append(in.VMs, v)
		jobs = append(jobs, DrainJob{VM: v})
	}
	return in, jobs
}

// flights are n migrations in flight from src to the targets round-robin.
func flights(n int, memMiB int64, d, remaining, rate float64, targets int) []Flight {
	var out []Flight
	for i := range n {
		out = append(out, Flight{VM: fmt.Sprintf("f%02d", i), From: "src", To: fmt.Sprintf("t%d", i%targets+1),
			MemoryMiB: memMiB, DirtyMiBs: d, RemainingMiB: remaining, RateMiBs: rate})
	}
	return out
}

// rankedChooser is a Placer with ranks known to the scheduler.
type rankedChooser struct {
	*Placer
	rank map[string]int
}

func (r rankedChooser) Rank(node string) int {
	if v, ok := r.rank[node]; ok {
		return v
	}
	return 1
}

func TestDrainOptions_Decide(t *testing.T) {
	const tenG, oneG, stream = 10000.0, 1000.0, 3000.0
	tests := []struct {
		name string
		opts DrainOptions
		// build returns the inventory, the jobs and the flights in the run.
		build func() (cluster.Inventory, []DrainJob, []Flight)
		// waiting, ranks and avoid go into the view / chooser.
		waiting map[string]float64
		ranks   map[string]int
		avoid   map[string]bool
		// minStart..maxStart bound how many start.
		minStart, maxStart int
		check              func(t *testing.T, dec DrainDecision)
	}{
		{
			name: "fixed-per-node-cap",
			opts: DrainOptions{Mode: DrainFixed, MaxPerNode: 2},
			build: func() (cluster.Inventory, []DrainJob, []Flight) {
				in, jobs := drainCluster(6, 4096, 20, 3, tenG, stream)
				return in, jobs, nil
			},
			minStart: 2, maxStart: 2,
		},
		{
			name: "fixed-global-cap-counts-other-drains",
			opts: DrainOptions{Mode: DrainFixed, MaxParallel: 2},
			build: func() (cluster.Inventory, []DrainJob, []Flight) {
				in, jobs := drainCluster(6, 4096, 20, 3, tenG, stream)
				fl := []Flight{{VM: "x", From: "t1", To: "t2", MemoryMiB: 4096}}
				return in, jobs, fl
			},
			minStart: 1, maxStart: 1,
		},
		{
			name: "fixed-per-source-ignores-bandwidth",
			opts: DrainOptions{Mode: DrainFixed, MaxPerSource: 1},
			build: func() (cluster.Inventory, []DrainJob, []Flight) {
				in, jobs := drainCluster(6, 4096, 20, 3, tenG, stream)
				return in, jobs, nil
			},
			minStart: 1, maxStart: 1,
		},
		{
			// 10 Gb/s = 1192 MiB/s, one stream 357.6: at least 4 streams fill the NIC;
			// 8 streams (the cap) would only add dirty traffic.
			name: "adaptive-fills-a-fast-link-below-the-cap",
			opts: DrainOptions{MaxPerNode: 8},
			build: func() (cluster.Inventory, []DrainJob, []Flight) {
				in, jobs := drainCluster(24, 4096, 20, 3, tenG, stream)
				return in, jobs, nil
			},
			minStart: 4, maxStart: 7,
		},
		{
			// One stream fills a 1 Gb/s NIC: a second would only share it.
			name: "adaptive-one-stream-on-a-slow-link",
			opts: DrainOptions{MaxPerNode: 8},
			build: func() (cluster.Inventory, []DrainJob, []Flight) {
				in, jobs := drainCluster(8, 4096, 10, 3, oneG, stream)
				return in, jobs, nil
			},
			minStart: 1, maxStart: 1,
		},
		{
			// One migration in flight at 119 MiB/s; with a second both get 59.6,
			// below their 60 MiB/s dirty rate.
			name: "adaptive-never-starts-what-cannot-converge",
			opts: DrainOptions{MaxPerNode: 8},
			build: func() (cluster.Inventory, []DrainJob, []Flight) {
				in, jobs := drainCluster(4, 4096, 60, 3, oneG, stream)
				return in, jobs[1:], flights(1, 4096, 60, 4000, 0, 3)
			},
			minStart: 0, maxStart: 0,
			check: func(t *testing.T, dec DrainDecision) {
				if dec.Deferred != 3 {
					t.Errorf("deferred %d, want all 3", dec.Deferred)
				}
			},
		},
		{
			// Three streams of 357.6 MiB/s run, one of a VM dirtying 250 MiB/s
			// (ratio 0.70). A fourth stream cuts every share to 298: 0.84, above
			// the 0.8 margin, so nothing more starts while it runs.
			name: "adaptive-protects-a-heavy-dirtier-in-flight",
			opts: DrainOptions{MaxPerNode: 8},
			build: func() (cluster.Inventory, []DrainJob, []Flight) {
				in, jobs := drainCluster(6, 4096, 10, 3, tenG, stream)
				fl := flights(3, 4096, 10, 4000, 0, 3)
				fl[0].DirtyMiBs, fl[0].MemoryMiB, fl[0].RemainingMiB = 250, 16384, 16000
				return in, jobs, fl
			},
			minStart: 0, maxStart: 0,
		},
		{
			// A VM dirtying 200 MiB/s cannot converge even alone on 1 Gb/s: it is
			// started only with the link to itself.
			name: "adaptive-hopeless-vm-alone",
			opts: DrainOptions{MaxPerNode: 8},
			build: func() (cluster.Inventory, []DrainJob, []Flight) {
				in, jobs := drainCluster(1, 4096, 200, 3, oneG, stream)
				return in, jobs, nil
			},
			minStart: 1, maxStart: 1,
			check: func(t *testing.T, dec DrainDecision) {
				if !dec.Start[0].Hopeless {
					t.Error("start not marked hopeless")
				}
			},
		},
		{
			name: "adaptive-hopeless-vm-waits-for-an-idle-link",
			opts: DrainOptions{MaxPerNode: 8},
			build: func() (cluster.Inventory, []DrainJob, []Flight) {
				in, jobs := drainCluster(2, 4096, 200, 3, oneG, stream)
				return in, jobs[1:], flights(1, 4096, 5, 3000, 0, 3)
			},
			minStart: 0, maxStart: 0,
		},
		{
			// Four streams fill the link, but all four end within the setup time:
			// their successors start now (and set up meanwhile).
			name: "adaptive-pipelines-the-next-wave",
			opts: DrainOptions{MaxPerNode: 8},
			build: func() (cluster.Inventory, []DrainJob, []Flight) {
				in, jobs := drainCluster(12, 4096, 20, 3, tenG, stream)
				return in, jobs[4:], flights(4, 4096, 20, 200, 298, 3)
			},
			minStart: 4, maxStart: 4,
		},
		{
			// The same four streams far from their end: nothing starts, and the
			// scheduler says when to look again: when the first comes within
			// setup of its end, (4000 / (298 − 20)) − 2 s.
			name: "adaptive-rechecks-before-the-wave-ends",
			opts: DrainOptions{MaxPerNode: 8},
			build: func() (cluster.Inventory, []DrainJob, []Flight) {
				in, jobs := drainCluster(24, 4096, 20, 3, tenG, stream)
				return in, jobs[4:], flights(4, 4096, 20, 4000, 298, 3)
			},
			minStart: 0, maxStart: 0,
			check: func(t *testing.T, dec DrainDecision) {
				want := 4000/(298-20.0) - 2
				if math.Abs(dec.RecheckSeconds-want) > 0.01 {
					t.Errorf("recheck in %.3f s, want %.3f", dec.RecheckSeconds, want)
				}
			},
		},
		{
			// The link claims 10 Gb/s but four streams measurably get 50 MiB/s each:
			// the NIC is taken as 200 MiB/s, where a fifth VM dirtying 60 MiB/s
			// would get 40 and not converge.
			name: "adaptive-trusts-measured-rates-over-the-nominal-link",
			opts: DrainOptions{MaxPerNode: 8},
			build: func() (cluster.Inventory, []DrainJob, []Flight) {
				in, jobs := drainCluster(5, 4096, 60, 3, tenG, stream)
				fl := flights(4, 4096, 10, 4000, 50, 3)
				return in, jobs[4:], fl
			},
			minStart: 0, maxStart: 0,
		},
		{
			// The same without measurements: the nominal 10 Gb/s takes a fifth.
			name: "adaptive-nominal-link-without-measurements",
			opts: DrainOptions{MaxPerNode: 8},
			build: func() (cluster.Inventory, []DrainJob, []Flight) {
				in, jobs := drainCluster(5, 4096, 60, 3, tenG, stream)
				fl := flights(4, 4096, 10, 4000, 0, 3)
				return in, jobs[4:], fl
			},
			minStart: 1, maxStart: 1,
		},
		{
			// The platform reports no bandwidth (libvirt): no model, two per node
			// as Hyper-V does, however many the hard cap allows.
			name: "adaptive-unknown-links-run-two-per-node",
			opts: DrainOptions{MaxPerNode: 8},
			build: func() (cluster.Inventory, []DrainJob, []Flight) {
				in, jobs := drainCluster(6, 1024, 5, 3, 0, 0)
				return in, jobs, nil
			},
			minStart: 2, maxStart: 2,
		},
		{
			// Another drain waits with nothing in flight: this source, at half the
			// run's cap of 8 already, leaves it the rest.
			name:    "run-cap-shared-with-another-drain",
			opts:    DrainOptions{MaxParallel: 8, MaxPerNode: 8},
			waiting: map[string]float64{"t3": 40000},
			build: func() (cluster.Inventory, []DrainJob, []Flight) {
				in, jobs := drainCluster(12, 4096, 20, 3, tenG, stream)
				return in, jobs[4:], flights(4, 4096, 20, 200, 298, 2)
			},
			minStart: 0, maxStart: 0,
		},
		{
			name: "run-cap-all-ours-without-another-drain",
			opts: DrainOptions{MaxParallel: 8, MaxPerNode: 8},
			build: func() (cluster.Inventory, []DrainJob, []Flight) {
				in, jobs := drainCluster(12, 4096, 20, 3, tenG, stream)
				return in, jobs[4:], flights(4, 4096, 20, 200, 298, 2)
			},
			minStart: 4, maxStart: 4,
		},
		{
			// The only patched target t1 (rank 0) is at its cap (two migrations come
			// in from t3): VMs wait for it rather than go to t2, which is drained
			// later (rank 2) and would move them again.
			name:  "move-once-waits-for-a-patched-target",
			opts:  DrainOptions{Mode: DrainFixed, MaxPerNode: 2},
			ranks: map[string]int{"t1": 0, "t2": 2, "t3": 2},
			build: func() (cluster.Inventory, []DrainJob, []Flight) {
				in, jobs := drainCluster(4, 4096, 20, 3, tenG, stream)
				fl := []Flight{{VM: "x", From: "t3", To: "t1", MemoryMiB: 4096}, {VM: "y", From: "t3", To: "t1", MemoryMiB: 4096}}
				return in, jobs, fl
			},
			minStart: 0, maxStart: 0,
		},
		{
			// With t2 patched too, the VMs go there.
			name:  "move-once-takes-an-equally-ranked-target",
			opts:  DrainOptions{Mode: DrainFixed, MaxPerNode: 2},
			ranks: map[string]int{"t1": 0, "t2": 0, "t3": 2},
			build: func() (cluster.Inventory, []DrainJob, []Flight) {
				in, jobs := drainCluster(4, 4096, 20, 3, tenG, stream)
				fl := []Flight{{VM: "x", From: "t3", To: "t1", MemoryMiB: 4096}, {VM: "y", From: "t3", To: "t1", MemoryMiB: 4096}}
				return in, jobs, fl
			},
			minStart: 2, maxStart: 2,
			check: func(t *testing.T, dec DrainDecision) {
				for _, s := range dec.Start {
					if s.To != "t2" {
						t.Errorf("vm %s sent to %s, want t2", s.Job.VM.Name, s.To)
					}
				}
			},
		},
		{
			name:  "avoided-target-is-not-used",
			opts:  DrainOptions{Mode: DrainFixed, MaxPerNode: 8},
			avoid: map[string]bool{"t1": true},
			build: func() (cluster.Inventory, []DrainJob, []Flight) {
				in, jobs := drainCluster(2, 4096, 20, 2, tenG, stream)
				return in, jobs, nil
			},
			minStart: 2, maxStart: 2,
			check: func(t *testing.T, dec DrainDecision) {
				for _, s := range dec.Start {
					if s.To == "t1" {
						t.Errorf("vm %s sent to avoided t1", s.Job.VM.Name)
					}
				}
			},
		},
		{
			name: "no-target-is-reported",
			opts: DrainOptions{},
			build: func() (cluster.Inventory, []DrainJob, []Flight) {
				in, jobs := drainCluster(1, 4096, 20, 1, tenG, stream)
				in.Nodes[1].MemoryMiB = 1024
				return in, jobs, nil
			},
			minStart: 0, maxStart: 0,
			check: func(t *testing.T, dec DrainDecision) {
				if len(dec.NoTarget) != 1 || !errors.Is(dec.NoTarget[0].Err, ErrNoTarget) {
					t.Errorf("no target = %+v, want the VM with ErrNoTarget", dec.NoTarget)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, jobs, fl := tt.build()
			placer := NewPlacer(in, PlacementOptions{Rank: tt.ranks})
			var chooser TargetChooser = placer
			if tt.ranks != nil {
				chooser = rankedChooser{placer, tt.ranks}
			}
			view := DrainView{Links: LinksOf(in), Flights: fl, WaitingMiB: tt.waiting, Avoid: tt.avoid}
			dec := tt.opts.Decide(view, jobs, chooser)
			t.Logf("%d started, %d deferred, recheck %.2f s", len(dec.Start), dec.Deferred, dec.RecheckSeconds)
			if n := len(dec.Start); n < tt.minStart || n > tt.maxStart {
				t.Errorf("%d starts, want %d..%d: %+v", n, tt.minStart, tt.maxStart, dec.Start)
			}
			// What was not started must not stay placed.
			started := map[string]string{}
			for _, s := range dec.Start {
				started[s.Job.VM.Name] = s.To
			}
			for _, j := range jobs {
				loc := placer.Location(j.VM.Name)
				if to, ok := started[j.VM.Name]; ok && loc != to {
					t.Errorf("vm %s started to %s but placed on %s", j.VM.Name, to, loc)
				}
				if _, ok := started[j.VM.Name]; !ok && loc != j.VM.Node {
					t.Errorf("vm %s not started but left placed on %s", j.VM.Name, loc)
				}
			}
			if tt.check != nil {
				tt.check(t, dec)
			}
		})
	}
}

func TestDrainOptions_Order(t *testing.T) {
	links := map[string]Link{"src": {NICMiBs: 1192, StreamMiBs: 357.6}, "t": {NICMiBs: 1192, StreamMiBs: 357.6}}
	jobs := []DrainJob{
		{VM: vm("small", "src", 1024, 1, dirty(5))},
		{VM: vm("big", "src", 16384, 1, dirty(5))},
		{VM: vm("dirtier", "src", 8192, 1, dirty(300))}, // 8192/(357.6-300) = 142 s: the longest
		{VM: vm("mid", "src", 4096, 1)},
	}
	got := DrainOptions{}.Order(jobs, links)
	want := []string{"dirtier", "big", "mid", "small"}
	for i, j := range got {
		if j.VM.Name != want[i] {
			t.Fatalf("order %v..., want %v", names(got), want)
		}
	}
}

func names(jobs []DrainJob) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.VM.Name
	}
	return out
}

func TestDrainOptions_Converges(t *testing.T) {
	o := DrainOptions{}.withDefaults()
	tests := []struct {
		name           string
		mem, dirty, bw float64
		want           bool
	}{
		{name: "no-dirtying", mem: 4096, dirty: 0, bw: 10, want: true},
		{name: "ratio-within-margin", mem: 4096, dirty: 200, bw: 298, want: true},
		{name: "ratio-above-margin", mem: 4096, dirty: 250, bw: 298, want: false},
		{name: "dirtier-than-link", mem: 4096, dirty: 130, bw: 119, want: false},
		// ratio 0.75 but 32 GiB at 40 MiB/s: 0.3·40/32768 needs 0.75ⁿ <= 3.7e-4,
		// 28 pre-copy rounds: still within 30.
		{name: "big-vm-many-rounds", mem: 32768, dirty: 30, bw: 40, want: true},
		// ratio 0.79 on a 64 GiB VM: 37 rounds, more than the platform's 30.
		{name: "too-many-rounds", mem: 65536, dirty: 31.6, bw: 40, want: false},
		{name: "no-bandwidth", mem: 1, dirty: 0, bw: 0, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := o.converges(tt.mem, tt.dirty, tt.bw); got != tt.want {
				t.Errorf("converges(%g MiB, %g MiB/s, %g MiB/s) = %v, want %v (rounds %d)", tt.mem, tt.dirty, tt.bw, got, tt.want, roundsNeeded(tt.mem, tt.dirty/tt.bw, tt.bw, 0.3))
			}
		})
	}
}

func TestRoundsNeeded(t *testing.T) {
	tests := []struct {
		name          string
		mem, r, bw, d float64
		want          int
	}{
		// 1024·0.5ⁿ/1 <= 0.3 first at n = 12 (0.5¹¹·1024 = 0.5, 0.5¹²·1024 = 0.25).
		{name: "halving", mem: 1024, r: 0.5, bw: 1, d: 0.3, want: 12},
		// What round 1 dirties (10 MiB) fits in 0.3 s at 1000 MiB/s: one round.
		{name: "one-round", mem: 100, r: 0.1, bw: 1000, d: 0.3, want: 1},
		// 4 GiB at 357.6 MiB/s dirtying 20: round 2 sends 229 MiB (0.64 s), round 3
		// would send 12.8 MiB (0.036 s): two pre-copy rounds, as the simulator does.
		{name: "4gib-at-3gbps", mem: 4096, r: 20 / 357.6, bw: 357.6, d: 0.3, want: 2},
		{name: "no-dirtying", mem: 4096, r: 0, bw: 1, d: 0.3, want: 1},
		{name: "diverging", mem: 4096, r: 1.2, bw: 100, d: 0.3, want: math.MaxInt32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := roundsNeeded(tt.mem, tt.r, tt.bw, tt.d); got != tt.want {
				t.Errorf("roundsNeeded = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestParseDrainMode(t *testing.T) {
	for in, want := range map[string]DrainMode{"": DrainAdaptive, "adaptive": DrainAdaptive, "fixed": DrainFixed} {
		if got, err := ParseDrainMode(in); err != nil || got != want {
			t.Errorf("ParseDrainMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	var fe *cluster.FieldError
	if _, err := ParseDrainMode("fast"); !errors.As(err, &fe) || fe.Field != "drain.mode" {
		t.Errorf("ParseDrainMode(fast) = %v, want a FieldError on drain.mode", err)
	}
}
