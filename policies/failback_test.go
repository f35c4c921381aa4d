package policies

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/cluster"
)

func TestHoursWindow_Contains(t *testing.T) {
	tests := []struct {
		spec, tz, at string
		want         bool
	}{
		{"22:00-06:00", "Europe/Berlin", "2026-07-01T20:30:00Z", true}, // 22:30 CEST
		{"22:00-06:00", "Europe/Berlin", "2026-07-01T19:59:00Z", false},
		{"22:00-06:00", "Europe/Berlin", "2026-07-02T03:59:00Z", true}, // 05:59 CEST
		{"22:00-06:00", "Europe/Berlin", "2026-07-02T04:00:00Z", false},
		{"22:00-06:00", "Europe/Berlin", "2026-01-15T21:00:00Z", true}, // 22:00 CET
		{"22:00-06:00", "Europe/Berlin", "2026-01-15T20:59:00Z", false},
		{"22:00-06:00", "Europe/Berlin", "2026-10-25T01:30:00Z", true},     // 02:30 CET, second time
		{"09:00-17:00", "America/New_York", "2026-03-09T13:00:00Z", true},  // 09:00 EDT
		{"09:00-17:00", "America/New_York", "2026-03-06T13:00:00Z", false}, // 08:00 EST
		{"09:00-17:00", "", "2026-03-06T16:59:00Z", true},
		{"00:00-24:00", "Asia/Tokyo", "2026-03-06T16:59:00Z", true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s-%s-%s", tt.spec, tt.tz, tt.at), func(t *testing.T) {
			w, err := ParseHoursWindow(tt.spec, tt.tz)
			if err != nil {
				t.Fatalf("ParseHoursWindow: %v", err)
			}
			if got := w.Contains(mustTime(t, tt.at)); got != tt.want {
				t.Errorf("Contains = %v, want %v", got, tt.want)
			}
		})
	}
	if !(HoursWindow{}).Contains(time.Unix(0, 0)) || (HoursWindow{}).String() != "any time" {
		t.Error("zero HoursWindow is not always open")
	}
}

func TestParseHoursWindow(t *testing.T) {
	tests := []struct{ name, spec, tz, want string }{
		{"no-dash", "22:00", "", `hours: "22:00" has no '-'`},
		{"empty", "22:00-22:00", "", `hours: "22:00-22:00" is empty`},
		{"bad-start", "25:00-01:00", "", "hours: start:"},
		{"bad-end", "01:00-1", "", "hours: end:"},
		{"bad-tz", "22:00-06:00", "Nowhere/Land", "tz:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseHoursWindow(tt.spec, tt.tz)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseHoursWindow = %v, want %q", err, tt.want)
			}
		})
	}
	w, err := ParseHoursWindow(" 22:00-06:00 ", "Europe/Berlin")
	if err != nil || w.String() != "22:00-06:00 Europe/Berlin" {
		t.Fatalf("String = %q, %v", w.String(), err)
	}
}

func FuzzParseHoursWindow(f *testing.F) {
	for _, s := range []string{"22:00-06:00", "00:00-24:00", "9:00-17:30", "-", "24:00-01:00", "1:1-2:2"} {
		f.Add(s, int64(1790000000))
	}
	f.Fuzz(func(t *testing.T, spec string, unix int64) {
		w, err := ParseHoursWindow(spec, "Europe/Berlin")
		if err != nil {
			return
		}
		at := time.Unix(unix%(1<<34), 0)
		lt := at.In(w.loc)
		m := lt.Hour()*60 + lt.Minute()
		// Exactly one of a window and its complement contains any instant.
		inside := w.from <= m && m < w.to || w.from > w.to && (m >= w.from || m < w.to)
		if w.Contains(at) != inside {
			t.Fatalf("%s Contains(%v) = %v", w, at, w.Contains(at))
		}
	})
}

