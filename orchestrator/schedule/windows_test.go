package schedule

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/policies"
	"github.com/droverhq/drover/runs"
)

func mustWindows(t *testing.T, specs ...policies.WindowSpec) Windows {
	t.Helper()
	ws, err := ParseWindows("windows", specs)
	if err != nil {
		t.Fatalf("ParseWindows: %v", err)
	}
	return ws
}

func TestWindows_Fit(t *testing.T) {
	satNightBerlin := policies.WindowSpec{Days: []string{"sat"}, Start: "22:00", End: "04:00", TZ: "Europe/Berlin"}
	tests := []struct {
		name      string
		windows   []policies.WindowSpec
		now       string
		d         time.Duration
		wantStart string
		wantEnd   string // "" = zero
		wantFits  bool
	}{
		{
			name: "no-windows-start-now", now: "2026-10-07T12:00:00Z", d: 100 * time.Hour,
			wantStart: "2026-10-07T12:00:00Z", wantFits: true,
		},
		{
			name: "inside-and-fits", windows: []policies.WindowSpec{satNightBerlin},
			now: "2026-10-03T23:00:00+02:00", d: time.Hour,
			wantStart: "2026-10-03T23:00:00+02:00", wantEnd: "2026-10-04T04:00:00+02:00", wantFits: true,
		},
		{
			name: "inside-finish-exactly-at-end", windows: []policies.WindowSpec{satNightBerlin},
			now: "2026-10-03T23:00:00+02:00", d: 5 * time.Hour,
			wantStart: "2026-10-03T23:00:00+02:00", wantEnd: "2026-10-04T04:00:00+02:00", wantFits: true,
		},
		{
			name: "inside-but-finish-after-end-waits-for-next-window", windows: []policies.WindowSpec{satNightBerlin},
			now: "2026-10-03T23:00:00+02:00", d: 5*time.Hour + time.Minute,
			wantStart: "2026-10-10T22:00:00+02:00", wantEnd: "2026-10-11T04:00:00+02:00", wantFits: true,
		},
		{
			name: "outside-waits-for-opening", windows: []policies.WindowSpec{satNightBerlin},
			now: "2026-10-07T12:00:00Z", d: time.Hour,
			wantStart: "2026-10-10T22:00:00+02:00", wantEnd: "2026-10-11T04:00:00+02:00", wantFits: true,
		},
		{
			name: "only-the-fall-back-night-is-long-enough", windows: []policies.WindowSpec{satNightBerlin},
			now: "2026-10-01T00:00:00Z", d: 6*time.Hour + 30*time.Minute,
			// Normal nights last 6 h; the night the clocks go back lasts 7 h.
			wantStart: "2026-10-24T22:00:00+02:00", wantEnd: "2026-10-25T04:00:00+01:00", wantFits: true,
		},
		{
			name: "spring-forward-night-too-short", windows: []policies.WindowSpec{satNightBerlin},
			now: "2026-03-28T21:00:00+01:00", d: 5*time.Hour + 30*time.Minute,
			// The night of 2026-03-28 lasts 5 h (02:00 -> 03:00); the next one 6 h.
			wantStart: "2026-04-04T22:00:00+02:00", wantEnd: "2026-04-05T04:00:00+02:00", wantFits: true,
		},
		{
			name:    "new-york-spring-forward-morning-too-short",
			windows: []policies.WindowSpec{{Days: []string{"sun"}, Start: "00:00", End: "06:00", TZ: "America/New_York"}},
			now:     "2026-03-07T12:00:00Z", d: 5*time.Hour + 30*time.Minute,
			wantStart: "2026-03-15T00:00:00-04:00", wantEnd: "2026-03-15T06:00:00-04:00", wantFits: true,
		},
		{
			name:    "new-york-fall-back-morning-long-enough",
			windows: []policies.WindowSpec{{Days: []string{"sun"}, Start: "00:00", End: "06:00", TZ: "America/New_York"}},
			now:     "2026-10-26T12:00:00Z", d: 6*time.Hour + 30*time.Minute,
			wantStart: "2026-11-01T00:00:00-04:00", wantEnd: "2026-11-01T06:00:00-05:00", wantFits: true,
		},
		{
			name:    "blackout-cuts-the-window",
			windows: []policies.WindowSpec{{Days: []string{"sat"}, Start: "22:00", End: "04:00", TZ: "Europe/Berlin", Blackout: []string{"2026-10-10"}}},
			now:     "2026-10-04T12:00:00Z", d: 5 * time.Hour,
			// The Saturday night of the 10th is cut at midnight: only 4 h remain.
			wantStart: "2026-10-17T22:00:00+02:00", wantEnd: "2026-10-18T04:00:00+02:00", wantFits: true,
		},
		{
			name:    "blackout-leaves-the-part-after-midnight",
			windows: []policies.WindowSpec{{Days: []string{"sat"}, Start: "22:00", End: "04:00", TZ: "Europe/Berlin", Blackout: []string{"2026-10-10"}}},
			now:     "2026-10-04T12:00:00Z", d: 3 * time.Hour,
			wantStart: "2026-10-11T00:00:00+02:00", wantEnd: "2026-10-11T04:00:00+02:00", wantFits: true,
		},
		{
			name: "touching-windows-make-one",
			windows: []policies.WindowSpec{
				{Days: []string{"mon"}, Start: "20:00", End: "24:00"},
				{Days: []string{"tue"}, Start: "00:00", End: "02:00"},
			},
			now: "2026-01-05T21:00:00Z", d: 4 * time.Hour,
			wantStart: "2026-01-05T21:00:00Z", wantEnd: "2026-01-06T02:00:00Z", wantFits: true,
		},
		{
			name: "longer-than-every-window", windows: []policies.WindowSpec{satNightBerlin},
			now: "2026-10-07T12:00:00Z", d: 8 * time.Hour,
			wantStart: "2026-10-10T22:00:00+02:00", wantEnd: "2026-10-11T04:00:00+02:00", wantFits: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := mustWindows(t, tt.windows...)
			got := ws.Fit(at(t, tt.now), tt.d)
			if !got.Start.Equal(at(t, tt.wantStart)) || got.Fits != tt.wantFits {
				t.Errorf("Fit = start %s fits %v, want start %s fits %v", got.Start.Format(time.RFC3339), got.Fits, tt.wantStart, tt.wantFits)
			}
			if tt.wantEnd == "" {
				if !got.End.IsZero() {
					t.Errorf("End = %s, want none", got.End)
				}
			} else if !got.End.Equal(at(t, tt.wantEnd)) {
				t.Errorf("End = %s, want %s", got.End.Format(time.RFC3339), tt.wantEnd)
			}
		})
	}
}

