package policies

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/cluster"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("bad literal %q: %v", s, err)
	}
	return ts
}

func mustWindow(t *testing.T, spec WindowSpec) *Window {
	t.Helper()
	w, err := NewWindow(spec)
	if err != nil {
		t.Fatalf("NewWindow(%+v): %v", spec, err)
	}
	return w
}

var (
	berlinTueWed = WindowSpec{Days: []string{"tue", "Wednesday"}, Start: "22:00", End: "04:00", TZ: "Europe/Berlin"}
	berlinSat    = WindowSpec{Days: []string{"sat"}, Start: "22:00", End: "04:00", TZ: "Europe/Berlin"}
	berlinSunGap = WindowSpec{Days: []string{"sun"}, Start: "02:30", End: "05:00", TZ: "Europe/Berlin"}
	nySunFall    = WindowSpec{Days: []string{"sun"}, Start: "01:30", End: "03:00", TZ: "America/New_York"}
	nySunSpring  = WindowSpec{Days: []string{"sun"}, Start: "02:00", End: "04:00", TZ: "America/New_York"}
	thirdTue     = WindowSpec{Days: []string{"tue"}, Weeks: []int{3}, Start: "10:00", End: "12:00"}
	lastTue      = WindowSpec{Days: []string{"tue"}, Weeks: []int{5}, Start: "10:00", End: "12:00"}
	xmas         = WindowSpec{Days: []string{"tue", "wed"}, Start: "22:00", End: "04:00", TZ: "Europe/Berlin",
		Blackout: []string{"2026-12-24..2026-12-26", "2026-12-22"}}
)

func TestWindow_Contains(t *testing.T) {
	tests := []struct {
		name string
		spec WindowSpec
		at   string
		want bool
	}{
		{"tue-before-start", berlinTueWed, "2026-11-17T21:59:00+01:00", false},
		{"tue-at-start", berlinTueWed, "2026-11-17T22:00:00+01:00", true},
		{"tue-given-in-utc", berlinTueWed, "2026-11-17T21:30:00Z", true},
		{"wed-morning-from-tue", berlinTueWed, "2026-11-18T03:59:00+01:00", true},
		{"wed-at-end", berlinTueWed, "2026-11-18T04:00:00+01:00", false},
		{"wed-night", berlinTueWed, "2026-11-18T23:00:00+01:00", true},
		{"thu-morning-from-wed", berlinTueWed, "2026-11-19T03:00:00+01:00", true},
		{"thu-night-closed", berlinTueWed, "2026-11-19T22:30:00+01:00", false},
		{"mon-night-closed", berlinTueWed, "2026-11-16T23:00:00+01:00", false},
		// Berlin falls back on 2026-10-25 03:00 CEST -> 02:00 CET.
		{"fall-back-opens-cest", berlinSat, "2026-10-24T20:00:00Z", true},
		{"fall-back-before-open", berlinSat, "2026-10-24T19:59:00Z", false},
		{"fall-back-first-0230", berlinSat, "2026-10-25T00:30:00Z", true},
		{"fall-back-second-0230", berlinSat, "2026-10-25T01:30:00Z", true},
		{"fall-back-0359-cet", berlinSat, "2026-10-25T02:59:00Z", true},
		{"fall-back-0400-cet", berlinSat, "2026-10-25T03:00:00Z", false},
		// Berlin springs forward on 2026-03-29 02:00 CET -> 03:00 CEST.
		{"spring-open", berlinSat, "2026-03-28T21:00:00Z", true},
		{"spring-0359-cest", berlinSat, "2026-03-29T01:59:00Z", true},
		{"spring-0400-cest", berlinSat, "2026-03-29T02:00:00Z", false},
		{"start-in-gap-before", berlinSunGap, "2026-03-29T00:59:00Z", false},
		{"start-in-gap-opens-at-jump", berlinSunGap, "2026-03-29T01:00:00Z", true},
		{"start-repeated-first", berlinSunGap, "2026-10-25T00:30:00Z", true},
		{"start-repeated-before-first", berlinSunGap, "2026-10-25T00:29:00Z", false},
		{"start-repeated-close", berlinSunGap, "2026-10-25T04:00:00Z", false},
		// New York falls back on 2026-11-01 02:00 EDT -> 01:00 EST.
		{"ny-fall-first-0130", nySunFall, "2026-11-01T05:30:00Z", true},
		{"ny-fall-before", nySunFall, "2026-11-01T05:29:00Z", false},
		{"ny-fall-second-0130", nySunFall, "2026-11-01T06:30:00Z", true},
		{"ny-fall-0259-est", nySunFall, "2026-11-01T07:59:00Z", true},
		{"ny-fall-0300-est", nySunFall, "2026-11-01T08:00:00Z", false},
		// New York springs forward on 2026-03-08 02:00 EST -> 03:00 EDT.
		{"ny-spring-0159-est", nySunSpring, "2026-03-08T06:59:00Z", false},
		{"ny-spring-0300-edt", nySunSpring, "2026-03-08T07:00:00Z", true},
		{"ny-spring-0400-edt", nySunSpring, "2026-03-08T08:00:00Z", false},
		{"third-tuesday", thirdTue, "2026-11-17T10:00:00Z", true},
		{"second-tuesday", thirdTue, "2026-11-10T10:00:00Z", false},
		{"last-tuesday", lastTue, "2026-11-24T11:59:00Z", true},
		{"fourth-not-last", lastTue, "2026-09-22T11:00:00Z", false}, // September 2026 has five Tuesdays
		{"fifth-is-last", lastTue, "2026-09-29T11:00:00Z", true},
		{"blackout-cuts-at-midnight", xmas, "2026-12-23T23:59:00+01:00", true},
		{"blackout-date", xmas, "2026-12-24T01:00:00+01:00", false},
		{"blackout-start-day-only", xmas, "2026-12-22T23:00:00+01:00", false},
		{"blackout-next-day-open", xmas, "2026-12-23T01:00:00+01:00", true},
		{"after-blackout", xmas, "2026-12-29T22:00:00+01:00", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := mustWindow(t, tt.spec)
			if got := w.Contains(mustTime(t, tt.at)); got != tt.want {
				t.Errorf("Contains(%s) = %v, want %v (%s)", tt.at, got, tt.want, w)
			}
		})
	}
}

