package wsmantest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/droverhq/drover/drivers/hyperv/scripts"
)

// clixmlProgress is what Windows PowerShell writes to stderr for a progress bar when
// it runs under a remote shell; the driver must filter it.
const clixmlProgress = "#< CLIXML\r\n" + `<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04"><Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T><T>System.Object</T></TN><MS><I64 N="SourceId">1</I64><PR N="Record"><AV>Preparing modules for first use.</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR><SD> </SD></PR></MS></Obj></Objs>`

// Exec runs a command line on node as powershell.exe would run the script in it: it
// answers from the model, and refuses (exit 1, an error on stderr, recorded in
// Stats.Rejected) anything that is not one of the shipped scripts.
func (m *Model) Exec(ctx context.Context, node, cmdline string) (stdout, stderr string, exit int) {
	op, params, err := scripts.Parse(cmdline)
	if err != nil {
		m.reject(fmt.Sprintf("%s: %v", node, err))
		return "", "drover model: " + err.Error(), 1
	}
	data, err := m.run(ctx, node, op, params)
	if err != nil {
		js, _ := json.Marshal(map[string]any{"ok": false, "error": err.Error()})
		return string(js), clixmlProgress, 1
	}
	js, err := json.Marshal(map[string]any{"ok": true, "data": data})
	if err != nil {
		return "", err.Error(), 1
	}
	return string(js), clixmlProgress, 0
}

type params struct {
	Node, Owner, VM, Failback, Criteria, ID, Script string
	DelaySeconds                                    int `json:"delay_seconds"`
}