func TestWindows_ContainsAndEnd(t *testing.T) {
	ws := mustWindows(t,
		policies.WindowSpec{Days: []string{"sat"}, Start: "22:00", End: "04:00", TZ: "Europe/Berlin"},
		policies.WindowSpec{Days: []string{"sun"}, Start: "03:00", End: "06:00", TZ: "Europe/Berlin"},
	)
	tests := []struct {
		name     string
		at       string
		open     bool
		wantEnd  string
		wantNext string
	}{
		{"inside-first-extended-by-overlap", "2026-10-03T23:00:00+02:00", true, "2026-10-04T06:00:00+02:00", "2026-10-03T23:00:00+02:00"},
		{"inside-second-only", "2026-10-04T05:00:00+02:00", true, "2026-10-04T06:00:00+02:00", "2026-10-04T05:00:00+02:00"},
		{"closed-at-end", "2026-10-04T06:00:00+02:00", false, "", "2026-10-10T22:00:00+02:00"},
		{"closed-midweek", "2026-10-07T12:00:00+02:00", false, "", "2026-10-10T22:00:00+02:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := at(t, tt.at)
			if got := ws.Contains(now); got != tt.open {
				t.Errorf("Contains = %v, want %v", got, tt.open)
			}
			end, ok := ws.End(now)
			if ok != tt.open || (tt.open && !end.Equal(at(t, tt.wantEnd))) {
				t.Errorf("End = %s, %v; want %s, %v", end.Format(time.RFC3339), ok, tt.wantEnd, tt.open)
			}
			if next, ok := ws.NextOpen(now); !ok || !next.Equal(at(t, tt.wantNext)) {
				t.Errorf("NextOpen = %s, %v; want %s", next.Format(time.RFC3339), ok, tt.wantNext)
			}
		})
	}
}

