package policies

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/cluster"
)

// migrationsOf renders a plan's moves as "node: vm->target ..." lines, blocked nodes
// as "node: blocked".
func migrationsOf(p Plan) string {
	var lines []string
	for _, n := range p.Nodes {
		if n.Status == NodeBlocked {
			lines = append(lines, n.Node+": blocked")
			continue
		}
		line := n.Node + ":"
		for _, m := range n.Migrations {
			line += " " + m.VM + "->" + m.To
		}
		for _, m := range n.Failback {
			line += " back:" + m.VM + "<-" + m.From
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "; ")
}

func TestBuildPlan(t *testing.T) {
	const g = 1024
	// Three nodes; fewest-vms order n1 (empty), n2, n3. n2's VMs should land on the
	// patched n1, n3's on n1/n2: every VM moves once.
	three := inv([]cluster.Node{node("n1", 64*g, 16), node("n2", 64*g, 16), node("n3", 64*g, 16)},
		vm("b1", "n2", 8*g, 2), vm("b2", "n2", 4*g, 2),
		vm("c1", "n3", 16*g, 2), vm("c2", "n3", 8*g, 2), vm("c3", "n3", 2*g, 1))
	withLocal := inv([]cluster.Node{node("n1", 64*g, 16), node("n2", 64*g, 16), node("n3", 64*g, 16)},
		vm("b1", "n2", 8*g, 2), vm("local", "n2", 4*g, 2, notMigratable("local disk")),
		vm("c1", "n3", 16*g, 2, preferred("n3")), vm("c2", "n3", 8*g, 2))
	tooBig := inv([]cluster.Node{node("n1", 64*g, 16), node("n2", 32*g, 16), node("n3", 32*g, 16)},
		vm("huge", "n1", 40*g, 2), vm("x", "n2", 1*g, 1))
	// k=1: with "small" out, either big node can fail (the other has room). With a big
	// node out, the other big one failing leaves "small" alone: the reserve breaks.
	tight := inv([]cluster.Node{node("big1", 128*g, 16), node("big2", 128*g, 16), node("small", 32*g, 16)},
		vm("a1", "big1", 20*g, 2), vm("a2", "big1", 20*g, 2), vm("b1", "big2", 20*g, 2), vm("b2", "big2", 20*g, 2),
		vm("s", "small", 8*g, 2))
	pausedTarget := inv([]cluster.Node{node("n1", 64*g, 16), node("n2", 128*g, 16, paused), node("n3", 16*g, 16)},
		vm("a", "n1", 8*g, 2))

	tests := []struct {
		name        string
		inv         cluster.Inventory
		opts        PlanOptions
		want        string // migrationsOf
		blockedHas  string // substring of the first blocked node's reasons
		warnHas     string // substring of some node warning
		movedTwice  int
		migrations  int
		wantErr     string
		checkResult func(t *testing.T, p Plan)
	}{
		{name: "each-vm-moves-once-onto-patched-nodes", inv: three,
			want:       "n1:; n2: b1->n1 b2->n1; n3: c1->n2 c2->n1 c3->n2",
			migrations: 5},
		{name: "move-once-order", inv: three, opts: PlanOptions{Order: OrderOptions{Strategy: OrderMoveOnce}},
			want: "n1:; n2: b1->n1 b2->n1; n3: c1->n2 c2->n1 c3->n2", migrations: 5},
		{name: "explicit-order-moves-twice-without-room", inv: three,
			opts: PlanOptions{Order: OrderOptions{Strategy: OrderExplicit, Nodes: []string{"n3", "n2", "n1"}}},
			want: "n3: c1->n1 c2->n2 c3->n1; n2: b1->n3 c2->n3 b2->n3; n1: c1->n2 c3->n2", migrations: 8, movedTwice: 3},
		{name: "non-migratable-fail-blocks", inv: withLocal,
			want: "n1:; n2: blocked; n3: c1->n1 c2->n1", blockedHas: "vm local: not migratable: local disk (non_migratable=fail)", migrations: 2},
		{name: "non-migratable-shutdown", inv: withLocal, opts: PlanOptions{NonMigratable: NonMigratableShutdown},
			want: "n1:; n2: b1->n1; n3: c1->n2 c2->n1", migrations: 3, // n2 keeps only "local": most free
			checkResult: func(t *testing.T, p Plan) {
				if got := strings.Join(p.Nodes[1].Shutdown, ","); got != "local" {
					t.Errorf("Shutdown = %q", got)
				}
			}},
		{name: "non-migratable-skip-warns", inv: withLocal, opts: PlanOptions{NonMigratable: NonMigratableSkip},
			want: "n1:; n2: b1->n1; n3: c1->n2 c2->n1", warnHas: "1 non-migratable VMs stay running", migrations: 3},
		{name: "cannot-drain-lists-refusals", inv: tooBig,
			want: "n3:; n1: blocked; n2: x->n3", blockedHas: "cannot drain: 1 of 1 VMs have no target", migrations: 1,
			checkResult: func(t *testing.T, p Plan) {
				u := p.Nodes[1].Unplaced
				if len(u) != 1 || u[0].VM != "huge" || len(u[0].Refusals) != 3 ||
					u[0].Refusals[1].String() != "n2: needs 40960 MiB, 31744 free" {
					t.Errorf("Unplaced = %+v", u)
				}
			}},
		{name: "reserve-blocks", inv: tight, opts: PlanOptions{ReserveK: 1},
			want: "small: s->big1; big1: blocked; big2: blocked", migrations: 1,
			blockedHas: "reserve N-1 does not hold while big1 is out: aggregate (exact): with big1 out and big2 failed the surviving nodes lack 57344 MiB"},
		{name: "reserve-overridden", inv: tight, opts: PlanOptions{ReserveK: 1, OverrideReserve: true},
			want: "small: s->big1; big1: a1->small a2->big2 s->small; big2: b1->big1 b2->big1 a2->big1", warnHas: "overridden: reserve N-1 does not hold",
			migrations: 7, movedTwice: 2},
		{name: "failback-immediate", inv: three, opts: PlanOptions{Failback: FailbackImmediate},
			want:       "n1:; n2: b1->n1 b2->n1 back:b1<-n1 back:b2<-n1; n3: c1->n1 c2->n2 c3->n1 back:c1<-n1 back:c2<-n2 back:c3<-n1",
			migrations: 10, movedTwice: 5},
		{name: "failback-policy-preferred-only", inv: withLocal, opts: PlanOptions{Failback: FailbackPolicy, NonMigratable: NonMigratableShutdown},
			want: "n1:; n2: b1->n1; n3: c1->n2 c2->n1 back:c1<-n2", migrations: 4, movedTwice: 1},
		{name: "paused-node-never-a-target", inv: pausedTarget,
			want: "n2:; n3:; n1: a->n3", migrations: 1}, // n2 is maintained but stays paused
		{name: "negative-k", inv: three, opts: PlanOptions{ReserveK: -1}, wantErr: "reserve_k: -1 is negative"},
		{name: "bad-mode", inv: three, opts: PlanOptions{NonMigratable: "save"}, wantErr: `non_migratable: unknown mode "save"`},
		{name: "bad-inventory", inv: inv([]cluster.Node{node("n1", 1, 1), node("n1", 1, 1)}, vm("a", "nx", 1, 1)),
			wantErr: `nodes[1].name: "n1" repeated`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := BuildPlan(tt.inv, tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "build plan: ") {
					t.Fatalf("BuildPlan error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("BuildPlan: %v", err)
			}
			if got := migrationsOf(p); got != tt.want {
				t.Errorf("plan = %s\nwant   %s\n%s", got, tt.want, p)
			}
			if p.Migrations != tt.migrations || p.MovedMoreThanOnce != tt.movedTwice {
				t.Errorf("migrations %d, moved twice %d; want %d, %d", p.Migrations, p.MovedMoreThanOnce, tt.migrations, tt.movedTwice)
			}
			if tt.blockedHas != "" {
				found := false
				for _, n := range p.Nodes {
					if n.Status == NodeBlocked {
						found = strings.Contains(strings.Join(n.Blocked, "; "), tt.blockedHas)
						break
					}
				}
				if !found {
					t.Errorf("no blocked node says %q:\n%s", tt.blockedHas, p)
				}
			}
			if tt.warnHas != "" && !strings.Contains(p.String(), tt.warnHas) {
				t.Errorf("no warning %q:\n%s", tt.warnHas, p)
			}
			if err := checkPlan(tt.inv, tt.opts, p); err != nil {
				t.Errorf("replay: %v", err)
			}
			if tt.checkResult != nil {
				tt.checkResult(t, p)
			}
		})
	}
}

func TestBuildPlan_Times(t *testing.T) {
	const g = 1024
	in := inv([]cluster.Node{node("n1", 64*g, 16, withNIC(1000, 0)), node("n2", 64*g, 16, withNIC(1000, 0)), node("n3", 64*g, 16, withNIC(10000, 0))},
		vm("a", "n2", 1*g, 1), vm("b", "n2", 1*g, 1, dirty(50)), vm("c", "n3", 1*g, 1, dirty(200)))
	mib1G := 1000e6 / 8 / (1 << 20) // 119.2 MiB/s
	tests := []struct {
		name    string
		timings Timings
		// want durations of n2 and n3 (drain, install, reboot) and the ETA.
		drain2, drain3, install2, reboot2, eta time.Duration
		measured                               bool
	}{
		{
			name: "model-defaults",
			// Order n1 (empty), n3, n2. n2 drains a (to n3) and b (to n1) in parallel, each
			// on half of n2's 1 GbE: a 3 + 1024/59.6, b (dirties 50 MiB/s) 3 + 1024/(59.6-50).
			// n3: c alone at min(10 GbE, n1's 1 GbE).
			drain2:   seconds(3 + 1024/(mib1G/2-50)),
			drain3:   seconds(3 + 10*1024/mib1G), // 200 > 119 MiB/s: does not converge, 10 rounds
			install2: 600 * time.Second, reboot2: 300 * time.Second,
		},
		{
			name: "measured-medians",
			timings: Timings{Nodes: map[string]NodeTimings{
				"n2": {RebootSeconds: []float64{100, 900, 200}, InstallSeconds: []float64{60, 80}, MigrationMiBs: []float64{100}},
				"n1": {RebootSeconds: []float64{50}},
			}},
			// n2: both at 100 MiB/s measured: 10.24 s each in parallel. n3 and its target
			// n1 have none: the cluster median (100) applies.
			drain2: seconds(10.24), drain3: seconds(10.24),
			install2: 70 * time.Second, reboot2: 200 * time.Second, measured: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := BuildPlan(in, PlanOptions{Timings: tt.timings})
			if err != nil {
				t.Fatal(err)
			}
			if got := migrationsOf(p); got != "n1:; n3: c->n1; n2: a->n3 b->n1" {
				t.Fatalf("plan = %s", got)
			}
			n3, n2 := p.Nodes[1], p.Nodes[2]
			if n2.Drain != tt.drain2 || n3.Drain != tt.drain3 {
				t.Errorf("drain n2 %v, n3 %v; want %v, %v", n2.Drain, n3.Drain, tt.drain2, tt.drain3)
			}
			if n2.Install != tt.install2 || n2.Reboot != tt.reboot2 {
				t.Errorf("n2 install %v reboot %v; want %v, %v", n2.Install, n2.Reboot, tt.install2, tt.reboot2)
			}
			if m := n3.Migrations[0]; m.Converges != tt.measured || m.Measured != tt.measured {
				t.Errorf("c converges %v, measured %v; want %v", m.Converges, m.Measured, tt.measured)
			}
			var sum time.Duration
			for i, n := range p.Nodes {
				if n.Start != sum {
					t.Errorf("node %d starts at %v, want %v", i, n.Start, sum)
				}
				sum += n.Drain + n.Install + n.Reboot + n.FailbackTime
				if n.End != sum {
					t.Errorf("node %d ends at %v, want %v", i, n.End, sum)
				}
			}
			if p.ETA != sum {
				t.Errorf("ETA %v, want %v", p.ETA, sum)
			}
			if !tt.measured && !strings.Contains(strings.Join(n3.Warnings, ";"), "vm c: dirties 200 MiB/s") {
				t.Errorf("no convergence warning: %v", n3.Warnings)
			}
		})
	}
}

