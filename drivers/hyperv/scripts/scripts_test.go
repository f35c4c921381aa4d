package scripts

import (
	"strings"
	"testing"
)

func TestEveryScriptIsShapedAlike(t *testing.T) {
	names := Names()
	if len(names) < 14 {
		t.Fatalf("only %d scripts: %v", len(names), names)
	}
	for _, op := range names {
		s, _ := Text(op)
		if !strings.Contains(s, "ConvertTo-Json -Compress") || !strings.Contains(s, "ok=$true") {
			t.Errorf("%s: does not end in the compressed JSON envelope", op)
		}
		if strings.Contains(s, "\t") || strings.Contains(s, "\r") {
			t.Errorf("%s: tabs or CRs (keep the encoded command small and the server's comparison exact)", op)
		}
		line, err := Command(op, map[string]string{"node": "HV1", "vm": "it's"})
		if err != nil {
			t.Fatal(err)
		}
		dec, err := Decode(strings.TrimPrefix(line, Program))
		if err != nil || !strings.HasPrefix(dec, "$ProgressPreference='SilentlyContinue';$ErrorActionPreference='Stop';trap{") {
			t.Errorf("%s: decoded command does not start with the prelude: %.120q", op, dec)
		}
		got, params, err := Parse(line)
		if err != nil || got != op || !strings.Contains(string(params), `"vm":"it's"`) {
			t.Errorf("%s: Parse = %q, %s, %v", op, got, params, err)
		}
	}
}

// FuzzParse: the test servers' decoder never panics and only names shipped scripts.
func FuzzParse(f *testing.F) {
	line, _ := Command(Cluster, nil)
	f.Add(line)
	f.Add("powershell.exe -EncodedCommand AAAA")
	f.Add("cmd.exe /c dir")
	f.Fuzz(func(t *testing.T, s string) {
		op, _, err := Parse(s)
		if err == nil {
			if _, ok := Text(op); !ok {
				t.Fatalf("parsed %q as unknown op %q", s, op)
			}
		}
	})
}
