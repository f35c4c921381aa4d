package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

// Cluster is a running etcd cluster of embedded members.
type Cluster struct {
	t       testing.TB
	mu      sync.Mutex
	members []*embed.Etcd
	clients []string
}

// freePorts reserves n loopback ports: etcd wants its peers' addresses before any
// member listens, so they cannot come from a listener on :0 that etcd keeps.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// Start starts an n-member cluster and waits until it has a leader. The members
// stop when the test ends.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	var (
		c   *Cluster
		err error
	)
	// A reserved port can be taken by someone else before etcd binds it: try again.
	for range 3 {
		if c, err = start(t, n); err == nil {
			return c
		}
	}
	t.Fatalf("start an embedded etcd cluster of %d members: %v", n, err)
	return nil
}

func start(t testing.TB, n int) (*Cluster, error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	token := fmt.Sprintf("drover-test-%d", ports[0])
	var initial []string
	for i := range n {
		initial = append(initial, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, ports[2*i+1]))
	}
	dir := t.TempDir()
	c := &Cluster{t: t}
	type started struct {
		i   int
		e   *embed.Etcd
		err error
	}
	ch := make(chan started, n)
	for i := range n {
		cfg := embed.NewConfig()
		cfg.Name = fmt.Sprintf("m%d", i)
		cfg.Dir = filepath.Join(dir, cfg.Name)
		cu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i])}
		pu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])}
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.InitialClusterToken = token
		cfg.ClusterState = embed.ClusterStateFlagNew
		cfg.LogLevel = "error"
		cfg.LogOutputs = []string{filepath.Join(dir, cfg.Name+".log")}
		// Small ticks: a lost member or leader is noticed in well under a second.
		cfg.TickMs, cfg.ElectionMs = 50, 500
		c.clients = append(c.clients, cu.String())
		go func() {
			e, err := embed.StartEtcd(cfg)
			ch <- started{i, e, err}
		}()
	}
	c.members = make([]*embed.Etcd, n)
	var firstErr error
	for range n {
		s := <-ch
		if s.err != nil && firstErr == nil {
			firstErr = s.err
		}
		c.members[s.i] = s.e
	}
	t.Cleanup(c.Close)
	if firstErr != nil {
		c.Close()
		return nil, firstErr
	}
	deadline := time.After(30 * time.Second)
	for i, e := range c.members {
		select {
		case <-e.Server.ReadyNotify():
		case err := <-e.Err():
			c.Close()
			return nil, fmt.Errorf("member m%d: %w", i, err)
		case <-deadline:
			c.Close()
			return nil, fmt.Errorf("member m%d not ready after 30 s", i)
		}
	}
	return c, nil
}

// Endpoints are the members' client URLs.
func (c *Cluster) Endpoints() []string { return append([]string(nil), c.clients...) }

// Client returns a client of every member, closed when the test ends.
func (c *Cluster) Client() *clientv3.Client {
	c.t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		c.t.Fatalf("etcd client: %v", err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

// StopMember stops member i (as if its host died); the others go on.
func (c *Cluster) StopMember(i int) {
	c.mu.Lock()
	e := c.members[i]
	c.members[i] = nil
	c.mu.Unlock()
	if e != nil {
		e.Close()
	}
}

// Close stops every member.
func (c *Cluster) Close() {
	for i := range c.members {
		c.StopMember(i)
	}
}
