package proxmox

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// UPID is a parsed PVE task id:
// UPID:NODE:PID:PSTART:STARTTIME:TYPE:ID:USER: (PID, PSTART, STARTTIME in hex).
type UPID struct {
	Raw       string
	Node      string
	PID       uint64
	PStart    uint64
	StartTime time.Time
	Type      string
	ID        string
	User      string
}

var (
	upidTypeRe = regexp.MustCompile(`^[A-Za-z0-9_\-]+$`)
	upidUserRe = regexp.MustCompile(`^[^\s:/@]+@[A-Za-z0-9.\-_]+(![A-Za-z0-9.\-_]+)?$`)
)

// ParseUPID parses and checks a UPID from an API answer before the driver puts it in
// a URL path.
func ParseUPID(s string) (UPID, error) {
	if len(s) > 512 {
		return UPID{}, errors.New("UPID too long")
	}
	f := strings.Split(s, ":")
	// The user part of a token's task has no colon; a trailing ":" ends the UPID.
	if len(f) != 9 || f[0] != "UPID" || f[8] != "" {
		return UPID{}, fmt.Errorf("not a UPID: %q", clip(s))
	}
	u := UPID{Raw: s, Node: f[1], Type: f[5], ID: f[6], User: f[7]}
	if !nodeNameRe.MatchString(u.Node) {
		return UPID{}, fmt.Errorf("UPID %q: invalid node name", clip(s))
	}
	var err error
	if u.PID, err = parseHex(f[2]); err != nil {
		return UPID{}, fmt.Errorf("UPID %q: pid: %w", clip(s), err)
	}
	if u.PStart, err = parseHex(f[3]); err != nil {
		return UPID{}, fmt.Errorf("UPID %q: pstart: %w", clip(s), err)
	}
	start, err := parseHex(f[4])
	if err != nil {
		return UPID{}, fmt.Errorf("UPID %q: start time: %w", clip(s), err)
	}
	u.StartTime = time.Unix(int64(start), 0)
	if !upidTypeRe.MatchString(u.Type) {
		return UPID{}, fmt.Errorf("UPID %q: invalid task type", clip(s))
	}
	if strings.ContainsAny(u.ID, "/?#% ") {
		return UPID{}, fmt.Errorf("UPID %q: invalid task id", clip(s))
	}
	if !upidUserRe.MatchString(u.User) {
		return UPID{}, fmt.Errorf("UPID %q: invalid user", clip(s))
	}
	return u, nil
}

func parseHex(s string) (uint64, error) {
	if len(s) == 0 || len(s) > 16 {
		return 0, errors.New("want 1-16 hex digits")
	}
	return strconv.ParseUint(s, 16, 64)
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// Progress is one progress line of a migration task log.
type Progress struct {
	TransferredMiB float64
	TotalMiB       float64
	// RateMiBs is the transfer rate (0 when the line has none).
	RateMiBs float64
	// Drive is the disk a storage migration's mirror line is about ("scsi0"); "" for
	// the memory (VM-state) lines.
	Drive string
}

var (
	// qemu-server 7+: "migration active, transferred 351.5 MiB of 8.0 GiB VM-state, 117.2 MiB/s"
	progressRe = regexp.MustCompile(`migration active, transferred ([0-9.]+) ?([KMGTP]?i?B) of ([0-9.]+) ?([KMGTP]?i?B) VM-state(?:, ([0-9.]+) ?([KMGTP]?i?B)/s)?`)
	// qemu-server 6: "migration status: active (transferred 123456, remaining 789, total 1000000)"
	progressOldRe = regexp.MustCompile(`migration status: active \(transferred ([0-9]+), remaining ([0-9]+), total ([0-9]+)\)`)
	// qemu-server's drive mirror of a storage migration:
	// "drive-scsi0: transferred 1.2 GiB of 32.0 GiB (3.75%) in 2s"
	mirrorRe   = regexp.MustCompile(`^(?:\S+ \S+ )?drive-([a-z]+\d+): transferred ([0-9.]+) ?([KMGTP]?i?B) of ([0-9.]+) ?([KMGTP]?i?B) \(`)
	durationRe = regexp.MustCompile(`migration finished successfully \(duration (\d+):(\d{2}):(\d{2})\)`)
)

var unitMiB = map[string]float64{"B": 1.0 / (1 << 20), "KiB": 1.0 / 1024, "KB": 1.0 / 1024, "MiB": 1, "MB": 1, "GiB": 1024, "GB": 1024, "TiB": 1 << 20, "TB": 1 << 20, "PiB": 1 << 30}

// ParseProgress reads a task log line; ok is false for lines without progress.
func ParseProgress(line string) (Progress, bool) {
	if m := progressRe.FindStringSubmatch(line); m != nil {
		done, ok1 := toMiB(m[1], m[2])
		total, ok2 := toMiB(m[3], m[4])
		if !ok1 || !ok2 || done > total {
			return Progress{}, false
		}
		p := Progress{TransferredMiB: done, TotalMiB: total}
		if m[5] != "" {
			p.RateMiBs, _ = toMiB(m[5], m[6])
		}
		return p, true
	}
	if m := mirrorRe.FindStringSubmatch(line); m != nil {
		done, ok1 := toMiB(m[2], m[3])
		total, ok2 := toMiB(m[4], m[5])
		if !ok1 || !ok2 || done > total {
			return Progress{}, false
		}
		return Progress{TransferredMiB: done, TotalMiB: total, Drive: m[1]}, true
	}
	if m := progressOldRe.FindStringSubmatch(line); m != nil {
		done, err1 := strconv.ParseFloat(m[1], 64)
		total, err2 := strconv.ParseFloat(m[3], 64)
		if err1 != nil || err2 != nil || done > total {
			return Progress{}, false
		}
		return Progress{TransferredMiB: done / (1 << 20), TotalMiB: total / (1 << 20)}, true
	}
	return Progress{}, false
}

func toMiB(num, unit string) (float64, bool) {
	f, err := strconv.ParseFloat(num, 64)
	mul, ok := unitMiB[unit]
	if err != nil || !ok || f < 0 || f > 1e12 {
		return 0, false
	}
	return f * mul, true
}

// ParseDuration reads "migration finished successfully (duration HH:MM:SS)".
func ParseDuration(line string) (time.Duration, bool) {
	m := durationRe.FindStringSubmatch(line)
	if m == nil {
		return 0, false
	}
	h, _ := strconv.Atoi(m[1])
	mi, _ := strconv.Atoi(m[2])
	s, _ := strconv.Atoi(m[3])
	if h > 10000 || mi > 59 || s > 59 {
		return 0, false
	}
	return time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute + time.Duration(s)*time.Second, true
}

// lrmMode reads the mode out of an LRM status text, "NODE (MODE, TIME)":
// "active", "idle", "maintenance mode", "old timestamp - dead?", ...
func lrmMode(node, status string) string {
	rest, ok := strings.CutPrefix(status, node+" (")
	if !ok {
		return ""
	}
	mode, _, _ := strings.Cut(rest, ",")
	return strings.TrimSuffix(mode, ")")
}
