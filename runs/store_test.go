package runs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "drover.db")
	s, err := Open(path, Options{Owner: Self("test", t0)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestOpen_CreatesPrivateFileAndOwnerSidecar(t *testing.T) {
	s, path := openTemp(t)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o600 {
		t.Errorf("state file mode = %o, want 600", mode)
	}
	o, err := HolderOf(path)
	if err != nil {
		t.Fatalf("HolderOf: %v", err)
	}
	if o.PID != os.Getpid() {
		t.Errorf("owner pid = %d, want %d", o.PID, os.Getpid())
	}
	s.Close()
	if _, err := os.Stat(path + ".owner"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("owner sidecar left after Close: %v", err)
	}
}

func TestOpen_TightensLooseMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drover.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode after reopen = %o, want 600", st.Mode().Perm())
	}
}

func TestOpen_BadInput(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a database\n", 400)), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		opts    Options
		wantErr string
		wantIs  error
	}{
		{name: "missing-read-only", path: filepath.Join(dir, "none.db"), opts: Options{ReadOnly: true}, wantIs: ErrNoState},
		{name: "missing-folder", path: filepath.Join(dir, "no", "such", "x.db"), wantErr: "does not exist: create it"},
		{name: "a-folder", path: dir, wantErr: "it is a folder"},
		{name: "not-bbolt", path: garbage, wantErr: "not a Drover state file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(tt.path, tt.opts)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v is not %v", err, tt.wantIs)
			}
			if tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "none.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("read-only open of a missing file created it")
	}
}

// TestOpen_LockedByLiveProcess holds the file in a child process (this test binary
// re-executed) and checks a second open fails fast, naming the holder.
func TestOpen_LockedByLiveProcess(t *testing.T) {
	if path := os.Getenv("DROVER_TEST_HOLD_STATE"); path != "" {
		s, err := Open(path, Options{Owner: Self("holder", t0)})
		if err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("held\n")
		buf := make([]byte, 1)
		os.Stdin.Read(buf) // hold until the parent closes our stdin
		s.Close()
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "drover.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestOpen_LockedByLiveProcess$")
	cmd.Env = append(os.Environ(), "DROVER_TEST_HOLD_STATE="+path)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line := make([]byte, 5)
	if _, err := stdout.Read(line); err != nil || string(line) != "held\n" {
		t.Fatalf("holder did not start: %q %v", line, err)
	}
	_, err := Open(path, Options{Timeout: 50 * time.Millisecond})
	var le *LockedError
	if !errors.As(err, &le) {
		t.Fatalf("Open = %v, want *LockedError", err)
	}
	if le.Owner == nil || le.Owner.PID != cmd.Process.Pid {
		t.Errorf("LockedError owner = %+v, want pid %d", le.Owner, cmd.Process.Pid)
	}
	if !strings.Contains(err.Error(), "drover runs stop") {
		t.Errorf("message %q gives no fix", err)
	}
}

