package pvesim

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Task is a PVE worker task: a UPID, a log, a status.
type Task struct {
	UPID       string
	Node       string
	Type       string
	ID         string
	User       string
	PID, PStrt int
	Start      time.Time
	End        time.Time
	ExitStatus string // "" while running
	Log        []string
}

func (t *Task) running() bool { return t.ExitStatus == "" }

// sortedTasks lists the tasks newest first, as PVE's task list does.
func (m *Model) sortedTasks() []*Task {
	out := make([]*Task, 0, len(m.tasks))
	for _, t := range m.tasks {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UPID > out[j].UPID })
	return out
}

// migration is a live (qemu) or restart (lxc) migration in flight.
type migration struct {
	task      *Task
	from, to  string
	start     time.Time
	lastLog   time.Time
	totalMiB  float64
	doneMiB   float64
	byHA      bool
	localDisk bool
	// disks are the local disks a storage migration copies first (drive mirror),
	// diskMiB their size; the RAM follows once every mirror is ready.
	disks      []Disk
	diskMiB    float64
	ramStarted bool
}

// newTask starts a task on node, in PVE's UPID format:
// UPID:node:PID:PSTART:STARTTIME:TYPE:ID:USER: (PID, PSTART, STARTTIME in hex).
func (m *Model) newTask(node, typ, id, user string) *Task {
	m.taskSeq++
	now := m.now()
	t := &Task{Node: node, Type: typ, ID: id, User: user, PID: 0x1a2b00 + m.taskSeq, PStrt: 0x3f0000 + m.taskSeq*7, Start: now}
	t.UPID = fmt.Sprintf("UPID:%s:%08X:%08X:%08X:%s:%s:%s:", node, t.PID, t.PStrt, now.Unix(), typ, id, user)
	m.tasks[t.UPID] = t
	return t
}

// logf appends a task log line with PVE's timestamp prefix (QemuMigrate's log style).
func (m *Model) logf(t *Task, format string, args ...any) {
	t.Log = append(t.Log, m.now().Format("2006-01-02 15:04:05")+" "+fmt.Sprintf(format, args...))
}

func (m *Model) finish(t *Task, status string) {
	if !t.running() {
		return
	}
	t.ExitStatus = status
	t.End = m.now()
	if status == "OK" {
		t.Log = append(t.Log, "TASK OK")
	} else {
		t.Log = append(t.Log, "TASK ERROR: "+status)
	}
}

// renderBytes formats like PVE::Tools::render_bytes (two decimals, binary units).
func renderBytes(mib float64) string {
	b := mib * 1024 * 1024
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	return fmt.Sprintf("%.2f %s", b, units[i])
}

// startMigration starts a migration task of g to target; the caller checked the
// request.
func (m *Model) startMigration(g *Guest, target, user string, byHA, withLocal bool) *Task {
	typ := "qmigrate"
	if g.Type == "lxc" {
		typ = "vzmigrate"
	}
	t := m.newTask(g.Node, typ, fmt.Sprint(g.VMID), user)
	mg := &migration{task: t, from: g.Node, to: target, start: m.now(), byHA: byHA, localDisk: withLocal}
	if withLocal {
		mg.disks = m.localDisks(g)
		for _, d := range mg.disks {
			mg.diskMiB += float64(d.Size) / (1 << 20)
		}
	}
	mg.totalMiB = float64(g.MaxMemMiB) + mg.diskMiB
	g.mig = mg
	g.lock = "migrate"
	if byHA {
		m.logf(t, "use dedicated network address for sending migration traffic (10.10.10.2)")
	}
	if g.Type == "lxc" {
		m.logf(t, "shutdown CT %d", g.VMID)
		m.logf(t, "starting migration of CT %d to node '%s' (10.10.10.%d)", g.VMID, target, 1+m.index(target))
	} else {
		m.logf(t, "starting migration of VM %d to node '%s' (10.10.10.%d)", g.VMID, target, 1+m.index(target))
		for _, d := range mg.disks {
			m.logf(t, "found local disk '%s' (attached)", d.VolID)
		}
		m.logf(t, "starting VM %d on remote node '%s'", g.VMID, target)
		m.logf(t, "start remote tunnel")
		if len(mg.disks) > 0 {
			m.logf(t, "starting storage migration")
			for _, d := range mg.disks {
				m.logf(t, "%s: start migration to nbd:unix:/run/qemu-server/%d_nbd.migrate:exportname=drive-%s", d.Key, g.VMID, d.Key)
				m.logf(t, "drive mirror is starting for drive-%s", d.Key)
			}
		} else {
			m.startRAM(g)
		}
	}
	if m.nodes[target].Maintenance {
		m.stats.PlacedOnMaint = append(m.stats.PlacedOnMaint, fmt.Sprintf("%s %d -> %s", typ, g.VMID, target))
	}
	return t
}

