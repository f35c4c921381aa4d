package policies

import (
	"math"

	"github.com/droverhq/drover/cluster"
)

// The bandwidth and convergence model of the drain scheduler: max-min fair shares
// over the nodes' NIC pools and stream caps (as the simulator and real networks
// share them), the pre-copy convergence test, a fluid model of one node's drain,
// and the calibration of links by measured rates.

// maxLookahead bounds how many more streams helps considers.
const maxLookahead = 8

// work is a migration in the fluid model: memory left to move, dirty rate, setup
// seconds left.
type work struct {
	left, dirty, setup float64
}

// fluid predicts when a node's work ends with at most k migrations at once: those
// running go on, the waiting ones start in order as slots free; the
// node's NIC is shared evenly by the transferring ones, each capped at streamCap,
// and each retires memory at (share − dirty rate). +Inf when a migration would run
// above MaxDirtyRatio.
func (st *schedState) fluid(running, waiting []work, k int, streamCap, nic float64) float64 {
	run := make([]work, 0, k+len(running))
	run = append(run, running...)
	next := 0
	// The streams opened now pay their setup; later ones set up while the
	// migration they replace ends (the scheduler starts them SetupSeconds early).
	setup := st.o.SetupSeconds
	fill := func() {
		for len(run) < k && next < len(waiting) {
			w := waiting[next]
			w.setup = setup
			run = append(run, w)
			next++
		}
	}
	fill()
	setup = 0
	t := 0.0
	for len(run) > 0 {
		n := 0
		for _, w := range run {
			if w.setup <= 0 {
				n++
			}
		}
		share := math.Inf(1)
		if n > 0 {
			share = min(streamCap, nic/float64(n))
		}
		dt := math.Inf(1)
		for _, w := range run {
			if w.setup > 0 {
				dt = min(dt, w.setup)
				continue
			}
			if w.dirty > 0 && w.dirty/share > st.o.MaxDirtyRatio {
				return math.Inf(1)
			}
			dt = min(dt, w.left/(share-max(w.dirty, 0)))
		}
		if math.IsInf(dt, 1) {
			return math.Inf(1)
		}
		t += dt
		keep := run[:0]
		for _, w := range run {
			if w.setup > 0 {
				w.setup -= dt
			} else {
				w.left -= (share - max(w.dirty, 0)) * dt
			}
			if w.setup > 1e-9 || w.left > 1e-6 {
				keep = append(keep, w)
			}
		}
		run = keep
		fill()
	}
	return t
}

// shares computes the max-min fair bandwidth of flows over the node pools and their
// stream caps (progressive filling), as the links share it.
func (st *schedState) shares(flows []Flight) []float64 {
	rate := make([]float64, len(flows))
	if len(flows) == 0 {
		return rate
	}
	left := map[string]float64{}
	for _, f := range flows {
		for _, n := range []string{f.From, f.To} {
			if _, ok := left[n]; !ok {
				left[n] = nicOr(st.o.link(st.links, n), st.o)
			}
		}
	}
	caps := make([]float64, len(flows))
	for i, f := range flows {
		caps[i] = st.o.streamCap(st.links, f.From, f.To)
	}
	frozen := make([]bool, len(flows))
	count := map[string]int{}
	for unfrozen := len(flows); unfrozen > 0; {
		clear(count)
		for i, f := range flows {
			if !frozen[i] {
				count[f.From]++
				count[f.To]++
			}
		}
		delta := math.Inf(1)
		for n, c := range count {
			delta = min(delta, left[n]/float64(c))
		}
		for i := range flows {
			if !frozen[i] {
				delta = min(delta, caps[i]-rate[i])
			}
		}
		if math.IsInf(delta, 1) { // unbounded links: give each flow its cap
			for i := range flows {
				if !frozen[i] {
					rate[i] = caps[i]
				}
			}
			break
		}
		delta = max(delta, 0)
		for n, c := range count {
			left[n] -= delta * float64(c)
		}
		progress := false
		for i, f := range flows {
			if frozen[i] {
				continue
			}
			rate[i] += delta
			tol := 1e-9 * max(1, caps[i])
			if caps[i]-rate[i] <= tol || left[f.From] <= tol || left[f.To] <= tol {
				frozen[i] = true
				unfrozen--
				progress = true
			}
		}
		if !progress {
			break
		}
	}
	return rate
}

func remainingOf(f Flight) float64 {
	if f.RemainingMiB > 0 {
		return f.RemainingMiB
	}
	if f.Setup || f.RateMiBs <= 0 {
		return float64(f.MemoryMiB + f.DiskMiB)
	}
	return 0
}

