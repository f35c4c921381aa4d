package proxmox

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/droverhq/drover/drivers"
)

// readyServices must run on a node before it counts as back.
var readyServices = []string{"pve-cluster", "pvedaemon", "pveproxy", "pve-ha-lrm"}

// RebootNode sets Ceph noout first (ceph_noout), then POST /nodes/{node}/status
// command=reboot, which answers null: PVE runs the reboot in the background.
func (d *Driver) RebootNode(ctx context.Context, node string) error {
	if _, ok := d.cfg.Nodes[node]; !ok {
		return fmt.Errorf("reboot node %q: %w", node, drivers.ErrNotFound)
	}
	if use, err := d.useNoout(ctx); err != nil {
		return fmt.Errorf("reboot node %s: %w", node, err)
	} else if use {
		if err := d.setNoout(ctx, node); err != nil {
			return fmt.Errorf("reboot node %s: %w", node, err)
		}
	}
	at := d.now()
	if err := d.api.post(ctx, "/nodes/"+url.PathEscape(node)+"/status", map[string]any{"command": "reboot"}, nil); err != nil {
		return fmt.Errorf("reboot node %s: %w", node, err)
	}
	d.mu.Lock()
	d.reboots[node] = at
	d.mu.Unlock()
	d.log.Info("reboot requested", "node", node)
	return nil
}

// NodeReady: the node answers with an uptime that started after the reboot this
// process requested (not merely "the API answers again": a reboot that never happened
// leaves the old uptime), the cluster is quorate, pve-cluster, pvedaemon, pveproxy and
// pve-ha-lrm run, and Ceph is healthy. Ceph noout is cleared here once every node is
// back, before the node counts as ready.
func (d *Driver) NodeReady(ctx context.Context, node string) (bool, error) {
	if _, ok := d.cfg.Nodes[node]; !ok {
		return false, fmt.Errorf("node %q: %w", node, drivers.ErrNotFound)
	}
	st, err := d.nodeStatus(ctx, node)
	if err != nil {
		if errors.Is(err, drivers.ErrUnavailable) {
			return false, nil
		}
		return false, err
	}
	bootAt := d.now().Add(-time.Duration(st.Uptime) * time.Second)
	d.mu.Lock()
	asked, pending := d.reboots[node]
	d.mu.Unlock()
	if pending && bootAt.Before(asked.Add(-2*time.Second)) {
		return false, nil
	}
	if d.bootID(ctx, node, st.Uptime) == "" {
		return false, nil
	}
	if q, err := d.quorate(ctx); err != nil || !q {
		return false, nil
	}
	for _, svc := range readyServices {
		var s struct {
			State string `json:"state"`
		}
		if err := d.api.get(ctx, fmt.Sprintf("/nodes/%s/services/%s/state", url.PathEscape(node), svc), nil, &s); err != nil || s.State != "running" {
			return false, nil
		}
	}
	if use, err := d.useNoout(ctx); err != nil {
		return false, nil
	} else if use {
		if err := d.clearNoout(ctx, node); err != nil {
			d.log.Debug("ceph not ready", "node", node, "error", err)
			return false, nil
		}
		if ok, why := d.cephHealthy(ctx); !ok {
			d.log.Debug("ceph not healthy", "node", node, "reason", why)
			return false, nil
		}
	}
	d.mu.Lock()
	delete(d.reboots, node)
	d.mu.Unlock()
	return true, nil
}

func (d *Driver) quorate(ctx context.Context) (bool, error) {
	var items []struct {
		Type    string `json:"type"`
		Quorate any    `json:"quorate"`
	}
	if err := d.api.get(ctx, "/cluster/status", nil, &items); err != nil {
		return false, err
	}
	for _, it := range items {
		if it.Type == "cluster" {
			return truthy(it.Quorate), nil
		}
	}
	// A single node without a cluster has no cluster item: it is its own quorum.
	return true, nil
}

