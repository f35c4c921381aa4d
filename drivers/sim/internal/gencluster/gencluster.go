// Package gencluster generates testdata/clusters/medium.yaml, deterministically:
// the same code always writes the same bytes, and a test in drivers/sim checks
// that the committed file is up to date. Regenerate with
//
//	go run ./drivers/sim/internal/gencluster/genmedium -out testdata/clusters/medium.yaml
package gencluster

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
)

// seed drives every choice of the generator (not the cluster's own seed).
const seed = 20261122

type node struct {
	name, group, rack string
	memGiB, cpus      int
	nic, stream       int
	reboot            int
	usedGiB           int
}

type vm struct {
	name, node, group, net string
	memGiB, vcpus          int
	dirty                  float64
	hard, migratable       bool
	reason, power          string
}

// groups are the anti-affinity groups: name, size, hard, dirty-rate range.
var groups = []struct {
	name     string
	size     int
	hard     bool
	dirtyMin float64
	dirtyMax float64
	memGiB   []int
}{
	{"web", 8, false, 5, 30, []int{2, 4}},
	{"api", 6, false, 10, 40, []int{4, 8}},
	{"db", 3, true, 40, 90, []int{16, 32}},
	{"cache", 4, true, 60, 120, []int{8, 16}},
	{"etcd", 3, true, 10, 30, []int{2}},
	// Heavy dirtiers: converge at a fair share of a 10 Gb/s link (>= 298 MiB/s
	// with 4 streams), not when a node pushes 8 streams (149 MiB/s each).
	{"kafka", 4, true, 150, 170, []int{8, 16}},
}

