package pvesim

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// handle answers one validated request.
func (m *Model) handle(r request) (any, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := r.method + " " + r.path
	switch key {
	case "GET /version":
		return map[string]any{"version": "9.1.1", "release": "9.1", "repoid": "42f5d7cc8c3bb1a6", "console": "xtermjs"}, nil
	case "GET /cluster/resources":
		return m.resources(r.str("type")), nil
	case "GET /cluster/status":
		return m.clusterStatus(), nil
	case "GET /cluster/ha/status/current":
		return m.haStatus(), nil
	case "GET /cluster/ha/status/manager_status":
		return m.managerStatus(), nil
	case "GET /nodes":
		return m.nodeList(), nil
	case "GET /nodes/{node}/status":
		n, err := m.onlineNode(r.str("node"))
		if err != nil {
			return nil, err
		}
		return m.nodeStatus(n), nil
	case "POST /nodes/{node}/status":
		n, err := m.onlineNode(r.str("node"))
		if err != nil {
			return nil, err
		}
		if r.str("command") == "reboot" {
			m.reboot(n)
		}
		return nil, nil
	case "GET /nodes/{node}/services/{service}/state":
		n, err := m.onlineNode(r.str("node"))
		if err != nil {
			return nil, err
		}
		return m.service(n, r.str("service")), nil
	case "GET /nodes/{node}/qemu/{vmid}/config":
		return m.guestConfig(r, "qemu")
	case "GET /nodes/{node}/lxc/{vmid}/config":
		return m.guestConfig(r, "lxc")
	case "GET /nodes/{node}/qemu/{vmid}/migrate":
		return m.migratePrecheck(r)
	case "POST /nodes/{node}/qemu/{vmid}/migrate":
		return m.migrate(r, "qemu")
	case "POST /nodes/{node}/lxc/{vmid}/migrate":
		return m.migrate(r, "lxc")
	case "GET /nodes/{node}/tasks":
		node := r.str("node")
		if _, err := m.onlineNode(node); err != nil {
			return nil, err
		}
		out := []map[string]any{}
		for _, t := range m.sortedTasks() {
			if t.Node != node || (r.str("source") == "active" && !t.running()) || (r.str("source") != "active" && r.str("source") != "all" && t.running()) {
				continue
			}
			if (r.str("vmid") != "" && t.ID != r.str("vmid")) || (r.str("typefilter") != "" && t.Type != r.str("typefilter")) {
				continue
			}
			item := map[string]any{"upid": t.UPID, "node": t.Node, "pid": t.PID, "pstart": t.PStrt, "starttime": t.Start.Unix(), "type": t.Type, "id": t.ID, "user": t.User}
			if !t.running() {
				item["status"] = t.ExitStatus
				item["endtime"] = t.End.Unix()
			}
			out = append(out, item)
		}
		return out, nil
	case "GET /nodes/{node}/tasks/{upid}/status":
		t, err := m.task(r)
		if err != nil {
			return nil, err
		}
		st := map[string]any{"upid": t.UPID, "node": t.Node, "pid": t.PID, "pstart": t.PStrt, "starttime": t.Start.Unix(), "type": t.Type, "id": t.ID, "user": t.User, "status": "running"}
		if !t.running() {
			st["status"] = "stopped"
			st["exitstatus"] = t.ExitStatus
			st["endtime"] = t.End.Unix()
		}
		return st, nil
	case "GET /nodes/{node}/tasks/{upid}/log":
		t, err := m.task(r)
		if err != nil {
			return nil, err
		}
		start, limit := r.int("start"), 50
		if _, ok := r.params["limit"]; ok {
			limit = r.int("limit")
		}
		out := []map[string]any{}
		for i := start; i < len(t.Log) && (limit == 0 || i < start+limit); i++ {
			out = append(out, map[string]any{"n": i + 1, "t": t.Log[i]})
		}
		return out, nil
	case "DELETE /nodes/{node}/tasks/{upid}":
		t, err := m.task(r)
		if err != nil {
			return nil, err
		}
		m.finish(t, "interrupted by signal")
		return nil, nil
	case "GET /cluster/ceph/status":
		if !m.ceph {
			return nil, &apiError{status: 500, msg: "binary not installed: /usr/bin/ceph-mon"}
		}
		return m.cephStatus(), nil
	case "GET /cluster/ceph/flags":
		if !m.ceph {
			return nil, &apiError{status: 500, msg: "binary not installed: /usr/bin/ceph-mon"}
		}
		var out []map[string]any
		for _, f := range []string{"nobackfill", "nodeep-scrub", "nodown", "noin", "noout", "norebalance", "norecover", "noscrub", "notieragent", "noup", "pause"} {
			out = append(out, map[string]any{"name": f, "value": m.flags[f]})
		}
		return out, nil
	case "GET /access/permissions":
		privs := map[string]any{}
		for _, p := range m.tokenPrivs {
			privs[p] = 1
		}
		return map[string]any{"/": privs}, nil
	case "GET /nodes/{node}/apt/update":
		n, err := m.onlineNode(r.str("node"))
		if err != nil {
			return nil, err
		}
		out := []map[string]any{}
		for _, p := range n.Pending {
			out = append(out, map[string]any{"Package": p.Name, "Version": p.Version, "OldVersion": p.OldVersion, "Arch": "amd64", "Origin": "Proxmox", "Priority": "optional", "Section": "admin", "Title": p.Name, "Description": p.Name})
		}
		return out, nil
	case "POST /nodes/{node}/qemu/{vmid}/status/shutdown", "POST /nodes/{node}/lxc/{vmid}/status/shutdown":
		return m.power(r, "stopped")
	case "POST /nodes/{node}/qemu/{vmid}/status/start", "POST /nodes/{node}/lxc/{vmid}/status/start":
		return m.power(r, "running")
	}
	return nil, &apiError{status: 501, msg: fmt.Sprintf("Method '%s %s' is valid but not modelled by pvesim", r.method, r.path)}
}

