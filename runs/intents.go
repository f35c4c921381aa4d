package runs

import (
	"encoding/json"
	"fmt"
)

// indexOpen keeps the run's index of open intents up to date with a new entry: an
// intent joins it, an outcome takes its intent out. A run written by an older drover
// has no index: its open intents are found by reading its journal.
func (t *Tx) indexOpen(runID string, e Entry) error {
	ob := bk(bucketOpen, runID)
	if ok, err := t.kv.hasBucket(ob); err != nil || !ok {
		return err
	}
	switch {
	case e.Status == StatusIntent:
		return putJSON(t.kv, ob, seqKey(e.Seq), e)
	case e.Ref != 0 && (e.Status == StatusDone || e.Status == StatusFailed):
		return t.kv.del(ob, seqKey(e.Ref))
	}
	return nil
}

// OpenIntents returns the run's intents that have no outcome yet, oldest first: the
// actions that may or may not have happened before a crash. It reads the index, not
// the journal, so its cost is what is open.
func (t *Tx) OpenIntents(runID string) ([]Entry, error) {
	ob := bk(bucketOpen, runID)
	has, err := t.kv.hasBucket(ob)
	if err != nil {
		return nil, err
	}
	if !has {
		journal, err := t.Journal(runID)
		if err != nil {
			return nil, err
		}
		return OpenIntents(journal), nil
	}
	var out []Entry
	err = t.kv.forEach(ob, func(_ string, v []byte) error {
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