func (o DrainOptions) link(links map[string]Link, node string) Link { return links[node] }

func nicOr(l Link, o DrainOptions) float64 {
	if l.NICMiBs > 0 {
		return l.NICMiBs
	}
	return mbpsToMiBs(o.DefaultNICMbps)
}

// streamCap is the cap of one stream from -> to (the lower known stream cap; none
// known: unbounded, the NICs limit it).
func (o DrainOptions) streamCap(links map[string]Link, from, to string) float64 {
	c := math.Inf(1)
	for _, n := range []string{from, to} {
		if s := links[n].StreamMiBs; s > 0 {
			c = min(c, s)
		}
	}
	return c
}

// pairCap is the most one migration from -> to can get: its stream cap and both NICs.
func (o DrainOptions) pairCap(links map[string]Link, from, to string) float64 {
	return min(o.streamCap(links, from, to), nicOr(links[from], o), nicOr(links[to], o))
}

// converges predicts whether memMiB dirtied at dirty converges at bandwidth bw: the
// dirty ratio within MaxDirtyRatio and the pre-copy rounds (each sends what the
// previous one dirtied, until the rest fits in MaxDowntimeSeconds) within MaxRounds.
func (o DrainOptions) converges(memMiB, dirty, bw float64) bool {
	if bw <= 0 {
		return false
	}
	if dirty <= 0 {
		return true
	}
	r := dirty / bw
	if r > o.MaxDirtyRatio {
		return false
	}
	return roundsNeeded(memMiB, r, bw, o.MaxDowntimeSeconds) <= o.MaxRounds
}

// roundsNeeded is the number n of pre-copy rounds until what the last one dirtied
// fits in the downtime budget: memMiB·rⁿ/bw <= downtime (round 1 sends memMiB,
// round k+1 what round k dirtied, r times as much).
func roundsNeeded(memMiB, r, bw, downtime float64) int {
	if r <= 0 || memMiB*r/bw <= downtime {
		return 1
	}
	if r >= 1 {
		return math.MaxInt32
	}
	return int(math.Ceil(math.Log(downtime*bw/memMiB) / math.Log(r)))
}

// seconds is the predicted duration of a migration at bw: setup + M/(bw − dirty);
// +Inf when it does not converge.
func (o DrainOptions) seconds(memMiB, dirty, bw float64) float64 {
	if bw <= max(dirty, 0) {
		return math.Inf(1)
	}
	return o.SetupSeconds + memMiB/(bw-max(dirty, 0))
}

// moveSeconds is seconds for v with its local disks, copied first at bw (see
// StorageMigrationSeconds); +Inf when it does not converge.
func (o DrainOptions) moveSeconds(v cluster.VM, bw float64) float64 {
	s := o.seconds(float64(v.MemoryMiB), v.DirtyMiBs, bw)
	if d := v.LocalDiskMiB(); d > 0 && bw > 0 {
		s += float64(d) / bw
	}
	return s
}

// calibrate lowers a node's NIC to what its migrations measurably get when the model
// says they fill it and they get clearly less (a slower or shared link), and sets an
// unknown NIC to at least the throughput measured through it.
func calibrate(o DrainOptions, view DrainView) map[string]Link {
	links := make(map[string]Link, len(view.Links))
	for k, v := range view.Links {
		links[k] = v
	}
	if len(view.Flights) == 0 {
		return links
	}
	st := &schedState{o: o, links: view.Links}
	pred := st.shares(view.Flights)
	type agg struct {
		measured, predicted float64
		all                 bool
	}
	by := map[string]*agg{}
	for i, f := range view.Flights {
		for _, n := range []string{f.From, f.To} {
			a := by[n]
			if a == nil {
				a = &agg{all: true}
				by[n] = a
			}
			if f.Setup {
				continue
			}
			if f.RateMiBs <= 0 {
				a.all = false
				continue
			}
			a.measured += f.RateMiBs
			a.predicted += pred[i]
		}
	}
	for n, a := range by {
		if !a.all || a.measured <= 0 {
			continue
		}
		l := links[n]
		nic := nicOr(l, o)
		switch {
		case l.NICMiBs <= 0:
			l.NICMiBs = max(nic, a.measured)
		case a.predicted >= nic*0.99 && a.measured < 0.9*a.predicted:
			l.NICMiBs = a.measured
		}
		links[n] = l
	}
	return links
}