type cephStatus struct {
	Health struct {
		Status string         `json:"status"`
		Checks map[string]any `json:"checks"`
	} `json:"health"`
	OSDMap struct {
		NumOSDs   int `json:"num_osds"`
		NumUpOSDs int `json:"num_up_osds"`
	} `json:"osdmap"`
}

// useNoout reports whether noout is handled: never, always, or auto = the cluster
// answers Ceph status.
func (d *Driver) useNoout(ctx context.Context) (bool, error) {
	switch d.cfg.CephNoout {
	case "never":
		return false, nil
	case "always":
		return true, nil
	}
	var st cephStatus
	err := d.api.get(ctx, "/cluster/ceph/status", nil, &st)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, drivers.ErrUnavailable) {
		return false, err
	}
	// PVE answers 500 "binary not installed" or "not initialized" without Ceph.
	return false, nil
}

func (d *Driver) nooutSet(ctx context.Context) (bool, error) {
	var flags []struct {
		Name  string `json:"name"`
		Value any    `json:"value"`
	}
	if err := d.api.get(ctx, "/cluster/ceph/flags", nil, &flags); err != nil {
		return false, err
	}
	for _, f := range flags {
		if f.Name == "noout" {
			return truthy(f.Value), nil
		}
	}
	return false, nil
}

// setNoout runs `ceph osd set noout` on node (still up) and checks the flag.
func (d *Driver) setNoout(ctx context.Context, node string) error {
	if _, err := d.sshRun(ctx, node, "ceph", "osd", "set", "noout"); err != nil {
		return fmt.Errorf("ceph osd set noout: %w", err)
	}
	set, err := d.nooutSet(ctx)
	if err != nil {
		return fmt.Errorf("check ceph noout: %w", err)
	}
	if !set {
		return errors.New("ceph osd set noout ran but the flag is not set")
	}
	d.log.Info("ceph noout set", "node", node)
	return nil
}

// clearNoout clears noout once every node is online and every OSD is up. Drover sets
// noout only around its own reboots and keeps no record of it: whenever noout is set
// and nothing is down, it is cleared. That is also what makes it survive a crash:
// after a restart the run passes through NodeReady (or ResumeNode) of the node it
// rebooted, and the flag is recomputed from the cluster, not from memory.
func (d *Driver) clearNoout(ctx context.Context, node string) error {
	set, err := d.nooutSet(ctx)
	if err != nil || !set {
		return err
	}
	rs, err := d.resources(ctx)
	if err != nil {
		return err
	}
	for _, r := range rs {
		if r.Type == "node" && r.Status != "online" {
			return fmt.Errorf("node %s is %s: noout stays", r.Node, r.Status)
		}
	}
	var st cephStatus
	if err := d.api.get(ctx, "/cluster/ceph/status", nil, &st); err != nil {
		return err
	}
	if st.OSDMap.NumUpOSDs < st.OSDMap.NumOSDs {
		return fmt.Errorf("%d of %d OSDs up: noout stays", st.OSDMap.NumUpOSDs, st.OSDMap.NumOSDs)
	}
	if _, err := d.sshRun(ctx, node, "ceph", "osd", "unset", "noout"); err != nil {
		return fmt.Errorf("ceph osd unset noout: %w", err)
	}
	d.log.Info("ceph noout cleared", "node", node)
	return nil
}

// cephHealthy is HEALTH_OK, or HEALTH_WARN for flags only.
func (d *Driver) cephHealthy(ctx context.Context) (bool, string) {
	var st cephStatus
	if err := d.api.get(ctx, "/cluster/ceph/status", nil, &st); err != nil {
		return false, err.Error()
	}
	if st.Health.Status == "HEALTH_OK" {
		return true, ""
	}
	var other []string
	for name := range st.Health.Checks {
		if name != "OSDMAP_FLAGS" {
			other = append(other, name)
		}
	}
	if st.Health.Status == "HEALTH_WARN" && len(other) == 0 {
		return true, ""
	}
	return false, st.Health.Status + " " + strings.Join(other, ",")
}
