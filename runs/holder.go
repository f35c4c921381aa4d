package runs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrNotHeld: no process holds the state file's lock (its owner side file, if
// any, is left over from a process that is gone).
var ErrNotHeld = errors.New("no process holds the state file")

// NotDroverError: the process an owner side file names may not be signalled.
type NotDroverError struct {
	Owner  Owner
	Reason string
}

func (e *NotDroverError) Error() string {
	return fmt.Sprintf("not signalling %s: %s", e.Owner, e.Reason)
}

// SignalTarget returns the process that holds the state file at path, when it is
// safe to signal it: the file's lock is really held (a read-only open with a short
// wait fails), the owner side file belongs to this user and is a plain file, and
// the process it names runs this drover's executable. ErrNotHeld when nobody holds
// the lock; *NotDroverError when the side file or the process fail a check. The
// side file alone (a PID and a readable start time) proves nothing: anyone who can
// write next to the state file could name any process.
func SignalTarget(path string) (Owner, error) {
	held, err := lockHeld(path)
	if err != nil {
		return Owner{}, err
	}
	if !held {
		return Owner{}, ErrNotHeld
	}
	side := ownerPath(path)
	st, err := os.Lstat(side)
	if err != nil {
		return Owner{}, fmt.Errorf("the state file is held, but its owner side file %s cannot be read (%w): stop that process yourself", side, err)
	}
	o, err := readOwner(path)
	if err != nil {
		return Owner{}, err
	}
	switch {
	case !st.Mode().IsRegular():
		return o, &NotDroverError{Owner: o, Reason: fmt.Sprintf("its side file %s is not a plain file", side)}
	case ownerOf(st) != os.Geteuid():
		return o, &NotDroverError{Owner: o, Reason: fmt.Sprintf("its side file %s belongs to %s, not to you", side, userName(ownerOf(st)))}
	}
	if CheckAlive(o) != Alive {
		return o, &NotDroverError{Owner: o, Reason: "that process is gone or runs on another host, yet the file is held by someone"}
	}
	if ok, why := isDrover(o.PID); !ok {
		return o, &NotDroverError{Owner: o, Reason: why}
	}
	return o, nil
}

// lockHeld tells whether another process holds the state file's write lock: a
// read-only open (a shared lock) waits a moment, then gives up.
func lockHeld(path string) (bool, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 200 * time.Millisecond})
	switch {
	case err == nil:
		db.Close()
		return false, nil
	case errors.Is(err, bolterrors.ErrTimeout):
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("state file %s: %w", path, err)
}

// isDrover tells whether process pid runs this program: /proc/PID/exe is the
// same file as our own executable, or has its name.
func isDrover(pid int) (bool, string) {
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return false, fmt.Sprintf("its executable cannot be read (%v)", err)
	}
	self, err := os.Executable()
	if err != nil {
		return false, fmt.Sprintf("this program's executable cannot be read (%v)", err)
	}
	a, aerr := os.Stat("/proc/" + strconv.Itoa(pid) + "/exe")
	b, berr := os.Stat(self)
	if aerr == nil && berr == nil && os.SameFile(a, b) {
		return true, ""
	}
	// A drover upgraded while it runs shows as "/usr/local/bin/drover (deleted)".
	if filepath.Base(strings.TrimSuffix(exe, " (deleted)")) == filepath.Base(self) {
		return true, ""
	}
	return false, fmt.Sprintf("it runs %s, not drover", exe)
}

// removeOwnOwner removes the owner side file if it names this process: a store
// closing never deletes another process's record.
func removeOwnOwner(path string) {
	o, err := readOwner(path)
	if err != nil || o.PID != os.Getpid() {
		return
	}
	_ = os.Remove(ownerPath(path))
}

// Signal sends sig to the holder SignalTarget returned.
func Signal(o Owner, sig syscall.Signal) error {
	if err := syscall.Kill(o.PID, sig); err != nil {
		return fmt.Errorf("signal %s: %w", o, err)
	}
	return nil
}
