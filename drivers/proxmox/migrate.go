package proxmox

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	pxapi "github.com/luthermonson/go-proxmox"

	"github.com/droverhq/drover/drivers"
)

// precheck is GET /nodes/{node}/qemu/{vmid}/migrate: what keeps a guest on its node.
type precheck struct {
	LocalDisks []struct {
		VolID string `json:"volid"`
		Size  int64  `json:"size"`
		CDROM any    `json:"cdrom"`
	} `json:"local_disks"`
	LocalResources []string `json:"local_resources"`
	at             time.Time
}

func (p precheck) localDisks() bool {
	for _, d := range p.LocalDisks {
		if !truthy(d.CDROM) {
			return true
		}
	}
	return false
}

func truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case float64:
		return x != 0
	case string:
		return x == "1" || x == "true"
	}
	return false
}

// precheckTTL: local devices and disks change rarely; an inventory should not ask for
// every guest every time.
const precheckTTL = 2 * time.Minute

func (d *Driver) precheck(ctx context.Context, node string, id int) (precheck, error) {
	d.mu.Lock()
	pc, ok := d.checks[id]
	d.mu.Unlock()
	if ok && d.now().Sub(pc.at) < precheckTTL {
		return pc, nil
	}
	pc = precheck{}
	if err := d.api.get(ctx, fmt.Sprintf("/nodes/%s/qemu/%d/migrate", url.PathEscape(node), id), nil, &pc); err != nil {
		return precheck{}, err
	}
	pc.at = d.now()
	d.mu.Lock()
	d.checks[id] = pc
	d.mu.Unlock()
	return pc, nil
}

// Migrate live-migrates a qemu guest: POST .../migrate online=1, with with-local-disks
// when the pre-check finds local disks; progress is read from the task log, and a
// cancelled ctx stops the task (DELETE), which leaves the guest on its source. For an
// HA-managed guest the call only queues an HA request (an hamigrate task), so the
// guest's node is followed instead of the task.
func (d *Driver) Migrate(ctx context.Context, req drivers.MigrateRequest, progress func(drivers.MigrationProgress)) (drivers.MigrationResult, error) {
	id, err := vmid(req.VM)
	if err != nil {
		return drivers.MigrationResult{}, err
	}
	if _, ok := d.cfg.Nodes[req.To]; !ok {
		return drivers.MigrationResult{}, fmt.Errorf("migrate %s: target node %q: %w", req.VM, req.To, drivers.ErrNotFound)
	}
	req.VM = strconv.Itoa(id) // one key per guest, however the name was written
	return d.flights.Do(ctx, req, func() (drivers.MigrationResult, error) {
		return d.migrate(ctx, id, req, progress)
	})
}

func (d *Driver) migrate(ctx context.Context, id int, req drivers.MigrateRequest, progress func(drivers.MigrationProgress)) (drivers.MigrationResult, error) {
	gs, err := d.guests(ctx)
	if err != nil {
		return drivers.MigrationResult{}, err
	}
	g, ok := gs[id]
	switch {
	case !ok:
		return drivers.MigrationResult{}, fmt.Errorf("migrate %s: %w", req.VM, drivers.ErrNotFound)
	case g.Node == req.To && g.Lock == "":
		return drivers.MigrationResult{AlreadyThere: true}, nil
	case g.HAState != "":
		return d.followHA(ctx, id, g, req, progress)
	case g.Type == "lxc":
		return drivers.MigrationResult{}, fmt.Errorf("migrate CT %d (%s): LXC containers cannot live-migrate: %w", id, g.Name, drivers.ErrRejected)
	case g.Lock == "migrate":
		// A migration in flight that this process did not start (a run that
		// crashed, or another tool): join it when it goes where the caller wants.
		upid, to, err := d.activeMigration(ctx, g.Node, id)
		if err != nil {
			return drivers.MigrationResult{}, fmt.Errorf("migrate %s: %w", req.VM, err)
		}
		if to != req.To {
			return drivers.MigrationResult{}, fmt.Errorf("migrate %s to %s: a migration to %s is in flight: %w", req.VM, req.To, to, drivers.ErrRejected)
		}
		d.log.Info("joining migration in flight", "vm", id, "from", g.Node, "to", to, "upid", upid.Raw)
		return d.followTask(ctx, upid, id, req, g.Node, progress)
	}
	from := g.Node
	pc, err := d.precheck(ctx, from, id)
	if err != nil {
		return drivers.MigrationResult{}, fmt.Errorf("migrate %s: pre-check: %w", req.VM, err)
	}
	if len(pc.LocalResources) > 0 {
		return drivers.MigrationResult{}, fmt.Errorf("migrate VM %d (%s): it uses local devices %s: %w", id, g.Name, strings.Join(pc.LocalResources, ", "), drivers.ErrRejected)
	}
	body := map[string]any{"target": req.To, "online": 1}
	if pc.localDisks() {
		body["with-local-disks"] = 1
	}
	var upidText string
	if err := d.api.post(ctx, fmt.Sprintf("/nodes/%s/qemu/%d/migrate", url.PathEscape(from), id), body, &upidText); err != nil {
		var ae *pxapi.APIError
		if errors.As(err, &ae) && ae.StatusCode < 595 {
			return drivers.MigrationResult{}, fmt.Errorf("migrate %s to %s: %w: %w", req.VM, req.To, drivers.ErrRejected, err)
		}
		return drivers.MigrationResult{}, fmt.Errorf("migrate %s to %s: %w", req.VM, req.To, err)
	}
	upid, err := ParseUPID(upidText)
	if err != nil {
		return drivers.MigrationResult{}, fmt.Errorf("migrate %s: the API answered %w", req.VM, err)
	}
	d.log.Info("migration started", "vm", id, "name", g.Name, "from", from, "to", req.To, "with_local_disks", pc.localDisks(), "upid", upid.Raw)
	return d.followTask(ctx, upid, id, req, from, progress)
}

