package hyperv_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/droverhq/drover/drivers/hyperv/wsmantest"
)

// sshLab serves m over SSH and writes the client key and known_hosts into dir.
func sshLab(t *testing.T, m *wsmantest.Model, dir string, ns *wsmantest.Netns) (c *wsmantest.Cluster, keyFile, knownHosts string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile = filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = wsmantest.StartSSHCluster(m, signer.PublicKey(), ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	knownHosts = filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(knownHosts, []byte(c.KnownHosts()), 0o600); err != nil {
		t.Fatal(err)
	}
	return c, keyFile, knownHosts
}

func TestInventoryAndPauseOverSSH(t *testing.T) {
	m := threeNodes(2, wsmantest.Timing{})
	dir := t.TempDir()
	c, key, kh := sshLab(t, m, dir, nil)
	nodes := []any{}
	for _, a := range c.Addrs() {
		nodes = append(nodes, a)
	}
	raw := map[string]any{"nodes": nodes, "transport": "ssh", "ssh": map[string]any{"user": `HV\drover`, "key_file": key, "known_hosts": kh}, "poll_interval": "50ms"}
	d, err := openDriver(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := d.Inventory(t.Context())
	if err != nil || len(inv.Nodes) != 3 || len(inv.VMs) != 5 {
		t.Fatalf("inventory over ssh: %+v, %v", inv, err)
	}
	if err := d.PauseNode(t.Context(), "HV1", "drover-run:ssh"); err != nil {
		t.Fatal(err)
	}
	if n := m.Nodes()[0]; n.State != "Paused" || n.Description != "drover-run:ssh" {
		t.Errorf("HV1 after pause over ssh: %s %q", n.State, n.Description)
	}
	if c.SSH["HV1"].Runs() == 0 {
		t.Error("no command reached HV1's SSH server")
	}
	noRejected(t, m)

	// A host key that is not the one in known_hosts is refused before any command.
	other, _ := wsmantest.NewKey()
	bad := strings.ReplaceAll(c.KnownHosts(), strings.TrimSpace(strings.SplitN(strings.SplitN(c.KnownHosts(), "\n", 2)[0], " ", 2)[1]),
		strings.TrimSpace(string(ssh.MarshalAuthorizedKey(other.PublicKey()))))
	if err := os.WriteFile(kh, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	runs := c.SSH["HV2"].Runs()
	d2, err := openDriver(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d2.Inventory(t.Context()); err == nil || !strings.Contains(err.Error(), "key") {
		t.Errorf("inventory with a wrong host key in known_hosts: %v; want a host key error", err)
	}
	if c.SSH["HV2"].Runs() != runs {
		t.Error("a command ran although the host key did not match")
	}
}
