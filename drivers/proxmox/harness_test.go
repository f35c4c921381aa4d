package proxmox

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/proxmox/pvesim"
	"github.com/droverhq/drover/drivers/updaters"
)

const (
	testTokenID = "drover@pve!rolling"
	testSecret  = "5f0c2b8e-91d4-4e57-a3c6-7d2e1b9f0a44"
	secretEnv   = "DROVER_TEST_PVE_TOKEN"
)

// lab is a pvesim cluster with the files a user would configure: the CA, the SSH key
// and known_hosts.
type lab struct {
	c   *pvesim.Cluster
	dir string
	cfg Config
}

func testCluster() pvesim.Options {
	return pvesim.Options{
		Nodes: []pvesim.Node{
			{Name: "pve1", MemoryMiB: 65536, CPUs: 16, HasCeph: true},
			{Name: "pve2", MemoryMiB: 65536, CPUs: 16, HasCeph: true},
			{Name: "pve3", MemoryMiB: 65536, CPUs: 16, HasCeph: true},
		},
		Guests: []pvesim.Guest{
			{VMID: 101, Name: "web1", Type: "qemu", Node: "pve1", MaxMemMiB: 2048, CPUs: 2, HA: true},
			{VMID: 102, Name: "web2", Type: "qemu", Node: "pve1", MaxMemMiB: 2048, CPUs: 2, HA: true},
			{VMID: 103, Name: "db1", Type: "qemu", Node: "pve1", MaxMemMiB: 4096, CPUs: 4, Disks: []pvesim.Disk{{Key: "scsi0", VolID: "local-lvm:vm-103-disk-0", Size: 4 << 30}}},
			{VMID: 104, Name: "app1", Type: "qemu", Node: "pve2", MaxMemMiB: 1024, CPUs: 1},
			{VMID: 105, Name: "gpu1", Type: "qemu", Node: "pve3", MaxMemMiB: 8192, CPUs: 8, LocalResources: []string{"hostpci0"}},
			{VMID: 200, Name: "dns1", Type: "lxc", Node: "pve1", MaxMemMiB: 512, CPUs: 1, HA: true},
			{VMID: 201, Name: "mon1", Type: "lxc", Node: "pve2", MaxMemMiB: 512, CPUs: 1},
		},
		MaxWorkers: 1,
		Ceph:       true,
	}
}

func newLab(t *testing.T, opts pvesim.Options) *lab {
	t.Helper()
	dir := t.TempDir()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(key, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pvesim.Start(pvesim.StartOptions{Model: opts, TokenID: testTokenID, Secret: testSecret, ClientKey: signer.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	t.Cleanup(func() {
		if v := c.Model.Violations(); len(v) > 0 {
			t.Errorf("requests or answers the PVE schema refuses, or unexpected SSH commands:\n%s", strings.Join(v, "\n"))
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(c.SSH.KnownHosts()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), c.API.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(secretEnv, testSecret)
	cfg := *NewConfig()
	for _, n := range c.Model.NodeNames() {
		cfg.Endpoints = append(cfg.Endpoints, c.Endpoints[n])
	}
	cfg.TokenID = testTokenID
	cfg.TokenSecretEnv = secretEnv
	cfg.CAFile = "ca.pem"
	cfg.SSH = &updaters.SSHConfig{User: "root", KeyFile: "id_ed25519", KnownHosts: "known_hosts", ConnectTimeout: 5 * time.Second}
	cfg.Nodes = map[string]string{}
	for n, a := range c.SSHAddrs {
		cfg.Nodes[n] = a
	}
	cfg.PollInterval = 50 * time.Millisecond
	cfg.MaintenanceTimeout = time.Minute
	cfg.RequestTimeout = 5 * time.Second
	return &lab{c: c, dir: dir, cfg: cfg}
}

func (l *lab) open(t *testing.T) *Driver {
	t.Helper()
	d, err := l.cfg.Open(context.Background(), drivers.Env{BaseDir: l.dir, Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d.(*Driver)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// waitUntil polls cond every 20ms until it holds or the deadline passes.
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func guestOn(s pvesim.Snapshot, vmid int) pvesim.GuestState {
	for _, g := range s.Guests {
		if g.VMID == vmid {
			return g
		}
	}
	return pvesim.GuestState{}
}