func (m *Model) run(ctx context.Context, on, op string, raw json.RawMessage) (any, error) {
	var p params
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, psErrorf("ConvertFrom-Json: %v", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	m.advance(now)
	self := m.node(on)
	if self == nil {
		return nil, psErrorf("no such computer %s", on)
	}
	clusterUp := self.ClusterService == "Running"
	needCluster := func() error {
		if !clusterUp {
			return psError("Get-Cluster: The cluster service is not running. Make sure that the service is running on all nodes in the cluster.")
		}
		return nil
	}
	switch op {
	case scripts.Cluster:
		if err := needCluster(); err != nil {
			return nil, err
		}
		return m.clusterView(), nil
	case scripts.Host:
		return m.hostView(self), nil
	case scripts.Ready:
		r := map[string]any{"computer": self.Name, "boot": iso(self.Boot), "cluster_service": self.ClusterService}
		if clusterUp {
			r["node_state"] = self.State
			off := []string{}
			for name, o := range m.csvOffline {
				if o {
					off = append(off, name)
				}
			}
			r["csvs_offline"], r["failed"] = off, []string{}
		}
		return r, nil
	case scripts.Pause, scripts.Drain:
		if err := needCluster(); err != nil {
			return nil, err
		}
		n := m.node(p.Node)
		if n == nil {
			return nil, psErrorf("Get-ClusterNode: The cluster node '%s' was not found.", p.Node)
		}
		if n.State == "Paused" && strings.HasPrefix(n.Description, "drover-run:") && n.Description != p.Owner && (p.Owner != "" || op == scripts.Pause) {
			return nil, psErrorf("drover:paused_by_other:%s", n.Description)
		}
		if n.State == "Up" {
			n.State = "Paused"
		}
		if p.Owner != "" && (n.Description == "" || strings.HasPrefix(n.Description, "drover-run:")) {
			n.Description = p.Owner
		}
		if op == scripts.Drain {
			m.drain(n, now)
			return map[string]any{"drain_status": n.DrainStatus}, nil
		}
		return map[string]any{"state": n.State}, nil
	case scripts.Resume:
		if err := needCluster(); err != nil {
			return nil, err
		}
		n := m.node(p.Node)
		if n == nil {
			return nil, psErrorf("Get-ClusterNode: The cluster node '%s' was not found.", p.Node)
		}
		switch p.Failback {
		case "NoFailback", "Immediate", "Policy":
		default:
			return nil, psErrorf("Resume-ClusterNode: Cannot bind parameter 'Failback' to the value %q", p.Failback)
		}
		if n.State == "Paused" {
			n.State, n.DrainStatus = "Up", "NotInitiated"
		}
		if strings.HasPrefix(n.Description, "drover-run:") {
			n.Description = ""
		}
		return map[string]any{"state": n.State}, nil
	case scripts.Migrate:
		if err := needCluster(); err != nil {
			return nil, err
		}
		g := m.group(p.VM)
		if g == nil {
			return nil, psErrorf("Move-ClusterVirtualMachineRole: The cluster group '%s' was not found.", p.VM)
		}
		if err := m.startMigration(g, p.Node, now); err != nil {
			return nil, err
		}
		return map[string]any{"started": true}, nil
	case scripts.MigStatus:
		if err := needCluster(); err != nil {
			return nil, err
		}
		g := m.group(p.VM)
		if g == nil {
			return nil, psErrorf("Get-ClusterGroup: The cluster group '%s' was not found.", p.VM)
		}
		r := map[string]any{"owner": g.Owner, "state": g.State}
		// The job lives on the source host: Get-VM finds the VM only there.
		if mg := m.migs[g.Name]; mg != nil && strings.EqualFold(mg.From, on) {
			pct := 0
			if mg.State == "Running" {
				pct = int(100 * now.Sub(mg.Start) / m.timing.Migration)
			} else if mg.State == "Completed" {
				pct = 100
			}
			r["job"] = map[string]any{"state": mg.State, "percent": min(pct, 100), "target": mg.To, "error": mg.Error}
		}
		return r, nil
	case scripts.Cancel:
		if err := needCluster(); err != nil {
			return nil, err
		}
		if mg := m.migs[p.VM]; mg != nil && (mg.State == "Running" || mg.State == "New") {
			mg.State, mg.Error = "Terminated", "The operation was cancelled."
			m.stats.MigrationsCancelled++
		}
		return map[string]any{"cancelled": true}, nil
	case scripts.Reboot:
		if self.rebootScheduled {
			// What shutdown.exe answers (exit 1190) when a restart is already pending.
			return nil, psError("shutdown.exe exit 1190: A system shutdown has already been scheduled.")
		}
		b := iso(self.Boot)
		m.scheduleReboot(self, time.Duration(p.DelaySeconds)*time.Second)
		return map[string]any{"boot": b}, nil
	case scripts.WUScan:
		if p.Criteria == "" {
			return nil, psError("drover:wu_error:0x80240032") // WU_E_INVALID_CRITERIA
		}
		return map[string]any{"updates": updatesOrEmpty(self.Pending)}, nil
	case scripts.WUInstall:
		if len(self.Pending) > 0 && self.refuseWU {
			return nil, psError("drover:wu_denied")
		}
		return m.install(ctx, self)
	case scripts.WUTask:
		op, inner, err := scripts.ParseBound(p.Script)
		if err != nil || op != scripts.WUInstall {
			m.stats.Rejected = append(m.stats.Rejected, fmt.Sprintf("%s: SYSTEM task script: %v (op %q)", on, err, op))
			return nil, psError("the task's script is not the shipped wuinstall script")
		}
		var ip params
		_ = json.Unmarshal(inner, &ip)
		t := &wuTask{}
		self.tasks[p.ID] = t
		m.after(m.timing.Install, func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			r, _ := json.Marshal(map[string]any{"ok": true, "data": m.installNow(self)})
			t.done, t.result = true, string(r)
		})
		return map[string]any{"started": true}, nil
	case scripts.WUResult:
		t := self.tasks[p.ID]
		if t == nil || !t.done {
			return map[string]any{"done": false}, nil
		}
		delete(self.tasks, p.ID)
		return map[string]any{"done": true, "result": json.RawMessage(t.result)}, nil
	}
	return nil, psErrorf("the model has no answer for script %s", op)
}

// install takes Timing.Install (a long poll for the client), then installs.
func (m *Model) install(ctx context.Context, n *Node) (any, error) {
	if len(n.Pending) == 0 {
		return map[string]any{"installed": []Update{}, "reboot": false}, nil
	}
	m.mu.Unlock()
	select {
	case <-time.After(m.timing.Install):
	case <-ctx.Done():
		m.mu.Lock()
		return nil, psError("The pipeline has been stopped.")
	}
	m.mu.Lock()
	return m.installNow(n), nil
}

