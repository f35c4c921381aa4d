// Command drover-pvesim serves a three-node Proxmox VE model cluster (pvesim) as its
// own process on 127.0.0.1, for the end-to-end test of `drover apply` (make
// e2e-proxmox): one API port and one SSH port per node. It writes into -dir everything
// a user would configure: ca.pem, id_ed25519 (the client key the nodes accept),
// known_hosts, token_secret, and drover.yaml, a complete drover config; and serves the
// model's state as JSON on the control address (control.url) for the test's checks.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/droverhq/drover/drivers/proxmox/pvesim"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "drover-pvesim:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", "", "folder for the generated files (required)")
	mibs := flag.Float64("migration-mibs", 512, "migration speed in MiB/s")
	down := flag.Duration("downtime", 3*time.Second, "how long a rebooting node is away")
	crm := flag.Duration("crm-interval", 300*time.Millisecond, "HA CRM round")
	flag.Parse()
	if *dir == "" {
		return fmt.Errorf("-dir is required")
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	block, err := ssh.MarshalPrivateKey(key, "")
	if err != nil {
		return err
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		return err
	}
	secretBytes := make([]byte, 16)
	if _, err := rand.Read(secretBytes); err != nil {
		return err
	}
	secret := hex.EncodeToString(secretBytes)
	timing := pvesim.DefaultTiming()
	timing.MigrationMiBs = *mibs
	timing.DownTime = *down
	timing.CRMInterval = *crm
	timing.RebootDelay = time.Second
	timing.LRMDelay = time.Second
	timing.UpgradeTime = time.Second
	c, err := pvesim.Start(pvesim.StartOptions{Model: scenario(timing), TokenID: "drover@pve!rolling", Secret: secret, ClientKey: signer.PublicKey(),
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	defer c.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.Model.Snapshot())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	files := map[string][]byte{
		"ca.pem":       c.API.CAPEM,
		"id_ed25519":   pem.EncodeToMemory(block),
		"known_hosts":  []byte(c.SSH.KnownHosts()),
		"token_secret": []byte(secret + "\n"),
		"drover.yaml":  []byte(config(c)),
		"control.url":  []byte("http://" + ln.Addr().String() + "\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(*dir, name), data, 0o600); err != nil {
			return err
		}
	}
	fmt.Printf("drover-pvesim: 3 nodes ready; config %s\n", filepath.Join(*dir, "drover.yaml"))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}

// scenario: three Ceph nodes; HA qemu guests and an HA container, guests Drover moves
// itself (one with a local disk), and a container without HA that policy shuts down.
func scenario(t pvesim.Timing) pvesim.Options {
	kernel := []pvesim.Package{{Name: "proxmox-kernel-6.14", Version: "6.14.11-2", OldVersion: "6.14.8-2"}, {Name: "pve-manager", Version: "9.1.2", OldVersion: "9.1.1"}}
	nodes := []pvesim.Node{
		{Name: "pve1", MemoryMiB: 131072, CPUs: 32, HasCeph: true, Pending: kernel},
		{Name: "pve2", MemoryMiB: 131072, CPUs: 32, HasCeph: true, Pending: kernel},
		{Name: "pve3", MemoryMiB: 131072, CPUs: 32, HasCeph: true, Pending: kernel},
	}
	// Every guest's system disk is on Ceph (shared); db1 also has a disk on the node's
	// local-lvm, which moves with it (with-local-disks).
	g := func(id int, name, typ, node string, mem int64, ha bool) pvesim.Guest {
		key := map[string]string{"qemu": "scsi0", "lxc": "rootfs"}[typ]
		root := pvesim.Disk{Key: key, VolID: fmt.Sprintf("ceph-vm:vm-%d-disk-0", id), Size: 32 << 30}
		return pvesim.Guest{VMID: id, Name: name, Type: typ, Node: node, MaxMemMiB: mem, CPUs: 2, HA: ha, Disks: []pvesim.Disk{root}}
	}
	db := g(103, "db1", "qemu", "pve1", 4096, false)
	db.Disks = append(db.Disks, pvesim.Disk{Key: "scsi1", VolID: "local-lvm:vm-103-disk-1", Size: 2 << 30})
	return pvesim.Options{
		Nodes: nodes,
		Guests: []pvesim.Guest{
			g(101, "web1", "qemu", "pve1", 4096, true), g(102, "web2", "qemu", "pve2", 4096, true),
			db, g(104, "app1", "qemu", "pve1", 4096, false), g(105, "app2", "qemu", "pve2", 4096, false),
			g(106, "app3", "qemu", "pve3", 4096, false), g(107, "web3", "qemu", "pve3", 2048, true),
			g(200, "dns1", "lxc", "pve2", 512, true), g(201, "mon1", "lxc", "pve3", 512, false),
		},
		Timing:     t,
		MaxWorkers: 2,
		Ceph:       true,
	}
}

func config(c *pvesim.Cluster) string {
	var eps, nodes []string
	for _, n := range c.Model.NodeNames() {
		eps = append(eps, c.Endpoints[n])
		nodes = append(nodes, fmt.Sprintf("%s: %q", n, c.SSHAddrs[n]))
	}
	return fmt.Sprintf(`# Written by drover-pvesim: drover against the model cluster. Export the token's
# secret first: export DROVER_PVE_TOKEN=$(cat token_secret)
cluster:
  name: pvesim
  driver: proxmox
  proxmox:
    endpoints: [%s]
    token_id: drover@pve!rolling
    token_secret_env: DROVER_PVE_TOKEN
    ca_file: ca.pem
    ssh: {user: root, key_file: id_ed25519, known_hosts: known_hosts}
    nodes: {%s}
    ceph_noout: auto
    poll_interval: 200ms
    maintenance_timeout: 3m
  updater:
    kind: apt
policy:
  non_migratable: shutdown
  reboot_timeout: 3m
  poll_interval: 500ms
  max_parallel_migrations: 2
`, strings.Join(eps, ", "), strings.Join(nodes, ", "))
}
