package runs

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrDeposed: a write of a replica that is no longer the leader, refused by etcd
// because the leadership key it was fenced with is gone or belongs to another term.
var ErrDeposed = errors.New("this replica is no longer the leader: etcd refused the write (fenced by the leadership key)")

// ErrNotLeader: a write on a store that requires a fence, made while this replica
// holds none (it is a follower, or lost leadership and has not been elected again).
var ErrNotLeader = errors.New("this replica is not the leader: it does not write the run store")

// Fence ties writes to one term of leadership: the leadership key and the revision
// at which it was created. A write commits only while that key still exists with
// that create revision; once the lease behind it expires (or another replica is
// elected), every write of the old leader is refused.
type Fence struct {
	Key       string
	CreateRev int64
	// Valid, when set, is asked before each commit: false (the replica's lease is
	// past its deadline by the local clock) refuses the write without asking etcd.
	Valid func() bool
}

// AuditKey (under the prefix) is rewritten by every fenced write with its fence.
const AuditKey = "/ha/audit"

// EtcdOptions for OpenEtcd.
type EtcdOptions struct {
	// Fenced: every write needs a fence (SetFence); without one it is ErrNotLeader.
	// Off only for single-writer tools (state import) and tests.
	Fenced bool
	// Timeout bounds each round trip to etcd (default 5 s).
	Timeout time.Duration
}

// etcdBackend keeps the records as keys under a prefix:
//
//	PREFIX/b/BUCKET/NESTED        bucket marker; its value is the bucket's sequence
//	PREFIX/k/BUCKET/NESTED/HEXKEY a record
//
// Bucket names are path-escaped (never a '/'); record keys are hex, which keeps
// their byte order, so the journal reads back in sequence order.
type etcdBackend struct {
	cli     *clientv3.Client
	prefix  string
	fenced  bool
	timeout time.Duration
	fence   atomic.Pointer[Fence]
	// rejected counts writes refused because the fence was stale.
	rejected atomic.Int64
	// committed counts fenced writes that went through.
	committed atomic.Int64
}

// OpenEtcd opens the run store kept in etcd under prefix (made on first use). The
// client belongs to the caller, who closes it after the store.
func OpenEtcd(ctx context.Context, cli *clientv3.Client, prefix string, opts EtcdOptions) (*Store, error) {
	prefix = strings.TrimRight(prefix, "/")
	if prefix == "" || !strings.HasPrefix(prefix, "/") {
		return nil, fmt.Errorf("etcd prefix %q: set it to an absolute key prefix such as /drover/prod", prefix)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	be := &etcdBackend{cli: cli, prefix: prefix, fenced: opts.Fenced, timeout: opts.Timeout}
	s := &Store{be: be, path: "etcd:" + prefix}
	// The schema is made unfenced: it is the same for every replica, and a follower
	// must be able to start on an empty prefix.
	if err := be.run(ctx, false, initSchema); err != nil {
		return nil, fmt.Errorf("open the run store in etcd under %s: %w", prefix, err)
	}
	return s, nil
}

// SetFence fences every later write of an etcd store with f (nil: no fence, so a
// fenced store refuses to write). A bbolt store ignores it.
func (s *Store) SetFence(f *Fence) {
	if be, ok := s.be.(*etcdBackend); ok {
		be.fence.Store(f)
	}
}

// FenceStats returns how many writes went through with a fence and how many etcd
// refused because the fence was stale (a deposed leader's writes). Zero for bbolt.
func (s *Store) FenceStats() (committed, rejected int64) {
	if be, ok := s.be.(*etcdBackend); ok {
		return be.committed.Load(), be.rejected.Load()
	}
	return 0, 0
}

func (b *etcdBackend) update(fn func(kvTx) error) error {
	return b.run(context.Background(), true, fn)
}

func (b *etcdBackend) view(fn func(kvTx) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	tx, err := b.begin(ctx)
	if err != nil {
		return err
	}
	tx.readOnly = true
	return fn(tx)
}

func (b *etcdBackend) close() error { return nil }

// conflictRetries bounds the retries of a transaction whose reads changed under it.
const conflictRetries = 20

// run executes fn as an optimistic transaction: reads at one revision, writes
// buffered, then one etcd Txn that commits only if the fence still holds and no key
// fn read has changed. A changed key means another writer was there: fn runs again.
func (b *etcdBackend) run(ctx context.Context, fenced bool, fn func(kvTx) error) error {
	var fence *Fence
	if fenced && b.fenced {
		if fence = b.fence.Load(); fence == nil {
			return ErrNotLeader
		}
	}
	for range conflictRetries {
		tctx, cancel := context.WithTimeout(ctx, b.timeout)
		ok, err := b.attempt(tctx, fence, fn)
		cancel()
		if err != nil || ok {
			return err
		}
	}
	return fmt.Errorf("etcd: the transaction conflicted %d times with another writer under %s", conflictRetries, b.prefix)
}

func (b *etcdBackend) attempt(ctx context.Context, fence *Fence, fn func(kvTx) error) (bool, error) {
	tx, err := b.begin(ctx)
	if err != nil {
		return false, err
	}
	if err := fn(tx); err != nil {
		return false, err
	}
	if len(tx.writes) == 0 && len(tx.delPrefixes) == 0 {
		return true, nil
	}
	if fence != nil && fence.Valid != nil && !fence.Valid() {
		b.rejected.Add(1)
		return false, ErrDeposed
	}
	var cmps []clientv3.Cmp
	if fence != nil {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(fence.Key), "=", fence.CreateRev))
	}
	for k, rev := range tx.reads {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", rev))
	}
	var ops []clientv3.Op
	for _, p := range tx.delPrefixes {
		ops = append(ops, clientv3.OpDelete(p, clientv3.WithPrefix()))
	}
	keys := make([]string, 0, len(tx.writes))
	for k := range tx.writes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if w := tx.writes[k]; w.del {
			ops = append(ops, clientv3.OpDelete(k))
		} else {
			ops = append(ops, clientv3.OpPut(k, string(w.val)))
		}
	}
	if fence != nil {
		// The audit key names the fence of every committed write, in the same
		// transaction: anyone can check from etcd's history that each write was
		// made by the leader of that moment (the HA end-to-end test does).
		ops = append(ops, clientv3.OpPut(b.prefix+AuditKey, fmt.Sprintf(`{"fence_key":%q,"fence_rev":%d}`, fence.Key, fence.CreateRev)))
	}
	resp, err := b.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return false, fmt.Errorf("etcd: write under %s: %w", b.prefix, err)
	}
	if resp.Succeeded {
		if fence != nil {
			b.committed.Add(1)
		}
		return true, nil
	}
	if fence != nil {
		g, err := b.cli.Get(ctx, fence.Key)
		if err != nil {
			return false, fmt.Errorf("etcd: check leadership: %w", err)
		}
		if len(g.Kvs) == 0 || g.Kvs[0].CreateRevision != fence.CreateRev {
			b.rejected.Add(1)
			return false, ErrDeposed
		}
	}
	return false, nil // a read changed: run fn again
}

