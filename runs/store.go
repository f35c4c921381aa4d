package runs

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Sentinel errors.
var (
	// ErrNotFound: no run (or node record) with that ID.
	ErrNotFound = errors.New("not found")
	// ErrNoState: the state file does not exist (read-only open of a new setup).
	ErrNoState = errors.New("state file does not exist")
)

// LockedError: the state file is held by another live process.
type LockedError struct {
	Path  string
	Owner *Owner // nil when the sidecar could not be read
}

func (e *LockedError) Error() string {
	who := "another process"
	if e.Owner != nil {
		who = "another drover process, " + e.Owner.String()
	}
	if e.Owner != nil && e.Owner.Command == DaemonCommand {
		// The daemon holds the file for as long as it runs and ignores the signal of
		// `drover runs stop`: its runs are driven through its API.
		return fmt.Sprintf("state file %s is in use by the daemon, %s; work through its API instead (drover --server URL apply, runs list, runs stop ID, ...), stop the daemon, or set `state` to another file", e.Path, e.Owner)
	}
	return fmt.Sprintf("state file %s is in use by %s; wait for it to finish, stop it with `drover runs stop`, or set `state` to another file", e.Path, who)
}

// DaemonCommand is the Owner.Command of the daemon, `drover serve`.
const DaemonCommand = "serve"

// RunLockedError: the cluster already has an active run held by a live process, or by a
// process whose liveness cannot be checked.
type RunLockedError struct {
	Lock     Lock
	Liveness Liveness
}

func (e *RunLockedError) Error() string {
	if e.Liveness == Unknown {
		return fmt.Sprintf("cluster %s is locked by run %s of %s, which this host cannot check; if that process is gone, recover with --force-recovery", e.Lock.Cluster, e.Lock.RunID, e.Lock.Owner)
	}
	return fmt.Sprintf("cluster %s is locked by run %s of %s, which is still running", e.Lock.Cluster, e.Lock.RunID, e.Lock.Owner)
}

const (
	bucketRuns    = "runs"
	bucketNodes   = "nodes"   // nested: run ID -> node name -> NodeRecord
	bucketJournal = "journal" // nested: run ID -> seq -> Entry
	bucketLocks   = "locks"   // cluster -> Lock
	bucketTimings = "timings" // nested: cluster -> seq -> Timing
	bucketMeta    = "meta"
	// bucketOpen indexes each run's open intents (nested: run ID -> seq -> Entry), so
	// that finding them costs what is open, not the whole journal.
	bucketOpen = "open"
	// bucketSettings holds per-cluster settings that outlive a process (the daemon's
	// pause switch).
	bucketSettings = "settings"
	// bucketMigrations holds each run's migrations apart from its node records
	// (migrations.go).
	bucketMigrations = "migrations"
)

// topBuckets are made when a store is opened for writing.
var topBuckets = []string{bucketRuns, bucketNodes, bucketJournal, bucketLocks, bucketTimings, bucketMeta, bucketOpen, bucketSettings, bucketMigrations}

const schemaVersion = "1"

// Options for Open.
type Options struct {
	// Timeout to wait for another process to release the file (default 1 s).
	Timeout time.Duration
	// ReadOnly opens without writing anything; a missing file is ErrNoState.
	ReadOnly bool
	// Owner is recorded in the sidecar so others can tell who holds the file.
	Owner Owner
}

// Store is an open state file, or the state kept in etcd (OpenEtcd). It is safe for
// concurrent use by goroutines of one process; writers are serialised.
type Store struct {
	be backend
	// db is the bbolt file; nil for a store in etcd.
	db       *bolt.DB
	path     string
	readOnly bool
	// writeMu orders updates with the crash point's count; bbolt serialises writers
	// anyway, so it costs no concurrency.
	writeMu sync.Mutex
	crash   crashPoint
}

