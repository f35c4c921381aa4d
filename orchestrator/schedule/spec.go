package schedule

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/droverhq/drover/cluster"
)

// Spec is a cluster's schedule as written in the config file (key schedule, or
// clusters[i].schedule). Either Cron or Days is set (or neither: runs start only on
// demand):
//
//	schedule: {cron: "CRON_TZ=Europe/Berlin 0 22 * * 2"}
//	schedule: {days: [tue], weeks: [3], at: "03:00", tz: Europe/Berlin}      # 3rd Tuesday
//	schedule: {days: [sat], weeks: [5], at: "22:00"}                         # last Saturday
//	schedule: {days: [sun], interval_weeks: 2, start_date: 2026-01-04, at: "04:00"}
type Spec struct {
	// Cron is a standard 5-field cron expression or a descriptor (@daily, @every 2h),
	// optionally prefixed with CRON_TZ=Zone (robfig/cron syntax). Day-of-month and
	// day-of-week fields are ORed, as in every cron: use Days+Weeks for "3rd Tuesday".
	Cron string `json:"cron,omitempty" mapstructure:"cron"`
	// Days are the weekdays of the CAU forms (mon..sun, or all).
	Days []string `json:"days,omitempty" mapstructure:"days"`
	// Weeks of the month: 1-4 the nth such weekday, 5 the last (CAU WeeksOfMonth).
	Weeks []int `json:"weeks,omitempty" mapstructure:"weeks"`
	// IntervalWeeks runs every N weeks, counted from the week (Monday) of StartDate
	// (CAU IntervalWeeks); excludes Weeks.
	IntervalWeeks int `json:"interval_weeks,omitempty" mapstructure:"interval_weeks"`
	// StartDate (YYYY-MM-DD, in TZ): no run is due before it.
	StartDate string `json:"start_date,omitempty" mapstructure:"start_date"`
	// At is the wall-clock start "HH:MM" in TZ of the CAU forms.
	At string `json:"at,omitempty" mapstructure:"at"`
	// TZ is an IANA zone for At, StartDate and Blackout; default UTC (with Cron: the
	// expression's CRON_TZ, else UTC).
	TZ string `json:"tz,omitempty" mapstructure:"tz"`
	// Blackout dates ("2026-12-24") or inclusive ranges ("2026-12-24..2027-01-01"):
	// no run is due on them.
	Blackout []string `json:"blackout,omitempty" mapstructure:"blackout"`
	// Paused: the schedule starts no run (runs in progress continue; a run can still
	// be started on demand). The API switches it at run time.
	Paused bool `json:"paused,omitempty" mapstructure:"paused"`
}

// Schedule is a parsed Spec: a cron.Schedule whose Next skips blackout dates.
type Schedule struct {
	base     cron.Schedule // nil: no schedule
	loc      *time.Location
	blackout [][2]int64 // merged inclusive ranges of civil day numbers
	desc     string
}

var _ cron.Schedule = (*Schedule)(nil)

// horizonDays bounds every search: a schedule that is not due within it is never due.
const horizonDays = 3700

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
	"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday,
	"thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday,
}

