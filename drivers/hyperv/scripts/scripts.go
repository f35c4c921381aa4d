// Package scripts holds the PowerShell scripts the hyperv driver runs on cluster nodes,
// one per operation, and the one way they travel: a prelude that sets
// $ErrorActionPreference='Stop', traps any error into a JSON envelope and binds the
// operation's parameters from one JSON literal, encoded for powershell.exe
// -EncodedCommand. The WS-Man and SSH test servers decode commands with Parse, so the
// script they recognise is byte for byte the script shipped here.
package scripts

import (
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode/utf16"
)

//go:embed *.ps1
var files embed.FS

// Operation names, one per embedded script (the file name without .ps1).
const (
	Cluster   = "cluster"
	Host      = "host"
	Pause     = "pause"
	Drain     = "drain"
	Resume    = "resume"
	Migrate   = "migrate"
	MigStatus = "migstatus"
	Cancel    = "cancel"
	Reboot    = "reboot"
	Ready     = "ready"
	WUScan    = "wuscan"
	WUInstall = "wuinstall"
	WUTask    = "wutask"
	WUResult  = "wuresult"
)

// MaxCommandLine is cmd.exe's and CreateProcess's practical command-line limit on
// Windows: longer gives "The filename or extension is too long".
const MaxCommandLine = 8191

// ErrTooLong is a command that would exceed MaxCommandLine.
var ErrTooLong = errors.New("encoded command exceeds the Windows command-line limit")

// progressPrefix is what masterzen/winrm's Powershell() prepends; every command starts
// with it so that progress records do not flood stderr.
const progressPrefix = "$ProgressPreference='SilentlyContinue';"

// preludeHead starts every script: stop on the first error and report it as the one
// JSON envelope on stdout, exit 1.
const preludeHead = progressPrefix + `$ErrorActionPreference='Stop';trap{[Console]::Out.Write((ConvertTo-Json -Compress @{ok=$false;error="$_"}));exit 1}` + "\n"

// Program is the executable and fixed flags every command line starts with.
const Program = "powershell.exe -NoProfile -NonInteractive -EncodedCommand "

// Names lists every operation, sorted.
func Names() []string {
	ents, err := files.ReadDir(".")
	if err != nil {
		panic(err) // embedded at build time
	}
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".ps1"))
	}
	sort.Strings(out)
	return out
}

// Text returns the embedded script of op.
func Text(op string) (string, bool) {
	b, err := files.ReadFile(op + ".ps1")
	if err != nil {
		return "", false
	}
	return string(b), true
}

// Bind returns the script of op preceded by the parameter line, without the
// error-handling prelude (the SYSTEM task wraps it in its own).
func Bind(op string, params any) (string, error) {
	body, ok := Text(op)
	if !ok {
		return "", fmt.Errorf("unknown script %q", op)
	}
	if params == nil {
		params = struct{}{}
	}
	js, err := json.Marshal(params)
	if err != nil {
		return "", fmt.Errorf("encode parameters of %s: %w", op, err)
	}
	// A single-quoted PowerShell string: only ' needs escaping (doubled). Compact JSON
	// has no newline, so the literal stays on one line.
	return "$P=ConvertFrom-Json '" + strings.ReplaceAll(string(js), "'", "''") + "'\n" + body, nil
}

// Script returns the full PowerShell text of op with params bound.
func Script(op string, params any) (string, error) {
	b, err := Bind(op, params)
	if err != nil {
		return "", err
	}
	return preludeHead + b, nil
}

// Command returns the command line that runs op with params; it fails with ErrTooLong
// when the line would exceed MaxCommandLine.
func Command(op string, params any) (string, error) {
	s, err := Script(op, params)
	if err != nil {
		return "", err
	}
	line := Program + Encode(s)
	if len(line) > MaxCommandLine {
		return "", fmt.Errorf("script %s: %d characters: %w (%d); shorten the parameters", op, len(line), ErrTooLong, MaxCommandLine)
	}
	return line, nil
}

// Encode is PowerShell's -EncodedCommand form: base64 of UTF-16LE.
func Encode(s string) string {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		b[2*i], b[2*i+1] = byte(c), byte(c>>8)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// Decode reverses Encode.
func Decode(enc string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", fmt.Errorf("decode -EncodedCommand: %w", err)
	}
	if len(b)%2 != 0 {
		return "", errors.New("decode -EncodedCommand: odd number of bytes for UTF-16")
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
	}
	return string(utf16.Decode(u)), nil
}

var paramLine = regexp.MustCompile(`^\$P=ConvertFrom-Json '((?:[^']|'')*)'\n`)

// Parse is the servers' side: it takes a command line as it arrived (program and
// arguments joined by spaces), decodes it, and returns the operation whose embedded
// script it carries byte for byte, and the raw JSON parameters. Anything else is an
// error: a test server must not answer a script Drover does not ship.
func Parse(cmdline string) (op string, params json.RawMessage, err error) {
	fields := strings.Fields(cmdline)
	var enc string
	for i, f := range fields {
		if strings.EqualFold(f, "-EncodedCommand") && i+1 < len(fields) {
			enc = fields[i+1]
		}
	}
	if len(fields) == 0 || !strings.EqualFold(fields[0], "powershell.exe") || enc == "" {
		return "", nil, fmt.Errorf("not a powershell.exe -EncodedCommand line: %.80q", cmdline)
	}
	if len(cmdline) > MaxCommandLine {
		return "", nil, fmt.Errorf("the filename or extension is too long (%d characters)", len(cmdline))
	}
	s, err := Decode(enc)
	if err != nil {
		return "", nil, err
	}
	rest, ok := strings.CutPrefix(s, preludeHead)
	if !ok {
		return "", nil, errors.New("command lacks Drover's prelude")
	}
	return ParseBound(rest)
}

// ParseBound parses what Bind returns.
func ParseBound(s string) (op string, params json.RawMessage, err error) {
	m := paramLine.FindStringSubmatch(s)
	if m == nil {
		return "", nil, errors.New("command lacks the parameter line")
	}
	body := s[len(m[0]):]
	for _, name := range Names() {
		if t, _ := Text(name); t == body {
			js := strings.ReplaceAll(m[1], "''", "'")
			if !json.Valid([]byte(js)) {
				return "", nil, fmt.Errorf("script %s: parameters are not JSON", name)
			}
			return name, json.RawMessage(js), nil
		}
	}
	return "", nil, errors.New("script is not one Drover ships (or differs from it)")
}
