package runs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// UntrustedError: the state file, or its folder, could be changed by someone other
// than the user running Drover. A run stores its policy, hook and health-gate
// command lines included, and resuming it runs them: whoever can write the file
// (or replace it through its folder) could have commands run as this user.
type UntrustedError struct {
	Path    string
	Problem string
	Fix     string
}

func (e *UntrustedError) Error() string {
	return fmt.Sprintf("state file %s: %s; fix: %s", e.Path, e.Problem, e.Fix)
}

// CheckTrusted refuses a state file that is owned by another user or writable by
// its group or by everyone, and a folder that is owned by another user (root
// excepted) or writable by its group or by everyone (sticky or not: the owner side
// file is written there too). A missing file is fine when its folder is.
func CheckTrusted(path string) error {
	uid := os.Geteuid()
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err == nil {
		owner, mode := ownerOf(st), st.Mode().Perm()
		switch {
		case owner != uid && owner != 0:
			return &UntrustedError{Path: path, Problem: fmt.Sprintf("its folder %s belongs to %s, not to %s who runs drover", dir, userName(owner), userName(uid)),
				Fix: fmt.Sprintf("keep the state file in a folder of your own: chown %s %s, or set `state` to a path in one (e.g. /var/lib/drover/drover.db)", userName(uid), dir)}
		case mode&0o022 != 0:
			return &UntrustedError{Path: path, Problem: fmt.Sprintf("its folder %s is writable by %s (mode %04o)", dir, whoWrites(mode), mode),
				Fix: fmt.Sprintf("chmod go-w %s, or set `state` to a path in a private folder (not /tmp)", dir)}
		}
	}
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return nil // Open reports it
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		if st, err = os.Stat(path); err != nil {
			return nil
		}
	}
	if !st.Mode().IsRegular() {
		return nil // Open says what it is
	}
	owner, mode := ownerOf(st), st.Mode().Perm()
	switch {
	case owner != uid:
		return &UntrustedError{Path: path, Problem: fmt.Sprintf("it belongs to %s, not to %s who runs drover: its runs' hook and health-gate commands would run as %[2]s", userName(owner), userName(uid)),
			Fix: fmt.Sprintf("check the file, then chown %s %s (or run drover as %s)", userName(uid), path, userName(owner))}
	case mode&0o022 != 0:
		return &UntrustedError{Path: path, Problem: fmt.Sprintf("it is writable by %s (mode %04o)", whoWrites(mode), mode),
			Fix: "check the file, then chmod 600 " + path}
	}
	return nil
}

func ownerOf(st fs.FileInfo) int {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return int(sys.Uid)
	}
	return os.Geteuid()
}

func whoWrites(mode fs.FileMode) string {
	switch {
	case mode&0o002 != 0:
		return "everyone"
	default:
		return "its group"
	}
}

// userName is "name (uid N)", or "uid N" when the user has no name here.
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("%s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}
