package policies

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/droverhq/drover/cluster"
)

// sample is a migration src -> dst of mib at rate MiB/s with streams at once, at
// second t.
func sample(t int, streams int, rate float64) LinkSample {
	return LinkSample{From: "src", To: "dst", MiB: rate * 10, Seconds: 10, Streams: streams, At: time.Unix(int64(t), 0)}
}

func TestLearnLinks(t *testing.T) {
	tests := []struct {
		name       string
		samples    []LinkSample
		wantStream float64
		wantNIC    float64
		saturated  bool
	}{
		// One stream alone at 50: the NIC carried at least 50; one more stream
		// is probed.
		{name: "one-stream-probes-one-more", samples: []LinkSample{sample(1, 1, 50)}, wantStream: 50, wantNIC: 100},
		{name: "two-unshared-streams-probe-a-third", samples: []LinkSample{sample(1, 1, 50), sample(2, 2, 50)}, wantStream: 50, wantNIC: 150},
		// Two streams get 30 each where one gets 50: the NIC is full at 60.
		{name: "shared-streams-saturate", samples: []LinkSample{sample(1, 1, 50), sample(2, 2, 30)}, wantStream: 50, wantNIC: 60, saturated: true},
		// A faster sample raises the estimate halfway.
		{name: "faster-rises-halfway", samples: []LinkSample{sample(1, 1, 50), sample(2, 1, 100)}, wantStream: 75, wantNIC: 150},
		// A slightly slower sample is taken at once, for its level only.
		{name: "slightly-slower-taken", samples: []LinkSample{sample(1, 1, 50), sample(2, 1, 45)}, wantStream: 45, wantNIC: 90},
		// Order is by time, not by position.
		{name: "taken-oldest-first", samples: []LinkSample{sample(2, 1, 100), sample(1, 1, 50)}, wantStream: 75, wantNIC: 150},
		{
			name:       "garbage-ignored",
			samples:    []LinkSample{sample(1, 1, 50), {From: "src", To: "dst", MiB: 100, Seconds: 0, Streams: 1}, {From: "src", To: "dst", MiB: -5, Seconds: 1, Streams: 1}, {From: "src", To: "dst", MiB: 5, Seconds: 1}},
			wantStream: 50, wantNIC: 100,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := LearnLinks(tt.samples)
			for _, n := range []string{"src", "dst"} {
				l, ok := got[n]
				if !ok {
					t.Fatalf("nothing learned for %s: %+v", n, got)
				}
				if math.Abs(l.StreamMiBs-tt.wantStream) > 1e-9 || math.Abs(l.NICMiBs-tt.wantNIC) > 1e-9 || l.Saturated != tt.saturated {
					t.Errorf("%s: learned %+v, want stream %v NIC %v saturated %v", n, l, tt.wantStream, tt.wantNIC, tt.saturated)
				}
			}
		})
	}
}

// TestLearnLinks_LinkGetsSlower: a link that served one stream at 100 and two at 90
// each halves; the next drain runs two streams and sees 40 each. Every level falls
// with it, so the estimate of a lone stream does not stay at its stale 100.
func TestLearnLinks_LinkGetsSlower(t *testing.T) {
	before := []LinkSample{sample(1, 1, 100), sample(2, 2, 90)}
	b := LearnLinks(before)["src"]
	after := LearnLinks(append(before, sample(3, 2, 40)))["src"]
	if want := 100 * 40.0 / 90; math.Abs(after.StreamMiBs-want) > 1e-9 {
		t.Errorf("stream after the slowdown %v, want %v (before %v)", after.StreamMiBs, want, b.StreamMiBs)
	}
	if after.NICMiBs > b.NICMiBs/2 {
		t.Errorf("NIC estimate %v after the link halved, was %v", after.NICMiBs, b.NICMiBs)
	}
	// It recovers gradually when the link is fast again.
	back := LearnLinks(append(before, sample(3, 2, 40), sample(4, 2, 90)))["src"]
	if back.NICMiBs <= after.NICMiBs || back.NICMiBs >= b.NICMiBs {
		t.Errorf("after recovering: NIC %v, want between %v and %v", back.NICMiBs, after.NICMiBs, b.NICMiBs)
	}
}

