package runs

import (
	"bytes"
	"errors"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// boltBackend keeps the records in one bbolt file, one nested bucket per bucket.
type boltBackend struct{ db *bolt.DB }

func (b boltBackend) update(fn func(kvTx) error) error {
	return b.db.Update(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (b boltBackend) view(fn func(kvTx) error) error {
	return b.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (b boltBackend) close() error { return b.db.Close() }

type boltTx struct{ tx *bolt.Tx }

var _ kvTx = boltTx{}

// bucket returns the bucket at path b, nil when one of its parts is missing.
func (t boltTx) bucket(b bucket) *bolt.Bucket {
	if len(b) == 0 {
		return nil
	}
	cur := t.tx.Bucket([]byte(b[0]))
	for _, name := range b[1:] {
		if cur == nil {
			return nil
		}
		cur = cur.Bucket([]byte(name))
	}
	return cur
}

func (t boltTx) get(b bucket, key string) ([]byte, error) {
	bb := t.bucket(b)
	if bb == nil {
		return nil, nil
	}
	return bb.Get([]byte(key)), nil
}

func (t boltTx) put(b bucket, key string, val []byte) error {
	bb := t.bucket(b)
	if bb == nil {
		return ErrNoState
	}
	return bb.Put([]byte(key), val)
}

func (t boltTx) del(b bucket, key string) error {
	bb := t.bucket(b)
	if bb == nil {
		return nil
	}
	return bb.Delete([]byte(key))
}

func (t boltTx) forEach(b bucket, fn func(string, []byte) error) error {
	bb := t.bucket(b)
	if bb == nil {
		return nil
	}
	return bb.ForEach(func(k, v []byte) error {
		if v == nil { // a nested bucket
			return nil
		}
		return fn(string(k), v)
	})
}

func (t boltTx) hasBucket(b bucket) (bool, error) { return t.bucket(b) != nil, nil }

func (t boltTx) createBucket(b bucket, mustBeNew bool) error {
	if len(b) == 0 {
		return errors.New("empty bucket path")
	}
	var parent *bolt.Bucket
	if len(b) > 1 {
		if parent = t.bucket(b[:len(b)-1]); parent == nil {
			return ErrNoState
		}
	}
	name := []byte(b[len(b)-1])
	var err error
	switch {
	case parent == nil && mustBeNew:
		_, err = t.tx.CreateBucket(name)
	case parent == nil:
		_, err = t.tx.CreateBucketIfNotExists(name)
	case mustBeNew:
		_, err = parent.CreateBucket(name)
	default:
		_, err = parent.CreateBucketIfNotExists(name)
	}
	return err
}

func (t boltTx) deleteBucket(b bucket) error {
	if len(b) == 1 {
		return ignoreMissing(t.tx.DeleteBucket([]byte(b[0])))
	}
	parent := t.bucket(b[:len(b)-1])
	if parent == nil {
		return nil
	}
	return ignoreMissing(parent.DeleteBucket([]byte(b[len(b)-1])))
}

func ignoreMissing(err error) error {
	if errors.Is(err, bolterrors.ErrBucketNotFound) {
		return nil
	}
	return err
}

func (t boltTx) nextSeq(b bucket) (uint64, error) {
	bb := t.bucket(b)
	if bb == nil {
		return 0, ErrNotFound
	}
	return bb.NextSequence()
}

// clone keeps a bbolt value beyond its transaction.
func clone(v []byte) []byte { return bytes.Clone(v) }

func (t boltTx) buckets(b bucket) ([]string, error) {
	var out []string
	if len(b) == 0 {
		err := t.tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			out = append(out, string(name))
			return nil
		})
		return out, err
	}
	bb := t.bucket(b)
	if bb == nil {
		return nil, nil
	}
	err := bb.ForEach(func(k, v []byte) error {
		if v == nil {
			out = append(out, string(k))
		}
		return nil
	})
	return out, err
}

func (t boltTx) sequence(b bucket) (uint64, error) {
	bb := t.bucket(b)
	if bb == nil {
		return 0, ErrNotFound
	}
	return bb.Sequence(), nil
}

func (t boltTx) setSequence(b bucket, n uint64) error {
	bb := t.bucket(b)
	if bb == nil {
		return ErrNotFound
	}
	return bb.SetSequence(n)
}