// Open opens (or, unless read-only, creates with mode 0600) the state file at path.
func Open(path string, opts Options) (*Store, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if err := checkFile(path); err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if opts.ReadOnly {
			return nil, fmt.Errorf("open state file %s: %w", path, ErrNoState)
		}
		if dir := filepath.Dir(path); dir != "" {
			if _, err := os.Stat(dir); err != nil {
				return nil, fmt.Errorf("open state file %s: folder %s does not exist: create it or set `state` to a path in an existing folder", path, dir)
			}
		}
	case err != nil:
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	case st.IsDir():
		return nil, fmt.Errorf("open state file %s: it is a folder; set `state` to a file path such as %s", path, filepath.Join(path, "drover.db"))
	}

	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout, ReadOnly: opts.ReadOnly, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		switch {
		case errors.Is(err, bolterrors.ErrTimeout):
			le := &LockedError{Path: path}
			if o, rerr := readOwner(path); rerr == nil {
				le.Owner = &o
			}
			return nil, le
		case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrVersionMismatch), errors.Is(err, bolterrors.ErrChecksum):
			return nil, fmt.Errorf("open state file %s: not a Drover state file or damaged (%w); move it away or set `state` to another file", path, err)
		case errors.Is(err, fs.ErrPermission):
			return nil, fmt.Errorf("open state file %s: permission denied; run as the user that owns it or set `state` to a writable file: %w", path, err)
		case st != nil:
			// bbolt reports a foreign file in several ways ("file size too small", bad magic).
			return nil, fmt.Errorf("open state file %s: not a Drover state file or damaged (%w); move it away or set `state` to another file", path, err)
		}
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	s := &Store{be: boltBackend{db}, db: db, path: path, readOnly: opts.ReadOnly}
	if opts.ReadOnly {
		if err := guard(path, s.checkSchema); err != nil {
			db.Close()
			return nil, err
		}
		return s, nil
	}
	// The file may predate us with looser permissions; it can hold run history only,
	// but keep it private all the same.
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("open state file %s: set mode 0600: %w", path, err)
	}
	if err := s.be.update(initSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	if opts.Owner.PID != 0 {
		if err := writeOwner(path, opts.Owner); err != nil {
			db.Close()
			return nil, err
		}
	}
	return s, nil
}

// initSchema makes the top buckets of a new store and checks the schema of an old one.
func initSchema(kv kvTx) error {
	for _, b := range topBuckets {
		if err := kv.createBucket(bk(b), false); err != nil {
			return err
		}
	}
	v, err := kv.get(bk(bucketMeta), "schema")
	if err != nil {
		return err
	}
	if v != nil && string(v) != schemaVersion {
		return fmt.Errorf("schema version %s, this drover reads %s: use a matching drover or another state file", v, schemaVersion)
	}
	return kv.put(bk(bucketMeta), "schema", []byte(schemaVersion))
}

func (s *Store) checkSchema() error {
	return s.be.view(func(kv kvTx) error {
		meta, err := kv.hasBucket(bk(bucketMeta))
		if err != nil {
			return err
		}
		runsOK, err := kv.hasBucket(bk(bucketRuns))
		if err != nil {
			return err
		}
		if !meta || !runsOK {
			return fmt.Errorf("open state file %s: not a Drover state file; set `state` to another file", s.path)
		}
		if v, err := kv.get(bk(bucketMeta), "schema"); err != nil || string(v) != schemaVersion {
			if err != nil {
				return err
			}
			return fmt.Errorf("open state file %s: schema version %q, this drover reads %s", s.path, v, schemaVersion)
		}
		return nil
	})
}

// Path is the file's path.
func (s *Store) Path() string { return s.path }

// Close closes the file and removes the owner sidecar.
func (s *Store) Close() error {
	if !s.readOnly && s.db != nil {
		removeOwnOwner(s.path)
	}
	return s.be.close()
}

func ownerPath(path string) string { return path + ".owner" }

func writeOwner(path string, o Owner) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	tmp := ownerPath(path) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write owner file: %w", err)
	}
	if err := os.Rename(tmp, ownerPath(path)); err != nil {
		return fmt.Errorf("write owner file: %w", err)
	}
	return nil
}

// HolderOf returns the process recorded as holding the state file at path.
func HolderOf(path string) (Owner, error) { return readOwner(path) }

func readOwner(path string) (Owner, error) {
	var o Owner
	b, err := os.ReadFile(ownerPath(path))
	if err != nil {
		return o, err
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return o, fmt.Errorf("read owner file: %w", err)
	}
	return o, nil
}

// NewRunID returns a new run ID: sortable by time, unique by a random suffix.
func NewRunID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// Tx is a read-write transaction over the store. All changes made through one Tx are
// committed together or not at all.
type Tx struct{ kv kvTx }

// Update runs fn in one read-write transaction: it commits if fn returns nil.
func (s *Store) Update(fn func(tx *Tx) error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.crash.dead(); err != nil {
		return err
	}
	if err := s.be.update(func(kv kvTx) error { return fn(&Tx{kv: kv}) }); err != nil {
		return err
	}
	s.crash.committed()
	return nil
}

// View runs fn in a read-only transaction (a damaged page: *DamagedError).
func (s *Store) View(fn func(tx *Tx) error) error {
	return guard(s.path, func() error { return s.be.view(func(kv kvTx) error { return fn(&Tx{kv: kv}) }) })
}