func TestWindow_NextOpen(t *testing.T) {
	tests := []struct {
		name     string
		spec     WindowSpec
		at, want string // want "" = never
	}{
		{"open-now", berlinTueWed, "2026-11-17T23:00:00+01:00", "2026-11-17T23:00:00+01:00"},
		{"later-today", berlinTueWed, "2026-11-17T12:00:00+01:00", "2026-11-17T22:00:00+01:00"},
		{"after-close-next-day", berlinTueWed, "2026-11-18T04:00:00+01:00", "2026-11-18T22:00:00+01:00"},
		{"next-week", berlinTueWed, "2026-11-19T05:00:00+01:00", "2026-11-24T22:00:00+01:00"},
		{"gap-start", berlinSunGap, "2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z"},
		{"repeated-start", berlinSunGap, "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z"},
		{"ny-gap-start", nySunSpring, "2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z"},
		{"third-tuesday-next-month", thirdTue, "2026-11-18T00:00:00Z", "2026-12-15T10:00:00Z"},
		{"blackout-skips-to-midnight", xmas, "2026-12-22T12:00:00+01:00", "2026-12-23T00:00:00+01:00"},
		{"blackout-skips-days", xmas, "2026-12-24T12:00:00+01:00", "2026-12-29T22:00:00+01:00"},
		{"overlapping-blackouts-merge", WindowSpec{Days: []string{"all"}, Start: "00:00", End: "24:00",
			Blackout: []string{"2026-12-25..2026-12-28", "2026-12-24..2026-12-26", "2026-12-29"}},
			"2026-12-24T08:00:00Z", "2026-12-30T00:00:00Z"},
		{"never-within-horizon", WindowSpec{Days: []string{"mon"}, Start: "01:00", End: "02:00", Blackout: []string{"2026-01-01..2029-12-31"}},
			"2026-06-01T00:00:00Z", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := mustWindow(t, tt.spec)
			got, ok := w.NextOpen(mustTime(t, tt.at))
			if tt.want == "" {
				if ok {
					t.Fatalf("NextOpen = %v, want never", got)
				}
				return
			}
			if want := mustTime(t, tt.want); !ok || !got.Equal(want) {
				t.Errorf("NextOpen(%s) = %v, %v; want %v", tt.at, got, ok, want)
			}
		})
	}
}