// startRAM logs the start of the memory phase of a qemu live migration.
func (m *Model) startRAM(g *Guest) {
	t := g.mig.task
	g.mig.ramStarted = true
	m.logf(t, "starting online/live migration on unix:/run/qemu-server/%d.migrate", g.VMID)
	m.logf(t, "set migration capabilities")
	m.logf(t, "migration downtime limit: 100 ms")
	m.logf(t, "migration cachesize: 256.0 MiB")
	m.logf(t, "set migration parameters")
	m.logf(t, "start migrate command to unix:/run/qemu-server/%d.migrate", g.VMID)
}

// logMirror writes qemu-server's drive-mirror progress: each disk in turn, as the
// copy has reached it.
func (m *Model) logMirror(g *Guest, elapsed time.Duration) {
	mg := g.mig
	left := mg.doneMiB
	for _, d := range mg.disks {
		size := float64(d.Size) / (1 << 20)
		done := math.Min(size, math.Max(left, 0))
		left -= size
		if done <= 0 {
			break
		}
		pct := 100 * done / size
		line := fmt.Sprintf("drive-%s: transferred %s of %s (%.2f%%) in %ds", d.Key, renderBytes(done), renderBytes(size), pct, int(elapsed.Seconds()))
		if done >= size {
			line += ", ready"
		}
		m.logf(mg.task, "%s", line)
	}
}

func (m *Model) index(node string) int {
	for i, n := range m.order {
		if n == node {
			return i
		}
	}
	return 0
}

// stepMigration advances one migration; it reports whether it ended.
func (m *Model) stepMigration(g *Guest, now time.Time) {
	mg := g.mig
	t := mg.task
	if !t.running() {
		// Stopped from outside (DELETE on the task): the guest stays on its source.
		m.logf(t, "migration aborted")
		m.endMigration(g)
		m.stats.CancelledMigration++
		return
	}
	if !m.nodes[mg.to].Online || !m.nodes[mg.from].Online {
		m.logf(t, "ERROR: online migrate failure - target node '%s' is not reachable", mg.to)
		m.finish(t, "migration problems")
		m.endMigration(g)
		return
	}
	elapsed := now.Sub(mg.start) - m.timing.MigrationSetup
	if elapsed < 0 {
		return
	}
	mg.doneMiB = math.Min(mg.totalMiB, elapsed.Seconds()*m.timing.MigrationMiBs)
	if g.Type == "qemu" && !mg.ramStarted {
		if mg.doneMiB < mg.diskMiB {
			if now.Sub(mg.lastLog) >= m.timing.LogInterval {
				mg.lastLog = now
				m.logMirror(g, elapsed)
			}
			return
		}
		m.logMirror(g, elapsed)
		m.logf(t, "all 'mirror' jobs are ready")
		m.startRAM(g)
	}
	if mg.doneMiB < mg.totalMiB {
		if g.Type == "qemu" && now.Sub(mg.lastLog) >= m.timing.LogInterval {
			mg.lastLog = now
			ram := float64(g.MaxMemMiB)
			m.logf(t, "migration active, transferred %s of %s VM-state, %s/s", renderBytes(mg.doneMiB-mg.diskMiB), renderBytes(ram), renderBytes(m.timing.MigrationMiBs))
		}
		return
	}
	if g.Type == "qemu" {
		m.logf(t, "average migration speed: %s/s - downtime 42 ms", renderBytes(m.timing.MigrationMiBs))
		m.logf(t, "migration status: completed")
		for _, d := range mg.disks {
			m.logf(t, "%s: mirror-job finished", "drive-"+d.Key)
		}
		if len(mg.disks) > 0 {
			m.logf(t, "stopping NBD storage migration server on target.")
		}
	} else {
		m.logf(t, "start final cleanup")
		m.logf(t, "start container on target node")
	}
	d := now.Sub(mg.start).Round(time.Second)
	m.logf(t, "migration finished successfully (duration %02d:%02d:%02d)", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
	g.Node = mg.to
	g.Moves++
	m.stats.DiskMiBMoved += int64(math.Ceil(mg.diskMiB))
	m.stats.Migrations++
	if mg.byHA {
		m.stats.HAMigrations++
	}
	m.finish(t, "OK")
	m.endMigration(g)
}

func (m *Model) endMigration(g *Guest) {
	g.mig = nil
	g.lock = ""
}
