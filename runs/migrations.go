package runs

import (
	"bytes"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// A node's migrations are kept apart from its record, one key each (bucketMigrations:
// run ID -> node name, 0, seq -> Migration): the record then stays small, and a
// migration's outcome writes one small value instead of rewriting a record that grows
// with every VM the node moved. Tx.Node and Tx.Nodes give the record with them. A run
// written by an older drover has no such bucket and keeps them in the record.

func (t *Tx) migrationsBucket(runID string) *bolt.Bucket {
	top := t.tx.Bucket(bucketMigrations)
	if top == nil {
		return nil
	}
	return top.Bucket([]byte(runID))
}

// MigrationsApart reports whether the run keeps its migrations apart from its node
// records: Tx.UpdateNode then hands fn the record without them.
func (t *Tx) MigrationsApart(runID string) bool { return t.migrationsBucket(runID) != nil }

func migrationPrefix(node string) []byte { return append([]byte(node), 0) }

// AppendMigration adds m to the migrations of node in run runID.
func (t *Tx) AppendMigration(runID, node string, m Migration) error {
	mb := t.migrationsBucket(runID)
	if mb == nil {
		return t.UpdateNode(runID, node, func(n *NodeRecord) error {
			n.Migrations = append(n.Migrations, m)
			return nil
		})
	}
	if nb := t.tx.Bucket(bucketNodes).Bucket([]byte(runID)); nb == nil || nb.Get([]byte(node)) == nil {
		return fmt.Errorf("node %s of run %s: %w", node, runID, ErrNotFound)
	}
	seq, err := mb.NextSequence()
	if err != nil {
		return fmt.Errorf("migrations of run %s: %w", runID, err)
	}
	if err := putJSON(mb, append(migrationPrefix(node), seqKey(seq)...), m); err != nil {
		return fmt.Errorf("migrations of run %s: %w", runID, err)
	}
	return nil
}

// addMigrations appends the migrations kept apart to n (after any in the record).
func (t *Tx) addMigrations(runID, node string, n *NodeRecord) error {
	mb := t.migrationsBucket(runID)
	if mb == nil {
		return nil
	}
	prefix := migrationPrefix(node)
	c := mb.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var m Migration
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("decode migration of node %s of run %s: %w", node, runID, err)
		}
		n.Migrations = append(n.Migrations, m)
	}
	return nil
}
