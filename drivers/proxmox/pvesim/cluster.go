package pvesim

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Cluster is a running model with its API and SSH servers, every listener on
// 127.0.0.1.
type Cluster struct {
	Model *Model
	API   *Server
	SSH   *SSHServer
	// Endpoints are the nodes' API base URLs and SSHAddrs their sshd addresses, by
	// node.
	Endpoints map[string]string
	SSHAddrs  map[string]string

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartOptions configures Start.
type StartOptions struct {
	Model   Options
	TokenID string
	Secret  string
	// ClientKey is the public key the sshd accepts for root.
	ClientKey ssh.PublicKey
	// Ports, when set, are the fixed API and SSH ports per node (0 = any free port).
	APIPorts, SSHPorts map[string]int
	Log                *slog.Logger
}

// Start builds the model and serves it until Close.
func Start(o StartOptions) (*Cluster, error) {
	m := NewModel(o.Model)
	api, err := NewServer(m, o.TokenID, o.Secret, o.Log)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Model: m, API: api, SSH: NewSSHServer(m, o.ClientKey, o.Log), Endpoints: map[string]string{}, SSHAddrs: map[string]string{}}
	for _, node := range m.NodeNames() {
		u, err := api.Listen(node, fmt.Sprintf("127.0.0.1:%d", o.APIPorts[node]))
		if err != nil {
			api.Close()
			c.SSH.Close()
			return nil, fmt.Errorf("node %s API: %w", node, err)
		}
		c.Endpoints[node] = u
		a, err := c.SSH.Listen(node, fmt.Sprintf("127.0.0.1:%d", o.SSHPorts[node]))
		if err != nil {
			api.Close()
			c.SSH.Close()
			return nil, fmt.Errorf("node %s sshd: %w", node, err)
		}
		c.SSHAddrs[node] = a
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	tick := 20 * time.Millisecond
	c.wg.Add(3)
	go func() { defer c.wg.Done(); m.Run(ctx, tick) }()
	go func() { defer c.wg.Done(); api.Watch(ctx, tick) }()
	go func() { defer c.wg.Done(); c.SSH.Watch(ctx, tick) }()
	return c, nil
}

// Close stops the servers and the model.
func (c *Cluster) Close() {
	c.cancel()
	c.wg.Wait()
}
