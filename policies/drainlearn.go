package policies

import (
	"cmp"
	"slices"
	"time"

	"github.com/droverhq/drover/cluster"
)

// The drain scheduler's inputs, and where each comes from. A platform that reports
// no link speed (libvirt) gets one from config (nic_mbps) or learned from the job
// statistics of the migrations Drover ran; what nothing gives is assumed, and the
// scheduler then runs like the field's tools (UnknownLinkPerNode).

// InputSource says where a scheduler input comes from.
type InputSource string

const (
	// SourceMeasured: the platform reports or measures it (a node's NIC speed, a
	// VM's dirty rate from libvirt's dirty-rate calculation).
	SourceMeasured InputSource = "measured"
	// SourceLearned: from the job statistics of Drover's own migrations.
	SourceLearned InputSource = "learned"
	// SourceConfigured: from the config (nic_mbps of a host).
	SourceConfigured InputSource = "configured"
	// SourceAssumed: nothing is known; the scheduler falls back.
	SourceAssumed InputSource = "assumed"
)

// LinkSample is one finished migration as its job statistics measured it.
type LinkSample struct {
	From string `json:"from"`
	To   string `json:"to"`
	// MiB is what the job transferred in Seconds (its own time, setup excluded
	// where the platform says so).
	MiB     float64 `json:"mib"`
	Seconds float64 `json:"seconds"`
	// Streams is the most migrations that ran at once through From or To while it
	// ran, itself included (1 = alone).
	Streams int       `json:"streams"`
	At      time.Time `json:"at"`
}

// LearnedLink is what the samples through one node say about its link.
type LearnedLink struct {
	// Link is the estimate: StreamMiBs the rate one stream gets, NICMiBs what the
	// node carries in all. When the samples never showed the link saturated, NIC
	// is what they carried plus one more stream: the next drain probes it.
	Link
	// Saturated: some concurrency gave each stream clearly less than one stream
	// alone gets (the NIC is the limit, not the streams).
	Saturated bool `json:"saturated"`
	// Samples counts the samples through the node.
	Samples int `json:"samples"`
}

// Learning constants.
const (
	// learnRise is how fast an estimate rises towards a faster sample (it falls at
	// once to a slower one: a link that got slower must not keep a stale rate).
	learnRise = 0.5
	// learnSlower is the drop that means the link got slower for every
	// concurrency, not just this one: a sample below this fraction of its level's
	// estimate scales every level.
	learnSlower = 0.85
	// learnSaturated: streams getting less than this fraction of a lone stream's
	// rate mean the NIC is full.
	learnSaturated = 0.85
)