// followTask polls the migration task, reports progress from its log, and stops the
// task when ctx ends.
func (d *Driver) followTask(ctx context.Context, upid UPID, id int, req drivers.MigrateRequest, from string, progress func(drivers.MigrationProgress)) (drivers.MigrationResult, error) {
	task := pxapi.NewTask(pxapi.UPID(upid.Raw), d.api.c)
	start := d.now()
	logN := 0
	var res drivers.MigrationResult
	var lastErr string
	parts := map[string]Progress{}
	base := fmt.Sprintf("/nodes/%s/tasks/%s", url.PathEscape(upid.Node), url.PathEscape(upid.Raw))
	t := time.NewTicker(d.cfg.PollInterval)
	defer t.Stop()
	for {
		var lines []struct {
			N int    `json:"n"`
			T string `json:"t"`
		}
		if err := d.api.get(ctx, base+"/log", url.Values{"start": {strconv.Itoa(logN)}, "limit": {"500"}}, &lines); err == nil {
			for _, l := range lines {
				if l.N > logN {
					logN = l.N
				}
				if p, ok := ParseProgress(l.T); ok {
					// A storage migration mirrors each local disk, then the memory:
					// the total is the sum of the latest line of each.
					parts[p.Drive] = p
					var done, left float64
					for _, q := range parts {
						done += q.TransferredMiB
						left += q.TotalMiB - q.TransferredMiB
					}
					res.TransferredMiB = done
					if progress != nil {
						progress(drivers.MigrationProgress{VM: req.VM, From: from, To: req.To, Phase: "precopy", TransferredMiB: done, RemainingMiB: left, Elapsed: d.now().Sub(start)})
					}
				}
				if dur, ok := ParseDuration(l.T); ok {
					res.Duration = dur
				}
				if strings.Contains(l.T, "ERROR") && !strings.HasPrefix(l.T, "TASK ERROR") {
					lastErr = strings.TrimSpace(l.T)
				}
			}
		}
		var st struct {
			Status     string `json:"status"`
			ExitStatus string `json:"exitstatus"`
		}
		err := d.api.get(ctx, base+"/status", nil, &st)
		if err == nil && st.Status == "stopped" {
			if st.ExitStatus != "OK" {
				msg := st.ExitStatus
				if lastErr != "" {
					msg += " (" + lastErr + ")"
				}
				return res, fmt.Errorf("migrate %s to %s: task %s: %s: %w", req.VM, req.To, upid.Raw, msg, drivers.ErrMigrationFailed)
			}
			if res.Duration == 0 {
				res.Duration = d.now().Sub(start)
			}
			d.log.Info("migration finished", "vm", id, "to", req.To, "duration", res.Duration, "transferred_mib", res.TransferredMiB)
			return res, d.confirmOn(ctx, id, req)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			serr := d.api.do(sctx, task.Stop)
			cancel()
			if serr != nil {
				d.log.Warn("could not stop migration task", "upid", upid.Raw, "error", serr)
			} else {
				d.log.Info("migration task stopped", "vm", id, "upid", upid.Raw)
			}
			return res, fmt.Errorf("migrate %s to %s: %w", req.VM, req.To, ctx.Err())
		}
	}
}