func (b *etcdBackend) begin(ctx context.Context) (*etcdTx, error) {
	// One read for the current revision: every read of the transaction is at it.
	g, err := b.cli.Get(ctx, b.prefix+"/b/"+bucketMeta, clientv3.WithCountOnly())
	if err != nil {
		return nil, fmt.Errorf("etcd: read under %s: %w", b.prefix, err)
	}
	return &etcdTx{ctx: ctx, b: b, rev: g.Header.Revision, writes: map[string]write{}, reads: map[string]int64{}}, nil
}

// write is a buffered put (or a delete).
type write struct {
	val []byte
	del bool
}

type etcdTx struct {
	ctx      context.Context
	b        *etcdBackend
	rev      int64
	readOnly bool
	// writes: key -> the write buffered for it.
	writes      map[string]write
	delPrefixes []string
	// reads: key -> mod revision seen (0: missing), compared at commit.
	reads map[string]int64
}

var _ kvTx = (*etcdTx)(nil)

func (t *etcdTx) markerKey(b bucket) string {
	var sb strings.Builder
	sb.WriteString(t.b.prefix + "/b")
	for _, n := range b {
		sb.WriteString("/" + url.PathEscape(n))
	}
	return sb.String()
}

func (t *etcdTx) dataPrefix(b bucket) string {
	var sb strings.Builder
	sb.WriteString(t.b.prefix + "/k")
	for _, n := range b {
		sb.WriteString("/" + url.PathEscape(n))
	}
	sb.WriteString("/")
	return sb.String()
}

