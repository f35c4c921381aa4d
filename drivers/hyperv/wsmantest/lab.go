package wsmantest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// CA is a test certificate authority and one server certificate it signed for
// 127.0.0.1, ::1 and localhost (plus any extra IPs).
type CA struct {
	// PEM is the CA certificate, what a client's ca_file holds.
	PEM []byte
	// Server is the listeners' TLS configuration.
	Server *tls.Config
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
}

// NewCA makes a CA and a server certificate valid for an hour.
func NewCA(ips ...net.IP) (*CA, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Drover test CA"}, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "hv-node"}, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, ips...),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &CA{
		PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		// Client certificates are verified when given (WinRM's certificate
		// authentication); the other schemes go without one.
		Server: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12,
			ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool},
		cert: ca, key: caKey,
	}, nil
}

// ClientCert issues a client certificate for user (its common name), PEM encoded.
func (c *CA) ClientCert(user string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: user}, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

// WriteCAFile writes the CA certificate into dir and returns its path.
func (c *CA) WriteCAFile(dir string) (string, error) {
	p := filepath.Join(dir, "ca.pem")
	return p, os.WriteFile(p, c.PEM, 0o600)
}

// Cluster is a model with one WinRM endpoint per node on loopback; a node's reboot
// stops its endpoint and starts it again on the same address.
type Cluster struct {
	Model     *Model
	CA        *CA
	Endpoints map[string]*Endpoint
	// SSH are the nodes' SSH servers (StartSSHCluster).
	SSH     map[string]*SSHEndpoint
	order   []string
	hostKey ssh.PublicKey
	// ns, when set, puts each node's endpoint into a network namespace of its own.
	ns *Netns

	mu sync.Mutex
	// RestartErrors lists endpoints that could not listen again after a reboot.
	restartErrs []string
}

func (c *Cluster) restartErr(node string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.restartErrs = append(c.restartErrs, node+": "+err.Error())
}

// RestartErrors lists endpoints that could not listen again after their node's reboot.
func (c *Cluster) RestartErrors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.restartErrs...)
}

// StartCluster starts an endpoint for every node of m on loopback, accepting
// user/password.
func StartCluster(m *Model, user, password string) (*Cluster, error) {
	return StartClusterIn(m, user, password, nil)
}

// StartClusterIn is StartCluster with each node's endpoint on port 5986 in its own
// network namespace of ns (loopback when ns is nil).
func StartClusterIn(m *Model, user, password string, ns *Netns) (*Cluster, error) {
	var ips []net.IP
	if ns != nil {
		ips = ns.IPs()
	}
	ca, err := NewCA(ips...)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Model: m, CA: ca, Endpoints: map[string]*Endpoint{}, ns: ns}
	for _, n := range m.Nodes() {
		e := &Endpoint{Node: n.Name, Model: m, TLS: ca.Server, Users: map[string]string{user: password}}
		first := ""
		if ns != nil {
			first = net.JoinHostPort(ns.IP(n.Name).String(), "5986")
			e.Listen = func(a string) (net.Listener, error) { return ns.Listen(n.Name, a) }
		}
		if err := e.Start(first); err != nil {
			c.Close()
			return nil, fmt.Errorf("start endpoint of %s: %w", n.Name, err)
		}
		c.Endpoints[n.Name] = e
		c.order = append(c.order, n.Name)
	}
	m.SetHooks(func(node string) {
		c.Endpoints[node].Stop()
		c.linkDown(node)
	}, func(node string) {
		c.linkUp(node)
		if err := c.Endpoints[node].Start(""); err != nil {
			c.restartErr(node, err)
		}
	})
	return c, nil
}

// linkDown takes a node's network away (namespaces only): the host is gone, not
// just its listener.
func (c *Cluster) linkDown(node string) {
	if c.ns != nil {
		if err := c.ns.SetLink(node, false); err != nil {
			c.restartErr(node, err)
		}
	}
}

func (c *Cluster) linkUp(node string) {
	if c.ns != nil {
		if err := c.ns.SetLink(node, true); err != nil {
			c.restartErr(node, err)
		}
	}
}

// Addrs are the endpoints' addresses in node order, what cluster.hyperv.nodes lists.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, n := range c.order {
		if e, ok := c.Endpoints[n]; ok {
			out = append(out, e.Addr())
		} else {
			out = append(out, c.SSH[n].Addr())
		}
	}
	return out
}

// Close stops the model's timers and every endpoint.
func (c *Cluster) Close() {
	c.Model.Close()
	for _, e := range c.Endpoints {
		e.Stop()
	}
	for _, e := range c.SSH {
		e.Stop()
	}
}

// InNetns reports whether the endpoints live in network namespaces.
func (c *Cluster) InNetns() bool { return c.ns != nil }