func (m *Model) task(r request) (*Task, error) {
	t, ok := m.tasks[r.str("upid")]
	if !ok || t.Node != r.str("node") {
		return nil, &apiError{status: 500, msg: "no such task"}
	}
	if !m.nodes[t.Node].Online {
		return nil, &apiError{status: 595, msg: "No route to host"}
	}
	return t, nil
}

// resources is /cluster/resources: nodes, guests, storage, and item types and fields
// newer PVE versions add (a client must tolerate them).
func (m *Model) resources(typ string) []map[string]any {
	var out []map[string]any
	if typ == "" || typ == "node" {
		for _, name := range m.order {
			n := m.nodes[name]
			st := "online"
			if !n.Online {
				st = "offline"
			}
			item := map[string]any{"id": "node/" + name, "type": "node", "node": name, "status": st, "maxmem": n.MemoryMiB << 20, "maxcpu": n.CPUs, "level": "", "cgroup-mode": 2}
			if n.Online {
				item["uptime"] = int64(m.now().Sub(n.BootTime).Seconds())
				item["mem"] = (n.MemoryMiB << 20) / 4
			}
			out = append(out, item)
		}
	}
	if typ == "" || typ == "vm" {
		for _, id := range m.vmids() {
			g := m.guests[id]
			item := map[string]any{"id": fmt.Sprintf("%s/%d", g.Type, id), "type": g.Type, "vmid": id, "name": g.Name, "node": g.Node, "status": g.Status,
				"maxmem": g.MaxMemMiB << 20, "maxcpu": g.CPUs, "template": 0, "tags": "", "diskread": 0, "diskwrite": 0}
			if g.Status == "running" {
				item["uptime"] = 3600
				item["mem"] = g.MaxMemMiB << 19
			}
			if g.HA {
				item["hastate"] = "started"
			}
			if g.lock != "" {
				item["lock"] = g.lock
			}
			if !m.nodes[g.Node].Online {
				item["status"] = "unknown"
			}
			out = append(out, item)
		}
	}
	if typ == "" || typ == "storage" {
		out = append(out, m.storageItems()...)
	}
	if typ == "" {
		// Item types and fields this client was not written for.
		out = append(out,
			map[string]any{"id": "pool/prod", "type": "pool", "pool": "prod"},
			map[string]any{"id": "network/pve1/vmbr0", "type": "network", "network": "vmbr0", "node": m.order[0], "network-type": "fabric", "zone-type": "evpn"},
		)
	}
	return out
}

