package proxmox

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/droverhq/drover/drivers"
)

var _ drivers.ReadinessChecker = (*Driver)(nil)

// neededPrivs are what the driver's API calls need on "/".
var neededPrivs = []struct{ priv, why string }{
	{"Sys.Audit", "read nodes, HA and Ceph status"},
	{"VM.Audit", "read guests"},
	{"VM.Migrate", "migrate guests"},
	{"Sys.PowerMgmt", "reboot nodes"},
	{"VM.PowerMgmt", "shut down and start guests that cannot migrate"},
}

const (
	pass = "pass"
	warn = "warn"
	fail = "fail"
)

// Readiness checks what `drover analyze` reports for Proxmox VE.
func (d *Driver) Readiness(ctx context.Context) ([]drivers.ReadinessCheck, error) {
	var out []drivers.ReadinessCheck
	add := func(name, status, msg, remedy string) {
		out = append(out, drivers.ReadinessCheck{Name: name, Status: status, Message: msg, Remedy: remedy})
	}
	out = append(out, d.checkToken(ctx))

	var unreachable, pendingReboot []string
	for _, node := range d.nodeNames() {
		if _, err := d.sshRun(ctx, node, "cat", "/proc/sys/kernel/random/boot_id"); err != nil {
			unreachable = append(unreachable, fmt.Sprintf("%s (%v)", node, err))
			continue
		}
		_, err := d.sshRun(ctx, node, "test", "-f", "/var/run/reboot-required")
		if err == nil {
			pendingReboot = append(pendingReboot, node)
		}
	}
	if len(unreachable) > 0 {
		add("proxmox_ssh", fail, "SSH failed: "+strings.Join(unreachable, "; "), "check cluster.proxmox.ssh and nodes; add the host keys to known_hosts with ssh-keyscan")
	} else {
		add("proxmox_ssh", pass, fmt.Sprintf("SSH with known host keys works on all %d nodes", len(d.cfg.Nodes)), "")
	}
	if len(pendingReboot) > 0 {
		add("proxmox_pending_reboot", warn, "reboot already pending (/var/run/reboot-required): "+strings.Join(pendingReboot, ", "), "nothing to do: the run reboots these nodes")
	} else {
		add("proxmox_pending_reboot", pass, "no node has a reboot pending", "")
	}

	if q, err := d.quorate(ctx); err != nil {
		add("proxmox_quorum", fail, "cannot read /cluster/status: "+err.Error(), "check the API endpoints")
	} else if !q {
		add("proxmox_quorum", fail, "the cluster is not quorate", "bring nodes back until pvecm status shows Quorate: Yes")
	} else {
		add("proxmox_quorum", pass, "the cluster is quorate", "")
	}

	lrm, services, err := d.haStatus(ctx)
	if err != nil {
		return nil, err
	}
	requested, err := d.maintenanceRequests(ctx)
	if err != nil {
		return nil, err
	}
	if len(services) == 0 {
		add("proxmox_ha", warn, "HA is not in use (no HA resources): Drover moves every guest itself", "")
	} else {
		add("proxmox_ha", pass, fmt.Sprintf("HA manages %d guests: node maintenance moves them, Drover moves the rest", len(services)), "")
	}
	var inMaint []string
	for _, node := range d.nodeNames() {
		if lrm[node] == "maintenance mode" || requested[node] {
			inMaint = append(inMaint, node)
		}
	}
	if len(inMaint) > 0 {
		// Whose maintenance it is: a Drover run's mark, or none (an admin, a tool).
		marks, err := d.readMarks(ctx, d.nodeNames())
		if err != nil {
			d.log.Warn("pause marks not read", "error", err)
		}
		for i, node := range inMaint {
			if m := marks[node]; m != "" {
				inMaint[i] += " (mark " + m + ")"
			} else {
				inMaint[i] += " (no drover mark)"
			}
		}
	}
	if len(inMaint) > 0 {
		add("proxmox_maintenance", warn, "already in HA maintenance: "+strings.Join(inMaint, ", "), "if another tool or person put them there, finish that first (ha-manager crm-command node-maintenance disable NODE); Drover disables maintenance when it resumes a node")
	} else {
		add("proxmox_maintenance", pass, "no node is in HA maintenance", "")
	}

	gs, err := d.guests(ctx)
	if err != nil {
		return nil, err
	}
	var devices, containers []string
	for _, id := range sortedIDs(gs) {
		g := gs[id]
		switch {
		case g.Type == "lxc" && g.HAState == "" && g.Status == "running":
			containers = append(containers, fmt.Sprintf("CT %d (%s)", id, g.Name))
		case g.Type == "qemu" && g.Status == "running":
			pc, err := d.precheck(ctx, g.Node, id)
			if err == nil && len(pc.LocalResources) > 0 {
				devices = append(devices, fmt.Sprintf("VM %d (%s): %s", id, g.Name, strings.Join(pc.LocalResources, ", ")))
			}
		}
	}
	if len(devices) > 0 {
		add("proxmox_local_devices", warn, "guests with local devices (USB/PCI passthrough) cannot migrate: "+strings.Join(devices, "; "), "set policy.non_migratable to shutdown or skip, or remove the devices")
	} else {
		add("proxmox_local_devices", pass, "no running guest uses local devices", "")
	}
	if len(containers) > 0 {
		add("proxmox_containers", warn, "LXC containers without HA move only by restart: "+strings.Join(containers, "; "), "add them to HA (ha-manager add ct:ID) or set policy.non_migratable: shutdown")
	}
	out = append(out, d.checkCeph(ctx))
	return out, nil
}

