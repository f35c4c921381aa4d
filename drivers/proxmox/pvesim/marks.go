package pvesim

import (
	"fmt"
	"io"
	"sort"

	"github.com/droverhq/drover/drivers/proxmox/pvemark"
)

// markCall answers the driver's pause-mark script (pvemark) as a node does: the files
// live in the cluster filesystem, so every node sees the same ones, and pmxcfs is
// read-only without quorum. ok is false for a call the script would not get from the
// driver.
func (m *Model) markCall(argv []string, stdout io.Writer) (code int, ok bool) {
	if !pvemark.SameScript(argv) || len(argv) < 7 || argv[5] != pvemark.Dir || argv[6] != pvemark.Lock {
		return 0, false
	}
	args := argv[4:]
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case args[0] == "get" && len(args) == 3:
		nodes := make([]string, 0, len(m.marks))
		for n := range m.marks {
			nodes = append(nodes, n)
		}
		sort.Strings(nodes)
		for _, n := range nodes {
			fmt.Fprintf(stdout, "%s %s\n", n, m.marks[n])
		}
		return 0, true
	case args[0] == "claim" && len(args) == 6 && pvemark.ValidNode(args[3]) && pvemark.ValidMark(args[4]) && (args[5] == "" || pvemark.ValidMark(args[5])):
		if !m.quorate() {
			return 1, true // mkdir/create: Permission denied (pmxcfs without quorum)
		}
		// Under the pmxcfs lock: claims are serialised cluster-wide.
		node, mark, prev := args[3], args[4], args[5]
		if cur := m.marks[node]; cur != prev {
			fmt.Fprintf(stdout, "held %s\n", cur)
			return 3, true
		}
		m.marks[node] = mark
		m.stats.MarkClaims++
		return 0, true
	case args[0] == "release" && len(args) == 4 && pvemark.ValidNode(args[3]):
		if !m.quorate() {
			return 1, true
		}
		delete(m.marks, args[3])
		return 0, true
	}
	return 0, false
}

// Marks returns the pause marks in the cluster filesystem, by node.
func (m *Model) Marks() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for n, v := range m.marks {
		out[n] = v
	}
	return out
}

// SetMark writes a mark as an admin (or another tool) would.
func (m *Model) SetMark(node, mark string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mark == "" {
		delete(m.marks, node)
		return
	}
	m.marks[node] = mark
}
