package ha

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/etcdtest"
)

const testTTL = 3 * time.Second

type replica struct {
	cli   *clientv3.Client
	store *runs.Store
	el    *Elector
}

func join(t *testing.T, c *etcdtest.Cluster, name string) (*replica, error) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	st, err := runs.OpenEtcd(context.Background(), cli, "/drover-ha", runs.EtcdOptions{Fenced: true, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	el, err := Join(context.Background(), Config{Client: cli, Prefix: "/drover-ha", Replica: name, API: "http://" + name, TTL: testTTL, Store: st})
	if err != nil {
		return nil, err
	}
	return &replica{cli: cli, store: st, el: el}, nil
}

func write(s *runs.Store, id string) error {
	return s.Update(func(tx *runs.Tx) error { return tx.CreateRun(runs.Run{ID: id, Cluster: "c"}, nil) })
}

// TestElector_TakeoverAfterLeaderDies: the leader's process dies without resigning
// (its connection to etcd just stops, as with kill -9); the follower is elected
// once the lease ends, within 2 x lease_ttl, its writes go through, the term and
// the takeover are counted, and a second replica of a live name is refused.
func TestElector_TakeoverAfterLeaderDies(t *testing.T) {
	c := etcdtest.Start(t, 3)
	a, err := join(t, c, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.el.Campaign(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !a.el.IsLeader() {
		t.Fatal("a won the election but says it does not lead")
	}
	if err := write(a.store, "by-a"); err != nil {
		t.Fatalf("leader's write: %v", err)
	}
	b, err := join(t, c, "b")
	if err != nil {
		t.Fatal(err)
	}
	if err := write(b.store, "by-follower"); !errors.Is(err, runs.ErrNotLeader) {
		t.Fatalf("follower's write = %v, want ErrNotLeader", err)
	}
	elected := make(chan error, 1)
	go func() { elected <- b.el.Campaign(context.Background()) }()

	select {
	case err := <-elected:
		t.Fatalf("b elected while a leads: %v", err)
	case <-time.After(testTTL + time.Second):
	}
	died := time.Now()
	a.cli.Close() // no resign, no revoke: the lease must run out
	select {
	case err := <-elected:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * testTTL):
		t.Fatalf("b not elected %s after the leader died (lease_ttl %s)", 2*testTTL, testTTL)
	}
	took := time.Since(died)
	t.Logf("takeover after %s (lease_ttl %s)", took.Round(time.Millisecond), testTTL)
	select {
	case <-a.el.Lost():
	case <-time.After(2 * testTTL):
		t.Fatal("the dead leader's elector never reported the loss")
	}
	if a.el.IsLeader() {
		t.Error("the deposed leader still says it leads")
	}
	if err := write(b.store, "by-b"); err != nil {
		t.Fatalf("new leader's write: %v", err)
	}
	st, err := b.el.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !st.IsLeader || st.Leader == nil || st.Leader.Replica != "b" || st.Term != 2 || st.Takeovers != 1 || len(st.Replicas) != 1 {
		t.Errorf("status = %+v; want b leading, term 2, 1 takeover, 1 replica", st)
	}
	if _, err := join(t, c, "b"); !errors.Is(err, ErrDuplicateReplica) {
		t.Errorf("a second live replica named b: %v, want ErrDuplicateReplica", err)
	}
}

// TestElector_EtcdLostStopsTheLeader: when etcd goes away mid-run, the leader
// notices within its lease, says why, no longer counts as leader, and writes nothing.
func TestElector_EtcdLostStopsTheLeader(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a, err := join(t, c, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.el.Campaign(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.StopMember(0)
	select {
	case <-a.el.Lost():
	case <-time.After(2 * testTTL):
		t.Fatalf("etcd gone for %s, the leader did not notice", 2*testTTL)
	}
	if a.el.IsLeader() || a.el.Err() == nil || !strings.Contains(a.el.Err().Error(), "lease") {
		t.Errorf("after losing etcd: leader %v, reason %v; want not leader and a reason naming the lease", a.el.IsLeader(), a.el.Err())
	}
	if err := write(a.store, "after-etcd-lost"); !errors.Is(err, runs.ErrNotLeader) {
		t.Errorf("write after losing etcd = %v, want ErrNotLeader (refused before reaching etcd)", err)
	}
}
