package ha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/droverhq/drover/runs"
)

// MinLeaseTTL is the shortest lease_ttl accepted: below it a replica paused by a
// garbage collection or a busy host loses leadership for nothing, and etcd's own
// election timeout (1 s by default) is no longer small beside it.
const MinLeaseTTL = 3 * time.Second

// ErrDuplicateReplica: another live replica registered the same name.
var ErrDuplicateReplica = errors.New("another live replica uses this name")

// Config of an Elector.
type Config struct {
	Client *clientv3.Client
	// Prefix is the store's etcd prefix; the election lives below it.
	Prefix string
	// Replica is this replica's name; API the URL of its API, told to followers.
	Replica string
	API     string
	TTL     time.Duration
	// Store is fenced with the leadership key while this replica leads.
	Store  *runs.Store
	Logger *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Info is what a replica publishes about itself.
type Info struct {
	Replica string    `json:"replica"`
	API     string    `json:"api"`
	Since   time.Time `json:"since"`
}

// Elector is one replica's part in the election.
type Elector struct {
	cfg   Config
	log   *slog.Logger
	sess  *concurrency.Session
	elec  *concurrency.Election
	since time.Time

	mu       sync.Mutex
	leader   bool
	deadline time.Time // the lease is surely alive until then (local clock)
	lost     chan struct{}
	lostOnce sync.Once
	why      error
}

func (c Config) key(parts ...string) string {
	return strings.TrimRight(c.Prefix, "/") + "/ha/" + strings.Join(parts, "/")
}

// Join registers the replica under its name, on a lease of cfg.TTL. A name held by
// a replica that died is waited for until its lease ends; a name held by a live
// replica is ErrDuplicateReplica.
func Join(ctx context.Context, cfg Config) (*Elector, error) {
	if cfg.TTL < MinLeaseTTL {
		return nil, fmt.Errorf("lease TTL %s is below %s", cfg.TTL, MinLeaseTTL)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ttl := int(cfg.TTL.Round(time.Second) / time.Second)
	grant, err := cfg.Client.Grant(ctx, int64(ttl))
	if err != nil {
		return nil, fmt.Errorf("etcd: grant a lease: %w", err)
	}
	e := &Elector{cfg: cfg, log: cfg.Logger.With("component", "ha", "replica", cfg.Replica), lost: make(chan struct{}), since: cfg.Now()}
	e.deadline = cfg.Now().Add(time.Duration(grant.TTL) * time.Second)
	sess, err := concurrency.NewSession(cfg.Client, concurrency.WithLease(grant.ID), concurrency.WithTTL(ttl))
	if err != nil {
		return nil, fmt.Errorf("etcd: session: %w", err)
	}
	e.sess = sess
	if err := e.register(ctx, time.Duration(grant.TTL)*time.Second+time.Second); err != nil {
		sess.Close()
		return nil, err
	}
	ka, err := cfg.Client.KeepAlive(context.WithoutCancel(ctx), grant.ID)
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("etcd: keep the lease alive: %w", err)
	}
	go e.watchLease(ka)
	e.elec = concurrency.NewElection(sess, cfg.key("election"))
	return e, nil
}

func (e *Elector) register(ctx context.Context, wait time.Duration) error {
	info, _ := json.Marshal(Info{Replica: e.cfg.Replica, API: e.cfg.API, Since: e.since})
	k := e.cfg.key("replicas", e.cfg.Replica)
	end := e.cfg.Now().Add(wait)
	for {
		resp, err := e.cfg.Client.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
			Then(clientv3.OpPut(k, string(info), clientv3.WithLease(e.sess.Lease()))).
			Commit()
		if err != nil {
			return fmt.Errorf("etcd: register replica %s: %w", e.cfg.Replica, err)
		}
		if resp.Succeeded {
			return nil
		}
		if e.cfg.Now().After(end) {
			return fmt.Errorf("replica %s: %w", e.cfg.Replica, ErrDuplicateReplica)
		}
		// Perhaps a predecessor of the same name that died: its lease ends soon.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// watchLease follows the keep-alive answers: each one proves the lease alive for
// its TTL from the moment it was sent. When they stop, leadership is lost.
func (e *Elector) watchLease(ka <-chan *clientv3.LeaseKeepAliveResponse) {
	for {
		select {
		case resp, ok := <-ka:
			if !ok || resp.TTL <= 0 {
				e.lose(errors.New("the etcd lease ended (etcd unreachable, or this replica stalled past lease_ttl)"))
				return
			}
			// The answer may be late: count from a conservative sent time, one
			// keep-alive interval (TTL/3) before now.
			d := time.Duration(resp.TTL) * time.Second
			e.mu.Lock()
			e.deadline = e.cfg.Now().Add(d - d/3)
			e.mu.Unlock()
		case <-e.sess.Done():
			e.lose(errors.New("the etcd session ended"))
			return
		}
	}
}

func (e *Elector) lose(why error) {
	e.lostOnce.Do(func() {
		e.mu.Lock()
		wasLeader := e.leader
		e.leader, e.why = false, why
		e.mu.Unlock()
		e.cfg.Store.SetFence(nil)
		if wasLeader {
			e.log.Error("leadership lost: this replica stops acting", "error", why)
		}
		close(e.lost)
	})
}

// Lost is closed when the replica's lease is gone: it is no longer the leader (if it
// was) and may not become one.
func (e *Elector) Lost() <-chan struct{} { return e.lost }

// Err says why Lost was closed.
func (e *Elector) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.why
}

// Campaign blocks until this replica is the leader (or ctx ends, or the lease is
// lost), then fences the store with the leadership key and records the term.
func (e *Elector) Campaign(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-e.lost:
			cancel()
		case <-ctx.Done():
		}
	}()
	info, _ := json.Marshal(Info{Replica: e.cfg.Replica, API: e.cfg.API, Since: e.since})
	if err := e.elec.Campaign(ctx, string(info)); err != nil {
		if why := e.Err(); why != nil {
			return why
		}
		return fmt.Errorf("etcd: campaign for leadership: %w", err)
	}
	e.mu.Lock()
	e.leader = true
	e.mu.Unlock()
	e.cfg.Store.SetFence(&runs.Fence{Key: e.elec.Key(), CreateRev: e.elec.Rev(), Valid: e.IsLeader})
	if err := e.recordTerm(ctx); err != nil {
		if ctx.Err() != nil {
			return err // shutting down: Close resigns
		}
		// Elected but unable to write: give the lease up so another replica leads.
		e.lose(err)
		return err
	}
	e.log.Info("elected leader", "leadership_key", e.elec.Key(), "revision", e.elec.Rev())
	return nil
}