func TestMigrationSeconds(t *testing.T) {
	gbe := 1000e6 / 8 / (1 << 20)
	tests := []struct {
		name             string
		mem              int64
		dirty, bw, setup float64
		want             float64
		wantConverges    bool
		tolerance        float64
		publishedFigure  bool
		maxRounds        int
	}{
		{name: "no-dirtying", mem: 1024, bw: 128, setup: 2, want: 10, wantConverges: true},
		{name: "geometric-series", mem: 1000, dirty: 50, bw: 100, setup: 0, want: 20, wantConverges: true},
		{name: "not-converging", mem: 1000, dirty: 100, bw: 100, setup: 1, maxRounds: 10, want: 101},
		{name: "no-bandwidth", mem: 1000, bw: 0, want: math.Inf(1)},
		// DOMAIN.md: one 512 MiB VM on 1 GbE took 7 s.
		{name: "published-512mib-1gbe", mem: 512, bw: gbe, setup: 3, want: 7, tolerance: 0.5, wantConverges: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, conv := MigrationSeconds(tt.mem, tt.dirty, tt.bw, tt.setup, tt.maxRounds)
			if conv != tt.wantConverges || math.Abs(got-tt.want) > tt.tolerance+1e-9 && !(math.IsInf(got, 1) && math.IsInf(tt.want, 1)) {
				t.Errorf("MigrationSeconds = %v, %v; want %v ± %v, %v", got, conv, tt.want, tt.tolerance, tt.wantConverges)
			}
		})
	}
}