// LearnLinks estimates each node's link from samples (any order; they are taken
// oldest first). Per node and concurrency k it keeps the rate one stream got at k:
// it falls at once to a slower sample and rises halfway to a faster one; a sample
// clearly slower than its level's estimate scales every level of the node by the
// same ratio (the link got slower). The stream rate is that of the least
// concurrency seen; the NIC what the best concurrency carried (k × its rate),
// plus one stream while no concurrency has saturated it. Nodes without samples
// are absent.
func LearnLinks(samples []LinkSample) map[string]LearnedLink {
	sorted := slices.Clone(samples)
	slices.SortStableFunc(sorted, func(a, b LinkSample) int { return a.At.Compare(b.At) })
	levels := map[string]map[int]float64{}
	count := map[string]int{}
	for _, s := range sorted {
		if s.Seconds <= 0 || s.MiB <= 0 || s.Streams < 1 {
			continue
		}
		rate := s.MiB / s.Seconds
		for _, n := range []string{s.From, s.To} {
			if n == "" || (n == s.To && s.To == s.From) {
				continue
			}
			lv := levels[n]
			if lv == nil {
				lv = map[int]float64{}
				levels[n] = lv
			}
			count[n]++
			old, seen := lv[s.Streams]
			switch {
			case !seen:
				lv[s.Streams] = rate
			case rate < old*learnSlower:
				for k := range lv {
					lv[k] *= rate / old
				}
			case rate < old:
				lv[s.Streams] = rate
			default:
				lv[s.Streams] = old + learnRise*(rate-old)
			}
		}
	}
	out := make(map[string]LearnedLink, len(levels))
	for n, lv := range levels {
		ks := make([]int, 0, len(lv))
		for k := range lv {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		stream := lv[ks[0]]
		best := 0.0
		saturated := false
		for _, k := range ks {
			best = max(best, float64(k)*lv[k])
			// Each stream of k got clearly less than a lone one: the NIC is
			// shared, not the streams capped.
			if k > ks[0] && lv[k] < learnSaturated*stream {
				saturated = true
			}
		}
		nic := best
		if !saturated {
			nic = best + stream
		}
		out[n] = LearnedLink{Link: Link{NICMiBs: nic, StreamMiBs: stream}, Saturated: saturated, Samples: count[n]}
	}
	return out
}

// NodeInputs are the scheduler's inputs of one node and their sources.
type NodeInputs struct {
	Node string `json:"node"`
	// Link is what the scheduler uses (0 = unknown: it falls back).
	Link       Link        `json:"link"`
	LinkSource InputSource `json:"link_source"`
	// DirtyVMs counts the node's running VMs whose dirty rate is measured; VMs the
	// others (their rate is assumed 0 and their convergence unchecked).
	DirtyVMs    int         `json:"dirty_measured_vms"`
	VMs         int         `json:"vms"`
	DirtySource InputSource `json:"dirty_source"`
}

// DrainInputs merges the links the inventory reports with learned ones: a node's
// link is the platform's or the config's when it gives a NIC speed (the node's
// NICSource says which), else the learned one, else unknown (assumed). A learned
// stream rate also fills a stream cap nobody reported. Dirty rates come with the
// VMs (measured when the platform reports them).
func DrainInputs(inv cluster.Inventory, learned map[string]LearnedLink) (map[string]Link, []NodeInputs) {
	links := MergeLearned(LinksOf(inv), learned)
	perNode := map[string]*NodeInputs{}
	out := make([]NodeInputs, 0, len(inv.Nodes))
	for _, n := range inv.Nodes {
		in := NodeInputs{Node: n.Name, LinkSource: SourceAssumed, Link: links[n.Name]}
		switch {
		case n.NICMbps > 0 && n.NICSource == string(SourceConfigured):
			in.LinkSource = SourceConfigured
		case n.NICMbps > 0:
			in.LinkSource = SourceMeasured
		case in.Link.NICMiBs > 0:
			in.LinkSource = SourceLearned
		}
		out = append(out, in)
	}
	for i := range out {
		perNode[out[i].Node] = &out[i]
	}
	for _, v := range inv.VMs {
		in := perNode[v.Node]
		if in == nil || !v.Running() {
			continue
		}
		in.VMs++
		if v.DirtyMiBs > 0 || v.DirtySource == string(SourceMeasured) {
			in.DirtyVMs++
		}
	}
	for i := range out {
		switch {
		case out[i].VMs == 0:
			out[i].DirtySource = ""
		case out[i].DirtyVMs == out[i].VMs:
			out[i].DirtySource = SourceMeasured
		case out[i].DirtyVMs > 0:
			out[i].DirtySource = SourceMeasured + "+" + SourceAssumed
		default:
			out[i].DirtySource = SourceAssumed
		}
	}
	slices.SortFunc(out, func(a, b NodeInputs) int { return cmp.Compare(a.Node, b.Node) })
	return links, out
}

// MergeLearned is reported with what was learned: a node whose NIC is reported (by
// the platform or the config) keeps it, a learned stream rate filling its unknown
// stream cap (never above the NIC); a node whose NIC is unknown takes the learned
// link. The maps are not changed.
func MergeLearned(reported map[string]Link, learned map[string]LearnedLink) map[string]Link {
	out := make(map[string]Link, len(reported)+len(learned))
	for n, l := range reported {
		out[n] = l
	}
	for n, ll := range learned {
		l := out[n]
		switch {
		case l.NICMiBs > 0:
			if l.StreamMiBs <= 0 && ll.StreamMiBs > 0 {
				l.StreamMiBs = min(ll.StreamMiBs, l.NICMiBs)
			}
		case ll.NICMiBs > 0:
			l = ll.Link
		}
		out[n] = l
	}
	return out
}
