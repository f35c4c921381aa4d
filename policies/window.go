package policies

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// WindowSpec is a maintenance window as written in a config file:
//
//	{days: [tue, wed], start: "22:00", end: "04:00", tz: "Europe/Berlin",
//	 weeks: [3], blackout: ["2026-12-24..2027-01-01"]}
type WindowSpec struct {
	// Days on which the window opens: mon..sun or monday..sunday, or "all".
	Days []string `json:"days" mapstructure:"days"`
	// Weeks of the month in which it opens: 1-4 = the nth such weekday of the month,
	// 5 = the last one (CAU's WeeksOfMonth). Empty = every week.
	Weeks []int `json:"weeks,omitempty" mapstructure:"weeks"`
	// Start and End are wall-clock times "HH:MM" in TZ; End may be "24:00". An End at
	// or before Start closes the window on the next day (crossing midnight).
	Start string `json:"start" mapstructure:"start"`
	End   string `json:"end" mapstructure:"end"`
	// TZ is an IANA time zone name; "" = UTC. Zones come from time.LoadLocation: the
	// binary should import time/tzdata so hosts without a zone database work too.
	TZ string `json:"tz,omitempty" mapstructure:"tz"`
	// Blackout dates ("2026-12-24") or inclusive ranges ("2026-12-24..2027-01-01"), in
	// TZ: the window is closed at every instant of those dates.
	Blackout []string `json:"blackout,omitempty" mapstructure:"blackout"`
}

// Window is a parsed maintenance window. Wall-clock rules, DST included: a start or end
// time that the clock skips (spring forward) is the instant the clock jumps past it; a
// time the clock shows twice (fall back) is its first occurrence. So a 22:00-04:00
// window lasts 7 hours on the night the clocks go back and 5 on the night they go
// forward.
type Window struct {
	days       [7]bool // by time.Weekday
	weeks      [6]bool // 1-5; all false = every week
	start, end int     // minutes after midnight; end in 1..1440
	crosses    bool    // end <= start: closes the next day
	loc        *time.Location
	blackout   [][2]int64 // merged inclusive ranges of civil day numbers
	spec       WindowSpec
}

// windowHorizonDays bounds the search of NextOpen and End (a window can be blacked out
// for a long time; it cannot hide forever).
const windowHorizonDays = 800

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
	"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday,
	"thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday,
}

// NewWindow validates spec. Errors are *FieldError values (joined), fields relative to
// the window: "days[1]", "start", "tz", "blackout[0]".
func NewWindow(spec WindowSpec) (*Window, error) { return NewWindowAt("", spec) }

