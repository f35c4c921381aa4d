package pvemark

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// run runs the script with /bin/sh as the node would, on dir and dir's lock instead
// of Dir and Lock.
func run(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	a := argv(args...)
	a[5] = dir // args[1] is the folder
	if len(a) > 6 {
		a[6] = lockOf(dir)
	}
	out, err := exec.Command(a[0], a[1:]...).Output()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

// lockOf is the test's lock for dir (its parent exists, as /etc/pve/priv/lock does).
func lockOf(dir string) string {
	return filepath.Join(filepath.Dir(filepath.Dir(dir)), "lock", "drover-pause-mark")
}

// TestScript runs the shell script itself: the claim is exclusive, a stale mark is
// replaced only when named, release removes it, and get lists what is there.
func TestScript(t *testing.T) {
	if _, err := exec.LookPath("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	dir := filepath.Join(t.TempDir(), "drover", "pause")
	if err := os.MkdirAll(filepath.Dir(lockOf(dir)), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, code := run(t, dir, "get", Dir, Lock); code != 0 || out != "" {
		t.Fatalf("get without folder = %q, %d", out, code)
	}
	if _, code := run(t, dir, "claim", Dir, Lock, "pve1", "drover-run:a", ""); code != 0 {
		t.Fatalf("first claim exit %d", code)
	}
	out, code := run(t, dir, "claim", Dir, Lock, "pve1", "drover-run:b", "")
	if code != 3 || Held(out) != "drover-run:a" {
		t.Fatalf("second claim = %q, %d; want held by a, exit 3", out, code)
	}
	if out, code := run(t, dir, "claim", Dir, Lock, "pve1", "drover-run:b", "drover-run:x"); code != 3 || Held(out) != "drover-run:a" {
		t.Fatalf("claim naming the wrong previous mark = %q, %d", out, code)
	}
	if _, code := run(t, dir, "claim", Dir, Lock, "pve1", "drover-run:b", "drover-run:a"); code != 0 {
		t.Fatalf("claim replacing a named mark: exit %d", code)
	}
	if _, code := run(t, dir, "claim", Dir, Lock, "pve2", "drover-run:c", ""); code != 0 {
		t.Fatalf("claim of pve2: exit %d", code)
	}
	out, code = run(t, dir, "get", Dir, Lock)
	marks, err := ParseGet(out)
	if code != 0 || err != nil || len(marks) != 2 || marks["pve1"] != "drover-run:b" || marks["pve2"] != "drover-run:c" {
		t.Fatalf("get = %q, %d: %v %v", out, code, marks, err)
	}
	if _, code := run(t, dir, "release", Dir, Lock, "pve1"); code != 0 {
		t.Fatalf("release exit %d", code)
	}
	out, _ = run(t, dir, "get", Dir, Lock)
	if strings.Contains(out, "pve1") || !strings.Contains(out, "pve2 drover-run:c") {
		t.Fatalf("get after release = %q", out)
	}
	// A lock held by another claim makes the claim wait, then give up.
	if err := os.Mkdir(lockOf(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, code := run(t, dir, "claim", Dir, Lock, "pve3", "drover-run:d", ""); code != 4 || !strings.Contains(out, "lock busy") {
		t.Errorf("claim under a held lock = %q, %d; want exit 4", out, code)
	}
	if _, code := run(t, dir, "bogus", Dir, Lock); code != 2 {
		t.Errorf("unknown verb: exit %d, want 2", code)
	}
}

func TestParseGet(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		ok        bool
	}{
		{"empty", "", true},
		{"two", "pve1 drover-run:a\npve2 drover-run:b\n", true},
		{"no-mark", "pve1 \n", false},
		{"space-in-mark", "pve1 drover run\n", false},
		{"bad-node", "../x drover-run:a\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseGet(tc.out); (err == nil) != tc.ok {
				t.Errorf("ParseGet(%q) = %v", tc.out, err)
			}
		})
	}
}