// CreateRun stores a new run and its node records (in run order).
func (t *Tx) CreateRun(r Run, nodes []NodeRecord) error {
	raw, err := t.kv.get(bk(bucketRuns), r.ID)
	if err != nil {
		return fmt.Errorf("create run %s: %w", r.ID, err)
	}
	if raw != nil {
		return fmt.Errorf("create run %s: already exists", r.ID)
	}
	if err := putJSON(t.kv, bk(bucketRuns), r.ID, r); err != nil {
		return fmt.Errorf("create run %s: %w", r.ID, err)
	}
	if err := t.kv.createBucket(bk(bucketNodes, r.ID), true); err != nil {
		return fmt.Errorf("create run %s: %w", r.ID, err)
	}
	for _, n := range nodes {
		if err := putJSON(t.kv, bk(bucketNodes, r.ID), n.Name, n); err != nil {
			return fmt.Errorf("create run %s: node %s: %w", r.ID, n.Name, err)
		}
	}
	if err := t.kv.createBucket(bk(bucketJournal, r.ID), true); err != nil {
		return fmt.Errorf("create run %s: %w", r.ID, err)
	}
	if err := t.kv.createBucket(bk(bucketOpen, r.ID), true); err != nil {
		return fmt.Errorf("create run %s: %w", r.ID, err)
	}
	if err := t.kv.createBucket(bk(bucketMigrations, r.ID), true); err != nil {
		return fmt.Errorf("create run %s: %w", r.ID, err)
	}
	return nil
}

// Run returns the run with that ID.
func (t *Tx) Run(id string) (Run, error) {
	var r Run
	ok, err := getJSON(t.kv, bk(bucketRuns), id, &r)
	if err != nil {
		return r, fmt.Errorf("read run %s: %w", id, err)
	}
	if !ok {
		return r, fmt.Errorf("run %s: %w", id, ErrNotFound)
	}
	return r, nil
}

// UpdateRun reads the run, lets fn change it, and writes it back.
func (t *Tx) UpdateRun(id string, fn func(*Run) error) error {
	r, err := t.Run(id)
	if err != nil {
		return err
	}
	if err := fn(&r); err != nil {
		return err
	}
	r.ID = id
	return putJSON(t.kv, bk(bucketRuns), id, r)
}

// Runs lists the runs of cluster (all clusters when empty), newest first.
func (t *Tx) Runs(cluster string) ([]Run, error) {
	var out []Run
	err := t.kv.forEach(bk(bucketRuns), func(k string, v []byte) error {
		var r Run
		if err := json.Unmarshal(v, &r); err != nil || r.ID != k {
			return nil // unreadable: left out, quarantined and reported (check.go)
		}
		if cluster == "" || r.Cluster == cluster {
			out = append(out, r)
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].StartedAt.Equal(out[j].StartedAt) {
			return out[i].StartedAt.After(out[j].StartedAt)
		}
		return out[i].ID > out[j].ID
	})
	return out, err
}

// Node returns the record of one node in a run, with its migrations.
func (t *Tx) Node(runID, name string) (NodeRecord, error) {
	n, err := t.storedNode(runID, name)
	if err != nil {
		return n, err
	}
	return n, t.addMigrations(runID, name, &n)
}

// storedNode is the node record as stored: without the migrations kept apart.
func (t *Tx) storedNode(runID, name string) (NodeRecord, error) {
	var n NodeRecord
	ok, err := getJSON(t.kv, bk(bucketNodes, runID), name, &n)
	if err != nil {
		return n, fmt.Errorf("read node %s of run %s: %w", name, runID, err)
	}
	if !ok {
		return n, fmt.Errorf("node %s of run %s: %w", name, runID, ErrNotFound)
	}
	return n, nil
}