func TestParseWindows_ErrorsNameTheEntry(t *testing.T) {
	_, err := ParseWindows("clusters[1].windows", []policies.WindowSpec{
		{Days: []string{"sat"}, Start: "22:00", End: "04:00"},
		{Days: []string{"funday"}, Start: "22:00", End: "04:00"},
	})
	fe, ok := errors.AsType[*drivers.FieldError](err)
	if !ok || fe.Field != "clusters[1].windows[1].days[0]" {
		t.Fatalf("err = %v, want a FieldError on clusters[1].windows[1].days[0]", err)
	}
}

func TestPredictNode(t *testing.T) {
	plan, err := json.Marshal(policies.Plan{Nodes: []policies.NodePlan{
		{Node: "n1", Status: policies.NodePlanned, Start: 10 * time.Minute, End: 35 * time.Minute},
		{Node: "n2", Status: policies.NodeBlocked, Start: 35 * time.Minute, End: 35 * time.Minute},
	}})
	if err != nil {
		t.Fatal(err)
	}
	timings := []runs.Timing{
		{Node: "n1", Kind: "drain", Seconds: 100}, {Node: "n1", Kind: "drain", Seconds: 300}, {Node: "n1", Kind: "drain", Seconds: 200},
		{Node: "n1", Kind: "install", Seconds: 50},
		{Node: "n2", Kind: "reboot", Seconds: 60}, {Node: "n3", Kind: "reboot", Seconds: 80},
		{Node: "n2", Kind: "migration", Seconds: 9999},
	}
	tests := []struct {
		name    string
		node    string
		plan    json.RawMessage
		timings []runs.Timing
		want    Prediction
	}{
		{"from-the-plan", "n1", plan, timings, Prediction{25 * time.Minute, "plan"}},
		{"blocked-in-plan-uses-measurements-own-reboot", "n2", plan, timings, Prediction{(200 + 50 + 60) * time.Second, "measured"}},
		{"own-medians-then-cluster-medians", "n1", nil, timings, Prediction{(200 + 50 + 70) * time.Second, "measured"}},
		{"other-node-uses-cluster-medians", "n9", nil, timings, Prediction{(200 + 50 + 70) * time.Second, "measured"}},
		{"damaged-plan-is-ignored", "n1", json.RawMessage(`{"nodes": 7}`), timings, Prediction{(200 + 50 + 70) * time.Second, "measured"}},
		{"nothing-known-uses-defaults", "n1", nil, nil, Prediction{DefaultDrain + DefaultInstall + DefaultReboot, "default"}},
		{"some-phase-measured", "n1", nil, []runs.Timing{{Node: "n1", Kind: "reboot", Seconds: 30}}, Prediction{DefaultDrain + DefaultInstall + 30*time.Second, "measured"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PredictNode(tt.node, tt.plan, tt.timings); got != tt.want {
				t.Errorf("PredictNode = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestWindows_AlwaysOpen(t *testing.T) {
	ws := mustWindows(t, policies.WindowSpec{Days: []string{"all"}, Start: "00:00", End: "24:00"})
	now := at(t, "2026-03-29T01:30:00Z")
	end, open := ws.End(now)
	if !open || end.Before(now.Add(365*24*time.Hour)) {
		t.Errorf("End = %s, %v; want open for at least a year", end, open)
	}
	if slot := ws.Fit(now, 30*time.Hour); !slot.Fits || !slot.Start.Equal(now) {
		t.Errorf("Fit = %+v, want start now", slot)
	}
}