func (d *Driver) checkToken(ctx context.Context) drivers.ReadinessCheck {
	var perms map[string]map[string]any
	if err := d.api.get(ctx, "/access/permissions", url.Values{"path": {"/"}}, &perms); err != nil {
		return drivers.ReadinessCheck{Name: "proxmox_token", Status: fail, Message: "cannot read the token's permissions: " + err.Error(), Remedy: "check token_id and token_secret_env"}
	}
	var missing []string
	for _, p := range neededPrivs {
		if !truthy(perms["/"][p.priv]) {
			missing = append(missing, p.priv+" ("+p.why+")")
		}
	}
	if len(missing) > 0 {
		return drivers.ReadinessCheck{Name: "proxmox_token", Status: fail, Message: "the token lacks " + strings.Join(missing, ", ") + " on /",
			Remedy: "grant the role of the README on / to the token: pveum acl modify / --tokens '" + d.cfg.TokenID + "' --roles DroverRolling"}
	}
	return drivers.ReadinessCheck{Name: "proxmox_token", Status: pass, Message: "the API token has the privileges Drover needs on /"}
}

func (d *Driver) checkCeph(ctx context.Context) drivers.ReadinessCheck {
	use, err := d.useNoout(ctx)
	if err != nil {
		return drivers.ReadinessCheck{Name: "proxmox_ceph", Status: fail, Message: "cannot read Ceph status: " + err.Error()}
	}
	if !use {
		return drivers.ReadinessCheck{Name: "proxmox_ceph", Status: pass, Message: "no Ceph (or ceph_noout: never): noout is not managed"}
	}
	if set, err := d.nooutSet(ctx); err == nil && set {
		return drivers.ReadinessCheck{Name: "proxmox_ceph", Status: warn, Message: "Ceph noout is already set; Drover clears it after the first node is back",
			Remedy: "if you set it for another reason, finish that first (ceph osd unset noout)"}
	}
	if ok, why := d.cephHealthy(ctx); !ok {
		return drivers.ReadinessCheck{Name: "proxmox_ceph", Status: fail, Message: "Ceph is not healthy: " + why, Remedy: "ceph health detail; wait until HEALTH_OK before a rolling reboot"}
	}
	return drivers.ReadinessCheck{Name: "proxmox_ceph", Status: pass, Message: "Ceph is healthy; noout will be set around each reboot"}
}

func sortedIDs[V any](m map[int]V) []int {
	ids := make([]int, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}
