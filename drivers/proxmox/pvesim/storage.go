package pvesim

import (
	"fmt"
	"strings"
)

// Storage is one entry of storage.cfg. Storage is cluster-wide in PVE; a local
// (not shared) storage exists on every node with its own space, a shared one is the
// same volumes seen from every node.
type Storage struct {
	ID   string
	Type string // PVE plugin type: dir, lvmthin, zfspool, rbd, nfs, ...
	// Shared is storage.cfg's shared flag as PVE reports it (set for network storage
	// types by pve-storage itself).
	Shared  bool
	Content string
	// SizeMiB is the capacity: per node for a local storage, in all for a shared one.
	SizeMiB int64
}

// DefaultStorages are a typical PVE cluster with Ceph: the installer's local and
// local-lvm on each node, and an RBD pool every node sees.
func DefaultStorages() []Storage {
	return []Storage{
		{ID: "local", Type: "dir", Content: "iso,vztmpl,backup", SizeMiB: 100 << 10},
		{ID: "local-lvm", Type: "lvmthin", Content: "images,rootdir", SizeMiB: 200 << 10},
		{ID: "ceph-vm", Type: "rbd", Shared: true, Content: "images,rootdir", SizeMiB: 8 << 20},
	}
}

// Disk is one volume of a guest's config: Key is the config key (scsi0, virtio1,
// efidisk0, rootfs, mp0, unused0, ...), VolID "STORAGE:NAME" (or a host path for a
// pass-through disk), Size in bytes.
type Disk struct {
	Key   string
	VolID string
	Size  int64
	// Media is "cdrom" for an ISO or cloud-init drive.
	Media string
	// Shared is the drive option shared=1: the admin says the volume is on storage
	// every node sees.
	Shared bool
}

func (d Disk) storage() string {
	id, _, _ := strings.Cut(d.VolID, ":")
	return id
}

// configValue renders the disk as its config line, e.g. "local-lvm:vm-103-disk-0,size=2G".
func (d Disk) configValue() string {
	v := d.VolID
	if strings.HasPrefix(d.Key, "mp") {
		v += ",mp=/srv/" + d.Key
	}
	if d.Media != "" {
		v += ",media=" + d.Media
	}
	if d.Shared {
		v += ",shared=1"
	}
	if d.Size > 0 && !strings.HasPrefix(d.Key, "unused") {
		v += ",size=" + formatSize(d.Size)
	}
	return v
}

// formatSize is PVE::JSONSchema::format_size: the largest binary unit that divides
// the size exactly.
func formatSize(b int64) string {
	units := []string{"", "K", "M", "G", "T"}
	i := 0
	for i < len(units)-1 && b%1024 == 0 && b > 0 {
		b /= 1024
		i++
	}
	return fmt.Sprintf("%d%s", b, units[i])
}

func (m *Model) storage(id string) (Storage, bool) {
	for _, s := range m.storages {
		if s.ID == id {
			return s, true
		}
	}
	return Storage{}, false
}

// isLocal decides as qemu-server's migrate pre-check does: a volume is local unless
// its storage is shared or the drive is marked shared=1; CD-ROMs without a volume
// do not count. A host path (no storage) is local.
func (m *Model) isLocal(d Disk) bool {
	if d.Shared || d.VolID == "none" || d.VolID == "" {
		return false
	}
	s, ok := m.storage(d.storage())
	if !ok {
		return true
	}
	return !s.Shared
}

// localDisks are the guest's volumes a migration must copy (no CD-ROMs).
func (m *Model) localDisks(g *Guest) []Disk {
	var out []Disk
	for _, d := range g.Disks {
		if d.Media == "cdrom" || !m.isLocal(d) {
			continue
		}
		out = append(out, d)
	}
	return out
}

// usedMiB is what guests occupy on a storage: on node for a local one, everywhere
// for a shared one. A guest in migration with local disks holds space on both ends.
func (m *Model) usedMiB(node string, s Storage) int64 {
	var b int64
	for _, g := range m.guests {
		for _, d := range g.Disks {
			if d.storage() != s.ID || d.Media == "cdrom" {
				continue
			}
			onNode := g.Node == node || (g.mig != nil && g.mig.localDisk && g.mig.to == node)
			if s.Shared || onNode {
				b += d.Size
			}
		}
	}
	return b >> 20
}

// freeMiB is the space left on storage id of node.
func (m *Model) freeMiB(node, id string) int64 {
	s, ok := m.storage(id)
	if !ok {
		return 0
	}
	return s.SizeMiB - m.usedMiB(node, s)
}

// storageItems are /cluster/resources' storage entries: one per node and storage.
func (m *Model) storageItems() []map[string]any {
	var out []map[string]any
	for _, name := range m.order {
		for _, s := range m.storages {
			item := map[string]any{"id": "storage/" + name + "/" + s.ID, "type": "storage", "storage": s.ID, "node": name,
				"plugintype": s.Type, "shared": boolInt(s.Shared), "content": s.Content, "status": "unknown"}
			if m.nodes[name].Online {
				item["status"] = "available"
				item["disk"] = m.usedMiB(name, s) << 20
				item["maxdisk"] = s.SizeMiB << 20
			}
			out = append(out, item)
		}
	}
	return out
}

// guestConfig is GET /nodes/{node}/{qemu,lxc}/{vmid}/config: the keys a config file
// has, with the disks in PVE's syntax.
func (m *Model) guestConfig(r request, typ string) (any, error) {
	g, err := m.guest(r.str("node"), r.int("vmid"), typ)
	if err != nil {
		return nil, err
	}
	if _, err := m.onlineNode(g.Node); err != nil {
		return nil, err
	}
	cfg := map[string]any{"memory": g.MaxMemMiB, "cores": g.CPUs, "digest": fmt.Sprintf("%040x", g.VMID*7919+len(g.Disks))}
	if typ == "qemu" {
		cfg["memory"] = fmt.Sprint(g.MaxMemMiB) // qemu-server: a string (pve-qm-memory), lxc: an integer
		cfg["name"] = g.Name
		cfg["net0"] = fmt.Sprintf("virtio=BC:24:11:00:%02X:%02X,bridge=vmbr0", g.VMID>>8&0xff, g.VMID&0xff)
		cfg["boot"] = "order=scsi0"
		cfg["scsihw"] = "virtio-scsi-single"
	} else {
		cfg["hostname"] = g.Name
		cfg["ostype"] = "debian"
		cfg["net0"] = "name=eth0,bridge=vmbr0,ip=dhcp"
	}
	for _, d := range g.Disks {
		cfg[d.Key] = d.configValue()
	}
	return cfg, nil
}

// noRoom finds a local disk of g whose storage on target has too little space left
// (ok is true when every disk fits).
func (m *Model) noRoom(g *Guest, target string) (Disk, int64, bool) {
	need := map[string]int64{}
	for _, d := range m.localDisks(g) {
		need[d.storage()] += d.Size >> 20
		if free := m.freeMiB(target, d.storage()); free < need[d.storage()] {
			return d, free, false
		}
	}
	return Disk{}, 0, true
}
