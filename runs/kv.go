package runs

import (
	"encoding/json"
	"fmt"
)

// A bucket is a path of names, as bbolt nests buckets: {"nodes", runID}.
type bucket []string

func bk(names ...string) bucket { return bucket(names) }

// kvTx is what the run store's records need of a backend inside one transaction:
// nested buckets of keys in byte order, each with a sequence. bbolt implements it
// with its own buckets; etcd with keys under a prefix (etcd.go). Every record of
// the store (runs, nodes, journal, locks, timings, settings) is written through it,
// so both backends keep the same records with the same code.
type kvTx interface {
	// get returns nil for a missing key or bucket.
	get(b bucket, key string) ([]byte, error)
	put(b bucket, key string, val []byte) error
	del(b bucket, key string) error
	// forEach visits the keys of b in byte order (not those of nested buckets).
	forEach(b bucket, fn func(key string, val []byte) error) error
	hasBucket(b bucket) (bool, error)
	// createBucket makes b; with mustBeNew an existing b is an error.
	createBucket(b bucket, mustBeNew bool) error
	deleteBucket(b bucket) error
	// nextSeq returns b's next sequence number (1, 2, ...).
	nextSeq(b bucket) (uint64, error)
	// buckets lists the names of the buckets nested in b (top-level ones for nil).
	buckets(b bucket) ([]string, error)
	// sequence and setSequence read and set b's sequence (export and import).
	sequence(b bucket) (uint64, error)
	setSequence(b bucket, n uint64) error
}

// backend runs transactions over a kvTx. update commits when fn returns nil.
type backend interface {
	update(fn func(kvTx) error) error
	view(fn func(kvTx) error) error
	close() error
}

func getJSON(t kvTx, b bucket, key string, v any) (bool, error) {
	raw, err := t.get(b, key)
	if err != nil {
		return false, err
	}
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("decode %s: %w", key, err)
	}
	return true, nil
}

func putJSON(t kvTx, b bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return t.put(b, key, raw)
}
