package pvesim

import (
	"context"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/droverhq/drover/drivers/updaters"
)

// aptJob is the apt plug-in's detached dist-upgrade on one node, as the plug-in's job
// script keeps it in its folder (pid, pending, log, exit): the files outlive the SSH
// session that started it and the node's reboots; the process does not survive a
// reboot.
type aptJob struct {
	pending string
	log     string
	// running: the process is alive; endAt is when it finishes in the model's time.
	running bool
	endAt   time.Time
	// exit is the exit code, once the job wrote it.
	exit    int
	hasExit bool
}

// state is what the job script's state() prints.
func (j *aptJob) state() string {
	switch {
	case j == nil:
		return "none"
	case j.hasExit:
		return fmt.Sprintf("done %d", j.exit)
	case j.running:
		return "running"
	}
	return "lost"
}

// jobArgvHead is how every call of the job script starts: /bin/sh -c SCRIPT drover-job.
var jobArgvHead = updaters.JobArgv("", "", "")[:4]

// isJobScript says whether argv runs the apt plug-in's job script, byte for byte.
func isJobScript(argv []string) bool {
	return len(argv) >= 7 && slices.Equal(argv[:4], jobArgvHead)
}

// aptJobCall answers one call of the job script (status, start or wait) as the
// script does on a node; ok is false when the call is not one the plug-in makes.
func (s *SSHServer) aptJobCall(ctx context.Context, node string, argv []string, stdout io.Writer) (code int, ok bool) {
	m := s.model
	verb, base, key, rest := argv[4], argv[5], argv[6], argv[7:]
	if !validJobDir(base, key) {
		return 0, false
	}
	switch {
	case verb == "status" && len(rest) == 0:
		m.mu.Lock()
		defer m.mu.Unlock()
		n := m.nodes[node]
		j := n.jobs[jobDir(n, base, key)]
		fmt.Fprintln(stdout, j.state())
		if j != nil {
			fmt.Fprint(stdout, j.pending)
		}
		return 0, true
	case verb == "start" && len(rest) > 1 && slices.Equal(rest[1:], updaters.AptUpgradeJob()):
		if _, err := updaters.ParseUpdateLines(rest[0]); err != nil {
			return 0, false
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		n := m.nodes[node]
		dir := jobDir(n, base, key)
		j := n.jobs[dir]
		if st := j.state(); st == "running" || st == "done 0" {
			fmt.Fprintln(stdout, st)
			return 0, true
		}
		// A new attempt starts with an empty log (the script keeps the old one as
		// log.prev, which nothing reads).
		n.jobs[dir] = &aptJob{pending: rest[0], running: true, endAt: m.now().Add(m.timing.UpgradeTime)}
		m.stats.AptJobsStarted++
		fmt.Fprintln(stdout, "started")
		return 0, true
	case verb == "wait" && len(rest) == 0:
		for {
			m.mu.Lock()
			n := m.nodes[node]
			j := n.jobs[jobDir(n, base, key)]
			st, log := j.state(), ""
			if j != nil {
				log = j.log
			}
			online := n.Online
			m.mu.Unlock()
			if st != "running" {
				fmt.Fprintln(stdout, st)
				fmt.Fprint(stdout, log)
				return 0, true
			}
			if !online {
				// The node went down under the waiting session: no answer, as when
				// the connection drops.
				return 255, true
			}
			// The script polls with `sleep 1`; the model's time is faster.
			select {
			case <-ctx.Done():
				return 255, true
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return 0, false
}

// validJobDir accepts the folders the plug-in uses: an absolute, clean base and a
// key that is empty (the node's boot) or one path element.
func validJobDir(base, key string) bool {
	if !strings.HasPrefix(base, "/") || path.Clean(base) != base || strings.ContainsAny(base, "\n\r") {
		return false
	}
	return key == "" || !strings.ContainsAny(key, "/\n\r") && !strings.HasPrefix(key, ".")
}

// jobDir is the script's "$base/$key", with the boot ID for an empty key.
func jobDir(n *Node, base, key string) string {
	if key == "" {
		key = "boot-" + n.BootID
	}
	return base + "/" + key
}

// stepJobs finishes the jobs whose time is up: the pending packages are installed
// (after `dpkg --configure -a` when an earlier upgrade was killed mid-dpkg), and the
// job writes its log and exit code.
func (m *Model) stepJobs(now time.Time) {
	for _, name := range m.order {
		n := m.nodes[name]
		if !n.Online {
			continue
		}
		for _, j := range n.jobs {
			if !j.running || now.Before(j.endAt) {
				continue
			}
			var b strings.Builder
			if n.DpkgInterrupted {
				// What the plug-in's upgrade script prints when apt refuses.
				b.WriteString("E: dpkg was interrupted, you must manually run 'dpkg --configure -a' to correct the problem.\n")
				b.WriteString("drover: dpkg was interrupted: running env LC_ALL=C DEBIAN_FRONTEND=noninteractive dpkg --configure -a, then the upgrade again\n")
				for _, p := range n.Pending {
					fmt.Fprintf(&b, "Setting up %s (%s) ...\n", p.Name, p.Version)
				}
				n.DpkgInterrupted = false
				m.stats.DpkgRepairs++
			}
			pkgs := m.installPending(n)
			b.WriteString("Reading package lists...\nBuilding dependency tree...\nReading state information...\nCalculating upgrade...\n")
			fmt.Fprintf(&b, "%d upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n", len(pkgs))
			for _, p := range pkgs {
				fmt.Fprintf(&b, "Setting up %s (%s) ...\n", p.Name, p.Version)
			}
			j.log += b.String()
			j.running = false
			j.exit, j.hasExit = 0, true
		}
	}
}

// killJobs is a node going down: a job still running dies without an exit code
// ("lost"), and dpkg is left interrupted, so the next upgrade must repair it first.
func (m *Model) killJobs(n *Node) {
	for _, j := range n.jobs {
		if j.running {
			j.running = false
			n.DpkgInterrupted = true
			m.stats.AptJobsLost++
		}
	}
}

// installPending is what a dist-upgrade does to the node: the pending packages are
// installed; a kernel package makes a reboot required.
func (m *Model) installPending(n *Node) []Package {
	pkgs := n.Pending
	n.Pending = nil
	for _, p := range pkgs {
		if strings.HasPrefix(p.Name, "proxmox-kernel") || p.Name == "pve-kernel" {
			n.RebootRequired = true
		}
	}
	if len(pkgs) > 0 {
		m.stats.Upgrades++
	}
	return pkgs
}
