package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/droverhq/drover/drivers/proxmox/pvesim"
)

// pveLab is a pvesim cluster in this process with the files a config names.
type pveLab struct {
	c      *pvesim.Cluster
	secret string
}

func startPVE(t *testing.T, dir string, timing pvesim.Timing) *pveLab {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(key, "")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	secret := "pve-" + randomHex(t, 16)
	pkgs := []pvesim.Package{{Name: "pve-manager", Version: "9.1.2", OldVersion: "9.1.1"}}
	c, err := pvesim.Start(pvesim.StartOptions{Model: pvesim.Options{
		Nodes: []pvesim.Node{{Name: "pve1", MemoryMiB: 32768, CPUs: 8, Pending: pkgs}, {Name: "pve2", MemoryMiB: 32768, CPUs: 8, Pending: pkgs}, {Name: "pve3", MemoryMiB: 32768, CPUs: 8, Pending: pkgs}},
		Guests: []pvesim.Guest{
			{VMID: 101, Name: "web1", Type: "qemu", Node: "pve1", MaxMemMiB: 1024, CPUs: 1, HA: true},
			{VMID: 102, Name: "app1", Type: "qemu", Node: "pve2", MaxMemMiB: 1024, CPUs: 1},
		},
		Timing: timing,
	}, TokenID: "drover@pve!rolling", Secret: secret, ClientKey: signer.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	writeFile(t, filepath.Join(dir, "id_ed25519"), string(pem.EncodeToMemory(block)))
	writeFile(t, filepath.Join(dir, "known_hosts"), c.SSH.KnownHosts())
	writeFile(t, filepath.Join(dir, "ca.pem"), string(c.API.CAPEM))
	return &pveLab{c: c, secret: secret}
}

// config returns a drover.yaml for the lab; extra replaces lines of the proxmox
// section (key -> line, "" drops the key).
func (l *pveLab) config(extra map[string]string) string {
	var eps, nodes []string
	for _, n := range l.c.Model.NodeNames() {
		eps = append(eps, l.c.Endpoints[n])
		nodes = append(nodes, fmt.Sprintf("%s: %q", n, l.c.SSHAddrs[n]))
	}
	keys := []string{"endpoints", "token_id", "token_secret_env", "ca_file", "ssh", "nodes", "poll_interval"}
	lines := map[string]string{
		"endpoints":        "endpoints: [" + strings.Join(eps, ", ") + "]",
		"token_id":         "token_id: drover@pve!rolling",
		"token_secret_env": "token_secret_env: DROVER_PVE_TOKEN",
		"ca_file":          "ca_file: ca.pem",
		"ssh":              "ssh: {user: root, key_file: id_ed25519, known_hosts: known_hosts}",
		"nodes":            "nodes: {" + strings.Join(nodes, ", ") + "}",
		"poll_interval":    "poll_interval: 100ms",
	}
	var b strings.Builder
	b.WriteString("state: state.db\ncluster:\n  name: pve\n  driver: proxmox\n  updater: {kind: apt}\n  proxmox:\n")
	for _, k := range keys {
		line, ok := extra[k]
		if !ok {
			line = lines[k]
		}
		if line != "" {
			b.WriteString("    " + line + "\n")
		}
	}
	b.WriteString("policy: {reboot_timeout: 2m, poll_interval: 200ms}\n")
	return b.String()
}

// TestCLI_BadInputProxmox: wrong proxmox configs fail with the key and the fix, exit
// 2 before any I/O or 1 when the cluster refused, and write nothing.
func TestCLI_BadInputProxmox(t *testing.T) {
	bin := droverBinary(t)
	labDir := t.TempDir()
	l := startPVE(t, labDir, pvesim.DefaultTiming())
	good := "DROVER_PVE_TOKEN=" + l.secret
	for _, tc := range []struct {
		name     string
		extra    map[string]string
		env      []string
		wantCode int
		want     []string
	}{
		{name: "no-endpoints", extra: map[string]string{"endpoints": ""}, env: []string{good}, wantCode: 2,
			want: []string{"cluster.proxmox.endpoints: no endpoints configured", "https://pve1.example:8006"}},
		{name: "endpoint-not-https", extra: map[string]string{"endpoints": "endpoints: [http://127.0.0.1:8006]"}, env: []string{good}, wantCode: 2,
			want: []string{"cluster.proxmox.endpoints[0]: not an https URL"}},
		{name: "token-id-malformed", extra: map[string]string{"token_id": "token_id: drover"}, env: []string{good}, wantCode: 2,
			want: []string{"cluster.proxmox.token_id: invalid API token id", "USER@REALM!TOKENID"}},
		{name: "token-secret-unset", wantCode: 2,
			want: []string{"cluster.proxmox.token_secret_env: environment variable DROVER_PVE_TOKEN is empty or unset", "export DROVER_PVE_TOKEN"}},
		{name: "token-secret-wrong", env: []string{"DROVER_PVE_TOKEN=wrong-" + l.secret[4:]}, wantCode: 1,
			want: []string{"cluster.proxmox.token_id: the API refused the token: 401", "token_secret_env"}},
		{name: "tls-unknown-ca", extra: map[string]string{"ca_file": ""}, env: []string{good}, wantCode: 1,
			want: []string{"cluster.proxmox.ca_file: TLS check of the API failed", "/etc/pve/pve-root-ca.pem"}},
		{name: "tls-two-modes", extra: map[string]string{"ca_file": "ca_file: ca.pem\n    insecure: true"}, env: []string{good}, wantCode: 2,
			want: []string{"cluster.proxmox.ca_file: several TLS checks configured (set one of ca_file, fingerprint or insecure)"}},
		{name: "unknown-node", extra: map[string]string{"nodes": fmt.Sprintf("nodes: {pve1: %q, pve2: %q, pve3: %q, pve9: 127.0.0.1}", l.c.SSHAddrs["pve1"], l.c.SSHAddrs["pve2"], l.c.SSHAddrs["pve3"])}, env: []string{good}, wantCode: 1,
			want: []string{`cluster.proxmox.nodes.pve9: no node "pve9" in the cluster (use the cluster's node names: pve1, pve2, pve3)`}},
		{name: "node-missing", extra: map[string]string{"nodes": fmt.Sprintf("nodes: {pve1: %q, pve2: %q}", l.c.SSHAddrs["pve1"], l.c.SSHAddrs["pve2"])}, env: []string{good}, wantCode: 1,
			want: []string{`cluster.proxmox.nodes: cluster node "pve3" has no SSH address (add pve3: ADDRESS`}},
		{name: "no-ssh", extra: map[string]string{"ssh": ""}, env: []string{good}, wantCode: 2,
			want: []string{"cluster.proxmox.ssh: required", "HA maintenance has no API"}},
		{name: "ceph-noout-typo", extra: map[string]string{"poll_interval": "ceph_noout: sometimes"}, env: []string{good}, wantCode: 2,
			want: []string{"cluster.proxmox.ceph_noout: invalid value \"sometimes\" (use auto, always or never)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{"id_ed25519", "known_hosts", "ca.pem"} {
				b, err := os.ReadFile(filepath.Join(labDir, f))
				if err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(dir, f), string(b))
			}
			writeFile(t, filepath.Join(dir, "drover.yaml"), l.config(tc.extra))
			before := snapshot(t, dir)
			code, stderr := runDrover(t, bin, dir, tc.env, "--config", "drover.yaml", "inventory")
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.wantCode, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, stderr)
				}
			}
			if strings.Contains(stderr, l.secret) {
				t.Errorf("stderr shows the token secret")
			}
			if after := snapshot(t, dir); after != before {
				t.Errorf("files changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}
