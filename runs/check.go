package runs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// bucketQuarantine holds run records that could not be read, moved aside so that
// every other run goes on: key = the record's key, value = its bytes as found.
const bucketQuarantine = "quarantine"

// corruptRuns lists the keys of run records that do not decode, or name another
// run than their key.
func corruptRuns(kv kvTx) []string {
	var bad []string
	_ = kv.forEach(bk(bucketRuns), func(k string, v []byte) error {
		var r Run
		if err := json.Unmarshal(v, &r); err != nil || r.ID != k {
			bad = append(bad, k)
		}
		return nil
	})
	return bad
}

// Quarantine moves every unreadable run record to the quarantine bucket and returns
// their keys (printable). The daemon calls it at start-up: one corrupt record of an
// old run must not stop it from resuming the others.
func (s *Store) Quarantine() ([]string, error) {
	var moved []string
	err := guard(s.path, func() error {
		return s.be.update(func(kv kvTx) error {
			moved = nil
			bad := corruptRuns(kv)
			if len(bad) == 0 {
				return nil
			}
			if err := kv.createBucket(bk(bucketQuarantine), false); err != nil {
				return err
			}
			for _, k := range bad {
				v, err := kv.get(bk(bucketRuns), k)
				if err != nil {
					return err
				}
				if err := kv.put(bk(bucketQuarantine), k, clone(v)); err != nil {
					return err
				}
				if err := kv.del(bk(bucketRuns), k); err != nil {
					return err
				}
				moved = append(moved, fmt.Sprintf("%q", k))
			}
			return nil
		})
	})
	return moved, err
}

// Quarantined lists the keys of the quarantined run records.
func (s *Store) Quarantined() ([]string, error) {
	var out []string
	err := guard(s.path, func() error {
		return s.be.view(func(kv kvTx) error {
			return kv.forEach(bk(bucketQuarantine), func(k string, _ []byte) error {
				out = append(out, fmt.Sprintf("%q", k))
				return nil
			})
		})
	})
	return out, err
}

// CheckReport is what `drover state check` found.
type CheckReport struct {
	Path string `json:"path"`
	// Damaged says why the file cannot be read as a whole ("" = it can).
	Damaged string `json:"damaged,omitempty"`
	// Problems are bbolt's own consistency errors (pages, freelist).
	Problems []string `json:"problems,omitempty"`
	// Corrupt are run records that cannot be read (not yet quarantined).
	Corrupt []string `json:"corrupt,omitempty"`
	// Quarantined are run records moved aside earlier.
	Quarantined []string `json:"quarantined,omitempty"`
	Runs        int      `json:"runs"`
}

// OK reports whether the file is intact and every record readable.
func (r CheckReport) OK() bool {
	return r.Damaged == "" && len(r.Problems) == 0 && len(r.Corrupt) == 0
}

// Check reads the whole state file without changing it: its header and length,
// bbolt's page consistency, and every run record.
func Check(path string) (CheckReport, error) {
	rep := CheckReport{Path: path}
	if _, err := os.Stat(path); err != nil {
		return rep, fmt.Errorf("state file %s: %w", path, err)
	}
	if err := CheckTrusted(path); err != nil {
		return rep, err
	}
	if err := checkIntact(path); err != nil {
		rep.Damaged = err.(*DamagedError).Problem
		return rep, nil
	}
	err := guard(path, func() error {
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
		if err != nil {
			if errors.Is(err, bolterrors.ErrTimeout) {
				le := &LockedError{Path: path}
				if o, rerr := readOwner(path); rerr == nil {
					le.Owner = &o
				}
				return le
			}
			rep.Damaged = err.Error()
			return nil
		}
		defer db.Close()
		return db.View(func(tx *bolt.Tx) error {
			for e := range tx.Check() {
				rep.Problems = append(rep.Problems, e.Error())
			}
			if tx.Bucket([]byte(bucketRuns)) == nil {
				rep.Damaged = "no runs bucket: not a Drover state file"
				return nil
			}
			for _, k := range corruptRuns(boltTx{tx}) {
				rep.Corrupt = append(rep.Corrupt, fmt.Sprintf("%q", k))
			}
			rep.Runs = tx.Bucket([]byte(bucketRuns)).Stats().KeyN - len(rep.Corrupt)
			if q := tx.Bucket([]byte(bucketQuarantine)); q != nil {
				_ = q.ForEach(func(k, _ []byte) error {
					rep.Quarantined = append(rep.Quarantined, fmt.Sprintf("%q", k))
					return nil
				})
			}
			return nil
		})
	})
	var de *DamagedError
	if errors.As(err, &de) {
		rep.Damaged = de.Problem
		return rep, nil
	}
	return rep, err
}

// RepairReport is what `drover state repair` did.
type RepairReport struct {
	Path string `json:"path"`
	// KeptAs is where the damaged file now is.
	KeptAs string `json:"kept_as"`
	// Copied counts the records copied, per top-level bucket; Lost names what
	// could not be read.
	Copied      map[string]int `json:"copied"`
	Quarantined int            `json:"quarantined"`
	Lost        []string       `json:"lost,omitempty"`
}

