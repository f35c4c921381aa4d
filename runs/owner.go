package runs

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Owner identifies a process that holds the state file or a run lock.
type Owner struct {
	PID  int    `json:"pid"`
	Host string `json:"host"`
	// StartTicks is the process start time in clock ticks since boot (/proc/PID/stat),
	// so a recycled PID is not mistaken for the owner.
	StartTicks uint64    `json:"start_ticks,omitempty"`
	Command    string    `json:"command,omitempty"`
	Since      time.Time `json:"since"`
}

func (o Owner) String() string {
	s := fmt.Sprintf("pid %d on %s", o.PID, o.Host)
	if o.Command != "" {
		s += " (" + o.Command + ")"
	}
	if !o.Since.IsZero() {
		s += " since " + o.Since.Format(time.RFC3339)
	}
	return s
}

// Self describes the calling process.
func Self(command string, now time.Time) Owner {
	host, _ := os.Hostname()
	pid := os.Getpid()
	ticks, _, _ := procStat(pid)
	return Owner{PID: pid, Host: host, StartTicks: ticks, Command: command, Since: now}
}

// Liveness is the answer to "is this owner still running?".
type Liveness int

const (
	// Dead: the owner process is gone (or its PID now belongs to another process).
	Dead Liveness = iota
	// Alive: the owner process runs.
	Alive
	// Unknown: the owner is on another host; Drover cannot tell.
	Unknown
)

// CheckAlive tells whether the owner process still runs on this host.
func CheckAlive(o Owner) Liveness {
	host, _ := os.Hostname()
	if o.Host != host {
		return Unknown
	}
	if o.PID <= 0 {
		return Dead
	}
	ticks, state, err := procStat(o.PID)
	if err != nil {
		return Dead
	}
	if state == "Z" || state == "X" {
		return Dead
	}
	if o.StartTicks != 0 && ticks != o.StartTicks {
		return Dead
	}
	return Alive
}

// procStat reads the start time and state of a process from /proc.
func procStat(pid int) (startTicks uint64, state string, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, "", err
	}
	// The command name (field 2) may contain spaces and parentheses: fields after
	// the last ')' are fixed. State is field 3, starttime field 22.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, "", fmt.Errorf("parse /proc/%d/stat: no command field", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 {
		return 0, "", fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(fields))
	}
	startTicks, err = strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, "", fmt.Errorf("parse /proc/%d/stat starttime: %w", pid, err)
	}
	return startTicks, fields[0], nil
}
