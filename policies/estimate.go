package policies

import (
	"errors"
	"math"
	"slices"
	"time"

	"github.com/droverhq/drover/cluster"
)

// EstimateOptions are the defaults of the time model; zero fields take the defaults.
type EstimateOptions struct {
	// SetupSeconds is the fixed cost of one migration (connection, device state,
	// switch-over). Default 3 s: the published 512 MiB migrations (7 s on 1 GbE, 5 s on
	// 10 GbE) leave about that once the copy is taken away.
	SetupSeconds float64 `json:"setup_seconds,omitempty"`
	// NICMbps is the migration bandwidth of nodes that report none. Default 1000.
	NICMbps float64 `json:"nic_mbps,omitempty"`
	// InstallSeconds and RebootSeconds are used when no history is measured. Defaults
	// 600 and 300.
	InstallSeconds float64 `json:"install_seconds,omitempty"`
	RebootSeconds  float64 `json:"reboot_seconds,omitempty"`
	// MaxParallel is the cluster-wide number of concurrent migrations (default 2);
	// PerNode the number into or out of one node (default 2, Hyper-V's
	// MaximumVirtualMachineMigrations).
	MaxParallel int `json:"max_parallel,omitempty"`
	PerNode     int `json:"per_node,omitempty"`
	// MaxRounds is how many pre-copy rounds a platform runs before it gives up on a VM
	// that does not converge (or forces a long stop-and-copy). Default 10.
	MaxRounds int `json:"max_rounds,omitempty"`
}

func (o EstimateOptions) withDefaults() EstimateOptions {
	def := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.SetupSeconds, 3)
	def(&o.NICMbps, 1000)
	def(&o.InstallSeconds, 600)
	def(&o.RebootSeconds, 300)
	if o.MaxParallel <= 0 {
		o.MaxParallel = 2
	}
	if o.PerNode <= 0 {
		o.PerNode = 2
	}
	if o.MaxRounds <= 0 {
		o.MaxRounds = 10
	}
	return o
}

// Validate reports values that cannot be right (negative or not finite).
func (o EstimateOptions) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    float64
	}{{"setup_seconds", o.SetupSeconds}, {"nic_mbps", o.NICMbps}, {"install_seconds", o.InstallSeconds}, {"reboot_seconds", o.RebootSeconds}} {
		if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			errs = append(errs, fieldf(f.name, "use 0 for the default or a positive number", "%v is not valid", f.v))
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"max_parallel", o.MaxParallel}, {"per_node", o.PerNode}, {"max_rounds", o.MaxRounds}} {
		if f.v < 0 {
			errs = append(errs, fieldf(f.name, "use 0 for the default or a positive number", "%d is negative", f.v))
		}
	}
	return errors.Join(errs...)
}

// Parallel is how many migrations drain one node at once: min(PerNode, MaxParallel).
func (o EstimateOptions) Parallel() int {
	o = o.withDefaults()
	return min(o.PerNode, o.MaxParallel)
}

// NodeTimings is what was measured on one node in earlier runs.
type NodeTimings struct {
	RebootSeconds  []float64 `json:"reboot_seconds,omitempty"`
	InstallSeconds []float64 `json:"install_seconds,omitempty"`
	// MigrationMiBs: throughput of finished migrations out of or into the node, VM
	// memory / whole duration (setup and dirtying included), MiB/s.
	MigrationMiBs []float64 `json:"migration_mib_s,omitempty"`
}

// Timings is measured history per node. An estimate uses the node's median when it has
// values, else the median over all nodes, else the model's default.
type Timings struct {
	Nodes map[string]NodeTimings `json:"nodes,omitempty"`
}

// median of the positive finite values; ok false when there are none.
func median(vs []float64) (float64, bool) {
	var s []float64
	for _, v := range vs {
		if v > 0 && !math.IsInf(v, 0) && !math.IsNaN(v) {
			s = append(s, v)
		}
	}
	if len(s) == 0 {
		return 0, false
	}
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}

