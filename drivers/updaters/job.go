package updaters

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/droverhq/drover/drivers"
)

// DefaultJobDir is where installs keep their state on the node: one folder per run
// (or, when the engine gives no run ID, per boot of the node).
const DefaultJobDir = "/var/lib/drover/jobs"

// jobScript runs an install detached from the SSH session that starts it, so that
// nothing Drover does to its own process (Ctrl-C, SIGKILL, a dropped connection)
// kills apt-get in the middle of dpkg. The job is a transient systemd unit where
// systemd runs, else a `nohup setsid` process (in its own session, out of the
// SSH session's process group); either way it writes its pid to DIR/pid, its
// output to DIR/log and its exit code to DIR/exit. Arguments: VERB BASE KEY [...].
//
//	status BASE KEY                  -> "none" | "running" | "lost" | "done CODE", then DIR/pending
//	start  BASE KEY PENDING CMD...   -> "started" | "running" | "done 0" (a job that
//	                                    succeeded is joined, never run twice)
//	wait   BASE KEY                  -> blocks while the job runs, then its state and DIR/log
//
// KEY names the run; empty means the node's current boot. "lost" is a job that
// started and died without an exit code (killed, or the node went down): start
// runs it again.
const jobScript = `set -u
verb=$1 base=$2 key=$3
shift 3
[ -n "$key" ] || key="boot-$(cat /proc/sys/kernel/random/boot_id)"
dir="$base/$key"
JOB='dir=$1; shift; echo $$ >"$dir/pid.tmp"; mv "$dir/pid.tmp" "$dir/pid"; export DROVER_JOB_DIR="$dir"; "$@" >>"$dir/log" 2>&1; echo $? >"$dir/exit.tmp"; mv "$dir/exit.tmp" "$dir/exit"'
nap() { sleep 0.1 2>/dev/null || sleep 1; }
# alive: the job's process exists and is not a zombie (dead, not yet reaped).
alive() {
	[ -f "$dir/pid" ] || return 1
	p=$(cat "$dir/pid")
	kill -0 "$p" 2>/dev/null || return 1
	case $(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -c1) in Z|X|x) return 1;; esac
}
# The job writes its pid once it has left the session; "launch" marks the moment
# before, so that a job on its way is waited for, never started twice.
state() {
	i=0
	while [ -f "$dir/launch" ] && [ ! -f "$dir/pid" ] && [ ! -f "$dir/exit" ] && [ $i -lt 100 ]; do nap; i=$((i+1)); done
	if [ -f "$dir/exit" ]; then echo "done $(cat "$dir/exit")"
	elif [ ! -f "$dir/pid" ] && [ ! -f "$dir/launch" ]; then echo none
	elif alive; then echo running
	elif [ -f "$dir/exit" ]; then echo "done $(cat "$dir/exit")"
	else echo lost; fi
}
case $verb in
status)
	state
	cat "$dir/pending" 2>/dev/null
	exit 0;;
start)
	pending=$1
	shift
	s=$(state)
	case $s in running|"done 0") echo "$s"; exit 0;; esac
	mkdir -p "$dir" || exit 1
	rm -f "$dir/exit" "$dir/pid" "$dir/launch"
	if [ -f "$dir/log" ]; then mv "$dir/log" "$dir/log.prev"; fi
	printf '%s' "$pending" >"$dir/pending"
	: >"$dir/log"
	: >"$dir/launch"
	if command -v systemd-run >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
		unit="drover-job-$(printf '%s' "$dir" | cksum | cut -d' ' -f1)-$$"
		systemd-run --quiet --collect --unit="$unit" /bin/sh -c "$JOB" drover-job "$dir" "$@" || exit 1
	else
		nohup setsid /bin/sh -c "$JOB" drover-job "$dir" "$@" </dev/null >/dev/null 2>&1 &
	fi
	# Answer only once the job has left this session: ending it must not take
	# the job along.
	i=0
	while [ ! -f "$dir/pid" ] && [ ! -f "$dir/exit" ]; do
		i=$((i+1))
		[ $i -le 100 ] || { echo "the job did not start within 10s" >&2; exit 1; }
		nap
	done
	echo started;;
wait)
	while :; do
		s=$(state)
		case $s in
		running) sleep 1;;
		*) echo "$s"; cat "$dir/log" 2>/dev/null; exit 0;;
		esac
	done;;
*)
	echo "unknown verb $verb" >&2
	exit 2;;
esac
`

// jobState is what the job script reports about a job.
type jobState struct {
	// State is none, running, lost or done.
	State string
	// Code is the job's exit code when State is done.
	Code int
	// Rest is what follows the state line: the pending list (status) or the log (wait).
	Rest string
}

// parseJobState reads the first line of a job script's answer; anything else is an
// error, so that a node answering garbage never passes for a finished install.
func parseJobState(out string) (jobState, error) {
	line, rest, _ := strings.Cut(out, "\n")
	line = strings.TrimSpace(line)
	switch line {
	case "none", "running", "lost", "started":
		return jobState{State: line, Rest: rest}, nil
	}
	code, ok := strings.CutPrefix(line, "done ")
	if !ok {
		return jobState{}, fmt.Errorf("job state %q: want none, running, lost, started or \"done CODE\"", clip(line))
	}
	n, err := strconv.Atoi(code)
	if err != nil || n < 0 || n > 255 {
		return jobState{}, fmt.Errorf("job state %q: exit code is not 0-255", clip(line))
	}
	return jobState{State: "done", Code: n, Rest: rest}, nil
}

// job talks to the job script of one plug-in on one node.
type job struct {
	// run runs argv on the node (the plug-in adds sudo and its timeout).
	run func(ctx context.Context, argv []string) (Output, error)
	// base is the plug-in's job folder on the node; key the run's part of the path.
	base, key string
}

func newJob(ctx context.Context, base, plugin string, run func(context.Context, []string) (Output, error)) job {
	key := ""
	if id := drivers.RunIDFrom(ctx); id != "" {
		key = plugin + "-" + pathSafe(id)
	}
	return job{run: run, base: base + "/" + plugin, key: key}
}

// pathSafe turns a run ID into one path element: readable when it is already
// safe, else a digest.
func pathSafe(id string) string {
	if len(id) <= 64 && isTokenAnyCase(id, "._-") && id[0] != '.' {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "run-" + hex.EncodeToString(sum[:12])
}

func (j job) call(ctx context.Context, verb string, args ...string) (jobState, error) {
	argv := append([]string{"/bin/sh", "-c", jobScript, "drover-job", verb, j.base, j.key}, args...)
	out, err := j.run(ctx, argv)
	if err != nil {
		return jobState{}, err
	}
	return parseJobState(out.Stdout)
}

// status says whether a job of this run is running or done on the node.
func (j job) status(ctx context.Context) (jobState, error) { return j.call(ctx, "status") }

// start runs argv detached, unless a job runs or has succeeded already (then it is
// joined). pending is kept with the job for whoever joins it.
func (j job) start(ctx context.Context, pending string, argv []string) (jobState, error) {
	return j.call(ctx, "start", append([]string{pending}, argv...)...)
}

// wait blocks until the job ends and returns its exit code and log. Cancelling ctx
// ends the wait, never the job.
func (j job) wait(ctx context.Context) (jobState, error) {
	st, err := j.call(ctx, "wait")
	if err != nil {
		return st, err
	}
	switch st.State {
	case "done":
		return st, nil
	case "lost":
		return st, errors.New("the install died without an exit code (killed, or the node went down); the next install runs it again")
	}
	return st, fmt.Errorf("no job to wait for (state %s)", st.State)
}
