package runs

import (
	"errors"
	"fmt"
	"testing"
)

// suiteOpenIntentsIndex checks that the index of open intents says what a read of
// the whole journal says, also for a run written before the index existed.
func suiteOpenIntentsIndex(t *testing.T, open opener) {
	s := open(t)
	run := Run{ID: "r", Cluster: "c", State: StateRunning, StartedAt: t0, Order: []string{"n"}}
	var migSeq uint64
	err := s.Update(func(tx *Tx) error {
		if err := tx.CreateRun(run, []NodeRecord{{Name: "n"}}); err != nil {
			return err
		}
		p, err := tx.Append("r", Entry{Op: OpPause, Status: StatusIntent, Node: "n"})
		if err != nil {
			return err
		}
		if _, err := tx.Append("r", Entry{Op: OpPause, Status: StatusDone, Ref: p, Node: "n"}); err != nil {
			return err
		}
		if migSeq, err = tx.Append("r", Entry{Op: OpMigrate, Status: StatusIntent, VM: "v"}); err != nil {
			return err
		}
		r, err := tx.Append("r", Entry{Op: OpReboot, Status: StatusIntent, Node: "n"})
		if err != nil {
			return err
		}
		_, err = tx.Append("r", Entry{Op: OpReboot, Status: StatusFailed, Ref: r, Node: "n"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	idx, err := s.OpenIntents("r")
	if err != nil {
		t.Fatal(err)
	}
	j, _ := s.Journal("r")
	if fmt.Sprint(idx) != fmt.Sprint(OpenIntents(j)) || len(idx) != 1 || idx[0].Seq != migSeq {
		t.Errorf("index = %+v, journal says %+v; want the migration intent %d only", idx, OpenIntents(j), migSeq)
	}
	// A run of an older drover: no index; the journal is read instead.
	if err := s.Update(func(tx *Tx) error { return tx.kv.deleteBucket(bk(bucketOpen, "r")) }); err != nil {
		t.Fatal(err)
	}
	if old, err := s.OpenIntents("r"); err != nil || len(old) != 1 || old[0].Seq != migSeq {
		t.Errorf("OpenIntents without index = %+v, %v; want the migration intent", old, err)
	}
}

// suiteCrashAfter checks the crash point: the n-th write is kept, the die
// callback runs once, and every later write fails without changing anything.
func suiteCrashAfter(t *testing.T, open opener) {
	s := open(t)
	died := 0
	s.CrashAfter(2, func() { died++ })
	write := func(id string) error {
		return s.Update(func(tx *Tx) error { return tx.CreateRun(Run{ID: id, Cluster: "c", StartedAt: t0}, nil) })
	}
	for _, id := range []string{"a", "b"} {
		if err := write(id); err != nil {
			t.Fatalf("write %s before the crash point: %v", id, err)
		}
	}
	if err := write("c"); !errors.Is(err, ErrCrashed) {
		t.Errorf("write after the crash point = %v, want ErrCrashed", err)
	}
	rs, _ := s.Runs("")
	if died != 1 || len(rs) != 2 || s.Commits() != 2 {
		t.Errorf("died %d times, %d runs kept, %d commits; want 1, 2, 2", died, len(rs), s.Commits())
	}
}

// TestStore_ScheduleSwitchSurvivesReopen: the daemon's pause switch is read back
// after the state file is closed and opened again (a restart of the daemon).
func TestStore_ScheduleSwitchSurvivesReopen(t *testing.T) {
	s, path := openTemp(t)
	if _, ok, err := s.ScheduleSwitch("prod"); ok || err != nil {
		t.Fatalf("switch of a new file = set %v, %v; want unset", ok, err)
	}
	if err := s.SetScheduleSwitch("prod", ScheduleSwitch{Paused: true, At: t0}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	sw, ok, err := s2.ScheduleSwitch("prod")
	if err != nil || !ok || !sw.Paused || !sw.At.Equal(t0) {
		t.Errorf("switch after reopen = %+v set %v, %v; want paused at %s", sw, ok, err, t0)
	}
	if _, ok, _ := s2.ScheduleSwitch("staging"); ok {
		t.Error("another cluster's switch is set")
	}
}