func suiteRunsNodesJournal(t *testing.T, open opener) {
	s := open(t)
	older := Run{ID: "r1", Cluster: "c", State: StateSucceeded, StartedAt: t0, Order: []string{"n1"}}
	newer := Run{ID: "r2", Cluster: "c", State: StateRunning, StartedAt: t0.Add(time.Hour), Order: []string{"n2", "n1"}}
	other := Run{ID: "r3", Cluster: "d", State: StateRunning, StartedAt: t0.Add(2 * time.Hour), Order: []string{"x"}}
	err := s.Update(func(tx *Tx) error {
		if err := tx.CreateRun(older, []NodeRecord{{Name: "n1", State: "done"}}); err != nil {
			return err
		}
		if err := tx.CreateRun(newer, []NodeRecord{{Name: "n1", State: "queued"}, {Name: "n2", State: "queued"}}); err != nil {
			return err
		}
		return tx.CreateRun(other, []NodeRecord{{Name: "x"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Tx) error { return tx.CreateRun(older, nil) }); err == nil {
		t.Error("CreateRun of an existing ID succeeded")
	}
	rs, err := s.Runs("c")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].ID != "r2" || rs[1].ID != "r1" {
		t.Errorf("Runs(c) = %v, want r2, r1", ids(rs))
	}
	all, _ := s.Runs("")
	if len(all) != 3 || all[0].ID != "r3" {
		t.Errorf("Runs() = %v, want r3 first of 3", ids(all))
	}
	ns, err := s.Nodes("r2")
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 2 || ns[0].Name != "n2" {
		t.Errorf("Nodes(r2) not in run order: %+v", ns)
	}
	if _, err := s.Run("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Run(nope) = %v, want ErrNotFound", err)
	}

	// Intent and outcome: an intent without outcome stays open.
	var pauseSeq, migSeq uint64
	err = s.Update(func(tx *Tx) error {
		var err error
		if pauseSeq, err = tx.Append("r2", Entry{Op: OpPause, Status: StatusIntent, Node: "n2"}); err != nil {
			return err
		}
		if _, err = tx.Append("r2", Entry{Op: OpPause, Status: StatusDone, Ref: pauseSeq, Node: "n2"}); err != nil {
			return err
		}
		migSeq, err = tx.Append("r2", Entry{Op: OpMigrate, Status: StatusIntent, VM: "v1", From: "n2", To: "n1"})
		if err != nil {
			return err
		}
		return tx.UpdateNode("r2", "n2", func(n *NodeRecord) error { n.State = "draining"; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	j, _ := s.Journal("r2")
	idx := OpenIntents(j)
	if len(idx) != 1 || idx[0].Seq != migSeq || idx[0].VM != "v1" {
		t.Errorf("OpenIntents = %+v, want the migration intent %d only", idx, migSeq)
	}
	ns, _ = s.Nodes("r2")
	if ns[0].State != "draining" {
		t.Errorf("node n2 state = %q, want draining", ns[0].State)
	}

	// A failed transaction leaves nothing behind.
	boom := errors.New("boom")
	err = s.Update(func(tx *Tx) error {
		if _, err := tx.Append("r2", Entry{Op: OpReboot, Status: StatusIntent, Node: "n2"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	if j2, _ := s.Journal("r2"); len(j2) != len(j) {
		t.Errorf("journal grew by a rolled-back transaction: %d -> %d", len(j), len(j2))
	}
}

func ids(rs []Run) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func suiteAcquireLock(t *testing.T, open opener) {
	me := Owner{PID: 100, Host: "h", StartTicks: 1}
	dead := Owner{PID: 200, Host: "h", StartTicks: 2}
	live := Owner{PID: 300, Host: "h", StartTicks: 3}
	remote := Owner{PID: 400, Host: "other", StartTicks: 4}
	alive := func(o Owner) Liveness {
		switch o.PID {
		case 100, 300:
			return Alive
		case 400:
			return Unknown
		}
		return Dead
	}
	tests := []struct {
		name         string
		existing     *Lock
		force        bool
		wantErr      bool
		wantPrevious string
	}{
		{name: "free", existing: nil},
		{name: "stale-lock-of-dead-process-taken-over", existing: &Lock{Cluster: "c", RunID: "old", Owner: dead}, wantPrevious: "old"},
		{name: "live-holder-refused", existing: &Lock{Cluster: "c", RunID: "old", Owner: live}, wantErr: true},
		{name: "remote-holder-refused", existing: &Lock{Cluster: "c", RunID: "old", Owner: remote}, wantErr: true},
		{name: "remote-holder-forced", existing: &Lock{Cluster: "c", RunID: "old", Owner: remote}, force: true, wantPrevious: "old"},
		{name: "own-lock-retaken", existing: &Lock{Cluster: "c", RunID: "r", Owner: me}, wantPrevious: "r"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			if tt.existing != nil {
				if err := s.Update(func(tx *Tx) error {
					_, err := tx.AcquireLock(*tt.existing, func(Owner) Liveness { return Dead }, false)
					return err
				}); err != nil {
					t.Fatal(err)
				}
			}
			err := s.Update(func(tx *Tx) error {
				prev, err := tx.AcquireLock(Lock{Cluster: "c", RunID: "r", Owner: me}, alive, tt.force)
				if err != nil {
					return err
				}
				if got := ""; prev != nil {
					got = prev.RunID
					if got != tt.wantPrevious {
						t.Errorf("previous = %q, want %q", got, tt.wantPrevious)
					}
				} else if tt.wantPrevious != "" {
					t.Errorf("previous = nil, want %q", tt.wantPrevious)
				}
				return nil
			})
			var rle *RunLockedError
			if tt.wantErr != errors.As(err, &rle) {
				t.Fatalf("AcquireLock err = %v, wantErr %v", err, tt.wantErr)
			}
			s.View(func(tx *Tx) error {
				l, ok, _ := tx.Lock("c")
				if !tt.wantErr && (!ok || l.RunID != "r") {
					t.Errorf("lock after acquire = %+v %v, want run r", l, ok)
				}
				if tt.wantErr && l.RunID != "old" {
					t.Errorf("refused acquire changed the lock to %+v", l)
				}
				return nil
			})
		})
	}
}

func TestCheckAlive(t *testing.T) {
	self := Self("test", t0)
	if got := CheckAlive(self); got != Alive {
		t.Errorf("CheckAlive(self) = %v, want Alive", got)
	}
	recycled := self
	recycled.StartTicks++
	if got := CheckAlive(recycled); got != Dead {
		t.Errorf("CheckAlive(recycled pid) = %v, want Dead", got)
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	gone := Owner{PID: cmd.Process.Pid, Host: self.Host, StartTicks: 1}
	if got := CheckAlive(gone); got != Dead {
		t.Errorf("CheckAlive(exited pid) = %v, want Dead", got)
	}
	if got := CheckAlive(Owner{PID: 1, Host: "elsewhere"}); got != Unknown {
		t.Errorf("CheckAlive(other host) = %v, want Unknown", got)
	}
}

func suiteTimings(t *testing.T, open opener) {
	s := open(t)
	err := s.Update(func(tx *Tx) error {
		return tx.AddTimings("c", []Timing{{Node: "n1", Kind: "reboot", Seconds: 90}, {Node: "n1", Kind: "install", Seconds: 30}})
	})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := s.Timings("c")
	if err != nil || len(ts) != 2 || ts[0].Kind != "reboot" || ts[1].Seconds != 30 {
		t.Errorf("Timings = %+v, %v", ts, err)
	}
	if ts, _ := s.Timings("none"); len(ts) != 0 {
		t.Errorf("Timings(none) = %+v", ts)
	}
}
