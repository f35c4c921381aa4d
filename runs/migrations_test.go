package runs

import (
	"fmt"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestTx_MigrationsApart: a run keeps its migrations apart from its node records.
// Readers get them with the record, in order and per node; UpdateNode does not
// rewrite them; the stored record does not grow with them. A run written before
// (no migrations bucket) keeps them in the record and reads as before.
func TestTx_MigrationsApart(t *testing.T) {
	for _, old := range []bool{false, true} {
		t.Run(map[bool]string{false: "apart", true: "older-run-in-the-record"}[old], func(t *testing.T) {
			s, _ := openTemp(t)
			run := Run{ID: "r", Cluster: "c", State: StateRunning, StartedAt: t0, Order: []string{"a", "ab"}}
			if err := s.Update(func(tx *Tx) error {
				if err := tx.CreateRun(run, []NodeRecord{{Name: "a"}, {Name: "ab"}}); err != nil {
					return err
				}
				if old {
					return tx.kv.deleteBucket(bk(bucketMigrations, "r"))
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			// "ab" shares a prefix with "a": each node's migrations are a bucket of their own.
			for i := range 3 {
				for _, n := range []string{"a", "ab"} {
					err := s.Update(func(tx *Tx) error {
						if got := tx.MigrationsApart("r"); got == old {
							t.Fatalf("MigrationsApart = %v for an older run = %v", got, old)
						}
						if err := tx.AppendMigration("r", n, Migration{VM: fmt.Sprintf("%s-vm%d", n, i), OK: true}); err != nil {
							return err
						}
						return tx.UpdateNode("r", n, func(rec *NodeRecord) error {
							if !old && len(rec.Migrations) != 0 {
								t.Errorf("UpdateNode handed %d migrations kept apart", len(rec.Migrations))
							}
							rec.Notes = append(rec.Notes, "x")
							return nil
						})
					})
					if err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := s.Update(func(tx *Tx) error { return tx.AppendMigration("r", "missing", Migration{VM: "v"}) }); err == nil {
				t.Error("AppendMigration to a node the run does not have succeeded")
			}
			nodes, err := s.Nodes("r")
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range nodes {
				want := fmt.Sprintf("[%[1]s-vm0 %[1]s-vm1 %[1]s-vm2]", n.Name)
				var got []string
				for _, m := range n.Migrations {
					got = append(got, m.VM)
				}
				if fmt.Sprint(got) != want || len(n.Notes) != 3 {
					t.Errorf("node %s: migrations %v, %d notes; want %s, 3", n.Name, got, len(n.Notes), want)
				}
			}
			var stored int
			if err := s.db.View(func(btx *bolt.Tx) error {
				stored = len(btx.Bucket([]byte(bucketNodes)).Bucket([]byte("r")).Get([]byte("a")))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if !old && stored > 200 {
				t.Errorf("stored record of a is %d bytes: the migrations went into it", stored)
			}
		})
	}
}
