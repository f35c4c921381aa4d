package schedule

import (
	"time"

	"github.com/robfig/cron/v3"
)

// dstCron gives a robfig/cron spec the wall-clock rules of maintenance windows. Left
// alone, robfig skips a time the clock jumps over (a daily "30 2 * * *" in
// Europe/Berlin does not run on the last Sunday of March) and runs a time the clock
// shows twice two times (it runs twice on the last Sunday of October). Here a skipped
// time is due at the instant of the jump and a repeated one only at its first
// occurrence. Descriptors such as "@every 2h" are intervals and stay as they are.
type dstCron struct {
	spec *cron.SpecSchedule
}

var _ cron.Schedule = dstCron{}

// starBit marks a cron field given as "*" (robfig/cron's encoding).
const starBit = 1 << 63

func withDSTRules(s cron.Schedule) cron.Schedule {
	if spec, ok := s.(*cron.SpecSchedule); ok {
		return dstCron{spec: spec}
	}
	return s
}

func (c dstCron) Next(t time.Time) time.Time {
	loc := c.spec.Location
	for range maxSteps {
		n := c.spec.Next(t)
		if n.IsZero() {
			return n
		}
		if g, ok := c.skippedDue(t, n, loc); ok {
			return g
		}
		if !repeatedWallTime(n, loc) {
			return n
		}
		t = n
	}
	return time.Time{}
}

// skippedDue finds a forward jump of the clock after t and before n during which the
// spec would have been due, and returns the instant of that jump.
func (c dstCron) skippedDue(t, n time.Time, loc *time.Location) (time.Time, bool) {
	cur := t.In(loc)
	for range maxSteps {
		_, end := cur.ZoneBounds()
		if end.IsZero() || !end.Before(n) {
			return time.Time{}, false
		}
		_, offBefore := end.Add(-time.Nanosecond).In(loc).Zone()
		_, offAfter := end.In(loc).Zone()
		if offAfter > offBefore && end.After(t) {
			// Wall times from end (read with the old offset) to end (new offset) never
			// showed; check each skipped minute against the spec.
			wall := end.Add(time.Duration(offBefore) * time.Second).UTC()
			for m := 0; m < (offAfter-offBefore)/60; m++ {
				if c.matches(wall.Add(time.Duration(m) * time.Minute)) {
					return end, true
				}
			}
		}
		cur = end.In(loc)
	}
	return time.Time{}, false
}

// matches reports whether the wall time w (fields read in UTC) fits the spec's
// minute, hour, day and month fields, with cron's day-of-month/day-of-week rule.
func (c dstCron) matches(w time.Time) bool {
	s := c.spec
	if 1<<uint(w.Minute())&s.Minute == 0 || 1<<uint(w.Hour())&s.Hour == 0 || 1<<uint(w.Month())&s.Month == 0 {
		return false
	}
	dom := 1<<uint(w.Day())&s.Dom > 0
	dow := 1<<uint(w.Weekday())&s.Dow > 0
	if s.Dom&starBit > 0 || s.Dow&starBit > 0 {
		return dom && dow
	}
	return dom || dow
}

// repeatedWallTime reports whether the wall time n shows was already shown earlier,
// before the clock went back.
func repeatedWallTime(n time.Time, loc *time.Location) bool {
	l := n.In(loc)
	start, _ := l.ZoneBounds()
	if start.IsZero() {
		return false
	}
	_, offNow := l.Zone()
	_, offBefore := start.Add(-time.Nanosecond).In(loc).Zone()
	if offBefore <= offNow {
		return false
	}
	earlier := n.Add(-time.Duration(offBefore-offNow) * time.Second)
	if !earlier.Before(start) {
		return false
	}
	e := earlier.In(loc)
	return e.Hour() == l.Hour() && e.Minute() == l.Minute() && e.Day() == l.Day()
}
