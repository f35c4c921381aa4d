package runs

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/droverhq/drover/runs/etcdtest"
)

// populate writes one of every kind of record.
func populate(t *testing.T, s *Store) {
	t.Helper()
	err := s.Update(func(tx *Tx) error {
		if err := tx.CreateRun(Run{ID: "r1", Cluster: "c", State: StateRunning, StartedAt: t0, Order: []string{"n1", "n2"}}, []NodeRecord{{Name: "n1"}, {Name: "n2"}}); err != nil {
			return err
		}
		for _, e := range []Entry{{Status: StatusIntent, Node: "n1"}, {Status: StatusDone, Ref: 1, Node: "n1"}, {Status: StatusIntent, Node: "n2"}} {
			if _, err := tx.Append("r1", e); err != nil {
				return err
			}
		}
		if _, err := tx.AcquireLock(Lock{Cluster: "c", RunID: "r1", Owner: Owner{PID: 1}}, func(Owner) Liveness { return Dead }, false); err != nil {
			return err
		}
		if err := tx.AddTimings("c", []Timing{{Node: "n1", Kind: "reboot", Seconds: 3}}); err != nil {
			return err
		}
		if err := tx.SetScheduleSwitch("c", ScheduleSwitch{Paused: true, At: t0}); err != nil {
			return err
		}
		return tx.kv.put(bk(bucketRuns), "bad", []byte("{not json"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Quarantine(); err != nil {
		t.Fatal(err)
	}
}

func export(t *testing.T, s *Store) string {
	t.Helper()
	var buf bytes.Buffer
	if _, err := s.Export(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// suiteExportImport: an export imported into an empty store exports the same
// again, and the journal's sequence goes on where it was; a store that holds runs
// refuses an import.
func suiteExportImport(t *testing.T, open opener) {
	src := open(t)
	populate(t, src)
	first := export(t, src)
	dst := open(t)
	st, err := dst.Import(context.Background(), strings.NewReader(first))
	if err != nil {
		t.Fatal(err)
	}
	if st.Runs != 1 {
		t.Errorf("imported %d runs, want 1", st.Runs)
	}
	if again := export(t, dst); again != first {
		t.Errorf("export after import differs:\nfirst %s\nagain %s", first, again)
	}
	var seq uint64
	if err := dst.Update(func(tx *Tx) error { seq, err = tx.Append("r1", Entry{Status: StatusIntent}); return err }); err != nil || seq != 4 {
		t.Errorf("next journal seq after import = %d, %v; want 4", seq, err)
	}
	if open, _ := dst.OpenIntents("r1"); len(open) != 2 {
		t.Errorf("open intents after import: %d, want 2", len(open))
	}
	if _, err := dst.Import(context.Background(), strings.NewReader(first)); err == nil || !strings.Contains(err.Error(), "already holds 1 runs") {
		t.Errorf("import into a store with runs = %v, want a refusal", err)
	}
}

// TestExportImport_BboltEtcdBbolt: the history moves from bbolt to etcd and back
// unchanged.
func TestExportImport_BboltEtcdBbolt(t *testing.T) {
	cli := etcdtest.Start(t, 1).Client()
	a, _ := openTemp(t)
	populate(t, a)
	first := export(t, a)
	e := openEtcdTemp(t, cli, "/drover-move", EtcdOptions{})
	if _, err := e.Import(context.Background(), strings.NewReader(first)); err != nil {
		t.Fatal(err)
	}
	viaEtcd := export(t, e)
	b, _ := openTemp(t)
	if _, err := b.Import(context.Background(), strings.NewReader(viaEtcd)); err != nil {
		t.Fatal(err)
	}
	if back := export(t, b); back != first || viaEtcd != first {
		t.Errorf("exports differ:\nbbolt %s\netcd  %s\nback  %s", first, viaEtcd, back)
	}
}

func TestImport_BadInput(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", "the export is empty"},
		{"not-json", "hello\n", "not JSON"},
		{"wrong-format", `{"format":"other"}` + "\n", `format "other"`},
		{"record-before-bucket", `{"format":"` + ExportFormat + `","schema":"1"}` + "\n" + `{"bucket":["runs"],"key":"YQ==","value":"e30="}` + "\n", "before the bucket"},
		{"unknown-bucket", `{"format":"` + ExportFormat + `","schema":"1"}` + "\n" + `{"bucket":["evil"],"seq":0}` + "\n", `unknown bucket "evil"`},
		{"too-deep", `{"format":"` + ExportFormat + `","schema":"1"}` + "\n" + `{"bucket":["nodes","a","b"],"seq":0}` + "\n", "want one or two names"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openTemp(t)
			if _, err := s.Import(context.Background(), strings.NewReader(tt.in)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Import = %v, want an error saying %q", err, tt.want)
			}
			if rs, _ := s.Runs(""); len(rs) != 0 {
				t.Errorf("%d runs imported from bad input", len(rs))
			}
		})
	}
}
