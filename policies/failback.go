package policies

import (
	"fmt"
	"strings"
	"time"

	"github.com/droverhq/drover/cluster"
)

// FailbackMode says whether drained VMs go back to their node after it resumes.
type FailbackMode string

const (
	// FailbackNone leaves drained VMs where the drain put them (VMM's behaviour). Default:
	// with patched nodes preferred as targets, a failback is one more migration per VM.
	FailbackNone FailbackMode = "none"
	// FailbackImmediate moves every drained VM back right after the resume (CAU's default).
	FailbackImmediate FailbackMode = "immediate"
	// FailbackPolicy moves back only VMs whose PreferredNode is the resumed node, inside
	// their allowed hours.
	FailbackPolicy FailbackMode = "policy"
)

// ParseFailbackMode checks a mode name; "" is FailbackNone.
func ParseFailbackMode(s string) (FailbackMode, error) {
	switch m := FailbackMode(s); m {
	case "":
		return FailbackNone, nil
	case FailbackNone, FailbackImmediate, FailbackPolicy:
		return m, nil
	}
	return "", fieldf("failback", "use none, immediate or policy", "unknown mode %q", s)
}

// HoursWindow is a daily span of wall-clock time in a zone, e.g. "22:00-06:00" in
// Europe/Berlin. The zero value is always open.
type HoursWindow struct {
	from, to int // minutes after midnight; to may be 1440
	loc      *time.Location
	spec     string
}

// ParseHoursWindow parses "HH:MM-HH:MM" in the IANA zone tz ("" = UTC). A window whose
// end is at or before its start crosses midnight; "00:00-24:00" is the whole day.
func ParseHoursWindow(spec, tz string) (HoursWindow, error) {
	a, b, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return HoursWindow{}, fieldf("hours", `use "HH:MM-HH:MM", e.g. "22:00-06:00"`, "%q has no '-'", spec)
	}
	from, err := parseClock(a, false)
	if err != nil {
		return HoursWindow{}, fieldf("hours", `use "HH:MM-HH:MM", e.g. "22:00-06:00"`, "start: %v", err)
	}
	to, err := parseClock(b, true)
	if err != nil {
		return HoursWindow{}, fieldf("hours", `use "HH:MM-HH:MM", e.g. "22:00-06:00"`, "end: %v", err)
	}
	if from == to {
		return HoursWindow{}, fieldf("hours", `for the whole day use "00:00-24:00"`, "%q is empty", spec)
	}
	loc, err := loadTZ(tz)
	if err != nil {
		return HoursWindow{}, fieldf("tz", `use an IANA zone name such as "Europe/Berlin", or "" for UTC`, "%v", err)
	}
	return HoursWindow{from: from, to: to, loc: loc, spec: strings.TrimSpace(spec)}, nil
}

// Contains reports whether the wall clock of the window's zone at t is inside it.
func (w HoursWindow) Contains(t time.Time) bool {
	if w.loc == nil {
		return true
	}
	lt := t.In(w.loc)
	m := lt.Hour()*60 + lt.Minute()
	if w.from < w.to {
		return w.from <= m && m < w.to
	}
	return m >= w.from || m < w.to
}

func (w HoursWindow) String() string {
	if w.loc == nil {
		return "any time"
	}
	return w.spec + " " + w.loc.String()
}

// DrainedVM is a VM a drain moved off a node.
type DrainedVM struct {
	VM   string `json:"vm"`
	From string `json:"from"` // the node it was drained from (the one now resumed)
	To   string `json:"to"`   // where the drain put it
}

// FailbackPrefs are the policy-mode hours, per VM.
type FailbackPrefs struct {
	// Hours maps a VM name to the hours in which it may fail back.
	Hours map[string]HoursWindow
	// Default applies to VMs not in Hours; the zero value is any time.
	Default HoursWindow
}

// FailbackMove is one VM to move back.
type FailbackMove struct {
	VM   string `json:"vm"`
	From string `json:"from"` // where it is now
	To   string `json:"to"`   // the resumed node
}

// FailbackTargets decides which drained VMs go back to their resumed node now, and
// why each other one stays (in input order). It checks intent only: the caller
// reserves capacity with Placer.PlaceOn before migrating, so a VM that no longer fits
// stays put. A VM is left alone when it is gone, not running, not migratable, in a
// migration, back already, or moved elsewhere since the drain (someone chose that).
func FailbackTargets(mode FailbackMode, drained []DrainedVM, inv cluster.Inventory, now time.Time, prefs FailbackPrefs) ([]FailbackMove, []VMNote) {
	if mode != FailbackImmediate && mode != FailbackPolicy {
		return nil, nil
	}
	vms := make(map[string]cluster.VM, len(inv.VMs))
	for _, v := range inv.VMs {
		if _, dup := vms[v.Name]; !dup {
			vms[v.Name] = v
		}
	}
	var moves []FailbackMove
	var held []VMNote
	hold := func(d DrainedVM, format string, args ...any) {
		held = append(held, VMNote{VM: d.VM, Reason: fmt.Sprintf(format, args...)})
	}
	for _, d := range drained {
		v, ok := vms[d.VM]
		n, nodeOK := inv.Node(d.From)
		switch {
		case !ok:
			hold(d, "no longer in the inventory")
		case !nodeOK:
			hold(d, "node %s is not in the inventory", d.From)
		case n.State != cluster.NodeUp || n.Paused:
			hold(d, "node %s is not up and resumed", d.From)
		case v.Node == d.From:
			hold(d, "already on %s", d.From)
		case v.MigratingTo != "":
			hold(d, "migration to %s in flight", v.MigratingTo)
		case v.Node != d.To:
			hold(d, "moved to %s since the drain", v.Node)
		case !v.Running():
			hold(d, "not running (%s)", v.Power)
		case !v.Migratable:
			hold(d, "not migratable")
		case mode == FailbackPolicy && v.PreferredNode != d.From:
			if v.PreferredNode == "" {
				hold(d, "no preferred node")
			} else {
				hold(d, "preferred node is %s", v.PreferredNode)
			}
		case mode == FailbackPolicy && !prefs.hours(v.Name).Contains(now):
			hold(d, "outside failback hours %s", prefs.hours(v.Name))
		default:
			moves = append(moves, FailbackMove{VM: v.Name, From: v.Node, To: d.From})
		}
	}
	return moves, held
}

func (p FailbackPrefs) hours(vm string) HoursWindow {
	if h, ok := p.Hours[vm]; ok {
		return h
	}
	return p.Default
}
