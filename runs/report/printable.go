package report

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Printable returns s with every character a terminal would obey rather than show
// written as an escape: C0 and C1 controls other than newline and tab (CR, ESC,
// ...), DEL, Unicode format characters (U+202E and the other bidi overrides,
// zero-width characters) and invalid UTF-8. Text from the cluster (update names
// from an updater's output, errors, hook output) reaches terminals and reports
// through it, so it cannot move the cursor, rewrite a line or reverse a name.
func Printable(s string) string {
	if isPrintable(s) {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		writeRune(&b, r, s[:n])
		s = s[n:]
	}
	return b.String()
}

func isPrintable(s string) bool {
	for _, r := range s {
		if unsafeRune(r) {
			return false
		}
	}
	return true
}

func unsafeRune(r rune) bool {
	if r == '\n' || r == '\t' {
		return false
	}
	return r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}

func writeRune(b *strings.Builder, r rune, raw string) {
	switch {
	case r == utf8.RuneError && len(raw) <= 1:
		for i := 0; i < len(raw); i++ {
			fmt.Fprintf(b, `\x%02x`, raw[i])
		}
	case !unsafeRune(r):
		b.WriteString(raw)
	case r < 0x80:
		fmt.Fprintf(b, `\x%02x`, r)
	default:
		fmt.Fprintf(b, `\u%04x`, r)
	}
}

// SafeWriter writes what it is given through Printable. A character split across
// two writes is held until its last byte arrives.
func SafeWriter(w io.Writer) io.Writer { return &safeWriter{w: w} }

type safeWriter struct {
	w       io.Writer
	pending []byte
}

func (sw *safeWriter) Write(p []byte) (int, error) {
	buf := append(sw.pending, p...)
	// Keep an incomplete character at the end for the next write.
	cut := len(buf)
	for i := len(buf) - 1; i >= 0 && i >= len(buf)-utf8.UTFMax; i-- {
		if utf8.RuneStart(buf[i]) {
			if !utf8.FullRune(buf[i:]) {
				cut = i
			}
			break
		}
	}
	sw.pending = append([]byte(nil), buf[cut:]...)
	if _, err := io.WriteString(sw.w, Printable(string(buf[:cut]))); err != nil {
		return 0, err
	}
	return len(p), nil
}
