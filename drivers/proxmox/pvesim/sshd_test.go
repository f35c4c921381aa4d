package pvesim

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/droverhq/drover/drivers/proxmox/pvemark"
	"github.com/droverhq/drover/drivers/updaters"
)

func sshClientKey(t *testing.T) ssh.Signer {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSSH_ExactCommands: the node's sshd accepts only its client key and host-key
// checked logins, runs the commands of a node and refuses (and records) any other.
func TestSSH_ExactCommands(t *testing.T) {
	key := sshClientKey(t)
	c, err := Start(StartOptions{Model: testModel(), TokenID: testToken, Secret: testSecret, ClientKey: key.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	hostKeys := map[string]ssh.PublicKey{}
	for _, line := range strings.Split(strings.TrimSpace(c.SSH.KnownHosts()), "\n") {
		_, hosts, pk, _, _, err := ssh.ParseKnownHosts([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		hostKeys[hosts[0]] = pk
	}
	run := func(signer ssh.Signer, node, cmd string) (string, int, error) {
		addr := c.SSHAddrs[node]
		cfg := &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, Timeout: 5 * time.Second,
			HostKeyCallback: ssh.FixedHostKey(hostKeys[knownhosts.Normalize(addr)])}
		cl, err := ssh.Dial("tcp", addr, cfg)
		if err != nil {
			return "", -1, err
		}
		defer cl.Close()
		s, err := cl.NewSession()
		if err != nil {
			return "", -1, err
		}
		out, err := s.CombinedOutput(cmd)
		var ee *ssh.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitStatus(), nil
		}
		return string(out), 0, err
	}
	if _, _, err := run(sshClientKey(t), "pve1", "true"); err == nil {
		t.Error("a foreign client key logged in")
	}
	for _, tc := range []struct {
		name, node, cmd string
		code            int
		out             string
	}{
		{"maintenance-enable", "pve1", "ha-manager crm-command node-maintenance enable pve2", 0, ""},
		{"maintenance-unknown-node", "pve1", "ha-manager crm-command node-maintenance enable pve7", 255, "no such cluster node"},
		{"noout", "pve3", "ceph osd set noout", 0, "noout is set"},
		{"apt-list", "pve2", "env LC_ALL=C apt list --upgradable", 0, "Listing..."},
		{"quoted-list", "pve2", "env 'LC_ALL=C' apt list --upgradable", 0, "Listing..."},
		// The plug-in runs the upgrade only as a detached job: an attached one is
		// not what it sends.
		{"attached-upgrade", "pve2", "env LC_ALL=C DEBIAN_FRONTEND=noninteractive apt-get -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold dist-upgrade", 127, "command not found"},
		{"job-status", "pve2", updaters.ShellJoin(updaters.JobArgv("status", "/var/lib/drover/jobs/apt", "")), 0, "none\n"},
		{"job-start-other-command", "pve2", updaters.ShellJoin(updaters.JobArgv("start", "/var/lib/drover/jobs/apt", "", "pve-manager 9.1.2\n", "/bin/sh", "-c", "reboot")), 127, "unexpected call"},
		{"job-relative-dir", "pve2", updaters.ShellJoin(updaters.JobArgv("status", "jobs/apt", "")), 127, "unexpected call"},
		{"job-unknown-verb", "pve2", updaters.ShellJoin(updaters.JobArgv("kill", "/var/lib/drover/jobs/apt", "")), 127, "unexpected call"},
		{"job-script-changed", "pve2", updaters.ShellJoin(append([]string{"/bin/sh", "-c", "echo none", "drover-job"}, updaters.JobArgv("status", "/var/lib/drover/jobs/apt", "")[4:]...)), 127, "command not found"},
		{"mark-claim", "pve1", updaters.ShellJoin(pvemark.Claim("pve1", "drover-run:t", "")), 0, ""},
		{"mark-claim-held", "pve2", updaters.ShellJoin(pvemark.Claim("pve1", "drover-run:u", "")), 3, "held drover-run:t"},
		{"mark-get-any-node", "pve3", updaters.ShellJoin(pvemark.Get()), 0, "pve1 drover-run:t\n"},
		{"mark-release", "pve1", updaters.ShellJoin(pvemark.Release("pve1")), 0, ""},
		{"mark-other-dir", "pve1", updaters.ShellJoin(append(pvemark.Get()[:5], "/tmp", pvemark.Lock)), 127, ""},
		{"mark-script-changed", "pve1", updaters.ShellJoin(append([]string{"/bin/sh", "-c", "rm -rf /etc/pve", pvemark.Name}, pvemark.Get()[4:]...)), 127, ""},
		{"mark-bad-node", "pve1", updaters.ShellJoin(pvemark.Release("../ha")), 127, ""},
		{"reboot-shell", "pve1", "reboot", 127, "command not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(c.Model.Violations())
			out, code, err := run(key, tc.node, tc.cmd)
			if err != nil || code != tc.code || !strings.Contains(out, tc.out) {
				t.Fatalf("%q: exit %d, %v, output %q; want exit %d with %q", tc.cmd, code, err, out, tc.code, tc.out)
			}
			if recorded := len(c.Model.Violations()) > before; recorded != (tc.code == 127) {
				t.Errorf("violation recorded = %v for exit %d", recorded, tc.code)
			}
		})
	}
	s := c.Model.Snapshot()
	if !s.Nodes[1].Maintenance || !s.Noout {
		t.Errorf("model after the commands: %+v, noout %v", s.Nodes[1], s.Noout)
	}
	// A node that is down has no sshd.
	c.Model.mu.Lock()
	c.Model.reboot(c.Model.nodes["pve3"])
	c.Model.mu.Unlock()
	waitFor(t, func(s Snapshot) bool { return !s.Nodes[2].Online }, c.Model)
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", c.SSHAddrs["pve3"], time.Second)
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("pve3's sshd still accepts connections while it is down")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.Model.mu.Lock()
	c.Model.stats.Violations = nil // the refused commands above were on purpose
	c.Model.mu.Unlock()
}