func (t *etcdTx) deletedByPrefix(k string) bool {
	for _, p := range t.delPrefixes {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

func (t *etcdTx) read(k string) ([]byte, error) {
	if w, ok := t.writes[k]; ok {
		if w.del {
			return nil, nil
		}
		return w.val, nil
	}
	if t.deletedByPrefix(k) {
		return nil, nil
	}
	g, err := t.b.cli.Get(t.ctx, k, clientv3.WithRev(t.rev))
	if err != nil {
		return nil, fmt.Errorf("etcd: read under %s: %w", t.b.prefix, err)
	}
	if len(g.Kvs) == 0 {
		t.reads[k] = 0
		return nil, nil
	}
	t.reads[k] = g.Kvs[0].ModRevision
	if g.Kvs[0].Value == nil {
		return []byte{}, nil
	}
	return g.Kvs[0].Value, nil
}

func (t *etcdTx) write(k string, w write) error {
	if t.readOnly {
		return errors.New("etcd: write in a read-only transaction")
	}
	t.writes[k] = w
	return nil
}

func (t *etcdTx) get(b bucket, key string) ([]byte, error) {
	return t.read(t.dataPrefix(b) + hex.EncodeToString([]byte(key)))
}

func (t *etcdTx) put(b bucket, key string, val []byte) error {
	return t.write(t.dataPrefix(b)+hex.EncodeToString([]byte(key)), write{val: val})
}

func (t *etcdTx) del(b bucket, key string) error {
	return t.write(t.dataPrefix(b)+hex.EncodeToString([]byte(key)), write{del: true})
}

func (t *etcdTx) forEach(b bucket, fn func(string, []byte) error) error {
	p := t.dataPrefix(b)
	vals := map[string]write{}
	if !t.deletedByPrefix(p) {
		g, err := t.b.cli.Get(t.ctx, p, clientv3.WithPrefix(), clientv3.WithRev(t.rev))
		if err != nil {
			return fmt.Errorf("etcd: read under %s: %w", t.b.prefix, err)
		}
		for _, kv := range g.Kvs {
			vals[string(kv.Key)] = write{val: kv.Value}
		}
	}
	for k, w := range t.writes {
		if strings.HasPrefix(k, p) {
			vals[k] = w
		}
	}
	keys := make([]string, 0, len(vals))
	for k, w := range vals {
		if !w.del && !strings.Contains(k[len(p):], "/") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		raw, err := hex.DecodeString(k[len(p):])
		if err != nil {
			continue // not a key of ours
		}
		v := vals[k].val
		if v == nil {
			v = []byte{}
		}
		if err := fn(string(raw), v); err != nil {
			return err
		}
	}
	return nil
}

func (t *etcdTx) hasBucket(b bucket) (bool, error) {
	v, err := t.read(t.markerKey(b))
	return v != nil, err
}

func (t *etcdTx) createBucket(b bucket, mustBeNew bool) error {
	if len(b) == 0 {
		return errors.New("empty bucket path")
	}
	if len(b) > 1 {
		ok, err := t.hasBucket(b[:len(b)-1])
		if err != nil {
			return err
		}
		if !ok {
			return ErrNoState
		}
	}
	ok, err := t.hasBucket(b)
	if err != nil {
		return err
	}
	switch {
	case ok && mustBeNew:
		return fmt.Errorf("bucket %s already exists", strings.Join(b, "/"))
	case ok:
		return nil
	}
	return t.write(t.markerKey(b), write{val: []byte("0")})
}

func (t *etcdTx) deleteBucket(b bucket) error {
	if t.readOnly {
		return errors.New("etcd: write in a read-only transaction")
	}
	for _, p := range []string{t.dataPrefix(b), t.markerKey(b) + "/"} {
		t.delPrefixes = append(t.delPrefixes, p)
		for k := range t.writes {
			if strings.HasPrefix(k, p) {
				delete(t.writes, k)
			}
		}
	}
	return t.write(t.markerKey(b), write{del: true})
}

func (t *etcdTx) nextSeq(b bucket) (uint64, error) {
	v, err := t.read(t.markerKey(b))
	if err != nil {
		return 0, err
	}
	if v == nil {
		return 0, ErrNotFound
	}
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bucket %s: sequence %q: %w", strings.Join(b, "/"), v, err)
	}
	n++
	return n, t.write(t.markerKey(b), write{val: []byte(strconv.FormatUint(n, 10))})
}

func (t *etcdTx) buckets(b bucket) ([]string, error) {
	p := t.markerKey(b) + "/"
	g, err := t.b.cli.Get(t.ctx, p, clientv3.WithPrefix(), clientv3.WithRev(t.rev), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("etcd: read under %s: %w", t.b.prefix, err)
	}
	var out []string
	for _, kv := range g.Kvs {
		rest := string(kv.Key)[len(p):]
		if strings.Contains(rest, "/") {
			continue
		}
		if name, err := url.PathUnescape(rest); err == nil {
			out = append(out, name)
		}
	}
	return out, nil
}

func (t *etcdTx) sequence(b bucket) (uint64, error) {
	v, err := t.read(t.markerKey(b))
	if err != nil {
		return 0, err
	}
	if v == nil {
		return 0, ErrNotFound
	}
	return strconv.ParseUint(string(v), 10, 64)
}

func (t *etcdTx) setSequence(b bucket, n uint64) error {
	return t.write(t.markerKey(b), write{val: []byte(strconv.FormatUint(n, 10))})
}