// Medium returns the YAML of a 16-node, 200-VM cluster.
func Medium() []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	var nodes []*node
	for i := range 16 {
		n := &node{
			name: fmt.Sprintf("node-%02d", i+1), rack: fmt.Sprintf("r%d", i/4+1),
			group: "icelake", memGiB: 256, cpus: 48, nic: 10000, stream: 3000, reboot: 180 + 30*(i%4),
		}
		if i >= 8 {
			n.group, n.memGiB, n.cpus = "sapphire", 384, 64
		}
		if i >= 12 {
			n.nic, n.stream = 25000, 5000
		}
		nodes = append(nodes, n)
	}
	var vms []vm
	place := func(v *vm, avoid map[string]bool, group string) {
		// Least-loaded node (by share of memory) of the group, ties by name,
		// jittered so the layout is not perfectly even.
		var best *node
		var bestLoad float64
		for _, n := range nodes {
			if avoid[n.name] || (group != "" && n.group != group) {
				continue
			}
			load := float64(n.usedGiB+v.memGiB)/float64(n.memGiB) + rng.Float64()*0.08
			if best == nil || load < bestLoad {
				best, bestLoad = n, load
			}
		}
		v.node = best.name
		if v.power == "running" {
			best.usedGiB += v.memGiB
		}
	}
	for gi, g := range groups {
		cpuGroup := []string{"icelake", "sapphire"}[gi%2]
		used := map[string]bool{}
		for i := range g.size {
			v := vm{
				name: fmt.Sprintf("%s-%d", g.name, i+1), group: g.name, hard: g.hard, migratable: true,
				memGiB: g.memGiB[rng.IntN(len(g.memGiB))], dirty: g.dirtyMin + rng.Float64()*(g.dirtyMax-g.dirtyMin),
				net: "prod", power: "running",
			}
			if g.name == "db" || g.name == "etcd" || g.name == "kafka" {
				v.net = "backend"
			}
			v.vcpus = max(1, v.memGiB/2)
			avoid := map[string]bool{}
			if g.hard {
				avoid = used
			}
			place(&v, avoid, cpuGroup)
			used[v.node] = true
			vms = append(vms, v)
		}
	}
	sizes := []int{1, 1, 1, 1, 2, 2, 2, 2, 2, 4, 4, 4, 4, 4, 8, 8, 8, 16, 16, 32}
	for i := len(vms); i < 200; i++ {
		v := vm{name: fmt.Sprintf("vm-%03d", i+1), migratable: true, net: "prod", power: "running"}
		v.memGiB = sizes[rng.IntN(len(sizes))]
		v.vcpus = max(1, min(16, v.memGiB/2))
		v.dirty = min(60, float64(int(1+rng.ExpFloat64()*12))+float64(rng.IntN(10))/10)
		switch {
		case i%37 == 5:
			v.power = "stopped"
		case i%61 == 7:
			v.migratable, v.reason = false, []string{"pci passthrough gpu", "local disk", "usb license dongle"}[i%3]
		}
		if rng.IntN(3) == 0 {
			v.net = "backend"
		}
		place(&v, nil, "")
		vms = append(vms, v)
	}
	slices.SortStableFunc(vms, func(a, b vm) int { return cmpNode(a.node, b.node) })

	var b bytes.Buffer
	b.WriteString(`# medium.yaml: 16 nodes, 200 VMs - GENERATED, do not edit.
# Regenerate: go run ./drivers/sim/internal/gencluster/genmedium -out testdata/clusters/medium.yaml
# (drivers/sim checks that this file matches the generator.)
#
# Layout: 4 racks (r1..r4, also the fault domains) of 4 nodes. node-01..08 are
# cpu_group icelake with 256 GiB, node-09..16 sapphire with 384 GiB; node-13..16
# have 25 Gb/s NICs (5 Gb/s per stream), the others 10 Gb/s (3 Gb/s per stream).
# VMs are 1-32 GiB; most dirty 1-60 MiB/s, db and cache up to 120 MiB/s.
# Anti-affinity groups: web and api (soft), db, cache, etcd and kafka (hard). kafka-* dirty 150-170 MiB/s: they converge at
# a fair share of a 10 Gb/s link with up to 4 streams, not with 8 or more.
# A few VMs are stopped or not migratable. Nodes are at most ~45% full, so any
# single node can be drained into the others of its cpu group.
seed: 7
model: {setup_seconds: 2, max_downtime_ms: 300, progress_timeout_seconds: 150, max_rounds: 30}
nodes:
`)
	for i, n := range nodes {
		fmt.Fprintf(&b, "  - {name: %s, memory_mib: %d, cpus: %d, nic_mbps: %d, stream_mbps: %d, reboot_seconds: %d,\n",
			n.name, n.memGiB*1024, n.cpus, n.nic, n.stream, n.reboot)
		fmt.Fprintf(&b, "     cpu_group: %s, fault_domain: %s, labels: {rack: %s},\n", n.group, n.rack, n.rack)
		b.WriteString("     networks: [{name: prod, vlan: 10}, {name: backend, vlan: 20}, {name: mgmt, vlan: 30}],\n")
		fmt.Fprintf(&b, "     updates: [{name: kernel, version: 6.1.0-31}, {name: qemu, version: 8.2.%d}, {name: tzdata, version: 2026a, reboot: false}]}\n", 4+i%2)
	}
	b.WriteString("vms:\n")
	for _, v := range vms {
		fmt.Fprintf(&b, "  - {name: %s, node: %s, memory_mib: %d, vcpus: %d, dirty_mib_s: %.1f, networks: [{name: %s, vlan: %d}]",
			v.name, v.node, v.memGiB*1024, v.vcpus, v.dirty, v.net, map[string]int{"prod": 10, "backend": 20}[v.net])
		if v.group != "" {
			fmt.Fprintf(&b, ", anti_affinity: %s", v.group)
			if v.hard {
				b.WriteString(", anti_affinity_hard: true")
			}
		}
		if !v.migratable {
			fmt.Fprintf(&b, ", migratable: false, not_migratable_reason: %s", v.reason)
		}
		if v.power != "running" {
			fmt.Fprintf(&b, ", power: %s", v.power)
		}
		fmt.Fprintf(&b, ", preferred_node: %s}\n", v.node)
	}
	b.WriteString("faults: []\n")
	return b.Bytes()
}

func cmpNode(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
