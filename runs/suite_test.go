package runs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/droverhq/drover/runs/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// opener opens an empty store for one test.
type opener func(t *testing.T) *Store

// storeSuite is run against every backend: the records, their transactions and
// their order must not depend on where they are kept.
var storeSuite = []struct {
	name string
	fn   func(t *testing.T, open opener)
}{
	{"runs-nodes-journal", suiteRunsNodesJournal},
	{"acquire-lock", suiteAcquireLock},
	{"timings", suiteTimings},
	{"add-timings", suiteAddTimings},
	{"add-timings-drops-unreadable", suiteAddTimingsDropsUnreadable},
	{"open-intents-index", suiteOpenIntentsIndex},
	{"crash-after", suiteCrashAfter},
	{"quarantine", suiteQuarantine},
	{"export-import", suiteExportImport},
}

func TestStoreSuite(t *testing.T) {
	t.Run("bbolt", func(t *testing.T) {
		for _, tc := range storeSuite {
			t.Run(tc.name, func(t *testing.T) {
				tc.fn(t, func(t *testing.T) *Store { s, _ := openTemp(t); return s })
			})
		}
	})
	t.Run("etcd", func(t *testing.T) {
		cli := etcdtest.Start(t, 3).Client()
		var n atomic.Int64
		for _, tc := range storeSuite {
			t.Run(tc.name, func(t *testing.T) {
				tc.fn(t, func(t *testing.T) *Store {
					return openEtcdTemp(t, cli, fmt.Sprintf("/drover-test/%d", n.Add(1)), EtcdOptions{})
				})
			})
		}
	})
}

func openEtcdTemp(t *testing.T, cli *clientv3.Client, prefix string, opts EtcdOptions) *Store {
	t.Helper()
	s, err := OpenEtcd(context.Background(), cli, prefix, opts)
	if err != nil {
		t.Fatalf("OpenEtcd: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// suiteQuarantine: an unreadable run record is moved aside; the others stay.
func suiteQuarantine(t *testing.T, open opener) {
	s := open(t)
	err := s.Update(func(tx *Tx) error {
		if err := tx.CreateRun(Run{ID: "good", Cluster: "c", StartedAt: t0}, nil); err != nil {
			return err
		}
		return tx.kv.put(bk(bucketRuns), "bad", []byte("{not json"))
	})
	if err != nil {
		t.Fatal(err)
	}
	moved, err := s.Quarantine()
	if err != nil || fmt.Sprint(moved) != `["bad"]` {
		t.Fatalf("Quarantine = %v, %v; want [\"bad\"]", moved, err)
	}
	q, _ := s.Quarantined()
	rs, _ := s.Runs("")
	if fmt.Sprint(q) != `["bad"]` || len(rs) != 1 || rs[0].ID != "good" {
		t.Errorf("quarantined %v, runs %v; want [\"bad\"] and the good run", q, ids(rs))
	}
}

// campaign makes a replica win the election on prefix and returns its fence.
func campaign(t *testing.T, cli *clientv3.Client, prefix string, ttl int) (*concurrency.Session, *Fence) {
	t.Helper()
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	e := concurrency.NewElection(sess, prefix+"/election")
	if err := e.Campaign(context.Background(), "replica"); err != nil {
		t.Fatal(err)
	}
	return sess, &Fence{Key: e.Key(), CreateRev: e.Rev()}
}

// TestEtcd_FencedWrites: once a leader's lease is gone and another replica is
// elected, every write of the old leader is refused by etcd and counted, and none of
// it reaches the store; the new leader writes.
func TestEtcd_FencedWrites(t *testing.T) {
	cli := etcdtest.Start(t, 3).Client()
	const prefix = "/drover-fence"
	old := openEtcdTemp(t, cli, prefix, EtcdOptions{Fenced: true})
	if err := old.Update(func(tx *Tx) error { return nil }); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("write without a fence = %v, want ErrNotLeader", err)
	}
	write := func(s *Store, id string) error {
		return s.Update(func(tx *Tx) error { return tx.CreateRun(Run{ID: id, Cluster: "c", StartedAt: t0}, nil) })
	}
	oldSess, oldFence := campaign(t, cli, prefix, 5)
	old.SetFence(oldFence)
	if err := write(old, "by-old-leader"); err != nil {
		t.Fatalf("write of the leader: %v", err)
	}
	// The old leader's lease ends (as when it froze past its TTL); another wins.
	if _, err := cli.Revoke(context.Background(), oldSess.Lease()); err != nil {
		t.Fatal(err)
	}
	newer := openEtcdTemp(t, cli, prefix, EtcdOptions{Fenced: true})
	_, newFence := campaign(t, cli, prefix, 5)
	newer.SetFence(newFence)

	if err := write(old, "by-deposed-leader"); !errors.Is(err, ErrDeposed) {
		t.Fatalf("write of the deposed leader = %v, want ErrDeposed", err)
	}
	if err := write(newer, "by-new-leader"); err != nil {
		t.Fatalf("write of the new leader: %v", err)
	}
	rs, err := newer.Runs("")
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ids(rs)); got != "[by-old-leader by-new-leader]" && got != "[by-new-leader by-old-leader]" {
		t.Errorf("runs = %s; want the two leaders' runs and nothing of the deposed one", got)
	}
	if c, r := old.FenceStats(); c != 1 || r != 1 {
		t.Errorf("old leader: %d fenced writes committed, %d refused; want 1 and 1", c, r)
	}
	if c, r := newer.FenceStats(); c != 1 || r != 0 {
		t.Errorf("new leader: %d fenced writes committed, %d refused; want 1 and 0", c, r)
	}
}

// TestEtcd_ConcurrentWritersSerialise: two stores on one prefix (two processes)
// append to one journal at once; no sequence number is given twice and no entry is
// lost, because a transaction whose reads changed runs again.
func TestEtcd_ConcurrentWritersSerialise(t *testing.T) {
	cli := etcdtest.Start(t, 3).Client()
	a := openEtcdTemp(t, cli, "/drover-conc", EtcdOptions{})
	b := openEtcdTemp(t, cli, "/drover-conc", EtcdOptions{})
	if err := a.Update(func(tx *Tx) error { return tx.CreateRun(Run{ID: "r", Cluster: "c", StartedAt: t0}, nil) }); err != nil {
		t.Fatal(err)
	}
	const each = 15
	var wg sync.WaitGroup
	errs := make(chan error, 2*each)
	for _, s := range []*Store{a, b} {
		wg.Go(func() {
			for range each {
				errs <- s.Update(func(tx *Tx) error { _, err := tx.Append("r", Entry{Status: StatusIntent}); return err })
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	j, err := a.Journal("r")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for i, e := range j {
		if seen[e.Seq] || e.Seq != uint64(i+1) {
			t.Fatalf("journal seq %d at %d (seen before: %v); want 1..%d in order", e.Seq, i, seen[e.Seq], 2*each)
		}
		seen[e.Seq] = true
	}
	if len(j) != 2*each {
		t.Errorf("journal has %d entries, want %d", len(j), 2*each)
	}
}