// Parse validates spec. Errors are *cluster.FieldError values (joined) with fields
// relative to the schedule ("cron", "days[1]", "blackout[0]").
func Parse(spec Spec) (*Schedule, error) {
	var errs []error
	bad := func(field, fix, problem string, args ...any) {
		errs = append(errs, cluster.Fieldf(field, fix, problem, args...))
	}
	s := &Schedule{loc: time.UTC}
	if spec.TZ != "" {
		loc, err := loadTZ(spec.TZ)
		if err != nil {
			bad("tz", `use an IANA zone name such as "Europe/Berlin", or leave it empty for UTC`, "%v", err)
		} else {
			s.loc = loc
		}
	}
	cau := len(spec.Days) > 0 || len(spec.Weeks) > 0 || spec.IntervalWeeks != 0 || spec.At != "" || spec.StartDate != ""
	switch {
	case spec.Cron != "" && cau:
		bad("cron", "set either cron or the days/weeks/interval_weeks/at form, not both", "both forms given")
	case spec.Cron != "":
		sched, err := cron.ParseStandard(spec.Cron)
		if err != nil {
			bad("cron", `use 5 fields "min hour dom month dow" or a descriptor such as @daily or "@every 6h", optionally prefixed "CRON_TZ=Europe/Berlin "; for "3rd Tuesday" use days: [tue], weeks: [3]`, "%v", err)
			break
		}
		s.base, s.desc = withDSTRules(sched), "cron "+spec.Cron
		if zone := cronZone(spec.Cron); zone != "" && spec.TZ == "" {
			if loc, err := loadTZ(zone); err == nil {
				s.loc = loc
			}
		}
	case cau:
		c, err := newCAU(spec, s.loc)
		if err != nil {
			errs = append(errs, err)
			break
		}
		s.base, s.desc = c, c.String()
	}
	for i, b := range spec.Blackout {
		r, err := parseDateRange(b)
		if err != nil {
			bad(fmt.Sprintf("blackout[%d]", i), `use "2026-12-24" or "2026-12-24..2027-01-01"`, "%v", err)
			continue
		}
		s.blackout = append(s.blackout, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s.blackout = mergeRanges(s.blackout)
	if len(spec.Blackout) > 0 && s.base != nil {
		s.desc += " except " + strings.Join(spec.Blackout, ", ")
	}
	return s, nil
}

// Enabled reports whether the schedule ever makes a run due.
func (s *Schedule) Enabled() bool { return s != nil && s.base != nil }

// String describes the schedule for logs and the API.
func (s *Schedule) String() string {
	if !s.Enabled() {
		return "none (runs start on demand)"
	}
	return s.desc
}

// Location is the zone of the schedule's dates.
func (s *Schedule) Location() *time.Location { return s.loc }

// Next returns the first due time strictly after t that is not on a blackout date, or
// the zero time when there is none within the horizon (the cron.Schedule contract).
func (s *Schedule) Next(t time.Time) time.Time {
	if !s.Enabled() {
		return time.Time{}
	}
	limit := t.Add(horizonDays * 24 * time.Hour)
	for t.Before(limit) {
		n := s.base.Next(t)
		if n.IsZero() {
			return n
		}
		r, blocked := s.blackedOut(dayOf(n, s.loc).num())
		if !blocked {
			return n
		}
		// Jump past the whole blackout range instead of stepping through it.
		after := dayFromNum(r[1] + 1)
		t = wallTime(after.y, after.m, after.d, 0, 0, s.loc).Add(-time.Nanosecond)
	}
	return time.Time{}
}

// BlackedOut reports whether t falls on a blackout date of the schedule.
func (s *Schedule) BlackedOut(t time.Time) bool {
	if s == nil {
		return false
	}
	_, ok := s.blackedOut(dayOf(t, s.loc).num())
	return ok
}

func (s *Schedule) blackedOut(day int64) ([2]int64, bool) {
	i, found := slices.BinarySearchFunc(s.blackout, day, func(r [2]int64, d int64) int {
		switch {
		case r[1] < d:
			return -1
		case r[0] > d:
			return 1
		}
		return 0
	})
	if !found {
		return [2]int64{}, false
	}
	return s.blackout[i], true
}

// cronZone returns the zone of a CRON_TZ= or TZ= prefix.
func cronZone(expr string) string {
	for _, p := range []string{"CRON_TZ=", "TZ="} {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(expr), p); ok {
			zone, _, _ := strings.Cut(rest, " ")
			return zone
		}
	}
	return ""
}

func loadTZ(tz string) (*time.Location, error) {
	if strings.EqualFold(tz, "local") {
		// The machine's zone would make the schedule depend on where Drover runs.
		return nil, errors.New(`"Local" depends on the machine`)
	}
	return time.LoadLocation(tz)
}

// parseClock parses "HH:MM".
func parseClock(s string) (int, int, error) {
	hh, mm, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || len(hh) < 1 || len(hh) > 2 || len(mm) != 2 {
		return 0, 0, fmt.Errorf("%q is not HH:MM", s)
	}
	h, err1 := strconv.Atoi(hh)
	m, err2 := strconv.Atoi(mm)
	if err1 != nil || err2 != nil || h < 0 || h > 23 || m < 0 || m > 59 || strings.ContainsAny(hh+mm, "+-") {
		return 0, 0, fmt.Errorf("%q is not HH:MM between 00:00 and 23:59", s)
	}
	return h, m, nil
}

func parseDate(s string) (civilDay, error) {
	t, err := time.Parse(time.DateOnly, strings.TrimSpace(s))
	if err != nil {
		return civilDay{}, fmt.Errorf("%q is not a date YYYY-MM-DD", s)
	}
	y, m, d := t.Date()
	return civilDay{y, m, d}, nil
}

func parseDateRange(s string) ([2]int64, error) {
	a, b, isRange := strings.Cut(s, "..")
	from, err := parseDate(a)
	if err != nil {
		return [2]int64{}, err
	}
	to := from
	if isRange {
		if to, err = parseDate(b); err != nil {
			return [2]int64{}, err
		}
		if to.num() < from.num() {
			return [2]int64{}, fmt.Errorf("range %q ends before it starts", s)
		}
	}
	return [2]int64{from.num(), to.num()}, nil
}

func mergeRanges(rs [][2]int64) [][2]int64 {
	slices.SortFunc(rs, func(a, b [2]int64) int {
		switch {
		case a[0] < b[0]:
			return -1
		case a[0] > b[0]:
			return 1
		}
		return 0
	})
	var out [][2]int64
	for _, r := range rs {
		if n := len(out); n > 0 && r[0] <= out[n-1][1]+1 {
			out[n-1][1] = max(out[n-1][1], r[1])
			continue
		}
		out = append(out, r)
	}
	return out
}
