package chaos

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"time"
)

// Moments of a run at which a kill can land, named after what the run was doing
// (as its progress lines on stderr tell). Startup is a process that has not yet
// said which run it works on (it is reading the state, reconciling).
const (
	MomentStartup          = "startup"
	MomentPausing          = "pausing"
	MomentDrainInFlight    = "draining/in-flight"
	MomentDrainBetween     = "draining/between"
	MomentPatching         = "patching"
	MomentRebooting        = "rebooting"
	MomentVerifying        = "verifying"
	MomentResuming         = "resuming"
	MomentFailbackInFlight = "failing_back/in-flight"
	MomentFailbackBetween  = "failing_back/between"
	MomentBetweenNodes     = "between-nodes"
)

// CoreMoments are the moments the crash test must hit at least once each: the
// pause, a drain with migrations in flight, the install, the reboot wait, the
// resume and a failback.
var CoreMoments = []string{MomentPausing, MomentDrainInFlight, MomentPatching, MomentRebooting, MomentResuming, MomentFailbackInFlight}

// event is one progress line of `drover apply --json` or `runs resume --json`
// (stderr, plain lines: "15:04:05 node n1: draining").
type event struct {
	kind     string // run, node, migrate, migrated, migfail, finished
	node     string
	state    string
	vm       string
	from, to string
}

var (
	reRun      = regexp.MustCompile(`^run \S+ (started|resumed)`)
	reNode     = regexp.MustCompile(`^node (\S+): (\S+)`)
	reMigrate  = regexp.MustCompile(`^migrate (\S+) (\S+) -> (\S+)$`)
	reMigrated = regexp.MustCompile(`^migrated (\S+) (\S+) -> (\S+) in `)
	reMigFail  = regexp.MustCompile(`^migration of (\S+) (\S+) -> (\S+) failed`)
)

func parseLine(line string) (event, bool) {
	// Plain lines start with a wall-clock time stamp.
	if len(line) > 9 && line[2] == ':' && line[5] == ':' && line[8] == ' ' {
		line = line[9:]
	}
	line = strings.TrimSpace(line)
	if m := reRun.FindStringSubmatch(line); m != nil {
		return event{kind: "run", state: m[1]}, true
	}
	if m := reNode.FindStringSubmatch(line); m != nil {
		return event{kind: "node", node: m[1], state: m[2]}, true
	}
	if m := reMigrate.FindStringSubmatch(line); m != nil {
		return event{kind: "migrate", vm: m[1], from: m[2], to: m[3]}, true
	}
	if m := reMigrated.FindStringSubmatch(line); m != nil {
		return event{kind: "migrated", vm: m[1], from: m[2], to: m[3]}, true
	}
	if m := reMigFail.FindStringSubmatch(line); m != nil {
		return event{kind: "migfail", vm: m[1], from: m[2], to: m[3]}, true
	}
	return event{}, false
}

// logField finds key=value (value maybe quoted) in a log/slog text line.
var logField = regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S*)`)

// parseLogLine reads the engine's structured logs (the daemon's progress):
// msg="node state" node=n1 from=queued to=pausing, msg="migration started" vm=...
func parseLogLine(line string) (event, bool) {
	kv := map[string]string{}
	for _, m := range logField.FindAllStringSubmatch(line, -1) {
		kv[m[1]] = strings.Trim(m[2], `"`)
	}
	switch kv["msg"] {
	case "starting run", "resuming run":
		return event{kind: "run"}, true
	case "run finished":
		return event{kind: "finished"}, true
	case "node state":
		return event{kind: "node", node: kv["node"], state: kv["to"]}, true
	case "migration started":
		return event{kind: "migrate", vm: kv["vm"], from: kv["from"], to: kv["to"]}, true
	case "migration done":
		return event{kind: "migrated", vm: kv["vm"], from: kv["from"], to: kv["to"]}, true
	case "migration failed":
		return event{kind: "migfail", vm: kv["vm"], from: kv["from"], to: kv["to"]}, true
	}
	return event{}, false
}

// view is what the harness knows of the run from the progress lines: the node in
// maintenance and its state (across processes: the run is sequential), and the
// migrations in flight of the current process.
type view struct {
	started  bool
	node     string
	state    string
	inflight map[string]bool
}

func newView() *view { return &view{inflight: map[string]bool{}} }

// newProcess resets what belongs to one process.
func (v *view) newProcess() {
	v.started = false
	v.inflight = map[string]bool{}
}

