package policies

import "github.com/droverhq/drover/cluster"

// fitsDisks reports whether the node has room for the VM's local disks, which move
// with it (storage migration). A VM without local disks needs none.
func (n *pnode) fitsDisks(v cluster.VM) bool {
	d := v.LocalDiskMiB()
	return d == 0 || n.storage >= d
}

// moveDisks accounts v's local disks leaving node from (-1: none) for node to (-1:
// none).
func (p *Placer) moveDisks(v cluster.VM, from, to int32) {
	d := v.LocalDiskMiB()
	if d == 0 || from == to {
		return
	}
	if from >= 0 {
		p.nodes[from].storage += d
	}
	if to >= 0 {
		p.nodes[to].storage -= d
	}
}

// FreeStorage returns the space for local disks still free on node after the
// placements made (0 for an unknown node).
func (p *Placer) FreeStorage(node string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, ok := p.nodeIdx[node]
	if !ok {
		return 0
	}
	return p.nodes[i].storage
}
