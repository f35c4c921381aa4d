package runs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpen_RefusesStateFilesOthersCanWrite: a state file owned by another user or
// writable by group or world, or kept in such a folder, is refused with the path,
// the owner and the fix; nothing is opened (issue 10, item 3).
func TestOpen_RefusesStateFilesOthersCanWrite(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to another user")
	}
	const nobody = 65534
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir, path string)
		want    []string
	}{
		{"file-of-another-user", func(t *testing.T, dir, path string) { mustChown(t, path, nobody) },
			[]string{"belongs to", "uid 65534", "not to root (uid 0) who runs drover", "chown root "}},
		{"file-group-writable", func(t *testing.T, dir, path string) { mustChmod(t, path, 0o620) },
			[]string{"writable by its group (mode 0620)", "chmod 600 "}},
		{"file-world-writable", func(t *testing.T, dir, path string) { mustChmod(t, path, 0o666) },
			[]string{"writable by everyone (mode 0666)"}},
		{"folder-world-writable-sticky", func(t *testing.T, dir, path string) { mustChmod(t, dir, 0o1777) },
			[]string{"its folder", "is writable by everyone", "chmod go-w", "not /tmp"}},
		{"folder-of-another-user", func(t *testing.T, dir, path string) { mustChown(t, dir, nobody) },
			[]string{"its folder", "belongs to", "uid 65534", "chown root "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "drover.db")
			st, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			st.Close()
			tt.prepare(t, dir, path)
			for _, ro := range []bool{false, true} {
				st, err := Open(path, Options{ReadOnly: ro})
				if err == nil {
					st.Close()
					t.Fatalf("read-only %v: opened", ro)
				}
				var ue *UntrustedError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), path) {
					t.Fatalf("err = %v, want an UntrustedError naming %s", err, path)
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%q lacks %q", err, w)
					}
				}
			}
		})
	}
	// A missing file in a private folder, and a private file, are fine.
	dir := t.TempDir()
	if err := CheckTrusted(filepath.Join(dir, "new.db")); err != nil {
		t.Errorf("new file: %v", err)
	}
}

func mustChown(t *testing.T, path string, uid int) {
	t.Helper()
	if err := os.Chown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
}

func mustChmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if mode&0o1000 != 0 {
		mode = mode.Perm() | os.ModeSticky
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