// Term is the record of the current leadership term.
type Term struct {
	Term    int64     `json:"term"`
	Replica string    `json:"replica"`
	Since   time.Time `json:"since"`
}

// recordTerm counts the term (takeovers = terms - 1), fenced like every write.
func (e *Elector) recordTerm(ctx context.Context) error {
	k := e.cfg.key("term")
	g, err := e.cfg.Client.Get(ctx, k)
	if err != nil {
		return fmt.Errorf("etcd: read the leadership term: %w", err)
	}
	var t Term
	var rev int64
	if len(g.Kvs) > 0 {
		_ = json.Unmarshal(g.Kvs[0].Value, &t)
		rev = g.Kvs[0].ModRevision
	}
	t = Term{Term: t.Term + 1, Replica: e.cfg.Replica, Since: e.cfg.Now()}
	raw, _ := json.Marshal(t)
	resp, err := e.cfg.Client.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(e.elec.Key()), "=", e.elec.Rev()),
		clientv3.Compare(clientv3.ModRevision(k), "=", rev),
	).Then(clientv3.OpPut(k, string(raw))).Commit()
	if err != nil {
		return fmt.Errorf("etcd: record the leadership term: %w", err)
	}
	if !resp.Succeeded {
		return errors.New("etcd: lost leadership while recording the term")
	}
	return nil
}