func (m *Model) clusterStatus() []map[string]any {
	out := []map[string]any{{"id": "cluster", "type": "cluster", "name": "pvesim", "nodes": len(m.nodes), "quorate": boolInt(m.quorate()), "version": 7}}
	for i, name := range m.order {
		n := m.nodes[name]
		out = append(out, map[string]any{"id": "node/" + name, "type": "node", "name": name, "nodeid": i + 1, "online": boolInt(n.Online), "local": boolInt(i == 0), "ip": fmt.Sprintf("10.10.10.%d", i+1), "level": ""})
	}
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// haStatus is /cluster/ha/status/current as pve-ha-manager's API2::HA::Status builds
// it: quorum, master, one lrm entry per node ("NODE (maintenance mode, TIME)"), one
// service entry per HA resource.
func (m *Model) haStatus() []map[string]any {
	now := m.now()
	q := "OK"
	if !m.quorate() {
		q = "No quorum on node"
	}
	out := []map[string]any{
		{"id": "quorum", "type": "quorum", "node": m.order[0], "status": q, "quorate": boolInt(m.quorate())},
		{"id": "master", "type": "master", "node": m.order[0], "status": fmt.Sprintf("%s (active, %s)", m.order[0], now.Format(time.ANSIC)), "timestamp": now.Unix()},
	}
	for _, name := range m.order {
		n := m.nodes[name]
		item := map[string]any{"id": "lrm:" + name, "type": "lrm", "node": name}
		switch {
		case !m.lrmUp(n):
			item["status"] = fmt.Sprintf("%s (old timestamp - dead?, %s)", name, n.BootTime.Format(time.ANSIC))
		case n.lrmMaintenance:
			item["status"] = fmt.Sprintf("%s (maintenance mode, %s)", name, now.Format(time.ANSIC))
			item["timestamp"] = now.Unix()
		default:
			mode := "idle"
			for _, g := range m.guests {
				if g.HA && g.Node == name {
					mode = "active"
				}
			}
			item["status"] = fmt.Sprintf("%s (%s, %s)", name, mode, now.Format(time.ANSIC))
			item["timestamp"] = now.Unix()
		}
		out = append(out, item)
	}
	for _, id := range m.vmids() {
		g := m.guests[id]
		if !g.HA {
			continue
		}
		state := "started"
		if g.mig != nil {
			state = "migrate"
		}
		out = append(out, map[string]any{"id": "service:" + sid(g), "type": "service", "sid": sid(g), "node": g.Node, "state": "started", "crm_state": state, "request_state": "started", "status": fmt.Sprintf("%s (%s, %s)", sid(g), g.Node, state), "max_relocate": 1, "max_restart": 1, "failback": 1})
	}
	return out
}

// managerStatus is the CRM's state as PVE stores it (manager_status): the node
// requests (maintenance survives reboots here) and each LRM's mode.
func (m *Model) managerStatus() map[string]any {
	nodeStatus, nodeReq, lrm := map[string]any{}, map[string]any{}, map[string]any{}
	now := m.now().Unix()
	for _, name := range m.order {
		n := m.nodes[name]
		st := "online"
		switch {
		case !n.Online:
			st = "unknown"
		case n.Maintenance:
			st = "maintenance"
		}
		nodeStatus[name] = st
		if n.Maintenance {
			nodeReq[name] = map[string]any{"maintenance": 1}
		}
		mode := "active"
		if n.lrmMaintenance {
			mode = "maintenance"
		}
		if m.lrmUp(n) {
			lrm[name] = map[string]any{"mode": mode, "state": "active", "timestamp": now, "results": map[string]any{}}
		}
	}
	services := map[string]any{}
	for _, id := range m.vmids() {
		g := m.guests[id]
		if g.HA {
			st := map[string]any{"node": g.Node, "state": "started", "uid": fmt.Sprintf("%x", id*7919)}
			if g.fallback != "" {
				st["maintenance_node"] = g.fallback
			}
			services[sid(g)] = st
		}
	}
	return map[string]any{
		"manager_status": map[string]any{"master_node": m.order[0], "node_status": nodeStatus, "node_request": nodeReq, "service_status": services, "timestamp": now},
		"lrm_status":     lrm,
		"quorum":         map[string]any{"node": m.order[0], "quorate": boolInt(m.quorate())},
	}
}

func (m *Model) nodeList() []map[string]any {
	var out []map[string]any
	for _, name := range m.order {
		n := m.nodes[name]
		item := map[string]any{"node": name, "status": "offline", "id": "node/" + name, "type": "node", "ssl_fingerprint": "00:11", "level": ""}
		if n.Online {
			item["status"] = "online"
			item["uptime"] = int64(m.now().Sub(n.BootTime).Seconds())
			item["maxmem"] = n.MemoryMiB << 20
			item["maxcpu"] = n.CPUs
		}
		out = append(out, item)
	}
	return out
}

func (m *Model) nodeStatus(n *Node) map[string]any {
	mem := n.MemoryMiB << 20
	return map[string]any{
		"uptime":          int64(m.now().Sub(n.BootTime).Seconds()),
		"cpu":             0.05,
		"cpuinfo":         map[string]any{"cpus": n.CPUs, "cores": n.CPUs / 2, "sockets": 1, "model": "AMD EPYC 7313P 16-Core Processor", "mhz": "3000.000", "hvm": "1", "flags": "fpu vme"},
		"current-kernel":  map[string]any{"sysname": "Linux", "release": n.Kernel, "version": "#1 SMP PREEMPT_DYNAMIC PMX 6.14.8-2 (2025-07-22T10:04Z)", "machine": "x86_64"},
		"kversion":        "Linux " + n.Kernel,
		"pveversion":      "pve-manager/9.1.1/42f5d7cc8c3bb1a6",
		"boot-info":       map[string]any{"mode": "efi", "secureboot": 0},
		"loadavg":         []string{"0.10", "0.12", "0.09"},
		"memory":          map[string]any{"total": mem, "used": mem / 4, "free": mem - mem/4, "available": mem - mem/4},
		"swap":            map[string]any{"total": 0, "used": 0, "free": 0},
		"rootfs":          map[string]any{"total": int64(100) << 30, "used": int64(10) << 30, "free": int64(90) << 30, "avail": int64(90) << 30},
		"ksm":             map[string]any{"shared": 0},
		"wait":            0.001,
		"idle":            0,
		"new-field-pve10": map[string]any{"unknown": true},
	}
}

func (m *Model) service(n *Node, name string) map[string]any {
	state, active := "running", "active"
	if name == "pve-ha-lrm" && !m.lrmUp(n) {
		state, active = "dead", "inactive"
	}
	return map[string]any{"service": name, "name": name + ".service", "desc": name, "state": state, "active-state": active, "unit-state": "enabled"}
}

func (m *Model) cephStatus() map[string]any {
	osds, up := 0, 0
	for _, n := range m.nodes {
		if n.HasCeph {
			osds++
			if n.Online {
				up++
			}
		}
	}
	checks := map[string]any{}
	if m.flags["noout"] {
		checks["OSDMAP_FLAGS"] = map[string]any{"severity": "HEALTH_WARN", "summary": map[string]any{"message": "noout flag(s) set", "count": 1}, "muted": false}
	}
	if up < osds {
		checks["OSD_DOWN"] = map[string]any{"severity": "HEALTH_WARN", "summary": map[string]any{"message": plural(osds-up, "osd") + " down", "count": osds - up}, "muted": false}
		checks["PG_DEGRADED"] = map[string]any{"severity": "HEALTH_WARN", "summary": map[string]any{"message": "Degraded data redundancy: 120/360 objects degraded (33.333%)", "count": 1}, "muted": false}
	}
	status := "HEALTH_OK"
	if len(checks) > 0 {
		status = "HEALTH_WARN"
	}
	return map[string]any{
		"fsid":       "8e1f4a12-5c0e-4f2a-9d55-3b1c6f0e7a21",
		"health":     map[string]any{"status": status, "checks": checks, "mutes": []any{}},
		"osdmap":     map[string]any{"epoch": 120, "num_osds": osds, "num_up_osds": up, "num_in_osds": osds, "num_remapped_pgs": 0},
		"pgmap":      map[string]any{"num_pgs": 128, "pgs_by_state": []any{map[string]any{"state_name": "active+clean", "count": 128}}},
		"monmap":     map[string]any{"epoch": 3},
		"servicemap": map[string]any{"epoch": 1},
	}
}

func (m *Model) migratePrecheck(r request) (any, error) {
	g, err := m.guest(r.str("node"), r.int("vmid"), "qemu")
	if err != nil {
		return nil, err
	}
	disks := []map[string]any{}
	for _, d := range m.localDisks(g) {
		disks = append(disks, map[string]any{"volid": d.VolID, "size": d.Size, "cdrom": 0, "is_unused": boolInt(strings.HasPrefix(d.Key, "unused"))})
	}
	var allowed []string
	for _, name := range m.order {
		if name != g.Node && m.nodes[name].Online {
			allowed = append(allowed, name)
		}
	}
	res := append([]string{}, g.LocalResources...)
	return map[string]any{"running": boolInt(g.Status == "running"), "has-dbus-vmstate": 0, "local_disks": disks, "local_resources": res,
		"mapped-resources": []string{}, "mapped-resource-info": map[string]any{}, "allowed_nodes": allowed}, nil
}

// migrate is POST .../migrate. For an HA-managed guest PVE only queues a request with
// the HA manager (an "hamigrate" task that ends at once); the real migration starts
// on a later CRM round.
func (m *Model) migrate(r request, typ string) (any, error) {
	node := r.str("node")
	if _, err := m.onlineNode(node); err != nil {
		return nil, err
	}
	g, err := m.guest(node, r.int("vmid"), typ)
	if err != nil {
		return nil, err
	}
	target := r.str("target")
	tn, ok := m.nodes[target]
	switch {
	case !ok:
		return nil, &apiError{status: 400, msg: "Parameter verification failed.", errs: map[string]string{"target": fmt.Sprintf("no such cluster node '%s'", target)}}
	case target == node:
		return nil, &apiError{status: 400, msg: "Parameter verification failed.", errs: map[string]string{"target": "target is local node."}}
	case !tn.Online:
		return nil, &apiError{status: 500, msg: fmt.Sprintf("target node '%s' is not online", target)}
	case g.lock != "":
		return nil, &apiError{status: 500, msg: fmt.Sprintf("VM is locked (%s)", g.lock)}
	}
	if g.HA {
		t := m.newTask(node, "hamigrate", strconv.Itoa(g.VMID), "drover@pve!rolling")
		m.logf(t, "Requesting HA migration for %s %d to node %s", map[string]string{"qemu": "VM", "lxc": "CT"}[typ], g.VMID, target)
		m.finish(t, "OK")
		g.haTarget = target
		return t.UPID, nil
	}
	if typ == "lxc" {
		if g.Status == "running" && !r.flag("restart") {
			return nil, &apiError{status: 500, msg: "lxc live migration is currently not implemented"}
		}
	} else {
		if g.Status == "running" && !r.flag("online") {
			return nil, &apiError{status: 500, msg: "can't migrate running VM without --online"}
		}
		if len(g.LocalResources) > 0 {
			return nil, &apiError{status: 500, msg: "can't migrate VM which uses local devices: " + strings.Join(g.LocalResources, ", ")}
		}
		if len(m.localDisks(g)) > 0 && !r.flag("with-local-disks") {
			t := m.newTask(node, "qmigrate", strconv.Itoa(g.VMID), "drover@pve!rolling")
			m.logf(t, "ERROR: migration aborted (duration 00:00:00): can't live migrate attached local disks without with-local-disks option")
			m.finish(t, "migration aborted")
			return t.UPID, nil
		}
		if d, free, ok := m.noRoom(g, target); !ok {
			// The target allocates each volume on the same storage ID; a full
			// storage fails the migration at that point.
			t := m.newTask(node, "qmigrate", strconv.Itoa(g.VMID), "drover@pve!rolling")
			m.logf(t, "starting migration of VM %d to node '%s' (10.10.10.%d)", g.VMID, target, 1+m.index(target))
			m.logf(t, "ERROR: online migrate failure - unable to allocate %s on storage '%s' of node '%s': %s needed, %s free", d.Key, d.storage(), target, renderBytes(float64(d.Size)/(1<<20)), renderBytes(float64(free)))
			m.finish(t, "migration problems")
			m.stats.NoRoomMigrations++
			return t.UPID, nil
		}
	}
	t := m.startMigration(g, target, "drover@pve!rolling", false, r.flag("with-local-disks"))
	return t.UPID, nil
}

func (m *Model) power(r request, want string) (any, error) {
	typ := "qemu"
	if strings.Contains(r.path, "/lxc/") {
		typ = "lxc"
	}
	node := r.str("node")
	if _, err := m.onlineNode(node); err != nil {
		return nil, err
	}
	g, err := m.guest(node, r.int("vmid"), typ)
	if err != nil {
		return nil, err
	}
	kind := map[string]string{"running": "start", "stopped": "shutdown"}[want]
	t := m.newTask(node, map[string]string{"qemu": "qm", "lxc": "vz"}[typ]+kind, strconv.Itoa(g.VMID), "drover@pve!rolling")
	g.Status = want
	m.finish(t, "OK")
	return t.UPID, nil
}
