package runs

import (
	"encoding/json"
)

// AddTimings records measurements of a cluster, keeping the newest TimingsKept per
// node and kind (in the order they were added).
func (t *Tx) AddTimings(cluster string, ts []Timing) error {
	cb := bk(bucketTimings, cluster)
	if err := t.kv.createBucket(cb, false); err != nil {
		return err
	}
	for _, tm := range ts {
		seq, err := t.kv.nextSeq(cb)
		if err != nil {
			return err
		}
		if err := putJSON(t.kv, cb, seqKey(seq), tm); err != nil {
			return err
		}
	}
	return t.pruneTimings(cb)
}

// pruneTimings deletes all but the newest TimingsKept measurements per node and kind.
// Keys are sequence numbers: walking backwards meets the newest first.
func (t *Tx) pruneTimings(cb bucket) error {
	type kv struct {
		k string
		v []byte
	}
	var all []kv
	if err := t.kv.forEach(cb, func(k string, v []byte) error {
		all = append(all, kv{k, v})
		return nil
	}); err != nil {
		return err
	}
	type nodeKind struct{ node, kind string }
	seen := map[nodeKind]int{}
	var drop []string
	for i := len(all) - 1; i >= 0; i-- {
		var tm Timing
		if err := json.Unmarshal(all[i].v, &tm); err != nil {
			// Unreadable, it would make every read of the timings fail; the end of a
			// run must not: it goes.
			drop = append(drop, all[i].k)
			continue
		}
		nk := nodeKind{tm.Node, tm.Kind}
		if seen[nk]++; seen[nk] > TimingsKept {
			drop = append(drop, all[i].k)
		}
	}
	// Deleting while the walk reads would skip keys: delete afterwards.
	for _, k := range drop {
		if err := t.kv.del(cb, k); err != nil {
			return err
		}
	}
	return nil
}

// Timings returns the recorded measurements of a cluster, oldest first.
func (t *Tx) Timings(cluster string) ([]Timing, error) {
	var out []Timing
	err := t.kv.forEach(bk(bucketTimings, cluster), func(_ string, v []byte) error {
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