// Repair copies every readable record of the state file at path into a new file,
// keeps the damaged file as path.damaged-TIMESTAMP, and puts the new one at path.
// Unreadable run records go to the quarantine bucket of the new file. Nothing is
// done to a file another process holds.
func Repair(path string, now time.Time) (RepairReport, error) {
	rep := RepairReport{Path: path, Copied: map[string]int{}}
	if _, err := os.Stat(path); err != nil {
		return rep, fmt.Errorf("state file %s: %w", path, err)
	}
	if err := CheckTrusted(path); err != nil {
		return rep, err
	}
	tmp := path + ".repair-tmp"
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return rep, fmt.Errorf("create %s: %w", tmp, err)
	}
	cleanup := func() { dst.Close(); _ = os.Remove(tmp) }
	var src *bolt.DB
	openErr := guard(path, func() error {
		var err error
		src, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
		return err
	})
	switch {
	case errors.Is(openErr, bolterrors.ErrTimeout):
		cleanup()
		return rep, &LockedError{Path: path}
	case openErr != nil:
		rep.Lost = append(rep.Lost, "everything: "+openErr.Error())
	default:
		unsafe, err := unsafeBuckets(path)
		if err != nil {
			rep.Lost = append(rep.Lost, "everything: "+err.Error())
		} else {
			copyAll(path, src, dst, unsafe, &rep)
		}
		src.Close()
	}
	if err := dst.Update(func(tx *bolt.Tx) error { return initSchema(boltTx{tx}) }); err != nil {
		cleanup()
		return rep, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := dst.Close(); err != nil {
		_ = os.Remove(tmp)
		return rep, fmt.Errorf("write %s: %w", tmp, err)
	}
	// Quarantine what was copied but cannot be read as a run.
	st, err := Open(tmp, Options{})
	if err != nil {
		_ = os.Remove(tmp)
		return rep, err
	}
	moved, err := st.Quarantine()
	st.Close()
	if err != nil {
		_ = os.Remove(tmp)
		return rep, err
	}
	rep.Quarantined = len(moved)
	rep.KeptAs = path + ".damaged-" + now.UTC().Format("20060102T150405Z")
	if err := os.Rename(path, rep.KeptAs); err != nil {
		_ = os.Remove(tmp)
		return rep, fmt.Errorf("keep the damaged file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return rep, fmt.Errorf("put the repaired file in place (the damaged one is %s): %w", rep.KeptAs, err)
	}
	return rep, nil
}

// tree is a bucket's content as read so far.
type tree struct {
	seq  uint64
	keys [][]byte
	vals [][]byte
	subs map[string]*tree
}

// copyAll copies src's buckets into dst. Everything is read first, each top-level
// bucket guarded: a page that cannot be read loses what is on it and after it in
// that bucket, not what was read before nor the other buckets.
func copyAll(path string, src, dst *bolt.DB, unsafe map[string]error, rep *RepairReport) {
	var tops [][]byte
	if err := guard(path, func() error {
		return src.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
				tops = append(tops, bytes.Clone(name))
				return nil
			})
		})
	}); err != nil {
		rep.Lost = append(rep.Lost, "the list of buckets, from where it could not be read on (their records with it): "+err.Error())
	}
	sort.Slice(tops, func(i, j int) bool { return bytes.Compare(tops[i], tops[j]) < 0 })
	read := map[string]*tree{}
	for _, name := range tops {
		t := &tree{subs: map[string]*tree{}}
		read[string(name)] = t
		if err := unsafe[string(name)]; err != nil {
			rep.Lost = append(rep.Lost, fmt.Sprintf("bucket %s, all of it: %v", name, err))
			continue
		}
		err := guard(path, func() error {
			return src.View(func(tx *bolt.Tx) error { return readTree(tx.Bucket(name), t) })
		})
		if err != nil {
			rep.Lost = append(rep.Lost, fmt.Sprintf("bucket %s, from where it could not be read on: %v", name, err))
		}
	}
	for _, name := range tops {
		err := dst.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(name)
			if err != nil {
				return err
			}
			n, err := writeTree(b, read[string(name)])
			rep.Copied[string(name)] += n
			return err
		})
		if err != nil {
			rep.Lost = append(rep.Lost, fmt.Sprintf("bucket %s: %v", name, err))
		}
	}
}

// readTree reads b into t, appending as it goes, so that a panic midway leaves
// what was read.
func readTree(b *bolt.Bucket, t *tree) error {
	t.seq = b.Sequence()
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			sub := &tree{subs: map[string]*tree{}}
			t.subs[string(k)] = sub
			return readTree(b.Bucket(k), sub)
		}
		t.keys = append(t.keys, bytes.Clone(k))
		t.vals = append(t.vals, bytes.Clone(v))
		return nil
	})
}

func writeTree(b *bolt.Bucket, t *tree) (int, error) {
	if t.seq > 0 {
		if err := b.SetSequence(t.seq); err != nil {
			return 0, err
		}
	}
	n := 0
	for i, k := range t.keys {
		if err := b.Put(k, t.vals[i]); err != nil {
			return n, err
		}
		n++
	}
	for name, sub := range t.subs {
		sb, err := b.CreateBucketIfNotExists([]byte(name))
		if err != nil {
			return n, err
		}
		m, err := writeTree(sb, sub)
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// unsafeBuckets names the top-level buckets of the file at path whose page trees
// bbolt must not walk (see treeWalk); an error means none is safe.
func unsafeBuckets(path string) (map[string]error, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	m, ok := newestMeta(f)
	if !ok || m.pageSize < 512 || m.pageSize > 1<<16 {
		return nil, errors.New("no readable header")
	}
	return newTreeWalk(f, st.Size(), m).unsafeBuckets()
}
