package report

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"kernel 6.1":         "kernel 6.1",
		"evil\x1b[2J":        `evil\x1b[2J`,
		"a\rb":               `a\x0db`,
		"rev\u202etxt":       `rev\u202etxt`,
		"c1\u009bx":          `c1\u009bx`,
		"bad\xffutf8":        `bad\xffutf8`,
		"line\nnext\ttab":    "line\nnext\ttab",
		"zero\u200bwidth":    `zero\u200bwidth`,
		"ünïcödé is fine 日本": "ünïcödé is fine 日本",
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzPrintable: the output never holds a character a terminal obeys, and the
// writer gives the same result however the input is split.
func FuzzPrintable(f *testing.F) {
	f.Add("evil\x1b[2J\u202e", 3)
	f.Add("日本\r", 1)
	f.Fuzz(func(t *testing.T, s string, cut int) {
		out := Printable(s)
		if !utf8.ValidString(out) {
			t.Fatalf("Printable(%q) = %q: invalid UTF-8", s, out)
		}
		for _, r := range out {
			if unsafeRune(r) {
				t.Fatalf("Printable(%q) = %q keeps %U", s, out, r)
			}
		}
		if len(s) == 0 {
			return
		}
		cut = ((cut % len(s)) + len(s)) % len(s)
		var b bytes.Buffer
		w := SafeWriter(&b)
		_, _ = w.Write([]byte(s[:cut]))
		_, _ = w.Write([]byte(s[cut:]))
		if got := b.String(); !strings.HasPrefix(out, got) || (utf8.ValidString(s) && got != out) {
			t.Fatalf("SafeWriter split at %d: %q, Printable: %q", cut, got, out)
		}
	})
}
