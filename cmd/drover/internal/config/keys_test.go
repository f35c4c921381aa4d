package config

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/drivers"
)

// TestDefaults_EveryKeyHasAnEnvBinding: viper reads DROVER_X only for keys it knows,
// so a leaf key of the config structs missing from defaults() is silently ignored
// when set in the environment (DROVER_SCHEDULE_WEEKS was).
func TestDefaults_EveryKeyHasAnEnvBinding(t *testing.T) {
	known := defaults()
	keys := structKeys(reflect.TypeOf(Config{}))
	for _, want := range []string{"schedule.weeks", "server.tls.cert", "policy.health_gate.url"} {
		if !slices.Contains(keys, want) {
			t.Fatalf("structKeys(Config) misses %s: the walk is broken, the test would prove nothing", want)
		}
	}
	for _, k := range keys {
		if _, ok := known[k]; !ok {
			t.Errorf("key %s has no default in defaults(): %s is ignored", k, EnvName(k))
		}
	}
}

func TestLoad_ScheduleFromTheEnvironment(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "drover.yaml", baseFile+`schedule: {days: [tue], at: "03:00", tz: Europe/Berlin}
`)
	writeFile(t, dir, "c.yaml", "nodes: [{name: n1, memory_mib: 1024, cpus: 2}]\n")
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{name: "file-only", want: "tue at 03:00 Europe/Berlin"},
		{name: "weeks", env: map[string]string{"DROVER_SCHEDULE_WEEKS": "3"}, want: "3rd tue at 03:00 Europe/Berlin"},
		{name: "at", env: map[string]string{"DROVER_SCHEDULE_AT": "04:30"}, want: "tue at 04:30 Europe/Berlin"},
		{name: "interval-and-start-date", env: map[string]string{"DROVER_SCHEDULE_INTERVAL_WEEKS": "2", "DROVER_SCHEDULE_START_DATE": "2026-01-06"}, want: "every 2 weeks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := Load(LoadOptions{File: file})
			if err != nil {
				t.Fatal(err)
			}
			sc, err := cfg.Serve()
			if err != nil {
				t.Fatal(err)
			}
			if got := sc.Clusters[0].Schedule.String(); !strings.HasPrefix(got, tt.want) {
				t.Errorf("schedule = %q, want it to start with %q", got, tt.want)
			}
		})
	}
}

// TestLoad_UnquotedDates: YAML reads 2026-01-04 as a timestamp; date keys take it as
// the date it names.
func TestLoad_UnquotedDates(t *testing.T) {
	tests := []struct {
		name  string
		extra string
		check func(t *testing.T, sc *Serve)
	}{
		{name: "schedule-start-date", extra: `schedule: {days: [sun], interval_weeks: 2, start_date: 2026-01-04, at: "04:00"}`, check: func(t *testing.T, sc *Serve) {
			if got := sc.Clusters[0].Schedule.String(); !strings.Contains(got, "2026-01-04") {
				t.Errorf("schedule = %q, want it to name the start date 2026-01-04", got)
			}
		}},
		{name: "schedule-blackout", extra: `schedule: {cron: "@daily", blackout: [2026-12-24, 2026-12-31..2027-01-01]}`, check: func(t *testing.T, sc *Serve) {
			s := sc.Clusters[0].Schedule
			from := time.Date(2026, 12, 23, 12, 0, 0, 0, time.UTC)
			if got, want := s.Next(from), time.Date(2026, 12, 25, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
				t.Errorf("next after %v = %v, want %v (2026-12-24 blacked out)", from, got, want)
			}
		}},
		{name: "window-blackout", extra: `windows: [{days: [all], start: "00:00", end: "24:00", blackout: [2026-12-25]}]`, check: func(t *testing.T, sc *Serve) {
			if got := sc.Clusters[0].WindowSpecs[0].Blackout; !slices.Equal(got, []string{"2026-12-25"}) {
				t.Errorf("window blackout = %q, want [2026-12-25]", got)
			}
		}},
		{name: "date-with-time-keeps-the-time", extra: `windows: [{days: [all], start: "00:00", end: "24:00", tz: 2026-12-25T10:30:00Z}]`, check: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := writeFile(t, dir, "drover.yaml", baseFile+tt.extra+"\n")
			writeFile(t, dir, "c.yaml", "nodes: [{name: n1, memory_mib: 1024, cpus: 2}]\n")
			cfg, err := Load(LoadOptions{File: file})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			sc, err := cfg.Serve()
			if tt.check == nil {
				// A timestamp with a time is no date: it must stay a full timestamp,
				// so the error quotes it whole.
				if err == nil || !strings.Contains(err.Error(), "2026-12-25T10:30:00Z") {
					t.Fatalf("Serve: %v, want an error quoting 2026-12-25T10:30:00Z", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Serve: %v", err)
			}
			tt.check(t, sc)
		})
	}
}

// TestLoad_WindowFieldNames: decode errors in a window name its keys as written.
func TestLoad_WindowFieldNames(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "drover.yaml", baseFile+`windows: [{days: [mon], weeks: [first], start: "01:00", end: "02:00"}]
`)
	_, err := Load(LoadOptions{File: file})
	fe, ok := errors.AsType[*drivers.FieldError](err)
	if !ok || fe.Field != "windows[0].weeks[0]" {
		t.Fatalf("Load: %v, want a field error on windows[0].weeks[0]", err)
	}
}
