package schedule

import (
	"errors"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the tests must not depend on the host's zone database

	"github.com/droverhq/drover/drivers"
)

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("bad test time %q: %v", s, err)
	}
	return v
}

func mustParse(t *testing.T, spec Spec) *Schedule {
	t.Helper()
	s, err := Parse(spec)
	if err != nil {
		t.Fatalf("Parse(%+v): %v", spec, err)
	}
	return s
}

// TestSchedule_Next walks each schedule from a start time and compares the due times
// it yields, one after the other.
func TestSchedule_Next(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		from string
		want []string
	}{
		{
			name: "third-tuesday-across-months",
			spec: Spec{Days: []string{"tue"}, Weeks: []int{3}, At: "03:00", TZ: "Europe/Berlin"},
			from: "2026-01-01T00:00:00Z",
			want: []string{"2026-01-20T03:00:00+01:00", "2026-02-17T03:00:00+01:00", "2026-03-17T03:00:00+01:00", "2026-04-21T03:00:00+02:00"},
		},
		{
			name: "third-tuesday-across-the-year",
			spec: Spec{Days: []string{"tuesday"}, Weeks: []int{3}, At: "03:00", TZ: "Europe/Berlin"},
			from: "2026-12-15T02:00:00Z", // after the December one (03:00 CET = 02:00Z)
			want: []string{"2027-01-19T03:00:00+01:00", "2027-02-16T03:00:00+01:00"},
		},
		{
			name: "last-saturday-across-the-year",
			spec: Spec{Days: []string{"sat"}, Weeks: []int{5}, At: "22:00"},
			from: "2026-12-01T00:00:00Z",
			want: []string{"2026-12-26T22:00:00Z", "2027-01-30T22:00:00Z", "2027-02-27T22:00:00Z"},
		},
		{
			name: "fourth-and-last-friday-same-day-once",
			spec: Spec{Days: []string{"fri"}, Weeks: []int{4, 5}, At: "01:00"},
			from: "2026-01-01T00:00:00Z",
			// January has five Fridays (2..30): the 4th (23rd) and the last (30th);
			// February four (6..27): the 4th is the last, due once.
			want: []string{"2026-01-23T01:00:00Z", "2026-01-30T01:00:00Z", "2026-02-27T01:00:00Z", "2026-03-27T01:00:00Z"},
		},
		{
			name: "first-monday-and-wednesday",
			spec: Spec{Days: []string{"mon", "wed"}, Weeks: []int{1}, At: "06:15"},
			from: "2026-02-28T00:00:00Z",
			want: []string{"2026-03-02T06:15:00Z", "2026-03-04T06:15:00Z", "2026-04-01T06:15:00Z", "2026-04-06T06:15:00Z"},
		},
		{
			name: "every-two-weeks-from-start-date",
			spec: Spec{Days: []string{"sun"}, IntervalWeeks: 2, StartDate: "2026-01-04", At: "04:00"},
			from: "2025-12-01T00:00:00Z",
			want: []string{"2026-01-04T04:00:00Z", "2026-01-18T04:00:00Z", "2026-02-01T04:00:00Z"},
		},
		{
			name: "every-three-weeks-across-the-year",
			spec: Spec{Days: []string{"sat"}, IntervalWeeks: 3, StartDate: "2025-12-20", At: "02:00", TZ: "America/New_York"},
			from: "2025-12-20T08:00:00Z",
			want: []string{"2026-01-10T02:00:00-05:00", "2026-01-31T02:00:00-05:00"},
		},
		{
			name: "start-date-delays-first-run",
			spec: Spec{Days: []string{"all"}, StartDate: "2026-05-10", At: "12:00"},
			from: "2026-05-01T00:00:00Z",
			want: []string{"2026-05-10T12:00:00Z", "2026-05-11T12:00:00Z"},
		},
		{
			name: "cau-spring-forward-berlin-runs-at-the-jump",
			spec: Spec{Days: []string{"sun"}, Weeks: []int{5}, At: "02:30", TZ: "Europe/Berlin"},
			from: "2026-03-01T00:00:00Z",
			// 02:30 does not exist on 2026-03-29: the clock jumps from 02:00 to 03:00 CEST.
			want: []string{"2026-03-29T03:00:00+02:00", "2026-04-26T02:30:00+02:00"},
		},
		{
			name: "cau-fall-back-berlin-first-occurrence-once",
			spec: Spec{Days: []string{"sun"}, Weeks: []int{5}, At: "02:30", TZ: "Europe/Berlin"},
			from: "2026-10-01T00:00:00Z",
			want: []string{"2026-10-25T02:30:00+02:00", "2026-11-29T02:30:00+01:00"},
		},
		{
			name: "cau-spring-forward-new-york",
			spec: Spec{Days: []string{"sun"}, Weeks: []int{2}, At: "02:30", TZ: "America/New_York"},
			from: "2026-03-01T00:00:00Z",
			want: []string{"2026-03-08T03:00:00-04:00", "2026-04-12T02:30:00-04:00"},
		},
		{
			name: "cau-fall-back-new-york",
			spec: Spec{Days: []string{"sun"}, Weeks: []int{1}, At: "01:30", TZ: "America/New_York"},
			from: "2026-10-31T00:00:00Z",
			want: []string{"2026-11-01T01:30:00-04:00", "2026-12-06T01:30:00-05:00"},
		},
		{
			name: "cron-spring-forward-berlin-runs-at-the-jump",
			spec: Spec{Cron: "CRON_TZ=Europe/Berlin 30 2 * * *"},
			from: "2026-03-28T12:00:00Z",
			// robfig/cron alone skips this day entirely.
			want: []string{"2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"},
		},
		{
			name: "cron-fall-back-berlin-runs-once",
			spec: Spec{Cron: "CRON_TZ=Europe/Berlin 30 2 * * *"},
			from: "2026-10-24T12:00:00Z",
			// robfig/cron alone runs at 00:30Z and again at 01:30Z.
			want: []string{"2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"},
		},
		{
			name: "cron-fall-back-new-york-runs-once",
			spec: Spec{Cron: "CRON_TZ=America/New_York 30 1 * * *"},
			from: "2026-10-31T12:00:00Z",
			want: []string{"2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"},
		},
		{
			name: "cron-spring-forward-new-york-hourly-minute-45",
			spec: Spec{Cron: "CRON_TZ=America/New_York 45 * * * *"},
			from: "2026-03-08T06:00:00Z", // 01:00 EST
			want: []string{"2026-03-08T01:45:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:45:00-04:00"},
		},
		{
			name: "cron-without-dst-unchanged",
			spec: Spec{Cron: "0 22 * * 2"},
			from: "2026-01-01T00:00:00Z",
			want: []string{"2026-01-06T22:00:00Z", "2026-01-13T22:00:00Z"},
		},
		{
			name: "cron-every-descriptor",
			spec: Spec{Cron: "@every 2s"},
			from: "2026-01-01T00:00:00Z",
			want: []string{"2026-01-01T00:00:02Z", "2026-01-01T00:00:04Z"},
		},
		{
			name: "blackout-range-across-the-year",
			spec: Spec{Cron: "CRON_TZ=Europe/Berlin 0 3 * * *", Blackout: []string{"2026-12-24..2027-01-01"}},
			from: "2026-12-23T01:00:00Z",
			want: []string{"2026-12-23T03:00:00+01:00", "2027-01-02T03:00:00+01:00"},
		},
		{
			name: "blackout-dates-are-in-the-schedule-zone",
			// 23:30 in New York is the next day in UTC: the blackout date is New York's.
			spec: Spec{Days: []string{"all"}, At: "23:30", TZ: "America/New_York", Blackout: []string{"2026-07-04"}},
			from: "2026-07-03T12:00:00Z",
			want: []string{"2026-07-03T23:30:00-04:00", "2026-07-05T23:30:00-04:00"},
		},
		{
			name: "blackout-skips-third-tuesday",
			spec: Spec{Days: []string{"tue"}, Weeks: []int{3}, At: "03:00", Blackout: []string{"2026-02-17", "2026-03-01..2026-03-31"}},
			from: "2026-02-01T00:00:00Z",
			want: []string{"2026-04-21T03:00:00Z"},
		},
		{
			name: "blackout-with-every-jumps-the-range",
			spec: Spec{Cron: "@every 2s", Blackout: []string{"2026-01-01..2026-01-07"}},
			from: "2026-01-01T10:00:00Z",
			want: []string{"2026-01-08T00:00:01Z"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.spec)
			cur := at(t, tt.from)
			for i, w := range tt.want {
				got := s.Next(cur)
				if !got.Equal(at(t, w)) {
					t.Fatalf("due time %d after %s = %s, want %s (%s)", i+1, cur.UTC().Format(time.RFC3339), got.Format(time.RFC3339), w, s)
				}
				cur = got
			}
		})
	}
}

