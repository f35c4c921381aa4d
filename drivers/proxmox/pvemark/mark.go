package pvemark

import (
	"fmt"
	"regexp"
	"strings"
)

// Dir is where the marks live: in /etc/pve, so every node sees them (also while the
// marked node reboots), they survive reboots, and they can only be written while the
// cluster is quorate (pmxcfs is read-only otherwise), like HA's own state.
const Dir = "/etc/pve/drover/pause"

// Lock is the cluster-wide lock the claim holds: pmxcfs serialises mkdir below
// /etc/pve/priv/lock across the cluster, which is how PVE's own tools (cfs_lock_file)
// make read-modify-write of /etc/pve atomic; a create with O_EXCL alone is not
// atomic in pmxcfs. Like PVE, the script releases it by setting its mtime to 0 and
// removing it; pmxcfs also expires a lock its holder left behind.
const Lock = "/etc/pve/priv/lock/drover-pause-mark"

// script: get lists "NODE MARK" lines; claim, under Lock, writes MARK for NODE if the
// file holds PREV ("" = no file) and answers "held CURRENT" with exit 3 otherwise
// (exit 4: the lock stayed busy for 10 s); release removes the node's mark.
// Arguments: VERB DIR LOCK [NODE [MARK PREV]].
const script = `set -u
verb=$1 dir=$2 lock=$3
case $verb in
get)
	[ -d "$dir" ] || exit 0
	for f in "$dir"/*; do
		[ -f "$f" ] || continue
		printf '%s %s\n' "${f##*/}" "$(head -c 256 "$f")"
	done
	;;
claim)
	f=$dir/$4 i=0
	until mkdir "$lock" 2>/dev/null; do
		i=$((i+1))
		[ "$i" -lt 10 ] || { echo 'lock busy'; exit 4; }
		sleep 1
	done
	cur=$(cat "$f" 2>/dev/null)
	rc=0
	if [ "$cur" != "$6" ]; then
		printf 'held %s\n' "$cur"
		rc=3
	else
		mkdir -p "$dir" && rm -f "$f" && printf '%s\n' "$5" > "$f" || rc=1
	fi
	touch -d @0 "$lock" 2>/dev/null
	rmdir "$lock"
	exit $rc
	;;
release)
	rm -f "$dir/$4"
	;;
*)
	exit 2
	;;
esac`

// Name is $0 of the script, which names it in ps and in the test sshd.
const Name = "drover-pause-mark"

// Get is the argv that lists every node's mark.
func Get() []string { return argv("get", Dir, Lock) }

// Claim is the argv that marks node with mark, replacing prev ("" when the node
// has no mark).
func Claim(node, mark, prev string) []string {
	return argv("claim", Dir, Lock, node, mark, prev)
}

// Release is the argv that removes node's mark.
func Release(node string) []string { return argv("release", Dir, Lock, node) }

func argv(args ...string) []string {
	return append([]string{"/bin/sh", "-c", script, Name}, args...)
}

// IsCall reports whether argv runs this script; it does not check the arguments.
func IsCall(argv []string) bool {
	return len(argv) >= 4 && argv[0] == "/bin/sh" && argv[1] == "-c" && argv[3] == Name
}

// SameScript reports whether argv runs exactly this version of the script.
func SameScript(argv []string) bool { return IsCall(argv) && argv[2] == script }

var (
	nodeRe = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9\-]{0,62})?$`)
	markRe = regexp.MustCompile(`^[\x21-\x7e]{1,200}$`)
)

// ValidNode and ValidMark bound what goes into a file name and a file: a PVE node
// name, and a printable mark without spaces.
func ValidNode(s string) bool { return nodeRe.MatchString(s) }

// ValidMark: see ValidNode.
func ValidMark(s string) bool { return markRe.MatchString(s) }

// ParseGet reads the answer of Get: a mark by node. Lines that are not "NODE MARK"
// with a valid node and mark are refused: the answer comes from a remote host.
func ParseGet(out string) (map[string]string, error) {
	marks := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if line == "" {
			continue
		}
		node, mark, ok := strings.Cut(line, " ")
		if !ok || !ValidNode(node) || !ValidMark(mark) {
			return nil, fmt.Errorf("pause marks: unexpected line %q", clip(line))
		}
		marks[node] = mark
	}
	return marks, nil
}

// Held reads the current mark from a refused claim's answer ("held MARK").
func Held(out string) string {
	m, _ := strings.CutPrefix(strings.TrimSpace(out), "held ")
	if !ValidMark(m) {
		return ""
	}
	return m
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
