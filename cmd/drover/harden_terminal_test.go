package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLI_NoControlCharactersReachTheTerminal: update names from an update
// plug-in's output carrying ESC sequences, CR and U+202E show escaped in preview,
// apply, runs show and list and the Markdown and CSV reports; names with them in a
// cluster file or the config are refused (issue 10, item 11).
func TestCLI_NoControlCharactersReachTheTerminal(t *testing.T) {
	bin := droverBinary(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cluster.yaml"), hardCluster)
	writeFile(t, filepath.Join(dir, "drover.yaml"), strings.ReplaceAll(`state: state.db
cluster:
  name: t
  driver: sim
  sim: {cluster_file: cluster.yaml, time_scale: 1000}
  updater:
    kind: command
    command:
      scan: test -e DIR/done-"$DROVER_NODE" || printf 'evil\033[2J\033]0;pwned\007 1.0\nrev\342\200\256txt.exe 3\n'
      install: touch DIR/done-"$DROVER_NODE"
policy: {poll_interval: 1s}
`, "DIR", dir))
	raw := []string{"\x1b", "\r", "\u202e", "\a"}
	check := func(what, out string) {
		t.Helper()
		for _, r := range raw {
			if strings.Contains(out, r) {
				t.Errorf("%s prints %q raw:\n%q", what, r, out)
			}
		}
	}
	for _, args := range [][]string{
		{"preview"}, {"apply", "--yes"}, {"runs", "list"}, {"runs", "show", "last"},
		{"runs", "report", "last", "--format", "md"}, {"runs", "report", "last", "--format", "csv"},
	} {
		code, out, errOut := runDroverOut(t, bin, dir, nil, append([]string{"--config", "drover.yaml"}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, errOut)
		}
		check(fmt.Sprint(args), out+errOut)
		if args[0] == "preview" && !strings.Contains(out, `evil\x1b[2J\x1b]0;pwned\x07`) {
			t.Errorf("preview does not show the escaped name:\n%s", out)
		}
	}
	// At the edge: a cluster file's update name, the config's cluster name.
	writeFile(t, filepath.Join(dir, "bad-cluster.yaml"), strings.Replace(hardCluster, `{name: kernel, version: "2"}`, `{name: "kern\e[31mel", version: "2"}`, 1))
	writeFile(t, filepath.Join(dir, "bad-file.yaml"), "state: bad.db\ncluster: {name: t, driver: sim, sim: {cluster_file: bad-cluster.yaml}}\n")
	writeFile(t, filepath.Join(dir, "bad-name.yaml"), "state: bad.db\ncluster: {name: \"t\\u202Eevil\", driver: sim, sim: {cluster_file: cluster.yaml}}\n")
	// (A cluster file the sim cannot load fails opening the driver: exit 1.)
	for _, tt := range []struct {
		file string
		code int
		want string
	}{
		{"bad-file.yaml", 1, "nodes[0].updates[0].name: control or formatting character U+001B"},
		{"bad-name.yaml", 2, "cluster.name: control or formatting character U+202E"},
	} {
		file, want := tt.file, tt.want
		for _, cmd := range []string{"inventory", "serve"} {
			code, out, errOut := runDroverOut(t, bin, dir, nil, "--config", file, cmd)
			if code != tt.code || !strings.Contains(errOut, want) {
				t.Errorf("%s %s: exit %d, want %d and %q\n%s", file, cmd, code, tt.code, want, errOut)
			}
			check(file+" "+cmd, out+errOut)
		}
	}
}
