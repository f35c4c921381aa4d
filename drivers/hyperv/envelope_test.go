package hyperv

import (
	"strings"
	"testing"
)

func TestFilterCLIXML(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain-text-kept", "boom\r\n", "boom"},
		{"progress-dropped", "#< CLIXML\r\n" + `<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04"><Obj S="progress" RefId="0"><MS><PR N="Record"><AV>Preparing modules for first use.</AV></PR></MS></Obj></Objs>`, ""},
		{"error-kept-and-unescaped", "#< CLIXML\r\n" + `<Objs><Obj S="progress"/><S S="Error">Get-ClusterNode : The cluster service is not running._x000D__x000A_</S><S S="Error">At line:1 &lt;char 1&gt;_x000D__x000A_</S></Objs>`,
			"Get-ClusterNode : The cluster service is not running.\r\nAt line:1 <char 1>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := filterCLIXML(tc.in); got != tc.want {
				t.Errorf("filterCLIXML = %q; want %q", got, tc.want)
			}
		})
	}
}

func TestParseEnvelope(t *testing.T) {
	data, err := parseEnvelope("cluster", "hv1", Output{Stdout: "profile noise\r\n{\"ok\":true,\"data\":{\"name\":\"C\"}}\r\n"})
	if err != nil || string(data) != `{"name":"C"}` {
		t.Errorf("ok envelope after noise: %s, %v", data, err)
	}
	_, err = parseEnvelope("pause", "hv1", Output{Stdout: `{"ok":false,"error":"drover:paused_by_other:drover-run:x"}`, ExitCode: 1})
	if err == nil || !strings.Contains(err.Error(), "paused_by_other") {
		t.Errorf("error envelope: %v", err)
	}
	_, err = parseEnvelope("host", "hv1", Output{Stderr: "#< CLIXML\r\n<Objs><S S=\"Error\">Access is denied._x000D__x000A_</S></Objs>", ExitCode: 1})
	if err == nil || !strings.Contains(err.Error(), "Access is denied.") || strings.Contains(err.Error(), "CLIXML") {
		t.Errorf("no envelope, CLIXML error on stderr: %v", err)
	}
}

// FuzzParseEnvelope: whatever a node prints, parsing neither panics nor accepts an
// answer without an ok envelope.
func FuzzParseEnvelope(f *testing.F) {
	f.Add(`{"ok":true,"data":{"nodes":[]}}`, "")
	f.Add(`{"ok":false,"error":"x"}`, "#< CLIXML\r\n<Objs><S S=\"Error\">a_x000A_</S></Objs>")
	f.Add("", "#< CLIXML\r\n<S S=\"Error\">_xZZZZ_</S>")
	f.Fuzz(func(t *testing.T, stdout, stderr string) {
		data, err := parseEnvelope("op", "n", Output{Stdout: stdout, Stderr: stderr})
		if err == nil && !strings.Contains(stdout, `"ok"`) {
			t.Fatalf("accepted %q without an ok envelope: %s", stdout, data)
		}
		_ = filterCLIXML(stderr)
	})
}