func TestWindow_End(t *testing.T) {
	daily := WindowSpec{Days: []string{"all"}, Start: "00:00", End: "24:00", Blackout: []string{"2026-12-24"}}
	tests := []struct {
		name     string
		spec     WindowSpec
		at, want string // want "" = closed at `at`
		dur      time.Duration
	}{
		{"plain", berlinTueWed, "2026-11-17T22:00:00+01:00", "2026-11-18T04:00:00+01:00", 6 * time.Hour},
		{"fall-back-night-is-7h", berlinSat, "2026-10-24T22:00:00+02:00", "2026-10-25T04:00:00+01:00", 7 * time.Hour},
		{"spring-night-is-5h", berlinSat, "2026-03-28T22:00:00+01:00", "2026-03-29T04:00:00+02:00", 5 * time.Hour},
		{"ny-fall", nySunFall, "2026-11-01T01:30:00-04:00", "2026-11-01T03:00:00-05:00", 150 * time.Minute},
		{"cut-by-blackout", xmas, "2026-12-23T22:00:00+01:00", "2026-12-24T00:00:00+01:00", 2 * time.Hour},
		{"touching-days-merge", daily, "2026-12-20T10:00:00Z", "2026-12-24T00:00:00Z", 86 * time.Hour},
		{"closed", berlinTueWed, "2026-11-17T12:00:00+01:00", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := mustWindow(t, tt.spec)
			at := mustTime(t, tt.at)
			got, ok := w.End(at)
			if tt.want == "" {
				if ok {
					t.Fatalf("End = %v, want closed", got)
				}
				return
			}
			if want := mustTime(t, tt.want); !ok || !got.Equal(want) {
				t.Fatalf("End(%s) = %v, %v; want %v", tt.at, got, ok, want)
			}
			if d := got.Sub(at); d != tt.dur {
				t.Errorf("open for %v, want %v", d, tt.dur)
			}
		})
	}
}