func TestFailbackTargets(t *testing.T) {
	nightOnly, err := ParseHoursWindow("01:00-02:00", "UTC")
	if err != nil {
		t.Fatal(err)
	}
	in := inv([]cluster.Node{node("n1", 1<<20, 64), node("n2", 1<<20, 64), node("n3", 1<<20, 64, paused)},
		vm("a", "n2", 1024, 1, preferred("n1")),
		vm("b", "n3", 1024, 1, preferred("n1")),
		vm("c", "n2", 1024, 1, preferred("n1"), power(cluster.PowerStopped)),
		vm("e", "n1", 1024, 1, preferred("n1")),
		vm("f", "n2", 1024, 1, preferred("n1"), migratingTo("n3")),
		vm("g", "n2", 1024, 1, preferred("n2")),
		vm("h", "n2", 1024, 1),
		vm("i", "n2", 1024, 1, preferred("n1")),
		vm("j", "n2", 1024, 1, preferred("n3")),
		vm("k", "n2", 1024, 1, preferred("n1"), notMigratable("local disk")),
	)
	drained := []DrainedVM{
		{"a", "n1", "n2"}, {"b", "n1", "n2"}, {"c", "n1", "n2"}, {"d", "n1", "n2"}, {"e", "n1", "n2"},
		{"f", "n1", "n2"}, {"g", "n1", "n2"}, {"h", "n1", "n2"}, {"i", "n1", "n2"}, {"j", "n3", "n2"},
		{"k", "n1", "n2"},
	}
	prefs := FailbackPrefs{Hours: map[string]HoursWindow{"i": nightOnly}}
	common := "b(moved to n3 since the drain),c(not running (stopped)),d(no longer in the inventory),e(already on n1)," +
		"f(migration to n3 in flight),"
	tests := []struct {
		name  string
		mode  FailbackMode
		now   string
		moves string
		held  string
	}{
		{name: "none", mode: FailbackNone, now: "2026-05-01T12:00:00Z"},
		{name: "immediate", mode: FailbackImmediate, now: "2026-05-01T12:00:00Z",
			moves: "a:n2->n1,g:n2->n1,h:n2->n1,i:n2->n1",
			held:  common + "j(node n3 is not up and resumed),k(not migratable)"},
		{name: "policy-outside-hours", mode: FailbackPolicy, now: "2026-05-01T12:00:00Z",
			moves: "a:n2->n1",
			held: common + "g(preferred node is n2),h(no preferred node),i(outside failback hours 01:00-02:00 UTC)," +
				"j(node n3 is not up and resumed),k(not migratable)"},
		{name: "policy-inside-hours", mode: FailbackPolicy, now: "2026-05-01T01:30:00Z",
			moves: "a:n2->n1,i:n2->n1",
			held: common + "g(preferred node is n2),h(no preferred node)," +
				"j(node n3 is not up and resumed),k(not migratable)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			moves, held := FailbackTargets(tt.mode, drained, in, mustTime(t, tt.now), prefs)
			var ms, hs []string
			for _, m := range moves {
				ms = append(ms, fmt.Sprintf("%s:%s->%s", m.VM, m.From, m.To))
			}
			for _, h := range held {
				hs = append(hs, fmt.Sprintf("%s(%s)", h.VM, h.Reason))
			}
			if got := strings.Join(ms, ","); got != tt.moves {
				t.Errorf("moves = %s\nwant    %s", got, tt.moves)
			}
			if got := strings.Join(hs, ","); got != tt.held {
				t.Errorf("held = %s\nwant   %s", got, tt.held)
			}
		})
	}
}

func TestParseFailbackMode(t *testing.T) {
	for in, want := range map[string]FailbackMode{"": FailbackNone, "none": FailbackNone, "immediate": FailbackImmediate, "policy": FailbackPolicy} {
		if got, err := ParseFailbackMode(in); err != nil || got != want {
			t.Errorf("ParseFailbackMode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseFailbackMode("Immediate"); err == nil || !strings.Contains(err.Error(), "failback: unknown mode") {
		t.Errorf("bad mode: %v", err)
	}
}
