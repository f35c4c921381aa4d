package policies

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/droverhq/drover/cluster"
)

func TestPlacer_Place(t *testing.T) {
	const gib = 1024
	tests := []struct {
		name    string
		inv     cluster.Inventory
		opts    PlacementOptions
		place   string // VM name
		avoid   map[string]bool
		want    string
		wantErr error
		errHas  []string // substrings of the error message
	}{
		{
			name: "most-free-memory-wins",
			inv: inv([]cluster.Node{node("n1", 64*gib, 16), node("n2", 64*gib, 16), node("n3", 64*gib, 16)},
				vm("a", "n1", 4*gib, 2), vm("b", "n2", 8*gib, 2), vm("c", "n3", 2*gib, 2)),
			place: "a", want: "n3",
		},
		{
			name:  "tie-broken-by-name",
			inv:   inv([]cluster.Node{node("n1", 64*gib, 16), node("n3", 64*gib, 16), node("n2", 64*gib, 16)}, vm("a", "n1", 4*gib, 2)),
			place: "a", want: "n2",
		},
		{
			name:  "never-the-source",
			inv:   inv([]cluster.Node{node("n1", 128*gib, 16), node("n2", 8*gib, 16)}, vm("a", "n1", 4*gib, 2)),
			place: "a", want: "n2",
		},
		{
			name: "headroom-kept-free",
			inv: inv([]cluster.Node{node("n1", 64*gib, 16), node("n2", 16*gib, 16), node("n3", 17*gib, 16)},
				vm("a", "n1", 12*gib, 2), vm("x", "n2", 0, 0)),
			opts:  PlacementOptions{MemoryHeadroomMiB: 4*gib + 1},
			place: "a", want: "n3",
		},
		{
			name: "memory-exactly-full-fits",
			inv: inv([]cluster.Node{node("n1", 64*gib, 16), node("n2", 16*gib, 16)},
				vm("a", "n1", 8*gib, 2), vm("b", "n2", 4*gib, 2)),
			opts:  PlacementOptions{MemoryHeadroomMiB: 4 * gib},
			place: "a", want: "n2",
		},
		{
			name: "vcpu-overcommit-ratio",
			inv: inv([]cluster.Node{node("n1", 64*gib, 16), node("n2", 64*gib, 2), node("n3", 32*gib, 4)},
				vm("a", "n1", 1*gib, 6), vm("b", "n2", 1*gib, 1)),
			opts:  PlacementOptions{CPUOvercommit: 3},
			place: "a", want: "n3", // n2: 1+6 > 2*3; n3: 6 <= 12
		},
		{
			name: "default-overcommit-is-4",
			inv: inv([]cluster.Node{node("n1", 64*gib, 16), node("n2", 64*gib, 2)},
				vm("a", "n1", 1*gib, 8), vm("b", "n2", 1*gib, 1)),
			place: "a", wantErr: ErrNoTarget, errHas: []string{"n2: needs 8 vCPUs, 7 free"},
		},
		{
			name: "same-cpu-group-only",
			inv: inv([]cluster.Node{node("n1", 64*gib, 16, withGroup("intel")), node("n2", 256*gib, 16, withGroup("amd")),
				node("n3", 64*gib, 16, withGroup("intel"))}, vm("a", "n1", 4*gib, 2)),
			place: "a", want: "n3",
		},
		{
			name: "networks-case-insensitive-and-vlan",
			inv: inv([]cluster.Node{
				node("n1", 64*gib, 16, withNets(cluster.Network{Name: "prod", VLAN: 10}, cluster.Network{Name: "dmz", VLAN: 30})),
				node("n2", 256*gib, 16, withNets(cluster.Network{Name: "prod", VLAN: 10}, cluster.Network{Name: "dmz", VLAN: 31})),
				node("n3", 64*gib, 16, withNets(cluster.Network{Name: "PROD", VLAN: 10}, cluster.Network{Name: "Dmz", VLAN: 30})),
			}, vm("a", "n1", 4*gib, 2, vmNets(cluster.Network{Name: "Prod", VLAN: 10}, cluster.Network{Name: "dmz", VLAN: 30}))),
			place: "a", want: "n3",
		},
		{
			name: "hard-anti-affinity-of-the-vm",
			inv: inv([]cluster.Node{node("n1", 64*gib, 16), node("n2", 256*gib, 16), node("n3", 64*gib, 16)},
				vm("web-1", "n1", 4*gib, 2, antiAff("web", true)), vm("web-2", "n2", 4*gib, 2, antiAff("web", false))),
			place: "web-1", want: "n3",
		},
		{
			name: "hard-anti-affinity-of-the-peer",
			inv: inv([]cluster.Node{node("n1", 64*gib, 16), node("n2", 256*gib, 16), node("n3", 64*gib, 16)},
				vm("web-1", "n1", 4*gib, 2, antiAff("web", false)), vm("web-2", "n2", 4*gib, 2, antiAff("web", true))),
			place: "web-1", want: "n3",
		},
		{
			name: "stopped-peer-is-no-conflict",
			inv: inv([]cluster.Node{node("n1", 64*gib, 16), node("n2", 256*gib, 16), node("n3", 64*gib, 16)},
				vm("web-1", "n1", 4*gib, 2, antiAff("web", true)), vm("web-2", "n2", 4*gib, 2, antiAff("web", true), power(cluster.PowerStopped))),
			place: "web-1", want: "n2",
		},
		{
			name: "soft-anti-affinity-beats-rank",
			inv: inv([]cluster.Node{node("n1", 64*gib, 16), node("n2", 256*gib, 16), node("n3", 64*gib, 16)},
				vm("web-1", "n1", 4*gib, 2, antiAff("web", false)), vm("web-2", "n2", 4*gib, 2, antiAff("web", false))),
			opts:  PlacementOptions{Rank: map[string]int{"n2": 0, "n3": 2}},
			place: "web-1", want: "n3",
		},
		{
			name: "fewest-soft-conflicts-when-all-conflict",
			inv: inv([]cluster.Node{node("n1", 64*gib, 16), node("n2", 256*gib, 16), node("n3", 64*gib, 16)},
				vm("web-1", "n1", 4*gib, 2, antiAff("web", false)), vm("web-2", "n2", 4*gib, 2, antiAff("web", false)),
				vm("web-3", "n2", 4*gib, 2, antiAff("web", false)), vm("web-4", "n3", 4*gib, 2, antiAff("web", false))),
			place: "web-1", want: "n3",
		},
		{
			name: "rank-beats-free-memory",
			inv:  inv([]cluster.Node{node("n1", 64*gib, 16), node("n2", 256*gib, 16), node("n3", 32*gib, 16)}, vm("a", "n1", 4*gib, 2)),
			opts: PlacementOptions{Rank: map[string]int{"n3": 0}}, place: "a", want: "n3",
		},
		{
			name: "unlisted-rank-is-1",
			inv:  inv([]cluster.Node{node("n1", 64*gib, 16), node("n2", 256*gib, 16), node("n3", 32*gib, 16)}, vm("a", "n1", 4*gib, 2)),
			opts: PlacementOptions{Rank: map[string]int{"n2": 2}}, place: "a", want: "n3",
		},
		{
			name: "full-high-rank-falls-to-next-rank",
			inv: inv([]cluster.Node{node("n1", 64*gib, 16), node("n2", 8*gib, 16), node("n3", 6*gib, 16), node("n4", 32*gib, 16)},
				vm("a", "n1", 10*gib, 2)),
			opts: PlacementOptions{Rank: map[string]int{"n2": 0, "n3": 0}}, place: "a", want: "n4",
		},
		{
			name: "paused-down-unavailable-refused",
			inv: inv([]cluster.Node{node("n1", 64*gib, 16), node("n2", 256*gib, 16, paused), node("n3", 256*gib, 16, withState(cluster.NodeDown)),
				node("n4", 256*gib, 16), node("n5", 8*gib, 16)}, vm("a", "n1", 4*gib, 2)),
			opts:  PlacementOptions{Unavailable: map[string]string{"n4": "in maintenance"}},
			place: "a", want: "n5",
		},
		{
			name: "stopped-vms-reserve-nothing",
			inv: inv([]cluster.Node{node("n1", 64*gib, 16), node("n2", 16*gib, 4)},
				vm("a", "n1", 8*gib, 4), vm("s", "n2", 16*gib, 16, power(cluster.PowerStopped))),
			place: "a", want: "n2",
		},
		{
			name: "suspended-and-unknown-vms-reserve",
			inv: inv([]cluster.Node{node("n1", 64*gib, 16), node("n2", 16*gib, 4), node("n3", 16*gib, 4)},
				vm("a", "n1", 8*gib, 4), vm("s", "n2", 10*gib, 1, power(cluster.PowerSuspended)), vm("u", "n3", 10*gib, 1, power(cluster.PowerUnknown))),
			place: "a", wantErr: ErrNoTarget,
		},
		{
			name: "stopped-vm-placed-without-capacity",
			inv: inv([]cluster.Node{node("n1", 64*gib, 16), node("n2", 1*gib, 1)},
				vm("s", "n1", 32*gib, 16, power(cluster.PowerStopped))),
			place: "s", want: "n2",
		},
		{
			name: "in-flight-vm-holds-source-and-target",
			inv: inv([]cluster.Node{node("n1", 64*gib, 16), node("n2", 20*gib, 16), node("n3", 16*gib, 16), node("n4", 64*gib, 16)},
				vm("a", "n1", 8*gib, 2), vm("m", "n4", 60*gib, 2, migratingTo("n2"))),
			place: "a", want: "n3", // n2 holds m (60 GiB > 20 GiB: over-committed), n4 keeps m's memory
		},
		{
			name: "avoided-only-feasible-is-busy",
			inv: inv([]cluster.Node{node("n1", 64*gib, 16), node("n2", 64*gib, 16), node("n3", 1*gib, 16)},
				vm("a", "n1", 4*gib, 2)),
			place: "a", avoid: map[string]bool{"n2": true}, wantErr: ErrTargetsBusy, errHas: []string{"busy: n2"},
		},
		{
			name: "avoided-best-takes-next",
			inv: inv([]cluster.Node{node("n1", 64*gib, 16), node("n2", 64*gib, 16), node("n3", 32*gib, 16)},
				vm("a", "n1", 4*gib, 2)),
			place: "a", avoid: map[string]bool{"n2": true}, want: "n3",
		},
		{
			name: "no-target-lists-every-reason",
			inv: inv([]cluster.Node{
				node("n1", 64*gib, 16, withGroup("g"), withNets(cluster.Network{Name: "prod", VLAN: 10}, cluster.Network{Name: "db", VLAN: 5})),
				node("n2", 64*gib, 16, withGroup("g"), paused, withNets(cluster.Network{Name: "prod", VLAN: 10}, cluster.Network{Name: "db", VLAN: 5})),
				node("n3", 10*gib, 16, withGroup("g"), withNets(cluster.Network{Name: "prod", VLAN: 10}, cluster.Network{Name: "db", VLAN: 5})),
				node("n4", 64*gib, 16, withGroup("g"), withNets(cluster.Network{Name: "prod", VLAN: 10}, cluster.Network{Name: "db", VLAN: 5})),
				node("n5", 64*gib, 16, withGroup("h"), withNets(cluster.Network{Name: "prod", VLAN: 10}, cluster.Network{Name: "db", VLAN: 5})),
				node("n6", 64*gib, 16, withGroup("g"), withNets(cluster.Network{Name: "prod", VLAN: 10})),
			},
				vm("web-1", "n1", 8*gib, 2, antiAff("web", true), vmNets(cluster.Network{Name: "prod", VLAN: 10}, cluster.Network{Name: "DB", VLAN: 5})),
				vm("fill", "n3", 8*gib, 2, vmNets()),
				vm("web-2", "n4", 1*gib, 2, antiAff("web", false), vmNets())),
			place: "web-1", wantErr: ErrNoTarget,
			errHas: []string{"place vm web-1: no feasible target", "n1: current node", "n2: paused",
				"n3: needs 8192 MiB, 2048 free", "n4: hard anti-affinity with web-2", `n5: cpu group "h", vm needs "g"`,
				"n6: no network DB vlan 5"},
		},
		{
			name:    "unknown-source",
			inv:     inv([]cluster.Node{node("n1", 64*gib, 16)}, vm("a", "nx", 4*gib, 2)),
			place:   "a",
			errHas:  []string{`place vm a: source node "nx" is not in the inventory`},
			wantErr: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPlacer(tt.inv, tt.opts)
			v, ok := tt.inv.VM(tt.place)
			if !ok {
				t.Fatalf("test VM %s missing", tt.place)
			}
			got, err := p.Place(v, tt.avoid)
			if tt.want != "" {
				if err != nil || got != tt.want {
					t.Fatalf("Place = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Place = %q, want an error", got)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v is not %v", err, tt.wantErr)
			}
			if errors.Is(err, ErrNoTarget) && errors.Is(err, ErrTargetsBusy) {
				t.Errorf("error is both no-target and busy: %v", err)
			}
			for _, s := range tt.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

func TestPlacer_Accounting(t *testing.T) {
	in := inv([]cluster.Node{node("n1", 64*1024, 16), node("n2", 32*1024, 8), node("n3", 32*1024, 8)},
		vm("a", "n1", 8*1024, 4), vm("b", "n1", 8*1024, 4), vm("c", "n1", 8*1024, 4))
	p := NewPlacer(in, PlacementOptions{MemoryHeadroomMiB: 1024})
	var targets []string
	for _, name := range []string{"a", "b", "c"} {
		v, _ := in.VM(name)
		got, err := p.Place(v, nil)
		if err != nil {
			t.Fatalf("Place %s: %v", name, err)
		}
		targets = append(targets, got)
	}
	// Spread: n2 and n3 are equal, so the second VM goes where the first did not.
	if strings.Join(targets, ",") != "n2,n3,n2" {
		t.Errorf("targets = %v, want n2,n3,n2", targets)
	}
	checks := []struct {
		node string
		mem  int64
		cpu  int
	}{{"n1", 63 * 1024, 64}, {"n2", 15 * 1024, 24}, {"n3", 23 * 1024, 28}}
	for _, c := range checks {
		if mem, cpu := p.Free(c.node); mem != c.mem || cpu != c.cpu {
			t.Errorf("Free(%s) = %d, %d; want %d, %d", c.node, mem, cpu, c.mem, c.cpu)
		}
	}
	if got := p.Location("c"); got != "n2" {
		t.Errorf("Location(c) = %q, want n2", got)
	}
	if mem, cpu := p.Free("nope"); mem != 0 || cpu != 0 {
		t.Errorf("Free(unknown) = %d, %d", mem, cpu)
	}
}

func TestPlacer_Cancel(t *testing.T) {
	in := inv([]cluster.Node{node("n1", 64*1024, 16), node("n2", 32*1024, 8), node("n3", 16*1024, 8)},
		vm("a", "n1", 8*1024, 4, antiAff("x", true)), vm("b", "n3", 1024, 1, antiAff("x", true)))
	tests := []struct {
		name   string
		cancel string // target passed to Cancel
		twice  bool
		wantN1 int64
		wantN2 int64
		wantAt string
	}{
		{name: "back-on-source", cancel: "n2", wantN1: 64 * 1024, wantN2: 32 * 1024, wantAt: "n1"},
		{name: "twice-is-harmless", cancel: "n2", twice: true, wantN1: 64 * 1024, wantN2: 32 * 1024, wantAt: "n1"},
		{name: "wrong-target-does-nothing", cancel: "n3", wantN1: 64*1024 + 8*1024, wantN2: 24 * 1024, wantAt: "n2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPlacer(in, PlacementOptions{})
			a, _ := in.VM("a")
			if got, err := p.Place(a, nil); err != nil || got != "n2" {
				t.Fatalf("Place = %q, %v", got, err)
			}
			p.Cancel(a, tt.cancel)
			if tt.twice {
				p.Cancel(a, tt.cancel)
			}
			if m, _ := p.Free("n1"); m != tt.wantN1-8*1024 {
				t.Errorf("Free(n1) = %d, want %d", m, tt.wantN1-8*1024)
			}
			if m, _ := p.Free("n2"); m != tt.wantN2 {
				t.Errorf("Free(n2) = %d, want %d", m, tt.wantN2)
			}
			if got := p.Location("a"); got != tt.wantAt {
				t.Errorf("Location = %q, want %q", got, tt.wantAt)
			}
			// The anti-affinity cell follows the VM: with a on n1 again, b (hard, group x)
			// cannot go to n1 but n2 is fine; with a on n2 it is the other way round.
			b, _ := in.VM("b")
			got, err := p.Place(b, nil)
			if err != nil {
				t.Fatalf("Place b: %v", err)
			}
			if got == tt.wantAt {
				t.Errorf("b placed next to a on %s despite hard anti-affinity", got)
			}
		})
	}
}

func TestPlacer_SetUnavailable(t *testing.T) {
	in := inv([]cluster.Node{node("n1", 64*1024, 16), node("n2", 64*1024, 16), node("n3", 32*1024, 16, paused)},
		vm("a", "n1", 1024, 1))
	a, _ := in.VM("a")
	p := NewPlacer(in, PlacementOptions{})
	p.SetUnavailable("n2", "draining")
	_, err := p.Place(a, nil)
	if !errors.Is(err, ErrNoTarget) || !strings.Contains(err.Error(), "n2: draining") {
		t.Fatalf("Place with n2 draining: %v", err)
	}
	p.SetAvailable("n2")
	if got, err := p.Place(a, nil); err != nil || got != "n2" {
		t.Fatalf("Place after SetAvailable = %q, %v", got, err)
	}
	p.SetState("n3", cluster.NodeUp, false)
	p.Cancel(a, "n2")
	if got, err := p.Place(a, nil); err != nil || got != "n2" {
		t.Fatalf("Place = %q, %v; want n2 (more free than n3)", got, err)
	}
	p.SetRank("n3", 0)
	p.Cancel(a, "n2")
	if got, err := p.Place(a, nil); err != nil || got != "n3" {
		t.Fatalf("Place after SetRank = %q, %v; want n3", got, err)
	}
	p.SetUnavailable("n1", "")
	p.SetUnavailable("n2", "x")
	_, err = p.Place(cluster.VM{Name: "new", Node: "n3", MemoryMiB: 1024, Power: cluster.PowerRunning}, nil)
	if !errors.Is(err, ErrNoTarget) || !strings.Contains(err.Error(), "n1: unavailable") {
		t.Fatalf("Place with n1 unavailable (default reason): %v", err)
	}
}

func TestPlacer_PlaceOn(t *testing.T) {
	in := inv([]cluster.Node{node("n1", 64*1024, 16), node("n2", 16*1024, 16), node("n3", 64*1024, 16, paused)},
		vm("a", "n1", 8*1024, 2), vm("b", "n2", 10*1024, 2))
	tests := []struct {
		name, vm, target string
		wantErr          string
	}{
		{name: "unknown-target", vm: "a", target: "n3x", wantErr: `target node "n3x" is not in the inventory`},
		{name: "paused-target", vm: "a", target: "n3", wantErr: "n3: paused"},
		{name: "too-small", vm: "a", target: "n2", wantErr: "n2: needs 8192 MiB, 6144 free"},
		{name: "own-node", vm: "a", target: "n1", wantErr: "n1: current node"},
		{name: "ok", vm: "b", target: "n1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPlacer(in, PlacementOptions{})
			v, _ := in.VM(tt.vm)
			err := p.PlaceOn(v, tt.target)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("PlaceOn: %v", err)
				}
				if p.Location(tt.vm) != tt.target {
					t.Fatalf("Location = %q", p.Location(tt.vm))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("PlaceOn = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestNoTargetError_Error(t *testing.T) {
	e := &NoTargetError{VM: "v"}
	for i := range 20 {
		e.Refusals = append(e.Refusals, Refusal{Node: fmt.Sprintf("n%d", i), Reason: "paused"})
	}
	msg := e.Error()
	if !strings.Contains(msg, "n11: paused; and 8 more nodes") || strings.Contains(msg, "n12") {
		t.Errorf("message = %q", msg)
	}
	if !errors.Is(e, ErrNoTarget) {
		t.Error("not ErrNoTarget")
	}
}

func TestPlacementOptions_Validate(t *testing.T) {
	tests := []struct {
		name string
		opts PlacementOptions
		want string
	}{
		{name: "zero-is-valid", opts: PlacementOptions{}},
		{name: "negative-overcommit", opts: PlacementOptions{CPUOvercommit: -1}, want: "cpu_overcommit"},
		{name: "negative-headroom", opts: PlacementOptions{MemoryHeadroomMiB: -5}, want: "memory_headroom_mib: -5 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestPlacer_MatchesReference drives the Placer and the naive model through the same
// random operations and requires the same decisions: the index structures of the
// Placer must never change an answer.
func TestPlacer_MatchesReference(t *testing.T) {
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 7))
		in := randomCluster(rng, 3+rng.IntN(12), 10+rng.IntN(60), 0.3+rng.Float64()*0.6)
		opts := PlacementOptions{
			MemoryHeadroomMiB: int64(rng.IntN(3)) * 1024,
			CPUOvercommit:     []float64{0, 1, 1.5, 4}[rng.IntN(4)],
			Rank:              map[string]int{},
			Unavailable:       map[string]string{},
		}
		for _, n := range in.Nodes {
			if rng.IntN(3) == 0 {
				opts.Rank[n.Name] = rng.IntN(3)
			}
		}
		p := NewPlacer(in, opts)
		ref := newNaive(in, opts)
		type placed struct {
			v      cluster.VM
			target string
		}
		var done []placed
		for step := range 150 {
			switch op := rng.IntN(10); {
			case op == 0 && len(in.Nodes) > 0: // take a node out or back
				n := in.Nodes[rng.IntN(len(in.Nodes))].Name
				if ref.unavailable[n] {
					p.SetAvailable(n)
					delete(ref.unavailable, n)
				} else {
					p.SetUnavailable(n, "maintenance")
					ref.unavailable[n] = true
				}
			case op == 1:
				n := in.Nodes[rng.IntN(len(in.Nodes))].Name
				r := rng.IntN(3)
				p.SetRank(n, r)
				ref.rank[n] = r
			case op == 2 && len(done) > 0: // a migration failed
				i := rng.IntN(len(done))
				d := done[i]
				done = append(done[:i], done[i+1:]...)
				p.Cancel(d.v, d.target)
				ref.find(d.v.Name).Node = d.v.Node
			default:
				if len(ref.vms) == 0 {
					continue
				}
				v := ref.vms[rng.IntN(len(ref.vms))]
				var avoid map[string]bool
				if rng.IntN(3) == 0 {
					avoid = map[string]bool{in.Nodes[rng.IntN(len(in.Nodes))].Name: true}
				}
				want, wantBusy := ref.best(v, avoid)
				got, err := p.Place(v, avoid)
				switch {
				case want != "":
					if err != nil || got != want {
						t.Fatalf("seed %d step %d: Place(%s from %s) = %q, %v; reference %q", seed, step, v.Name, v.Node, got, err, want)
					}
					ref.find(v.Name).Node = got
					// Cancel undoes the latest Place of a VM only: forget older ones.
					done = slices.DeleteFunc(done, func(d placed) bool { return d.v.Name == v.Name })
					done = append(done, placed{v, got})
				case wantBusy:
					if !errors.Is(err, ErrTargetsBusy) {
						t.Fatalf("seed %d step %d: Place(%s) = %q, %v; reference: busy", seed, step, v.Name, got, err)
					}
				default:
					if !errors.Is(err, ErrNoTarget) {
						t.Fatalf("seed %d step %d: Place(%s) = %q, %v; reference: no target", seed, step, v.Name, got, err)
					}
					var nte *NoTargetError
					errors.As(err, &nte)
					if len(nte.Refusals) != len(in.Nodes) {
						t.Fatalf("seed %d step %d: %d refusals for %d nodes: %v", seed, step, len(nte.Refusals), len(in.Nodes), err)
					}
				}
			}
			for _, n := range in.Nodes {
				wantMem, wantCPU := ref.used(n.Name)
				gotMem, gotCPU := p.Free(n.Name)
				if gotMem != n.MemoryMiB-opts.MemoryHeadroomMiB-wantMem {
					t.Fatalf("seed %d step %d: Free(%s) mem = %d, reference %d", seed, step, n.Name, gotMem, n.MemoryMiB-opts.MemoryHeadroomMiB-wantMem)
				}
				oc := opts.CPUOvercommit
				if oc == 0 {
					oc = 4
				}
				if capCPU := int(math.Floor(float64(n.CPUs)*oc + 1e-9)); gotCPU != capCPU-wantCPU {
					t.Fatalf("seed %d step %d: Free(%s) vcpus = %d, reference %d", seed, step, n.Name, gotCPU, capCPU-wantCPU)
				}
			}
		}
	}
}
