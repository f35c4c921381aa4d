package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// runOnTerminal runs drover with stdin, stdout and stderr on a pseudo-terminal of
// rows x 160 and returns its exit status and everything it wrote there.
func runOnTerminal(t *testing.T, bin, dir string, env []string, rows int, args ...string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(dir, "home"), "TERM=xterm"}, env...)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: uint16(rows), Cols: 160})
	if err != nil {
		t.Fatalf("start drover on a pty: %v", err)
	}
	defer f.Close()
	var out bytes.Buffer
	_, err = io.Copy(&out, f) // ends with EIO once drover has exited and closed the pty
	var pe *os.PathError
	if err != nil && !errors.As(err, &pe) {
		t.Fatalf("read pty: %v", err)
	}
	code := 0
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("wait: %v", err)
		}
		code = ee.ExitCode()
	}
	return code, out.Bytes()
}

// screen replays what a terminal of rows lines shows, scrollback included: text,
// CR, LF, cursor up (which stops at the top of the visible screen), erase line and
// erase below. Other escape sequences are dropped.
func screen(raw []byte, rows int) []string {
	lines := []string{""}
	row, col := 0, 0
	put := func(r rune) {
		l := []rune(lines[row])
		for len(l) < col {
			l = append(l, ' ')
		}
		if col < len(l) {
			l[col] = r
		} else {
			l = append(l, r)
		}
		lines[row] = string(l)
		col++
	}
	csi := regexp.MustCompile(`^\x1b\[([0-9;?]*)([A-Za-z])`)
	s := string(raw)
	for len(s) > 0 {
		if m := csi.FindStringSubmatch(s); m != nil {
			s = s[len(m[0]):]
			n := 1
			if m[1] != "" && !strings.ContainsAny(m[1], ";?") {
				n = 0
				for _, c := range m[1] {
					n = n*10 + int(c-'0')
				}
			}
			switch m[2] {
			case "A":
				top := max(0, len(lines)-rows)
				row = max(top, row-n)
			case "K":
				if m[1] == "2" {
					lines[row] = ""
				} else if col < len([]rune(lines[row])) {
					lines[row] = string([]rune(lines[row])[:col])
				}
			case "J":
				if col < len([]rune(lines[row])) {
					lines[row] = string([]rune(lines[row])[:col])
				}
				lines = lines[:row+1]
			}
			continue
		}
		r := []rune(s)[0]
		s = s[len(string(r)):]
		switch r {
		case '\r':
			col = 0
		case '\n':
			row++
			if row == len(lines) {
				lines = append(lines, "")
			}
		case '\x1b':
		default:
			put(r)
		}
	}
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// checkReportLast: the screen ends with the run's report, whole (header, table
// header, a row per node, summary), and no frame of the live display is left on it.
func checkReportLast(t *testing.T, lines []string, state string, nodes []string) {
	t.Helper()
	show := strings.Join(lines, "\n")
	head := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "Run ") && strings.Contains(l, " on cluster ") {
			head = i
		}
		if strings.Contains(l, "finished,") && strings.Contains(l, "in flight") {
			t.Errorf("a frame of the live display is left on the screen (line %d: %q):\n%s", i+1, l, show)
		}
	}
	if head < 0 {
		t.Fatalf("no report header on the screen:\n%s", show)
	}
	if !strings.Contains(lines[head], ": "+state) {
		t.Errorf("report header %q: want state %s", lines[head], state)
	}
	rest := lines[head+1:]
	if len(rest) < len(nodes)+2 || !strings.HasPrefix(rest[0], "NODE ") {
		t.Fatalf("report table is not intact after its header:\n%s", show)
	}
	seen := map[string]bool{}
	for _, l := range rest[1 : 1+len(nodes)] {
		seen[strings.Fields(l + " -")[0]] = true
	}
	for _, n := range nodes {
		if !seen[n] {
			t.Errorf("report table has no row of node %s:\n%s", n, show)
		}
	}
	if !regexp.MustCompile(`^\d+/\d+ nodes done`).MatchString(rest[1+len(nodes)]) {
		t.Errorf("summary line = %q", rest[1+len(nodes)])
	}
	for _, l := range rest[1+len(nodes):] {
		if strings.Contains(l, "level=") {
			t.Errorf("a log line below the report: %q", l)
		}
	}
	for _, l := range lines {
		if i := strings.Index(l, "level="); i >= 0 && !strings.HasPrefix(l, "time=") {
			t.Errorf("a log line mixed into another line: %q\n%s", l, show)
		}
	}
}

// TestTerminal_DemoReportIsLastAndIntact runs `make demo`'s command on a terminal
// (a pty): the report comes last and whole, no stale frame above it (issue 16).
func TestTerminal_DemoReportIsLastAndIntact(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo (about 20 s)")
	}
	bin := droverBinary(t)
	dir := t.TempDir()
	root := moduleRoot(t)
	const rows = 60
	code, raw := runOnTerminal(t, bin, root, []string{"DROVER_STATE=" + filepath.Join(dir, "demo.db")}, rows,
		"--config", "testdata/demo.yaml", "apply", "--yes")
	lines := screen(raw, rows)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, strings.Join(lines, "\n"))
	}
	checkReportLast(t, lines, "succeeded", []string{"n1", "n2", "n3", "n4"})
}

// TestTerminal_FailingRunReportIsIntact: a run that fails (a node's install fails,
// migrations fail and are logged as warnings) ends with its report intact; the
// warnings are printed above the display, whole lines.
func TestTerminal_FailingRunReportIsIntact(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a simulated cluster")
	}
	bin := droverBinary(t)
	dir := t.TempDir()
	root := moduleRoot(t)
	cl, err := os.ReadFile(filepath.Join(root, "testdata", "clusters", "demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	faulty := strings.Replace(string(cl), "faults: []", `faults:
  - {kind: migration_fail, vm: web-1, times: 2}
  - {kind: install_fail, node: n2, always: true}`, 1)
	writeFile(t, filepath.Join(dir, "cluster.yaml"), faulty)
	writeFile(t, filepath.Join(dir, "drover.yaml"), `state: state.db
cluster: {name: demo, driver: sim, sim: {cluster_file: cluster.yaml, time_scale: 60}}
policy: {max_parallel_migrations: 4, retries_per_node: 0, max_failed_nodes: 0, reboot_timeout: 15m}
log: {level: warn}
`)
	const rows = 60
	code, raw := runOnTerminal(t, bin, dir, nil, rows, "--config", "drover.yaml", "apply", "--yes")
	lines := screen(raw, rows)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, strings.Join(lines, "\n"))
	}
	if !strings.Contains(string(raw), "level=WARN") {
		t.Errorf("no warning was logged: the test does not exercise log lines:\n%s", strings.Join(lines, "\n"))
	}
	checkReportLast(t, lines, "failed", []string{"n1", "n2", "n3", "n4"})
}
