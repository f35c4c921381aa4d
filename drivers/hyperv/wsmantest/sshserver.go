package wsmantest

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	gssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHEndpoint is one node's OpenSSH server (gliderlabs/ssh): it accepts one client
// key and runs each exec request through the model, as Windows OpenSSH runs a command
// line with its default shell.
type SSHEndpoint struct {
	Node      string
	Model     *Model
	HostKey   ssh.Signer
	ClientKey ssh.PublicKey
	// Listen opens the listener (default net.Listen).
	Listen func(addr string) (net.Listener, error)
	// FirstAddr is where the first Start listens (default 127.0.0.1:0).
	FirstAddr string

	mu   sync.Mutex
	addr string
	srv  *gssh.Server
	runs int
}

// Start listens (127.0.0.1:0 the first time, the same address afterwards).
func (e *SSHEndpoint) Start() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv != nil {
		return nil
	}
	addr := e.addr
	if addr == "" {
		addr = e.FirstAddr
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	listen := e.Listen
	if listen == nil {
		listen = func(a string) (net.Listener, error) { return net.Listen("tcp", a) }
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = listen(addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	e.addr = ln.Addr().String()
	srv := &gssh.Server{
		Handler: e.session,
		PublicKeyHandler: func(_ gssh.Context, key gssh.PublicKey) bool {
			return gssh.KeysEqual(key, e.ClientKey)
		},
	}
	srv.AddHostKey(e.HostKey)
	e.srv = srv
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// Stop closes the listener and every connection.
func (e *SSHEndpoint) Stop() {
	e.mu.Lock()
	srv := e.srv
	e.srv = nil
	e.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Addr is where the server listens.
func (e *SSHEndpoint) Addr() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.addr
}

// Runs counts the commands run.
func (e *SSHEndpoint) Runs() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.runs
}

func (e *SSHEndpoint) session(s gssh.Session) {
	e.mu.Lock()
	e.runs++
	e.mu.Unlock()
	stdout, stderr, code := e.Model.Exec(s.Context(), e.Node, s.RawCommand())
	_, _ = io.WriteString(s, stdout)
	_, _ = io.WriteString(s.Stderr(), stderr)
	_ = s.Exit(code)
}

// NewKey makes an ed25519 key.
func NewKey() (ssh.Signer, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return ssh.NewSignerFromKey(k)
}

// StartSSHCluster serves every node of m over SSH, accepting clientKey; all nodes
// share one host key, which KnownHosts lists for each address.
// With ns, each node's server listens on port 22 in the node's namespace.
func StartSSHCluster(m *Model, clientKey ssh.PublicKey, ns *Netns) (*Cluster, error) {
	hostKey, err := NewKey()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Model: m, SSH: map[string]*SSHEndpoint{}, hostKey: hostKey.PublicKey(), ns: ns}
	for _, n := range m.Nodes() {
		e := &SSHEndpoint{Node: n.Name, Model: m, HostKey: hostKey, ClientKey: clientKey}
		if ns != nil {
			e.FirstAddr = net.JoinHostPort(ns.IP(n.Name).String(), "22")
			e.Listen = func(a string) (net.Listener, error) { return ns.Listen(n.Name, a) }
		}
		if err := e.Start(); err != nil {
			c.Close()
			return nil, fmt.Errorf("start ssh endpoint of %s: %w", n.Name, err)
		}
		c.SSH[n.Name] = e
		c.order = append(c.order, n.Name)
	}
	m.SetHooks(func(node string) {
		c.SSH[node].Stop()
		c.linkDown(node)
	}, func(node string) {
		c.linkUp(node)
		if err := c.SSH[node].Start(); err != nil {
			c.restartErr(node, err)
		}
	})
	return c, nil
}

// KnownHosts is a known_hosts file's content for the SSH endpoints.
func (c *Cluster) KnownHosts() string {
	var out string
	for _, n := range c.order {
		out += knownhosts.Line([]string{knownhosts.Normalize(c.SSH[n].Addr())}, c.hostKey) + "\n"
	}
	return out
}