func (v *view) apply(ev event) {
	switch ev.kind {
	case "run":
		v.started = true
	case "node":
		v.node, v.state = ev.node, ev.state
	case "migrate":
		v.inflight[ev.vm] = true
	case "migrated", "migfail":
		delete(v.inflight, ev.vm)
	}
}

// moment classifies the present moment.
func (v *view) moment() string {
	if !v.started {
		return MomentStartup
	}
	switch v.state {
	case "pausing":
		return MomentPausing
	case "draining":
		if len(v.inflight) > 0 {
			return MomentDrainInFlight
		}
		return MomentDrainBetween
	case "patching":
		return MomentPatching
	case "rebooting":
		return MomentRebooting
	case "verifying":
		return MomentVerifying
	case "resuming":
		return MomentResuming
	case "failing_back":
		if len(v.inflight) > 0 {
			return MomentFailbackInFlight
		}
		return MomentFailbackBetween
	}
	return MomentBetweenNodes
}

// target is where a planned kill aims: the line that arms it, and how long after
// that line it fires. A target without a trigger fires after its delay from the
// process start (a purely random moment).
type target struct {
	name    string
	trigger func(ev event, v *view) bool
	delay   time.Duration
	// fallback fires the kill anyway this long after the process started when the
	// trigger has not come (the phase may have passed, or not happen in this run).
	fallback time.Duration
}

// timing converts model durations of the cluster into wall time.
type timing struct {
	scale float64
	// hang is the wall time the sim holds pause, install and resume requests.
	hang time.Duration
}

func (tm timing) model(seconds float64) time.Duration {
	return time.Duration(seconds / tm.scale * float64(time.Second))
}

func nodeState(state string) func(event, *view) bool {
	return func(ev event, _ *view) bool { return ev.kind == "node" && ev.state == state }
}

// cycle lists the targets in the order a node goes through them, so that a
// round's kills walk through the phases of its nodes instead of skipping nodes
// while waiting for a phase that has passed.
func cycle(tm timing, failback bool) []func(r *rand.Rand) target {
	// The sim holds the request for tm.hang, then (the first time) fails it after
	// acting; the driver retries 50-100 ms later.
	window := tm.hang + 80*time.Millisecond
	quick := func(r *rand.Rand) time.Duration { return time.Duration(r.Int64N(int64(window))) }
	// A 2-4 GiB migration takes 8-15 model seconds; a reboot 60-120: half of
	// the reboot kills aim at the request, half at the wait.
	inFlight := func(r *rand.Rand) time.Duration { return time.Duration(r.Int64N(int64(tm.model(8)) + 1)) }
	reboot := func(r *rand.Rand) time.Duration {
		if r.IntN(2) == 0 {
			return quick(r)
		}
		return time.Duration(r.Int64N(int64(tm.model(60)) + 1))
	}
	mk := func(name string, trig func(event, *view) bool, d func(*rand.Rand) time.Duration) func(*rand.Rand) target {
		return func(r *rand.Rand) target {
			return target{name: name, trigger: trig, delay: d(r), fallback: 300*time.Millisecond + time.Duration(r.Int64N(int64(time.Second)))}
		}
	}
	out := []func(*rand.Rand) target{
		mk(MomentPausing, nodeState("pausing"), quick),
		mk(MomentDrainInFlight, func(ev event, v *view) bool {
			return ev.kind == "migrate" && v.state == "draining" && ev.from == v.node
		}, inFlight),
		// After a migration: the next one starts, or the drain ends by shutting
		// down the VMs that cannot migrate (held like the node requests).
		mk(MomentDrainBetween, func(ev event, v *view) bool {
			return ev.kind == "migrated" && v.state == "draining"
		}, quick),
		mk(MomentPatching, nodeState("patching"), quick),
		mk(MomentRebooting, nodeState("rebooting"), reboot),
		mk(MomentVerifying, nodeState("verifying"), func(r *rand.Rand) time.Duration { return time.Duration(r.Int64N(int64(2 * time.Millisecond))) }),
		mk(MomentResuming, nodeState("resuming"), quick),
	}
	if failback {
		out = append(out, mk(MomentFailbackInFlight, func(ev event, v *view) bool {
			return ev.kind == "migrate" && v.state == "failing_back" && ev.to == v.node
		}, inFlight))
	}
	return out
}

// randomTarget fires at a uniformly random time within the first 60 ms (startup,
// reconciliation) or the first two seconds of a process.
func randomTarget(r *rand.Rand) target {
	limit := 2 * time.Second
	if r.IntN(3) == 0 {
		limit = 60 * time.Millisecond
	}
	return target{name: "random", delay: time.Duration(r.Int64N(int64(limit)))}
}