// confirmOn checks that the guest runs on the target after a task reported OK.
func (d *Driver) confirmOn(ctx context.Context, id int, req drivers.MigrateRequest) error {
	gs, err := d.guests(ctx)
	if err != nil {
		return err
	}
	if g := gs[id]; g.Node != req.To {
		return fmt.Errorf("migrate %s: task ended OK but the guest is on %s, not %s: %w", req.VM, g.Node, req.To, drivers.ErrMigrationFailed)
	}
	return nil
}

// followHA asks HA to migrate the guest and follows the guest's node: the hamigrate
// task only queues the request, and the real migration starts later.
func (d *Driver) followHA(ctx context.Context, id int, g resource, req drivers.MigrateRequest, progress func(drivers.MigrationProgress)) (drivers.MigrationResult, error) {
	start := d.now()
	if g.Lock == "" {
		path := fmt.Sprintf("/nodes/%s/%s/%d/migrate", url.PathEscape(g.Node), g.Type, id)
		var upid string
		if err := d.api.post(ctx, path, map[string]any{"target": req.To, "online": 1}, &upid); err != nil {
			return drivers.MigrationResult{}, fmt.Errorf("migrate %s: HA migrate request: %w", req.VM, err)
		}
		if _, err := ParseUPID(upid); err != nil {
			return drivers.MigrationResult{}, fmt.Errorf("migrate %s: the API answered %w", req.VM, err)
		}
		d.log.Info("HA migration requested", "vm", id, "from", g.Node, "to", req.To)
	}
	if progress != nil {
		progress(drivers.MigrationProgress{VM: req.VM, From: g.Node, To: req.To, Phase: "setup"})
	}
	var where resource
	err := d.poll(ctx, func(ctx context.Context) (bool, error) {
		gs, err := d.guests(ctx)
		if err != nil {
			return false, nil
		}
		where = gs[id]
		return where.Lock == "" && where.Node != g.Node, nil
	})
	if err != nil {
		return drivers.MigrationResult{}, fmt.Errorf("migrate %s: HA has not moved it: %w", req.VM, err)
	}
	if where.Node != req.To {
		return drivers.MigrationResult{}, fmt.Errorf("migrate %s: HA placed it on %s, not %s: %w", req.VM, where.Node, req.To, drivers.ErrRejected)
	}
	return drivers.MigrationResult{Duration: d.now().Sub(start)}, nil
}

var targetRe = regexp.MustCompile(`starting migration of (?:VM|CT) \d+ to node '([a-zA-Z0-9\-]+)'`)

// activeMigration finds the running migration task of a guest and its target (from
// the task log: the task status does not name it).
func (d *Driver) activeMigration(ctx context.Context, node string, id int) (UPID, string, error) {
	var tasks []struct {
		UPID string `json:"upid"`
		Type string `json:"type"`
	}
	q := url.Values{"source": {"active"}, "vmid": {strconv.Itoa(id)}}
	if err := d.api.get(ctx, "/nodes/"+url.PathEscape(node)+"/tasks", q, &tasks); err != nil {
		return UPID{}, "", fmt.Errorf("list tasks of node %s: %w", node, err)
	}
	for _, t := range tasks {
		if t.Type != "qmigrate" && t.Type != "vzmigrate" {
			continue
		}
		upid, err := ParseUPID(t.UPID)
		if err != nil {
			return UPID{}, "", fmt.Errorf("task list: %w", err)
		}
		var lines []struct {
			T string `json:"t"`
		}
		path := fmt.Sprintf("/nodes/%s/tasks/%s/log", url.PathEscape(upid.Node), url.PathEscape(upid.Raw))
		if err := d.api.get(ctx, path, url.Values{"limit": {"20"}}, &lines); err != nil {
			return UPID{}, "", err
		}
		for _, l := range lines {
			if m := targetRe.FindStringSubmatch(l.T); m != nil {
				return upid, m[1], nil
			}
		}
		return upid, "", fmt.Errorf("migration task %s names no target yet", upid.Raw)
	}
	return UPID{}, "", fmt.Errorf("guest %d is locked (migrate) but no migration task runs on %s: %w", id, node, drivers.ErrRejected)
}
