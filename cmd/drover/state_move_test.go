package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/etcdtest"
)

// TestCLI_StateExportImport: the history of a state file moves into etcd with
// `drover state export` and `state import` (the config with ha:), and back; a
// second import into the same store is refused with exit 2.
func TestCLI_StateExportImport(t *testing.T) {
	bin := droverBinary(t)
	dir := t.TempDir()
	st, err := runs.Open(filepath.Join(dir, "state.db"), runs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Update(func(tx *runs.Tx) error {
		if err := tx.CreateRun(runs.Run{ID: "20260101-000000-abcdef", Cluster: "t", State: runs.StateSucceeded, StartedAt: time.Unix(1e9, 0).UTC(), Order: []string{"n1"}}, []runs.NodeRecord{{Name: "n1", State: "done"}}); err != nil {
			return err
		}
		_, err := tx.Append("20260101-000000-abcdef", runs.Entry{Status: runs.StatusIntent, Node: "n1"})
		return err
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	etcd := etcdtest.Start(t, 1)
	cluster := "cluster:\n  name: t\n  driver: sim\n  sim: {cluster_file: " + filepath.Join(moduleRoot(t), "testdata", "clusters", "demo.yaml") + "}\n"
	writeFile(t, filepath.Join(dir, "single.yaml"), "state: state.db\n"+cluster)
	writeFile(t, filepath.Join(dir, "ha.yaml"), cluster+"ha: {etcd: {endpoints: ["+etcd.Endpoints()[0]+"], prefix: /moved}, replica: a}\n")
	writeFile(t, filepath.Join(dir, "back.yaml"), "state: back.db\n"+cluster)

	steps := []struct {
		args     []string
		wantCode int
		want     string
	}{
		{[]string{"--config", "single.yaml", "state", "export", "one.jsonl"}, 0, ""},
		{[]string{"--config", "ha.yaml", "state", "import", "one.jsonl"}, 0, ""},
		{[]string{"--config", "ha.yaml", "state", "import", "one.jsonl"}, 2, "already holds 1 runs"},
		{[]string{"--config", "ha.yaml", "state", "export", "two.jsonl"}, 0, ""},
		{[]string{"--config", "back.yaml", "state", "import", "two.jsonl"}, 0, ""},
		{[]string{"--config", "back.yaml", "state", "export", "three.jsonl"}, 0, ""},
		{[]string{"--config", "single.yaml", "state", "import", "nothing.jsonl"}, 2, "nothing.jsonl"},
	}
	for _, s := range steps {
		code, stderr := runDrover(t, bin, dir, nil, s.args...)
		if code != s.wantCode || !strings.Contains(stderr, s.want) {
			t.Fatalf("drover %v: exit %d, stderr %q; want %d and %q", s.args, code, stderr, s.wantCode, s.want)
		}
	}
	one, two, three := readFile(filepath.Join(dir, "one.jsonl")), readFile(filepath.Join(dir, "two.jsonl")), readFile(filepath.Join(dir, "three.jsonl"))
	if one == "" || one != two || two != three {
		t.Errorf("exports differ:\nstate file %s\netcd       %s\nback       %s", one, two, three)
	}
	if fi, err := os.Stat(filepath.Join(dir, "one.jsonl")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("export file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
}
