package schedule

import (
	"errors"
	"fmt"
	"time"

	"github.com/droverhq/drover/policies"
)

// Windows are a cluster's maintenance windows: maintenance may happen while any of
// them is open. No windows means always open.
type Windows []*policies.Window

// ParseWindows validates specs; errors name "key[i].field" where key is the list's
// config key (e.g. "windows").
func ParseWindows(key string, specs []policies.WindowSpec) (Windows, error) {
	var errs []error
	var ws Windows
	for i, s := range specs {
		w, err := policies.NewWindowAt(fmt.Sprintf("%s[%d]", key, i), s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ws = append(ws, w)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return ws, nil
}

// maxSteps bounds the loops over window occurrences.
const maxSteps = 2000

// Contains reports whether maintenance may happen at t.
func (ws Windows) Contains(t time.Time) bool {
	if len(ws) == 0 {
		return true
	}
	for _, w := range ws {
		if w.Contains(t) {
			return true
		}
	}
	return false
}

// NextOpen returns the first instant at or after t at which a window is open, and
// false when none opens within the windows' horizon.
func (ws Windows) NextOpen(t time.Time) (time.Time, bool) {
	if len(ws) == 0 {
		return t, true
	}
	var best time.Time
	for _, w := range ws {
		if at, ok := w.NextOpen(t); ok && (best.IsZero() || at.Before(best)) {
			best = at
		}
	}
	return best, !best.IsZero()
}

// End returns when maintenance must have ended if it is allowed at t: the end of the
// open window, extended by windows that overlap or touch it. The second result is
// false when no window is open at t; with no windows the end is unbounded (zero time,
// true).
func (ws Windows) End(t time.Time) (time.Time, bool) {
	if len(ws) == 0 {
		return time.Time{}, true
	}
	if !ws.Contains(t) {
		return time.Time{}, false
	}
	end := t
	limit := t.Add(endHorizon)
	for range maxSteps {
		grew := false
		for _, w := range ws {
			if e, ok := w.End(end); ok && e.After(end) {
				end, grew = e, true
			}
		}
		if !grew || !end.Before(limit) {
			break
		}
	}
	return end, true
}

// endHorizon bounds End: windows that stay open longer (always-open ones) end
// there, which no maintenance comes near.
const endHorizon = 366 * 24 * time.Hour

// Slot is the answer of Fit.
type Slot struct {
	// Start is when the work may start: now, or a later window opening.
	Start time.Time `json:"start"`
	// End is the end of the window it starts in (zero without windows).
	End time.Time `json:"end,omitzero"`
	// Fits is false when no window within the horizon is long enough; Start is then
	// the next opening (the caller decides whether to start there anyway).
	Fits bool `json:"fits"`
	// Never is true when no window opens again within the horizon.
	Never bool `json:"never,omitempty"`
}

// Fit finds when work predicted to take d may start at or after now so that it
// finishes before its window closes.
func (ws Windows) Fit(now time.Time, d time.Duration) Slot {
	if len(ws) == 0 {
		return Slot{Start: now, Fits: true}
	}
	first, ok := ws.NextOpen(now)
	if !ok {
		return Slot{Never: true}
	}
	t := first
	for range maxSteps {
		end, _ := ws.End(t)
		if !t.Add(d).After(end) {
			return Slot{Start: t, End: end, Fits: true}
		}
		next, ok := ws.NextOpen(end)
		if !ok {
			break
		}
		t = next
	}
	end, _ := ws.End(first)
	return Slot{Start: first, End: end, Fits: false}
}
