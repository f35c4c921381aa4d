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
	return &CA{
		PEM:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		Server: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12},
	}, nil
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

// StartCluster starts an endpoint for every node of m, accepting user/password.
func StartCluster(m *Model, user, password string) (*Cluster, error) {
	ca, err := NewCA()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Model: m, CA: ca, Endpoints: map[string]*Endpoint{}}
	for _, n := range m.Nodes() {
		e := &Endpoint{Node: n.Name, Model: m, TLS: ca.Server, Users: map[string]string{user: password}}
		if err := e.Start(""); err != nil {
			c.Close()
			return nil, fmt.Errorf("start endpoint of %s: %w", n.Name, err)
		}
		c.Endpoints[n.Name] = e
		c.order = append(c.order, n.Name)
	}
	m.SetHooks(func(node string) { c.Endpoints[node].Stop() }, func(node string) {
		if err := c.Endpoints[node].Start(""); err != nil {
			c.restartErr(node, err)
		}
	})
	return c, nil
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
