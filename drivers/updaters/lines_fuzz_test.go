package updaters

import (
	"strings"
	"testing"
)

// FuzzParseUpdateLines parses arbitrary scan output of the command plug-in (what a
// node answers): no panic, every update has a name without blanks, and printing the
// updates back as lines parses to the same list.
func FuzzParseUpdateLines(f *testing.F) {
	for _, s := range []string{"", "kernel 6.1.0-31\nqemu 8.2.4\n", "# comment\n\n  tzdata\n", "a b c\n", "x\r\ny 1\r\n", "\x00 \xff", strings.Repeat("n v\n", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, out string) {
		ups, err := ParseUpdateLines(out)
		if err != nil {
			if !strings.Contains(err.Error(), "parse scan output line") {
				t.Fatalf("error does not say which line: %v", err)
			}
			return
		}
		var b strings.Builder
		for _, u := range ups {
			if u.Name == "" || strings.ContainsAny(u.Name, " \t\n") || strings.ContainsAny(u.Version, " \t\n") || strings.HasPrefix(u.Name, "#") {
				t.Fatalf("parsed update %+v from %q", u, out)
			}
			b.WriteString(strings.TrimSpace(u.Name + " " + u.Version))
			b.WriteString("\n")
		}
		again, err := ParseUpdateLines(b.String())
		if err != nil || len(again) != len(ups) {
			t.Fatalf("reparse of %q: %v, %d updates, want %d", b.String(), err, len(again), len(ups))
		}
		for i := range ups {
			if again[i] != ups[i] {
				t.Fatalf("reparse: %+v, want %+v", again[i], ups[i])
			}
		}
	})
}
