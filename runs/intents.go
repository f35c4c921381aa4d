package runs

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// indexOpen keeps the run's index of open intents up to date with a new entry: an
// intent joins it, an outcome takes its intent out. A run written by an older drover
// has no index: its open intents are found by reading its journal.
func (t *Tx) indexOpen(runID string, e Entry) error {
	ob := t.openBucket(runID)
	if ob == nil {
		return nil
	}
	switch {
	case e.Status == StatusIntent:
		return putJSON(ob, seqKey(e.Seq), e)
	case e.Ref != 0 && (e.Status == StatusDone || e.Status == StatusFailed):
		return ob.Delete(seqKey(e.Ref))
	}
	return nil
}

func (t *Tx) openBucket(runID string) *bolt.Bucket {
	top := t.tx.Bucket(bucketOpen)
	if top == nil {
		return nil
	}
	return top.Bucket([]byte(runID))
}

// OpenIntents returns the run's intents that have no outcome yet, oldest first: the
// actions that may or may not have happened before a crash. It reads the index, not
// the journal, so its cost is what is open.
func (t *Tx) OpenIntents(runID string) ([]Entry, error) {
	ob := t.openBucket(runID)
	if ob == nil {
		journal, err := t.Journal(runID)
		if err != nil {
			return nil, err
		}
		return OpenIntents(journal), nil
	}
	var out []Entry
	err := ob.ForEach(func(k, v []byte) error {
		var e Entry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("decode open intent of run %s: %w", runID, err)
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// OpenIntents returns a run's open intents (see Tx.OpenIntents).
func (s *Store) OpenIntents(runID string) (es []Entry, err error) {
	err = s.View(func(tx *Tx) error { es, err = tx.OpenIntents(runID); return err })
	return es, err
}

// OpenIntents returns the intents of a journal that have no outcome yet: actions that
// may or may not have happened before a crash.
func OpenIntents(journal []Entry) []Entry {
	closed := map[uint64]bool{}
	for _, e := range journal {
		if e.Ref != 0 && (e.Status == StatusDone || e.Status == StatusFailed) {
			closed[e.Ref] = true
		}
	}
	var out []Entry
	for _, e := range journal {
		if e.Status == StatusIntent && !closed[e.Seq] {
			out = append(out, e)
		}
	}
	return out
}