// Nodes returns a run's node records in run order.
func (t *Tx) Nodes(runID string) ([]NodeRecord, error) {
	r, err := t.Run(runID)
	if err != nil {
		return nil, err
	}
	out := make([]NodeRecord, 0, len(r.Order))
	for _, name := range r.Order {
		n, err := t.Node(runID, name)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// UpdateNode reads a node record, lets fn change it, and writes it back. Where the run
// keeps its migrations apart (MigrationsApart), fn sees the record without them; add
// one with AppendMigration.
func (t *Tx) UpdateNode(runID, name string, fn func(*NodeRecord) error) error {
	n, err := t.storedNode(runID, name)
	if err != nil {
		return err
	}
	if err := fn(&n); err != nil {
		return err
	}
	n.Name = name
	return putJSON(t.kv, bk(bucketNodes, runID), name, n)
}

func seqKey(seq uint64) string {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return string(k[:])
}

// journalBucket returns the run's journal bucket, ErrNotFound when it has none.
func (t *Tx) journalBucket(runID string) (bucket, error) {
	jb := bk(bucketJournal, runID)
	ok, err := t.kv.hasBucket(jb)
	if err == nil && !ok {
		err = ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("journal of run %s: %w", runID, err)
	}
	return jb, nil
}

// Append adds e to the run's journal and returns its sequence number.
func (t *Tx) Append(runID string, e Entry) (uint64, error) {
	jb, err := t.journalBucket(runID)
	if err != nil {
		return 0, err
	}
	seq, err := t.kv.nextSeq(jb)
	if err != nil {
		return 0, fmt.Errorf("journal of run %s: %w", runID, err)
	}
	e.Seq = seq
	if err := putJSON(t.kv, jb, seqKey(seq), e); err != nil {
		return 0, fmt.Errorf("journal of run %s: %w", runID, err)
	}
	if err := t.indexOpen(runID, e); err != nil {
		return 0, fmt.Errorf("journal of run %s: %w", runID, err)
	}
	return seq, nil
}

// Journal returns a run's journal in order.
func (t *Tx) Journal(runID string) ([]Entry, error) {
	jb, err := t.journalBucket(runID)
	if err != nil {
		return nil, err
	}
	var out []Entry
	err = t.kv.forEach(jb, func(k string, v []byte) error {
		var e Entry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("decode journal entry %d: %w", binary.BigEndian.Uint64([]byte(k)), err)
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// Lock returns the run lock of cluster, if any.
func (t *Tx) Lock(cluster string) (Lock, bool, error) {
	var l Lock
	ok, err := getJSON(t.kv, bk(bucketLocks), cluster, &l)
	return l, ok, err
}

// AcquireLock takes the run lock of l.Cluster for l.RunID. A lock held by the same run
// is taken over; a lock of another run is taken over only when its owner is dead (or
// force is set, for an owner whose liveness cannot be checked); the previous lock is
// returned so the caller can journal and report the takeover.
func (t *Tx) AcquireLock(l Lock, alive func(Owner) Liveness, force bool) (previous *Lock, err error) {
	var old Lock
	ok, err := getJSON(t.kv, bk(bucketLocks), l.Cluster, &old)
	if err != nil {
		return nil, fmt.Errorf("read lock of cluster %s: %w", l.Cluster, err)
	}
	if ok {
		live := alive(old.Owner)
		if live == Alive && !(old.Owner.PID == l.Owner.PID && old.Owner.Host == l.Owner.Host && old.Owner.StartTicks == l.Owner.StartTicks) {
			return nil, &RunLockedError{Lock: old, Liveness: live}
		}
		if live == Unknown && !force {
			return nil, &RunLockedError{Lock: old, Liveness: live}
		}
		previous = &old
	}
	if err := putJSON(t.kv, bk(bucketLocks), l.Cluster, l); err != nil {
		return nil, fmt.Errorf("write lock of cluster %s: %w", l.Cluster, err)
	}
	return previous, nil
}

// ReleaseLock drops the lock of cluster if runID holds it.
func (t *Tx) ReleaseLock(cluster, runID string) error {
	var old Lock
	ok, err := getJSON(t.kv, bk(bucketLocks), cluster, &old)
	if err != nil || !ok || old.RunID != runID {
		return err
	}
	return t.kv.del(bk(bucketLocks), cluster)
}

// TimingsKept is how many measurements a cluster keeps per node and kind: the newest
// (the planner reads no more than these), so the state file does not grow with every run.
const TimingsKept = 20

// Convenience wrappers for single-operation transactions.

// Run returns one run.
func (s *Store) Run(id string) (r Run, err error) {
	err = s.View(func(tx *Tx) error { r, err = tx.Run(id); return err })
	return r, err
}

// Runs lists runs, newest first.
func (s *Store) Runs(cluster string) (rs []Run, err error) {
	err = s.View(func(tx *Tx) error { rs, err = tx.Runs(cluster); return err })
	return rs, err
}

// Nodes returns a run's node records.
func (s *Store) Nodes(runID string) (ns []NodeRecord, err error) {
	err = s.View(func(tx *Tx) error { ns, err = tx.Nodes(runID); return err })
	return ns, err
}

// Journal returns a run's journal.
func (s *Store) Journal(runID string) (es []Entry, err error) {
	err = s.View(func(tx *Tx) error { es, err = tx.Journal(runID); return err })
	return es, err
}

// Stats reports the bytes bbolt has written so far (for per-migration cost figures).
func (s *Store) Stats() (writes int64, bytesWritten int64) {
	if s.db == nil {
		return 0, 0
	}
	st := s.db.Stats()
	return st.TxStats.GetWrite(), st.TxStats.GetWrite() * int64(s.db.Info().PageSize)
}