func TestLearnLinks_NothingKnown(t *testing.T) {
	if got := LearnLinks(nil); len(got) != 0 {
		t.Errorf("learned %+v from nothing", got)
	}
}

func TestDrainInputs(t *testing.T) {
	configured := func(n *cluster.Node) { n.NICMbps, n.NICSource = 800, string(SourceConfigured) }
	measuredDirty := func(v *cluster.VM) { v.DirtySource = string(SourceMeasured) }
	in := inv([]cluster.Node{
		node("rep", 1<<20, 8, withNIC(10000, 0)),
		node("conf", 1<<20, 8, configured),
		node("learn", 1<<20, 8),
		node("none", 1<<20, 8),
	},
		vm("a", "rep", 1024, 1, dirty(20)),
		vm("b", "rep", 1024, 1),
		vm("c", "learn", 1024, 1, measuredDirty),
		vm("d", "none", 1024, 1),
	)
	learned := map[string]LearnedLink{
		"learn": {Link: Link{NICMiBs: 90, StreamMiBs: 45}},
		"rep":   {Link: Link{NICMiBs: 30, StreamMiBs: 300}},
	}
	links, inputs := DrainInputs(in, learned)
	want := map[string]struct {
		link  Link
		src   InputSource
		dirty InputSource
	}{
		// The platform's NIC wins over a learned one; a learned stream fills the
		// unknown stream cap (never above the NIC).
		"rep":   {Link{NICMiBs: mbpsToMiBs(10000), StreamMiBs: 300}, SourceMeasured, SourceMeasured + "+" + SourceAssumed},
		"conf":  {Link{NICMiBs: mbpsToMiBs(800)}, SourceConfigured, ""},
		"learn": {Link{NICMiBs: 90, StreamMiBs: 45}, SourceLearned, SourceMeasured},
		"none":  {Link{}, SourceAssumed, SourceAssumed},
	}
	if len(inputs) != len(want) {
		t.Fatalf("inputs %+v", inputs)
	}
	for _, in := range inputs {
		w := want[in.Node]
		if links[in.Node] != w.link || in.Link != w.link || in.LinkSource != w.src || in.DirtySource != w.dirty {
			t.Errorf("%s: link %+v (%s), dirty %q; want %+v (%s), dirty %q", in.Node, links[in.Node], in.LinkSource, in.DirtySource, w.link, w.src, w.dirty)
		}
	}
}

// TestDecide_LearnedLinkAdapts: on a link the platform does not report, the
// scheduler runs 2 per node (the fallback); once the migrations through it taught
// it that streams do not share the link, it runs more; once they taught it that two
// streams fill the link, it keeps to two.
func TestDecide_LearnedLinkAdapts(t *testing.T) {
	base, jobs := drainCluster(8, 512, 0, 4, 0, 0)
	o := DrainOptions{Mode: DrainAdaptive, MaxPerNode: 8}
	starts := func(learned map[string]LearnedLink) int {
		links, _ := DrainInputs(base, learned)
		return len(o.Decide(DrainView{Links: links}, jobs, NewPlacer(base, PlacementOptions{})).Start)
	}
	if got := starts(nil); got != DefaultUnknownLinkPerNode {
		t.Errorf("nothing known: %d started, want the fallback %d", got, DefaultUnknownLinkPerNode)
	}
	var unshared, shared []LinkSample
	for i := range 5 {
		to := fmt.Sprintf("t%d", i%4+1)
		unshared = append(unshared, LinkSample{From: "src", To: to, MiB: 500, Seconds: 10, Streams: 1 + i%2, At: time.Unix(int64(i), 0)})
		rate := 50.0
		if i%2 == 1 {
			rate = 25 // two at once share the link
		}
		shared = append(shared, LinkSample{From: "src", To: to, MiB: rate * 10, Seconds: 10, Streams: 1 + i%2, At: time.Unix(int64(i), 0)})
	}
	if got := starts(LearnLinks(unshared)); got <= DefaultUnknownLinkPerNode {
		t.Errorf("streams that do not share the link: %d started, want more than %d", got, DefaultUnknownLinkPerNode)
	}
	if got := starts(LearnLinks(shared)); got > 2 {
		t.Errorf("two streams fill the link: %d started, want at most 2", got)
	}
}