// NewWindowAt is NewWindow for the window at config key key (e.g. "windows[2]"): its
// errors name their fields under it ("windows[2].start").
func NewWindowAt(key string, spec WindowSpec) (*Window, error) {
	at := ""
	if key != "" {
		at = key + "."
	}
	w := &Window{spec: spec}
	var errs []error
	if len(spec.Days) == 0 {
		errs = append(errs, fieldf(at+"days", `list the days the window opens, e.g. [tue, wed], or [all]`, "no days"))
	}
	for i, d := range spec.Days {
		d = strings.ToLower(strings.TrimSpace(d))
		if d == "all" || d == "daily" {
			w.days = [7]bool{true, true, true, true, true, true, true}
			continue
		}
		wd, ok := dayNames[d]
		if !ok {
			errs = append(errs, fieldf(at+fmt.Sprintf("days[%d]", i), "use mon, tue, wed, thu, fri, sat, sun or all", "unknown day %q", spec.Days[i]))
			continue
		}
		w.days[wd] = true
	}
	for i, wk := range spec.Weeks {
		if wk < 1 || wk > 5 {
			errs = append(errs, fieldf(at+fmt.Sprintf("weeks[%d]", i), "use 1-4 for the nth week of the month, 5 for the last", "week %d out of range", wk))
			continue
		}
		w.weeks[wk] = true
	}
	var startErr, endErr error
	if w.start, startErr = parseClock(spec.Start, false); startErr != nil {
		errs = append(errs, fieldf(at+"start", `use "HH:MM", 00:00 to 23:59`, "%v", startErr))
	}
	if w.end, endErr = parseClock(spec.End, true); endErr != nil {
		errs = append(errs, fieldf(at+"end", `use "HH:MM", 00:00 to 24:00`, "%v", endErr))
	}
	if startErr == nil && endErr == nil && w.end == w.start {
		errs = append(errs, fieldf(at+"end", `for a whole day use start "00:00" and end "24:00"`, "end equals start: empty window"))
	}
	w.crosses = w.end <= w.start
	var err error
	if w.loc, err = loadTZ(spec.TZ); err != nil {
		errs = append(errs, fieldf(at+"tz", `use an IANA zone name such as "Europe/Berlin", or "" for UTC`, "%v", err))
	}
	for i, b := range spec.Blackout {
		r, err := parseDateRange(b)
		if err != nil {
			errs = append(errs, fieldf(at+fmt.Sprintf("blackout[%d]", i), `use "2026-12-24" or "2026-12-24..2027-01-01"`, "%v", err))
			continue
		}
		w.blackout = append(w.blackout, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	w.blackout = mergeRanges(w.blackout)
	return w, nil
}

func loadTZ(tz string) (*time.Location, error) {
	if tz == "" {
		return time.UTC, nil
	}
	if strings.EqualFold(tz, "local") {
		// The machine's zone would make the window depend on where Drover runs.
		return nil, errors.New(`"Local" depends on the machine`)
	}
	return time.LoadLocation(tz)
}

// parseClock parses "HH:MM" into minutes after midnight; allow24 admits "24:00".
func parseClock(s string, allow24 bool) (int, error) {
	hh, mm, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || len(hh) < 1 || len(hh) > 2 || len(mm) != 2 || !digits(hh) || !digits(mm) {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	h, _ := strconv.Atoi(hh)
	m, _ := strconv.Atoi(mm)
	if m > 59 {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	if h > 23 && !(allow24 && h == 24 && m == 0) {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return h*60 + m, nil
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// dayNum numbers civil dates (days since 1970-01-01) independent of any zone.
func dayNum(y int, m time.Month, d int) int64 {
	return time.Date(y, m, d, 12, 0, 0, 0, time.UTC).Unix() / 86400
}

func civil(n int64) (int, time.Month, int) {
	t := time.Unix(n*86400+43200, 0).UTC()
	return t.Date()
}

func parseDate(s string) (int64, error) {
	t, err := time.Parse(time.DateOnly, strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a date YYYY-MM-DD", s)
	}
	return dayNum(t.Date()), nil
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
		if to < from {
			return [2]int64{}, fmt.Errorf("range %q ends before it starts", s)
		}
	}
	return [2]int64{from, to}, nil
}

func mergeRanges(rs [][2]int64) [][2]int64 {
	slices.SortFunc(rs, func(a, b [2]int64) int { return int(a[0] - b[0]) })
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

func (w *Window) blackedOut(day int64) bool {
	i, _ := slices.BinarySearchFunc(w.blackout, day, func(r [2]int64, d int64) int {
		switch {
		case r[1] < d:
			return -1
		case r[0] > d:
			return 1
		}
		return 0
	})
	return i < len(w.blackout) && w.blackout[i][0] <= day && day <= w.blackout[i][1]
}

// opensOn reports whether an occurrence starts on civil day n.
func (w *Window) opensOn(n int64) bool {
	y, m, d := civil(n)
	if !w.days[time.Date(y, m, d, 12, 0, 0, 0, time.UTC).Weekday()] {
		return false
	}
	if w.weeks == [6]bool{} {
		return true
	}
	if w.weeks[(d-1)/7+1] {
		return true
	}
	last := d+7 > time.Date(y, m+1, 0, 12, 0, 0, 0, time.UTC).Day()
	return w.weeks[5] && last
}

// wallTime is the instant the clock in loc shows minute min of civil day n (see Window
// for skipped and repeated wall times).
func wallTime(n int64, min int, loc *time.Location) time.Time {
	n += int64(min / 1440)
	min %= 1440
	y, m, d := civil(n)
	h, mi := min/60, min%60
	t := time.Date(y, m, d, h, mi, 0, 0, loc)
	if t.Hour() != h || t.Minute() != mi || t.Day() != d {
		// Skipped by a forward jump. Go resolved it with one of the two offsets, landing
		// before or after the gap; the gap ends where the later zone begins.
		start, end := t.ZoneBounds()
		got := dayNum(t.Date())*1440 + int64(t.Hour()*60+t.Minute())
		if got < n*1440+int64(min) {
			return end
		}
		return start
	}
	// Shown twice after a backward jump: take the earlier instant if there is one.
	if start, _ := t.ZoneBounds(); !start.IsZero() {
		_, now := t.Zone()
		_, before := start.Add(-time.Nanosecond).Zone()
		if before > now {
			c := t.Add(-time.Duration(before-now) * time.Second)
			if c.Before(start) {
				if cy, cm, cd := c.Date(); cy == y && cm == m && cd == d && c.Hour() == h && c.Minute() == mi {
					return c
				}
			}
		}
	}
	return t
}

type interval struct{ from, to time.Time }

// pieces returns the open intervals of the occurrence starting on civil day n, with
// blacked-out dates cut away (at most two: one per date the occurrence touches).
func (w *Window) pieces(n int64) []interval {
	if !w.opensOn(n) {
		return nil
	}
	open := wallTime(n, w.start, w.loc)
	endDay := n
	if w.crosses {
		endDay++
	}
	closeAt := wallTime(endDay, w.end, w.loc)
	midnight := wallTime(n+1, 0, w.loc)
	var out []interval
	if !w.blackedOut(n) {
		out = append(out, interval{open, minTime(closeAt, midnight)})
	}
	if closeAt.After(midnight) && !w.blackedOut(n+1) {
		out = append(out, interval{midnight, closeAt})
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (w *Window) dayOf(t time.Time) int64 { return dayNum(t.In(w.loc).Date()) }

// Contains reports whether the window is open at t.
func (w *Window) Contains(t time.Time) bool {
	d := w.dayOf(t)
	for n := d - 1; n <= d; n++ {
		for _, iv := range w.pieces(n) {
			if !t.Before(iv.from) && t.Before(iv.to) {
				return true
			}
		}
	}
	return false
}

// NextOpen returns the first instant at or after t at which the window is open (t
// itself when it is open), and false when it does not open within windowHorizonDays.
func (w *Window) NextOpen(t time.Time) (time.Time, bool) {
	d := w.dayOf(t)
	for n := d - 1; n <= d+windowHorizonDays; n++ {
		for _, iv := range w.pieces(n) {
			if t.Before(iv.to) {
				if t.Before(iv.from) {
					return iv.from, true
				}
				return t, true
			}
		}
	}
	return time.Time{}, false
}

// End returns when the window open at t closes (occurrences that touch count as one),
// and false when it is not open at t. A window open beyond windowHorizonDays reports
// the end of that horizon.
func (w *Window) End(t time.Time) (time.Time, bool) {
	if !w.Contains(t) {
		return time.Time{}, false
	}
	d := w.dayOf(t)
	end := t
	for n := d - 1; n <= d+windowHorizonDays; n++ {
		for _, iv := range w.pieces(n) {
			if iv.to.After(end) && !iv.from.After(end) {
				end = iv.to
			}
			if iv.from.After(end) {
				return end, true
			}
		}
	}
	return end, true
}

// Location is the window's time zone.
func (w *Window) Location() *time.Location { return w.loc }

// String describes the window for logs and reports.
func (w *Window) String() string {
	s := fmt.Sprintf("%s %s-%s %s", strings.Join(w.spec.Days, ","), w.spec.Start, w.spec.End, w.loc)
	if len(w.spec.Weeks) > 0 {
		s += fmt.Sprintf(" weeks %v", w.spec.Weeks)
	}
	if len(w.spec.Blackout) > 0 {
		s += " except " + strings.Join(w.spec.Blackout, ",")
	}
	return s
}