// measured returns the node's median of pick, else the cluster's.
func (t Timings) measured(node string, pick func(NodeTimings) []float64) (float64, bool) {
	if m, ok := median(pick(t.Nodes[node])); ok {
		return m, true
	}
	var all []float64
	for _, n := range t.Nodes {
		all = append(all, pick(n)...)
	}
	return median(all)
}

// MigrationSeconds models one live migration of memMiB with page-dirtying rate
// dirtyMiBs over bandwidthMiBs:
//
//	T = setup + M/B · (1 + r + r² + … + r^n),  r = D/B
//
// Round 0 copies the memory M; every next round copies what was dirtied during the
// previous one (D · its duration), so the rounds form a geometric series. Converging
// (r < 1) it is bounded by setup + M/(B − D), which is what we use (the last terms
// are the stop-and-copy). Not converging (r >= 1) the platform copies maxRounds rounds
// of M and gives up or forces a long stop: T = setup + maxRounds · M/B, converges false.
func MigrationSeconds(memMiB int64, dirtyMiBs, bandwidthMiBs, setupSeconds float64, maxRounds int) (seconds float64, converges bool) {
	m := float64(max(memMiB, 0))
	if bandwidthMiBs <= 0 {
		return math.Inf(1), false
	}
	if dirtyMiBs < bandwidthMiBs {
		return setupSeconds + m/(bandwidthMiBs-max(dirtyMiBs, 0)), true
	}
	return setupSeconds + float64(maxRounds)*m/bandwidthMiBs, false
}

// StorageMigrationSeconds is MigrationSeconds for a VM that takes diskMiB of local
// disks with it: the disks go first over the same stream (QEMU's drive-mirror bulk
// copy, Hyper-V's and vSphere's storage phase), then memory as usual, so
//
//	T = setup + S/B + M/(B − D)
//
// Disk writes during the copy are mirrored as they happen and not counted again.
func StorageMigrationSeconds(memMiB, diskMiB int64, dirtyMiBs, bandwidthMiBs, setupSeconds float64, maxRounds int) (seconds float64, converges bool) {
	s, conv := MigrationSeconds(memMiB, dirtyMiBs, bandwidthMiBs, setupSeconds, maxRounds)
	if bandwidthMiBs > 0 {
		s += float64(max(diskMiB, 0)) / bandwidthMiBs
	}
	return s, conv
}

// mbpsToMiBs converts megabits per second into MiB per second.
func mbpsToMiBs(mbps float64) float64 { return mbps * 1e6 / 8 / (1 << 20) }

// streamMiBs is the bandwidth one of `out` concurrent streams out of src gets, into
// dst which receives `in` at once: the NICs are shared, each stream capped.
func streamMiBs(src, dst cluster.Node, out, in int, o EstimateOptions) float64 {
	nic := func(n cluster.Node) float64 {
		if n.NICMbps > 0 {
			return n.NICMbps
		}
		return o.NICMbps
	}
	bw := min(nic(src)/float64(max(out, 1)), nic(dst)/float64(max(in, 1)))
	for _, c := range []float64{src.StreamMbps, dst.StreamMbps} {
		if c > 0 {
			bw = min(bw, c)
		}
	}
	return mbpsToMiBs(bw)
}

// makespan schedules durations, longest first, on `lanes` parallel slots and returns
// when the last one ends (LPT, within 4/3 of the optimum).
func makespan(durations []float64, lanes int) float64 {
	d := slices.Clone(durations)
	slices.SortFunc(d, func(a, b float64) int {
		switch {
		case a > b:
			return -1
		case a < b:
			return 1
		}
		return 0
	})
	free := make([]float64, max(lanes, 1))
	for _, x := range d {
		i := 0
		for j := range free {
			if free[j] < free[i] {
				i = j
			}
		}
		free[i] += x
	}
	return slices.Max(free)
}

func seconds(s float64) time.Duration {
	if math.IsInf(s, 1) || s > float64(math.MaxInt64/int64(time.Second)) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(s * float64(time.Second)).Round(time.Second / 10)
}
