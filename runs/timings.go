package runs

import (
	"encoding/json"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// AddTimings records measurements of a cluster, keeping the newest TimingsKept per
// node and kind (in the order they were added).
func (t *Tx) AddTimings(cluster string, ts []Timing) error {
	cb, err := t.tx.Bucket(bucketTimings).CreateBucketIfNotExists([]byte(cluster))
	if err != nil {
		return err
	}
	for _, tm := range ts {
		seq, err := cb.NextSequence()
		if err != nil {
			return err
		}
		if err := putJSON(cb, seqKey(seq), tm); err != nil {
			return err
		}
	}
	return pruneTimings(cb)
}

// pruneTimings deletes all but the newest TimingsKept measurements per node and kind.
// Keys are sequence numbers: walking backwards meets the newest first.
func pruneTimings(cb *bolt.Bucket) error {
	type nodeKind struct{ node, kind string }
	seen := map[nodeKind]int{}
	var drop [][]byte
	c := cb.Cursor()
	for k, v := c.Last(); k != nil; k, v = c.Prev() {
		var tm Timing
		if err := json.Unmarshal(v, &tm); err != nil {
			// Unreadable, it would make every read of the timings fail; the end of a
			// run must not: it goes.
			drop = append(drop, slices.Clone(k))
			continue
		}
		nk := nodeKind{tm.Node, tm.Kind}
		if seen[nk]++; seen[nk] > TimingsKept {
			drop = append(drop, slices.Clone(k))
		}
	}
	// Deleting while the cursor walks would skip keys: delete afterwards.
	for _, k := range drop {
		if err := cb.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Timings returns the recorded measurements of a cluster, oldest first.
func (t *Tx) Timings(cluster string) ([]Timing, error) {
	cb := t.tx.Bucket(bucketTimings).Bucket([]byte(cluster))
	if cb == nil {
		return nil, nil
	}
	var out []Timing
	err := cb.ForEach(func(_, v []byte) error {
		var tm Timing
		if err := json.Unmarshal(v, &tm); err != nil {
			return err
		}
		out = append(out, tm)
		return nil
	})
	return out, err
}

// Timings returns a cluster's recorded measurements.
func (s *Store) Timings(cluster string) (ts []Timing, err error) {
	err = s.View(func(tx *Tx) error { ts, err = tx.Timings(cluster); return err })
	return ts, err
}