func TestSchedule_NextNever(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
	}{
		{"empty-spec", Spec{}},
		{"cron-feb-30", Spec{Cron: "0 0 30 2 *"}},
		{"everything-blacked-out", Spec{Cron: "@daily", Blackout: []string{"2000-01-01..2099-12-31"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.spec)
			if got := s.Next(at(t, "2026-01-01T00:00:00Z")); !got.IsZero() {
				t.Errorf("Next = %s, want never (zero time)", got)
			}
		})
	}
}

func TestParse_Errors(t *testing.T) {
	tests := []struct {
		name   string
		spec   Spec
		fields []string
	}{
		{"cron-and-days", Spec{Cron: "@daily", Days: []string{"mon"}, At: "01:00"}, []string{"cron"}},
		{"bad-cron", Spec{Cron: "0 3 * * TUE#3"}, []string{"cron"}},
		{"bad-cron-zone", Spec{Cron: "CRON_TZ=Mars/Olympus 0 3 * * *"}, []string{"cron"}},
		{"unknown-day", Spec{Days: []string{"mon", "funday"}, At: "01:00"}, []string{"days[1]"}},
		{"week-out-of-range", Spec{Days: []string{"mon"}, Weeks: []int{0, 6}, At: "01:00"}, []string{"weeks[0]", "weeks[1]"}},
		{"at-missing", Spec{Days: []string{"mon"}}, []string{"at"}},
		{"at-bad", Spec{Days: []string{"mon"}, At: "25:00"}, []string{"at"}},
		{"weeks-without-days", Spec{Weeks: []int{3}, At: "01:00"}, []string{"days"}},
		{"interval-and-weeks", Spec{Days: []string{"mon"}, Weeks: []int{1}, IntervalWeeks: 2, StartDate: "2026-01-01", At: "01:00"}, []string{"interval_weeks"}},
		{"interval-without-start", Spec{Days: []string{"mon"}, IntervalWeeks: 2, At: "01:00"}, []string{"start_date"}},
		{"bad-start-date", Spec{Days: []string{"mon"}, StartDate: "2026-13-01", At: "01:00"}, []string{"start_date"}},
		{"bad-tz", Spec{Days: []string{"mon"}, At: "01:00", TZ: "Nowhere/City"}, []string{"tz"}},
		{"local-tz", Spec{Days: []string{"mon"}, At: "01:00", TZ: "Local"}, []string{"tz"}},
		{"bad-blackout", Spec{Cron: "@daily", Blackout: []string{"2026-12-24", "2027-01-02..2027-01-01", "xmas"}}, []string{"blackout[1]", "blackout[2]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.spec)
			if err == nil {
				t.Fatal("Parse succeeded, want errors")
			}
			var got []string
			for _, e := range flatten(err) {
				fe, ok := errors.AsType[*drivers.FieldError](e)
				if !ok {
					t.Fatalf("error %v is not a FieldError", e)
				}
				if fe.Fix == "" {
					t.Errorf("error on %s has no fix", fe.Field)
				}
				got = append(got, fe.Field)
			}
			if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
				t.Errorf("error fields = %v, want %v (%v)", got, tt.fields, err)
			}
		})
	}
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func TestSchedule_BlackedOut(t *testing.T) {
	s := mustParse(t, Spec{Cron: "CRON_TZ=Europe/Berlin @daily", Blackout: []string{"2026-12-24"}})
	tests := []struct {
		name string
		at   string
		want bool
	}{
		{"berlin-midnight-is-the-date", "2026-12-23T23:30:00Z", true},
		{"last-instant", "2026-12-24T22:59:59Z", true},
		{"day-after", "2026-12-24T23:00:00Z", false},
		{"day-before", "2026-12-23T22:59:59Z", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.BlackedOut(at(t, tt.at)); got != tt.want {
				t.Errorf("BlackedOut(%s) = %v, want %v", tt.at, got, tt.want)
			}
		})
	}
}