// IsLeader tells whether this replica leads now: it won the election and its lease
// is surely alive by the local clock. The daemon asks before every action on the
// cluster; the store's fence is the final word on every write.
func (e *Elector) IsLeader() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leader && e.cfg.Now().Before(e.deadline)
}

// Close resigns (if leading) and ends the lease: the other replicas need not wait
// for it to expire.
func (e *Elector) Close() error {
	e.lose(errors.New("replica shut down"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if e.elec != nil {
		_ = e.elec.Resign(ctx)
	}
	return e.sess.Close()
}

// Status is what /api/v1/ha shows.
type Status struct {
	Replica  string    `json:"replica"`
	IsLeader bool      `json:"is_leader"`
	Leader   *Info     `json:"leader,omitempty"`
	Replicas []Info    `json:"replicas"`
	Term     int64     `json:"term"`
	LeaderAt time.Time `json:"leader_since,omitzero"`
	// Takeovers counts the terms after the first.
	Takeovers int64 `json:"takeovers"`
	// LeaseExpiry is when this replica's lease ends unless renewed (local clock).
	LeaseExpiry time.Time `json:"lease_expiry"`
	LeaseTTL    string    `json:"lease_ttl"`
	// FencedWrites and RefusedWrites: this replica's writes that etcd accepted
	// under its fence, and those it refused because the fence was stale.
	FencedWrites  int64 `json:"fenced_writes"`
	RefusedWrites int64 `json:"refused_writes"`
}

// Status reads the replicas, the leader and the term from etcd.
func (e *Elector) Status(ctx context.Context) (Status, error) {
	st := Status{Replica: e.cfg.Replica, IsLeader: e.IsLeader(), LeaseTTL: e.cfg.TTL.String()}
	e.mu.Lock()
	st.LeaseExpiry = e.deadline
	e.mu.Unlock()
	st.FencedWrites, st.RefusedWrites = e.cfg.Store.FenceStats()
	g, err := e.cfg.Client.Get(ctx, e.cfg.key("replicas")+"/", clientv3.WithPrefix())
	if err != nil {
		return st, fmt.Errorf("etcd: read the replicas: %w", err)
	}
	for _, kv := range g.Kvs {
		var in Info
		if json.Unmarshal(kv.Value, &in) == nil {
			st.Replicas = append(st.Replicas, in)
		}
	}
	sort.Slice(st.Replicas, func(i, j int) bool { return st.Replicas[i].Replica < st.Replicas[j].Replica })
	if l, err := e.Leader(ctx); err == nil {
		st.Leader = &l
	}
	if t, err := e.cfg.Client.Get(ctx, e.cfg.key("term")); err == nil && len(t.Kvs) > 0 {
		var term Term
		if json.Unmarshal(t.Kvs[0].Value, &term) == nil {
			st.Term, st.LeaderAt = term.Term, term.Since
			st.Takeovers = max(term.Term-1, 0)
		}
	}
	return st, nil
}

// ErrNoLeader: no replica leads at the moment (an election is under way).
var ErrNoLeader = errors.New("no leader elected at the moment")

// Leader returns the current leader's published info.
func (e *Elector) Leader(ctx context.Context) (Info, error) {
	resp, err := e.elec.Leader(ctx)
	if errors.Is(err, concurrency.ErrElectionNoLeader) {
		return Info{}, ErrNoLeader
	}
	if err != nil {
		return Info{}, fmt.Errorf("etcd: read the leader: %w", err)
	}
	var in Info
	if len(resp.Kvs) == 0 || json.Unmarshal(resp.Kvs[0].Value, &in) != nil {
		return Info{}, ErrNoLeader
	}
	return in, nil
}