func TestMakespan(t *testing.T) {
	tests := []struct {
		d     []float64
		lanes int
		want  float64
	}{
		{[]float64{5, 5, 5, 5}, 2, 10},
		{[]float64{7, 3, 3, 1}, 2, 7},
		{[]float64{1, 2, 3}, 1, 6},
		{[]float64{4}, 8, 4},
		{[]float64{3, 3, 2, 2, 2}, 2, 7}, // LPT: 3+2+2 | 3+2
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.d, tt.lanes), func(t *testing.T) {
			if got := makespan(tt.d, tt.lanes); got != tt.want {
				t.Errorf("makespan = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
		ok   bool
	}{
		{nil, 0, false},
		{[]float64{0, -1, math.NaN(), math.Inf(1)}, 0, false},
		{[]float64{3}, 3, true},
		{[]float64{9, 1, 5}, 5, true},
		{[]float64{4, 1, 3, 2}, 2.5, true},
	}
	for _, tt := range tests {
		if got, ok := median(tt.in); got != tt.want || ok != tt.ok {
			t.Errorf("median(%v) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestInventory_Validate(t *testing.T) {
	tests := []struct {
		name string
		inv  cluster.Inventory
		want []string
	}{
		{name: "valid", inv: inv([]cluster.Node{node("n1", 1, 1)}, vm("a", "n1", 1, 1))},
		{name: "problems", inv: inv([]cluster.Node{node("", 1, 1), node("n1", -1, -2), node("n1", 1, 1)},
			vm("a", "n1", -1, 1), vm("a", "nx", 1, 1), vm("", "n1", 1, 1)),
			want: []string{"nodes[0].name: empty", "nodes[1].memory_mib: -1 is negative", "nodes[1].cpus", `nodes[2].name: "n1" repeated`,
				"vms[0]: vm a has negative", `vms[1].name: "a" repeated`, `vms[1].node: vm a is on unknown node "nx"`, "vms[2].name: empty"}},
		{name: "capped", inv: func() cluster.Inventory {
			var in cluster.Inventory
			for i := range 30 {
				in.VMs = append(in.VMs, vm(fmt.Sprint(i), "nowhere", 1, 1))
			}
			return in
		}(), want: []string{"and 10 more problems"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.inv.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var fe *cluster.FieldError
			if err == nil || !errors.As(err, &fe) {
				t.Fatalf("Validate = %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestEstimateOptions_Validate(t *testing.T) {
	tests := []struct {
		name string
		opts EstimateOptions
		want []string
	}{
		{name: "zero-takes-defaults", opts: EstimateOptions{}},
		{name: "bad", opts: EstimateOptions{SetupSeconds: -1, NICMbps: math.NaN(), MaxParallel: -2, MaxRounds: -1},
			want: []string{"setup_seconds: -1 is not valid", "nic_mbps: NaN", "max_parallel: -2 is negative", "max_rounds"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if (err != nil) != (len(tt.want) > 0) {
				t.Fatalf("Validate = %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
		})
	}
}

func TestEstimateOptions_Parallel(t *testing.T) {
	tests := []struct {
		opts EstimateOptions
		want int
	}{
		{EstimateOptions{}, 2},
		{EstimateOptions{PerNode: 8}, 2},
		{EstimateOptions{PerNode: 8, MaxParallel: 5}, 5},
		{EstimateOptions{PerNode: 1, MaxParallel: 5}, 1},
	}
	for _, tt := range tests {
		if got := tt.opts.Parallel(); got != tt.want {
			t.Errorf("%+v.Parallel() = %d, want %d", tt.opts, got, tt.want)
		}
	}
}
