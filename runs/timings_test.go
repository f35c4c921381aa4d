package runs

import (
	"fmt"
	"testing"
)

func suiteAddTimings(t *testing.T, open opener) {
	tests := []struct {
		name string
		runs int // AddTimings calls, each with 2 reboots and 4 migrations of n1, 1 install of n2
		want map[string]int
	}{
		{name: "under-the-cap-keeps-all", runs: 3, want: map[string]int{"n1/reboot": 6, "n1/migration": 12, "n2/install": 3}},
		{name: "over-the-cap-keeps-the-newest", runs: 30, want: map[string]int{"n1/reboot": TimingsKept, "n1/migration": TimingsKept, "n2/install": TimingsKept}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			seq := 0
			for range tt.runs {
				var batch []Timing
				add := func(node, kind string, n int) {
					for range n {
						seq++
						batch = append(batch, Timing{Node: node, Kind: kind, Seconds: float64(seq)})
					}
				}
				add("n1", "reboot", 2)
				add("n1", "migration", 4)
				add("n2", "install", 1)
				if err := s.Update(func(tx *Tx) error { return tx.AddTimings("c", batch) }); err != nil {
					t.Fatal(err)
				}
			}
			// Another cluster's measurements are never pruned by this one's.
			if err := s.Update(func(tx *Tx) error { return tx.AddTimings("other", []Timing{{Node: "n1", Kind: "reboot", Seconds: 1}}) }); err != nil {
				t.Fatal(err)
			}
			ts, err := s.Timings("c")
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			newest := map[string]float64{}
			oldest := map[string]float64{}
			for _, tm := range ts {
				k := tm.Node + "/" + tm.Kind
				got[k]++
				newest[k] = max(newest[k], tm.Seconds)
				if o, ok := oldest[k]; !ok || tm.Seconds < o {
					oldest[k] = tm.Seconds
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("kept %v, want %v", got, tt.want)
			}
			// What is kept is the newest: the last one added survives, and nothing
			// older than the kept window does.
			if newest["n2/install"] != float64(seq) {
				t.Errorf("newest n2/install = %v, want %d (the last added)", newest["n2/install"], seq)
			}
			if tt.runs == 30 {
				// n2/install was added once per run, as the 7th of 7: the newest 20
				// runs are 11..30, whose install has seq 7*run.
				if want := float64(7 * (tt.runs - TimingsKept + 1)); oldest["n2/install"] != want {
					t.Errorf("oldest kept n2/install = %v, want %v", oldest["n2/install"], want)
				}
			}
			if o, _ := s.Timings("other"); len(o) != 1 {
				t.Errorf("other cluster has %d timings, want 1", len(o))
			}
		})
	}
}

// suiteAddTimingsDropsUnreadable: an unreadable measurement neither fails the end
// of a run nor every later read of the timings.
func suiteAddTimingsDropsUnreadable(t *testing.T, open opener) {
	s := open(t)
	err := s.Update(func(tx *Tx) error {
		if err := tx.kv.createBucket(bk(bucketTimings, "c"), false); err != nil {
			return err
		}
		return tx.kv.put(bk(bucketTimings, "c"), seqKey(1<<40), []byte("{not json"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Timings("c"); err == nil {
		t.Fatal("Timings read an unreadable entry without error: the test sets nothing up")
	}
	if err := s.Update(func(tx *Tx) error { return tx.AddTimings("c", []Timing{{Node: "n1", Kind: "reboot", Seconds: 9}}) }); err != nil {
		t.Fatalf("AddTimings: %v", err)
	}
	ts, err := s.Timings("c")
	if err != nil || len(ts) != 1 || ts[0].Seconds != 9 {
		t.Errorf("Timings = %+v, %v; want the one readable measurement", ts, err)
	}
}
