package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/droverhq/drover/cluster"
)

// CAU is a schedule in the forms of Cluster-Aware Updating's self-updating mode:
// weekdays, optionally only in some weeks of the month (1-4 = the nth such weekday,
// 5 = the last) or every N weeks from a start date, at a wall-clock time in a zone.
// It implements cron.Schedule.
type CAU struct {
	days     [7]bool
	weeks    [6]bool // index 1..5; all false = every week
	interval int     // weeks; 0 = every week
	start    civilDay
	hasStart bool
	hh, mm   int
	loc      *time.Location
	spec     Spec
}

var _ cron.Schedule = (*CAU)(nil)

func newCAU(spec Spec, loc *time.Location) (*CAU, error) {
	var errs []error
	bad := func(field, fix, problem string, args ...any) {
		errs = append(errs, cluster.Fieldf(field, fix, problem, args...))
	}
	c := &CAU{loc: loc, interval: spec.IntervalWeeks, spec: spec}
	if len(spec.Days) == 0 {
		bad("days", "list the weekdays of the schedule, e.g. [tue], or [all]", "not set")
	}
	for i, d := range spec.Days {
		d = strings.ToLower(strings.TrimSpace(d))
		if d == "all" || d == "daily" {
			c.days = [7]bool{true, true, true, true, true, true, true}
			continue
		}
		wd, ok := dayNames[d]
		if !ok {
			bad(fmt.Sprintf("days[%d]", i), "use mon, tue, wed, thu, fri, sat, sun or all", "unknown day %q", spec.Days[i])
			continue
		}
		c.days[wd] = true
	}
	for i, w := range spec.Weeks {
		if w < 1 || w > 5 {
			bad(fmt.Sprintf("weeks[%d]", i), "use 1-4 for the nth such weekday of the month, 5 for the last", "week %d out of range", w)
			continue
		}
		c.weeks[w] = true
	}
	switch {
	case spec.IntervalWeeks < 0 || spec.IntervalWeeks > 52:
		bad("interval_weeks", "use 1 to 52 (every N weeks from start_date)", "%d out of range", spec.IntervalWeeks)
	case spec.IntervalWeeks > 1 && len(spec.Weeks) > 0:
		bad("interval_weeks", "use either weeks (of the month) or interval_weeks, as CAU does", "both set")
	case spec.IntervalWeeks > 1 && spec.StartDate == "":
		bad("start_date", "set the date the interval counts from, e.g. 2026-01-05", "required with interval_weeks")
	}
	if spec.StartDate != "" {
		d, err := parseDate(spec.StartDate)
		if err != nil {
			bad("start_date", "use YYYY-MM-DD", "%v", err)
		} else {
			c.start, c.hasStart = d, true
		}
	}
	if spec.At == "" {
		bad("at", `set the start time "HH:MM" in tz, e.g. "03:00"`, "not set")
	} else if h, m, err := parseClock(spec.At); err != nil {
		bad("at", `use "HH:MM", 00:00 to 23:59`, "%v", err)
	} else {
		c.hh, c.mm = h, m
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// dueOn reports whether the schedule has an occurrence on day d.
func (c *CAU) dueOn(d civilDay) bool {
	if !c.days[d.weekday()] {
		return false
	}
	if c.hasStart && d.num() < c.start.num() {
		return false
	}
	if c.interval > 1 {
		// Weeks start on Monday; count whole weeks from the start date's week.
		monday := func(x civilDay) int64 { return x.num() - int64((x.weekday()+6)%7) }
		if (monday(d)-monday(c.start))/7%int64(c.interval) != 0 {
			return false
		}
	}
	if c.weeks == [6]bool{} {
		return true
	}
	if c.weeks[(d.d-1)/7+1] {
		return true
	}
	return c.weeks[5] && d.d+7 > d.daysInMonth()
}

// Next returns the first occurrence strictly after t, or the zero time when there is
// none within the horizon.
func (c *CAU) Next(t time.Time) time.Time {
	day := dayOf(t, c.loc).num() - 1 // a skipped wall time can land on the previous date
	for n := day; n <= day+horizonDays; n++ {
		d := dayFromNum(n)
		if !c.dueOn(d) {
			continue
		}
		if at := wallTime(d.y, d.m, d.d, c.hh, c.mm, c.loc); at.After(t) {
			return at
		}
	}
	return time.Time{}
}

// String describes the schedule ("3rd,last tue at 03:00 Europe/Berlin").
func (c *CAU) String() string {
	var b strings.Builder
	if len(c.spec.Weeks) > 0 {
		var ws []string
		for _, w := range c.spec.Weeks {
			ws = append(ws, ordinal(w))
		}
		b.WriteString(strings.Join(ws, ",") + " ")
	}
	if c.interval > 1 {
		fmt.Fprintf(&b, "every %d weeks from %s on ", c.interval, c.start)
	}
	b.WriteString(strings.Join(c.spec.Days, ","))
	fmt.Fprintf(&b, " at %02d:%02d %s", c.hh, c.mm, c.loc)
	if c.hasStart && c.interval <= 1 {
		fmt.Fprintf(&b, " from %s", c.start)
	}
	return b.String()
}

func ordinal(w int) string {
	switch w {
	case 1:
		return "1st"
	case 2:
		return "2nd"
	case 3:
		return "3rd"
	case 5:
		return "last"
	}
	return fmt.Sprintf("%dth", w)
}