func (m *Model) installNow(n *Node) map[string]any {
	done := updatesOrEmpty(n.Pending)
	n.Installed = append(n.Installed, n.Pending...)
	n.Pending = nil
	if len(done) > 0 {
		n.RebootPending = true
	}
	return map[string]any{"installed": done, "reboot": len(done) > 0}
}

func updatesOrEmpty(u []Update) []Update {
	if u == nil {
		return []Update{}
	}
	return append([]Update(nil), u...)
}

// drain starts the cluster's own drain of n: every online role moves to the Up node
// with the most free memory, preferred owners first.
func (m *Model) drain(n *Node, now time.Time) {
	if n.DrainStatus != "InProgress" {
		m.stats.NativeDrains++
	}
	n.DrainStatus = "InProgress"
	for _, g := range m.groups {
		if !strings.EqualFold(g.Owner, n.Name) || g.State != "Online" {
			continue
		}
		target := ""
		for _, p := range g.Preferred {
			if t := m.node(p); t != nil && t.State == "Up" {
				target = t.Name
				break
			}
		}
		if target == "" {
			best := int64(-1)
			for _, t := range m.nodes {
				if t.State != "Up" {
					continue
				}
				if free := t.MemoryMiB - m.used(t.Name); free > best {
					best, target = free, t.Name
				}
			}
		}
		if target == "" || m.startMigration(g, target, now) != nil {
			n.DrainStatus = "Failed"
			return
		}
	}
	m.advance(now)
}

func (m *Model) used(node string) int64 {
	var u int64
	for _, g := range m.groups {
		if strings.EqualFold(g.Owner, node) && g.State == "Online" {
			u += g.MemoryMiB
		}
	}
	return u
}

func iso(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

func (m *Model) clusterView() map[string]any {
	nodes := []map[string]any{}
	for _, n := range m.nodes {
		nodes = append(nodes, map[string]any{"name": n.Name, "state": n.State, "drain_status": n.DrainStatus, "mark": n.Description})
	}
	groups := []map[string]any{}
	for _, g := range m.groups {
		groups = append(groups, map[string]any{"name": g.Name, "owner": g.Owner, "state": g.State, "preferred": orEmpty(g.Preferred),
			"possible": orEmpty(g.Possible), "anti_affinity": orEmpty(g.AntiAffinity)})
	}
	csvs := []map[string]any{{"name": "Cluster Disk 1", "state": "Online", "owner": m.nodes[0].Name}}
	for name, off := range m.csvOffline {
		st := "Online"
		if off {
			st = "Offline"
		}
		csvs = append(csvs, map[string]any{"name": name, "state": st, "owner": m.nodes[0].Name})
	}
	aa := 0
	if m.enforcedAA {
		aa = 1
	}
	return map[string]any{"name": m.name, "max_parallel_migrations": m.maxParallel, "enforced_anti_affinity": aa == 1, "quorum": "NodeAndDiskMajority",
		"nodes": nodes, "groups": groups, "csvs": csvs, "failed": []any{}}
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (m *Model) hostView(n *Node) map[string]any {
	vms := []map[string]any{}
	for _, g := range m.groups {
		if !strings.EqualFold(g.Owner, n.Name) {
			continue
		}
		vms = append(vms, map[string]any{"name": g.Name, "state": g.VMState, "clustered": true, "cpus": g.CPUs, "dynamic": g.Dynamic,
			"memory_mib": g.MemoryMiB, "memory_max_mib": g.MemoryMiB * 2, "local_disks": orEmpty(g.LocalDisks), "passthrough": false, "devices": false})
	}
	return map[string]any{"computer": n.Name, "boot": iso(n.Boot), "cluster_service": n.ClusterService, "memory_mib": n.MemoryMiB, "cpus": n.CPUs,
		"migration_enabled": true, "migration_auth": "Kerberos", "max_vm_migrations": 2, "reboot_pending": n.RebootPending, "vms": vms}
}