func TestNewWindow(t *testing.T) {
	tests := []struct {
		name string
		spec WindowSpec
		want []string // substrings of the error; none = valid
	}{
		{name: "valid", spec: berlinTueWed},
		{name: "valid-whole-day", spec: WindowSpec{Days: []string{"ALL"}, Start: "00:00", End: "24:00"}},
		{name: "no-days", spec: WindowSpec{Start: "22:00", End: "04:00"}, want: []string{"days: no days (list the days"}},
		{name: "bad-day", spec: WindowSpec{Days: []string{"tue", "tues"}, Start: "22:00", End: "04:00"}, want: []string{`days[1]: unknown day "tues"`}},
		{name: "bad-start", spec: WindowSpec{Days: []string{"tue"}, Start: "24:00", End: "04:00"}, want: []string{`start: "24:00" is out of range`}},
		{name: "bad-end", spec: WindowSpec{Days: []string{"tue"}, Start: "22:00", End: "4pm"}, want: []string{`end: "4pm" is not HH:MM`}},
		{name: "signed-minutes", spec: WindowSpec{Days: []string{"tue"}, Start: "-0:00", End: "+1:00"}, want: []string{"start:", "end:"}},
		{name: "empty", spec: WindowSpec{Days: []string{"tue"}, Start: "22:00", End: "22:00"}, want: []string{"end: end equals start"}},
		{name: "bad-tz", spec: WindowSpec{Days: []string{"tue"}, Start: "22:00", End: "04:00", TZ: "Mars/Olympus"}, want: []string{"tz:"}},
		{name: "local-tz", spec: WindowSpec{Days: []string{"tue"}, Start: "22:00", End: "04:00", TZ: "Local"}, want: []string{"tz:"}},
		{name: "bad-week", spec: WindowSpec{Days: []string{"tue"}, Weeks: []int{0, 6}, Start: "22:00", End: "04:00"},
			want: []string{"weeks[0]: week 0", "weeks[1]: week 6"}},
		{name: "bad-blackout", spec: WindowSpec{Days: []string{"tue"}, Start: "22:00", End: "04:00",
			Blackout: []string{"2026-13-01", "2026-12-26..2026-12-24"}},
			want: []string{`blackout[0]: "2026-13-01" is not a date`, "blackout[1]: range"}},
		{name: "all-errors-at-once", spec: WindowSpec{Days: []string{"x"}, Start: "x", End: "y", TZ: "Nowhere/X"},
			want: []string{"days[0]", "start", "end", "tz"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewWindow(tt.spec)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("NewWindow: %v", err)
				}
				return
			}
			var fe *cluster.FieldError
			if err == nil || !errors.As(err, &fe) {
				t.Fatalf("NewWindow = %v, want *FieldError", err)
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

// TestWindow_Consistency checks NextOpen and End against Contains minute by minute
// over DST weekends, for random windows in several zones.
func TestWindow_Consistency(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	zones := []string{"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"}
	starts := []string{"2026-03-27T00:00:00Z", "2026-10-23T00:00:00Z", "2026-03-06T00:00:00Z", "2026-10-30T00:00:00Z", "2026-04-03T00:00:00Z"}
	clock := func() string {
		return time.Date(2000, 1, 1, rng.IntN(24), []int{0, 15, 30, 59}[rng.IntN(4)], 0, 0, time.UTC).Format("15:04")
	}
	for i := range 30 {
		spec := WindowSpec{Days: []string{[]string{"fri", "sat", "sun", "all"}[rng.IntN(4)], "sun"},
			Start: clock(), End: clock(), TZ: zones[rng.IntN(len(zones))]}
		w, err := NewWindow(spec)
		if err != nil {
			continue // equal start and end
		}
		from := mustTime(t, starts[rng.IntN(len(starts))])
		const minutes = 4 * 24 * 60
		open := make([]bool, minutes+1)
		for m := range open {
			open[m] = w.Contains(from.Add(time.Duration(m) * time.Minute))
		}
		for m := 0; m < minutes; m += 7 {
			at := from.Add(time.Duration(m) * time.Minute)
			next, ok := w.NextOpen(at)
			first := -1
			for j := m; j <= minutes; j++ {
				if open[j] {
					first = j
					break
				}
			}
			if first >= 0 && (!ok || !next.Equal(from.Add(time.Duration(first)*time.Minute))) {
				t.Fatalf("case %d %s: NextOpen(%v) = %v, scan says minute %d", i, w, at, next, first)
			}
			end, ok := w.End(at)
			if ok != open[m] {
				t.Fatalf("case %d %s: End ok = %v, Contains = %v at %v", i, w, ok, open[m], at)
			}
			if ok && end.Before(from.Add(minutes*time.Minute)) {
				last := int(end.Sub(from) / time.Minute)
				if w.Contains(end) || !open[last-1] {
					t.Fatalf("case %d %s: End(%v) = %v is not where the window closes", i, w, at, end)
				}
				for j := m; j < last; j++ {
					if !open[j] {
						t.Fatalf("case %d %s: End(%v) = %v but closed at minute %d", i, w, at, end, j)
					}
				}
			}
		}
	}
}

func FuzzNewWindow(f *testing.F) {
	f.Add("tue,wed", "22:00", "04:00", "Europe/Berlin", "2026-12-24..2026-12-26", int64(1792000000))
	f.Add("all", "00:00", "24:00", "", "", int64(0))
	f.Add("sun", "02:30", "05:00", "America/New_York", "2026-03-08", int64(1772949600))
	f.Add("mon", "9:5", "24:01", "Local", "2026-02-30", int64(-1))
	f.Fuzz(func(t *testing.T, days, start, end, tz, blackout string, unix int64) {
		spec := WindowSpec{Days: strings.Split(days, ","), Start: start, End: end, TZ: tz}
		if blackout != "" {
			spec.Blackout = strings.Split(blackout, ",")
		}
		w, err := NewWindow(spec)
		if err != nil {
			var fe *cluster.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error is not a *FieldError: %v", err)
			}
			return
		}
		at := time.Unix(unix%(1<<34), 0)
		open := w.Contains(at)
		next, ok := w.NextOpen(at)
		if open && (!ok || !next.Equal(at)) {
			t.Fatalf("open at %v but NextOpen = %v, %v", at, next, ok)
		}
		if ok && (next.Before(at) || !w.Contains(next)) {
			t.Fatalf("NextOpen(%v) = %v is not open", at, next)
		}
		if e, eok := w.End(at); eok != open || eok && !e.After(at) {
			t.Fatalf("End(%v) = %v, %v with Contains = %v", at, e, eok, open)
		}
	})
}

func TestWindow_String(t *testing.T) {
	w := mustWindow(t, xmas)
	if got, want := w.String(), "tue,wed 22:00-04:00 Europe/Berlin except 2026-12-24..2026-12-26,2026-12-22"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got := mustWindow(t, thirdTue).String(); got != "tue 10:00-12:00 UTC weeks [3]" {
		t.Errorf("String = %q", got)
	}
	if w.Location().String() != "Europe/Berlin" {
		t.Errorf("Location = %v", w.Location())
	}
}
