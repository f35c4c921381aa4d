package runs

import (
	"encoding/json"
	"fmt"
)

// A node's migrations are kept apart from its record, one key each (bucketMigrations:
// run ID -> node name -> seq -> Migration): the record then stays small, and a
// migration's outcome writes one small value instead of rewriting a record that grows
// with every VM the node moved. Tx.Node and Tx.Nodes give the record with them. A run
// written by an older drover has no such bucket and keeps them in the record.

// MigrationsApart reports whether the run keeps its migrations apart from its node
// records: Tx.UpdateNode then hands fn the record without them.
func (t *Tx) MigrationsApart(runID string) bool {
	ok, err := t.kv.hasBucket(bk(bucketMigrations, runID))
	return err == nil && ok
}

// AppendMigration adds m to the migrations of node in run runID.
func (t *Tx) AppendMigration(runID, node string, m Migration) error {
	if !t.MigrationsApart(runID) {
		return t.UpdateNode(runID, node, func(n *NodeRecord) error {
			n.Migrations = append(n.Migrations, m)
			return nil
		})
	}
	if raw, err := t.kv.get(bk(bucketNodes, runID), node); err != nil || raw == nil {
		if err == nil {
			err = ErrNotFound
		}
		return fmt.Errorf("node %s of run %s: %w", node, runID, err)
	}
	nb := bk(bucketMigrations, runID, node)
	if err := t.kv.createBucket(nb, false); err != nil {
		return fmt.Errorf("migrations of node %s of run %s: %w", node, runID, err)
	}
	seq, err := t.kv.nextSeq(nb)
	if err != nil {
		return fmt.Errorf("migrations of node %s of run %s: %w", node, runID, err)
	}
	if err := putJSON(t.kv, nb, seqKey(seq), m); err != nil {
		return fmt.Errorf("migrations of node %s of run %s: %w", node, runID, err)
	}
	return nil
}

// addMigrations appends the migrations kept apart to n (after any in the record).
func (t *Tx) addMigrations(runID, node string, n *NodeRecord) error {
	nb := bk(bucketMigrations, runID, node)
	if ok, err := t.kv.hasBucket(nb); err != nil || !ok {
		return err
	}
	return t.kv.forEach(nb, func(_ string, v []byte) error {
		var m Migration
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("decode migration of node %s of run %s: %w", node, runID, err)
		}
		n.Migrations = append(n.Migrations, m)
		return nil
	})
}
