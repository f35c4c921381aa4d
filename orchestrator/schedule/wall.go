package schedule

import "time"

// wallTime is the instant the clock in loc shows hh:mm on the given civil date. A
// wall time the clock skips (spring forward) is the instant of the jump; one it shows
// twice (fall back) is its first occurrence. These are the rules of
// policies.Window, so a schedule and a window agree on what "02:30" means.
func wallTime(y int, m time.Month, d, hh, mm int, loc *time.Location) time.Time {
	naive := time.Date(y, m, d, hh, mm, 0, 0, time.UTC)
	shows := func(t time.Time) bool {
		l := t.In(loc)
		ly, lm, ld := l.Date()
		return ly == y && lm == m && ld == d && l.Hour() == hh && l.Minute() == mm
	}
	// The offsets in force around that day; a transition happens at most once a day.
	var found time.Time
	var offsets []int
	for _, probe := range []time.Time{naive.Add(-36 * time.Hour), naive, naive.Add(36 * time.Hour)} {
		_, off := probe.In(loc).Zone()
		offsets = append(offsets, off)
		if cand := naive.Add(-time.Duration(off) * time.Second); shows(cand) && (found.IsZero() || cand.Before(found)) {
			found = cand
		}
	}
	if !found.IsZero() {
		return found
	}
	// Skipped: read with the earlier offset the instant lies after the jump; the
	// jump is where that instant's zone period begins.
	u := naive.Add(-time.Duration(offsets[0]) * time.Second).In(loc)
	if start, _ := u.ZoneBounds(); !start.IsZero() {
		return start
	}
	return u
}

// civilDay is a date without a zone.
type civilDay struct {
	y int
	m time.Month
	d int
}

func dayOf(t time.Time, loc *time.Location) civilDay {
	y, m, d := t.In(loc).Date()
	return civilDay{y, m, d}
}

// num numbers civil days (days since 1970-01-01), independent of any zone.
func (c civilDay) num() int64 {
	return time.Date(c.y, c.m, c.d, 12, 0, 0, 0, time.UTC).Unix() / 86400
}

func dayFromNum(n int64) civilDay {
	y, m, d := time.Unix(n*86400+43200, 0).UTC().Date()
	return civilDay{y, m, d}
}

func (c civilDay) weekday() time.Weekday {
	return time.Date(c.y, c.m, c.d, 12, 0, 0, 0, time.UTC).Weekday()
}

func (c civilDay) daysInMonth() int {
	return time.Date(c.y, c.m+1, 0, 12, 0, 0, 0, time.UTC).Day()
}

func (c civilDay) String() string {
	return time.Date(c.y, c.m, c.d, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
}
