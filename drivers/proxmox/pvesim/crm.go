package pvesim

import (
	"context"
	"fmt"
	"time"
)

// Run advances the model every tick until ctx ends.
func (m *Model) Run(ctx context.Context, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	lastCRM := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := m.now()
		m.mu.Lock()
		m.stepNodes(now)
		m.stepJobs(now)
		m.stepMigrations(now)
		if now.Sub(lastCRM) >= m.timing.CRMInterval {
			lastCRM = now
			m.stepCRM()
		}
		m.mu.Unlock()
	}
}

// stepNodes takes rebooting nodes down and brings them back.
func (m *Model) stepNodes(now time.Time) {
	for _, name := range m.order {
		n := m.nodes[name]
		if !n.rebootAt.IsZero() && n.Online && !now.Before(n.rebootAt) {
			var running []string
			for _, id := range m.vmids() {
				g := m.guests[id]
				if g.Node == name && g.Status == "running" {
					running = append(running, fmt.Sprint(id))
					// A guest on a node going down dies with it.
					g.Status = "stopped"
					if g.mig != nil {
						m.finish(g.mig.task, "migration problems")
						m.endMigration(g)
					}
				}
			}
			if len(running) > 0 {
				m.stats.RebootedWithGuests = append(m.stats.RebootedWithGuests, fmt.Sprintf("%s: %v", name, running))
			}
			if n.HasCeph && m.ceph && !m.flags["noout"] {
				m.stats.RebootsNoNoout = append(m.stats.RebootsNoNoout, name)
			}
			n.Online = false
			m.killJobs(n)
			n.lrmMaintenance = false
			n.upAt = now.Add(m.timing.DownTime)
			n.rebootAt = time.Time{}
			for _, t := range m.tasks {
				if t.Node == name && t.running() {
					m.finish(t, "unexpected status")
				}
			}
		}
		if !n.Online && !n.upAt.IsZero() && !now.Before(n.upAt) {
			n.Online = true
			n.upAt = time.Time{}
			n.BootTime = now.Truncate(time.Second)
			n.Reboots++
			n.BootID = newBootID(n.Name, n.Reboots)
			n.RebootRequired = false
		}
	}
}

func (m *Model) stepMigrations(now time.Time) {
	for _, id := range m.vmids() {
		if g := m.guests[id]; g.mig != nil {
			m.stepMigration(g, now)
		}
	}
}

// lrmUp reports whether the node's LRM runs (pve-ha-lrm starts after the node).
func (m *Model) lrmUp(n *Node) bool {
	return n.Online && m.now().Sub(n.BootTime) >= m.timing.LRMDelay
}

// stepCRM is one round of the HA cluster resource manager: the LRM of a node with a
// maintenance request enters maintenance (reported before its guests have moved), HA
// guests leave maintenance nodes max_workers at a time, queued migrate requests start,
// and guests whose maintenance fallback node is back return to it.
func (m *Model) stepCRM() {
	if !m.quorate() {
		return
	}
	for _, name := range m.order {
		n := m.nodes[name]
		if !m.lrmUp(n) {
			continue
		}
		n.lrmMaintenance = n.Maintenance
	}
	active := map[string]int{}
	for _, g := range m.guests {
		if g.mig != nil && g.mig.byHA {
			active[g.mig.from]++
		}
	}
	for _, id := range m.vmids() {
		g := m.guests[id]
		if !g.HA || g.mig != nil || g.Status != "running" {
			continue
		}
		src := m.nodes[g.Node]
		if !m.lrmUp(src) || active[g.Node] >= m.maxWorkers {
			continue
		}
		var target string
		switch {
		case g.haTarget != "":
			target = g.haTarget
			g.haTarget = ""
			if target == g.Node || !m.lrmUp(m.nodes[target]) {
				continue
			}
		case src.lrmMaintenance:
			target = m.pickTarget(g.Node)
			if target == "" {
				continue
			}
			if g.fallback == "" {
				g.fallback = g.Node
			}
		case g.fallback != "" && g.fallback != g.Node:
			fb := m.nodes[g.fallback]
			if !m.lrmUp(fb) || fb.Maintenance || fb.lrmMaintenance {
				continue
			}
			target = g.fallback
			g.fallback = ""
		default:
			if g.fallback == g.Node {
				g.fallback = ""
			}
			continue
		}
		src0 := g.Node
		m.startMigration(g, target, "root@pam", true, false)
		active[src0]++
		if active[src0] > m.stats.PeakHAMoves {
			m.stats.PeakHAMoves = active[src0]
		}
	}
}

// pickTarget is the HA resource scheduler, "basic": the online node out of maintenance
// with the fewest HA guests.
func (m *Model) pickTarget(from string) string {
	count := map[string]int{}
	for _, g := range m.guests {
		node := g.Node
		if g.mig != nil {
			node = g.mig.to
		}
		count[node]++
	}
	best := ""
	for _, name := range m.order {
		n := m.nodes[name]
		if name == from || !m.lrmUp(n) || n.Maintenance {
			continue
		}
		if best == "" || count[name] < count[best] {
			best = name
		}
	}
	return best
}

// SetMaintenance is `ha-manager crm-command node-maintenance enable|disable NODE`: it
// queues the request; the CRM acts on its next round.
func (m *Model) SetMaintenance(node string, on bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.nodes[node]
	if !ok {
		return fmt.Errorf("400 Parameter verification failed.\nnode: no such cluster node '%s'", node)
	}
	n.Maintenance = on
	if on {
		m.stats.MaintEnables++
	} else {
		m.stats.MaintDisables++
	}
	return nil
}

// SetFlag sets or clears a Ceph OSD flag.
func (m *Model) SetFlag(flag string, on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if on && !m.flags[flag] && flag == "noout" {
		m.stats.NooutSets++
	}
	if !on && m.flags[flag] && flag == "noout" {
		m.stats.NooutUnsets++
	}
	m.flags[flag] = on
}

// Reboot is POST /nodes/{node}/status command=reboot: the node goes down after
// RebootDelay and comes back DownTime later with a new boot time.
func (m *Model) reboot(n *Node) {
	if n.rebootAt.IsZero() {
		n.rebootAt = m.now().Add(m.timing.RebootDelay)
	}
}
