package updaters

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParseJobState reads arbitrary answers of a node's job script: no panic, a
// state is one of the known ones, an exit code is 0-255, and an answer that is
// accepted says exactly what its first line says.
func FuzzParseJobState(f *testing.F) {
	for _, s := range []string{"none\n", "running\nlibc6 2.36\n", "done 0\nSetting up\n", "done 100\nE: dpkg was interrupted\n", "lost\n", "started\n", "done -1\n", "done 256", "done 1e3", "\x00\xff", "running extra\n", " done 7 \r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, out string) {
		st, err := parseJobState(out)
		if err != nil {
			if !strings.Contains(err.Error(), "job state") {
				t.Fatalf("error does not name the job state: %v", err)
			}
			return
		}
		line, rest, _ := strings.Cut(out, "\n")
		line = strings.TrimSpace(line)
		if st.Rest != rest {
			t.Fatalf("rest %q, want %q", st.Rest, rest)
		}
		switch st.State {
		case "none", "running", "lost", "started":
			if line != st.State || st.Code != 0 {
				t.Fatalf("state %+v from line %q", st, line)
			}
		case "done":
			code, ok := strings.CutPrefix(line, "done ")
			n, err := strconv.Atoi(code)
			if !ok || err != nil || n != st.Code || st.Code < 0 || st.Code > 255 {
				t.Fatalf("state %+v from line %q", st, line)
			}
		default:
			t.Fatalf("unknown state %q from %q", st.State, out)
		}
	})
}
