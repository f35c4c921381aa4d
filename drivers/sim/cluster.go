package sim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
)

// Defaults of the cluster file. They are documented in doc.go; keep both in sync.
const (
	DefaultSetupSeconds           = 2.0
	DefaultMaxDowntimeMs          = 300.0
	DefaultProgressTimeoutSeconds = 150.0
	DefaultMaxRounds              = 30
	DefaultNICMbps                = 10000.0
	DefaultStreamMbps             = 3000.0
	DefaultRebootSeconds          = 120.0
)

// maxClusterFileBytes bounds what ParseCluster reads: a cluster of thousands of VMs
// is well under it, and an accidental multi-GB file must not be slurped.
const maxClusterFileBytes = 16 << 20

// Cluster is a parsed, validated, defaulted cluster file.
type Cluster struct {
	// Seed seeds every random decision of the model (faults with probabilities).
	Seed   uint64      `json:"seed"`
	Model  ModelParams `json:"model"`
	Nodes  []NodeSpec  `json:"nodes"`
	VMs    []VMSpec    `json:"vms"`
	Faults []Fault     `json:"faults,omitempty"`
}

// ModelParams are the constants of the migration model.
type ModelParams struct {
	// SetupSeconds is the fixed cost of a migration before memory moves.
	SetupSeconds float64 `json:"setup_seconds"`
	// MaxDowntimeMs is the stop-and-copy budget: pre-copy ends when what remains
	// can be sent within it at the migration's current bandwidth.
	MaxDowntimeMs float64 `json:"max_downtime_ms"`
	// ProgressTimeoutSeconds aborts a migration whose remaining amount has not
	// shrunk for that long (KubeVirt's progressTimeout).
	ProgressTimeoutSeconds float64 `json:"progress_timeout_seconds"`
	// MaxRounds aborts a migration that has not converged after that many rounds.
	MaxRounds int `json:"max_rounds"`
}

// NodeSpec is one node of the cluster file.
type NodeSpec struct {
	Name      string `json:"name"`
	MemoryMiB int64  `json:"memory_mib"`
	CPUs      int    `json:"cpus"`
	// NICMbps is the node's migration bandwidth in megabits/s, shared by all
	// migrations out of and into the node.
	NICMbps float64 `json:"nic_mbps"`
	// StreamMbps caps one migration stream from or to this node.
	StreamMbps    float64           `json:"stream_mbps"`
	RebootSeconds float64           `json:"reboot_seconds"`
	CPUGroup      string            `json:"cpu_group,omitempty"`
	Networks      []cluster.Network `json:"networks,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	FaultDomain   string            `json:"fault_domain,omitempty"`
	Updates       []UpdateSpec      `json:"updates,omitempty"`
	// Paused starts the node paused; Down starts it down (crashed).
	Paused bool `json:"paused,omitempty"`
	Down   bool `json:"down,omitempty"`
	// StorageMiB is the node's free space for local disks at the start; disks moved
	// in consume it, disks moved out free it.
	StorageMiB int64 `json:"storage_mib,omitempty"`
}

// UpdateSpec is one pending update of a node.
type UpdateSpec struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	// Reboot is true when the update is only active after a reboot.
	Reboot bool `json:"reboot"`
}

// VMSpec is one VM of the cluster file.
type VMSpec struct {
	Name      string `json:"name"`
	Node      string `json:"node"`
	MemoryMiB int64  `json:"memory_mib"`
	VCPUs     int    `json:"vcpus"`
	// DirtyMiBs is the page-dirtying rate in MiB/s.
	DirtyMiBs           float64            `json:"dirty_mib_s"`
	Migratable          bool               `json:"migratable"`
	NotMigratableReason string             `json:"not_migratable_reason,omitempty"`
	AntiAffinity        string             `json:"anti_affinity,omitempty"`
	AntiAffinityHard    bool               `json:"anti_affinity_hard,omitempty"`
	Networks            []cluster.Network  `json:"networks,omitempty"`
	Power               cluster.PowerState `json:"power"`
	PreferredNode       string             `json:"preferred_node,omitempty"`
	Disks               []cluster.Disk     `json:"disks,omitempty"`
}

// The file* types mirror the YAML with pointers where "absent" must differ from
// zero (so defaults apply only to absent keys).
type fileCluster struct {
	Seed   uint64      `yaml:"seed"`
	Model  fileModel   `yaml:"model"`
	Nodes  []fileNode  `yaml:"nodes"`
	VMs    []fileVM    `yaml:"vms"`
	Faults []fileFault `yaml:"faults"`
}

type fileModel struct {
	SetupSeconds           *float64 `yaml:"setup_seconds"`
	MaxDowntimeMs          *float64 `yaml:"max_downtime_ms"`
	ProgressTimeoutSeconds *float64 `yaml:"progress_timeout_seconds"`
	MaxRounds              *int     `yaml:"max_rounds"`
}

type fileNode struct {
	Name          string            `yaml:"name"`
	MemoryMiB     int64             `yaml:"memory_mib"`
	CPUs          int               `yaml:"cpus"`
	NICMbps       *float64          `yaml:"nic_mbps"`
	StreamMbps    *float64          `yaml:"stream_mbps"`
	RebootSeconds *float64          `yaml:"reboot_seconds"`
	CPUGroup      string            `yaml:"cpu_group"`
	Networks      []fileNetwork     `yaml:"networks"`
	Labels        map[string]string `yaml:"labels"`
	FaultDomain   string            `yaml:"fault_domain"`
	Updates       []fileUpdate      `yaml:"updates"`
	Paused        bool              `yaml:"paused"`
	Down          bool              `yaml:"down"`
	StorageMiB    int64             `yaml:"storage_mib"`
}

type fileNetwork struct {
	Name string `yaml:"name"`
	VLAN int    `yaml:"vlan"`
}

type fileUpdate struct {
	Name    string `yaml:"name"`
	Version string `yaml:"version"`
	Reboot  *bool  `yaml:"reboot"`
}

type fileVM struct {
	Name                string        `yaml:"name"`
	Node                string        `yaml:"node"`
	MemoryMiB           int64         `yaml:"memory_mib"`
	VCPUs               *int          `yaml:"vcpus"`
	DirtyMiBs           float64       `yaml:"dirty_mib_s"`
	Migratable          *bool         `yaml:"migratable"`
	NotMigratableReason string        `yaml:"not_migratable_reason"`
	AntiAffinity        string        `yaml:"anti_affinity"`
	AntiAffinityHard    bool          `yaml:"anti_affinity_hard"`
	Networks            []fileNetwork `yaml:"networks"`
	Power               string        `yaml:"power"`
	PreferredNode       string        `yaml:"preferred_node"`
	Disks               []fileDisk    `yaml:"disks"`
}

type fileDisk struct {
	Name    string `yaml:"name"`
	SizeMiB int64  `yaml:"size_mib"`
	Local   bool   `yaml:"local"`
}

type fileFault struct {
	Kind          string  `yaml:"kind"`
	VM            string  `yaml:"vm"`
	Node          string  `yaml:"node"`
	Update        string  `yaml:"update"`
	Path          string  `yaml:"path"`
	Times         int     `yaml:"times"`
	Always        bool    `yaml:"always"`
	Probability   float64 `yaml:"probability"`
	Status        int     `yaml:"status"`
	Burst         int     `yaml:"burst"`
	AfterRequests int     `yaml:"after_requests"`
	DelayMs       int     `yaml:"delay_ms"`
	AtSeconds     float64 `yaml:"at_seconds"`
	AfterApply    bool    `yaml:"after_apply"`
}

// sections maps the Go types of the file to the words the user knows, for
// unknown-key errors.
var sections = map[string]reflect.Type{
	"the top level": reflect.TypeFor[fileCluster](),
	"model":         reflect.TypeFor[fileModel](),
	"a node":        reflect.TypeFor[fileNode](),
	"a network":     reflect.TypeFor[fileNetwork](),
	"an update":     reflect.TypeFor[fileUpdate](),
	"a vm":          reflect.TypeFor[fileVM](),
	"a disk":        reflect.TypeFor[fileDisk](),
	"a fault":       reflect.TypeFor[fileFault](),
}

var unknownFieldRE = regexp.MustCompile(`^line (\d+): field (.+) not found in type (\S+)$`)

// LoadCluster reads and parses a cluster file.
func LoadCluster(path string) (*Cluster, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load cluster: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxClusterFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("load cluster %s: %w", path, err)
	}
	c, err := ParseCluster(data)
	if err != nil {
		return nil, fmt.Errorf("load cluster %s: %w", path, err)
	}
	return c, nil
}

// ParseCluster parses, defaults and validates a cluster file. Unknown keys,
// duplicate keys and bad values are errors naming the key or field (as
// *drivers.FieldError where a field is at fault), joined with errors.Join.
func ParseCluster(data []byte) (*Cluster, error) {
	if len(data) > maxClusterFileBytes {
		return nil, drivers.Fieldf("cluster file", "split the cluster or shrink the file", "larger than %d bytes", maxClusterFileBytes)
	}
	var fc fileCluster
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, drivers.Fieldf("cluster file", "describe at least nodes: and vms:", "is empty")
		}
		return nil, yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, drivers.Fieldf("cluster file", "keep one YAML document per file (remove the second ---)", "holds more than one document")
	}
	c := fc.toCluster()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// yamlError rewrites yaml.v3's unmarshal errors into messages that name the key,
// the line and the fix, without Go type names.
func yamlError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("parse cluster file: %w", err)
	}
	var out []error
	for _, msg := range te.Errors {
		m := unknownFieldRE.FindStringSubmatch(msg)
		if m == nil {
			out = append(out, fmt.Errorf("parse cluster file: %s", msg))
			continue
		}
		where, known := "", []string(nil)
		for name, t := range sections {
			if strings.HasSuffix(m[3], "."+t.Name()) {
				where, known = name, yamlKeys(t)
			}
		}
		out = append(out, &drivers.FieldError{
			Field:   m[2],
			Problem: fmt.Sprintf("unknown key in %s at line %s", where, m[1]),
			Fix:     "remove it or check its spelling; known keys: " + strings.Join(known, ", "),
		})
	}
	return errors.Join(out...)
}

func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); k != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func (fc *fileCluster) toCluster() *Cluster {
	c := &Cluster{
		Seed: fc.Seed,
		Model: ModelParams{
			SetupSeconds:           orDefault(fc.Model.SetupSeconds, DefaultSetupSeconds),
			MaxDowntimeMs:          orDefault(fc.Model.MaxDowntimeMs, DefaultMaxDowntimeMs),
			ProgressTimeoutSeconds: orDefault(fc.Model.ProgressTimeoutSeconds, DefaultProgressTimeoutSeconds),
			MaxRounds:              orDefault(fc.Model.MaxRounds, DefaultMaxRounds),
		},
	}
	for _, n := range fc.Nodes {
		ns := NodeSpec{
			Name: n.Name, MemoryMiB: n.MemoryMiB, CPUs: n.CPUs,
			NICMbps:       orDefault(n.NICMbps, DefaultNICMbps),
			StreamMbps:    orDefault(n.StreamMbps, DefaultStreamMbps),
			RebootSeconds: orDefault(n.RebootSeconds, DefaultRebootSeconds),
			CPUGroup:      n.CPUGroup, Networks: networks(n.Networks), Labels: n.Labels,
			FaultDomain: n.FaultDomain, Paused: n.Paused, Down: n.Down, StorageMiB: n.StorageMiB,
		}
		for _, u := range n.Updates {
			ns.Updates = append(ns.Updates, UpdateSpec{Name: u.Name, Version: u.Version, Reboot: orDefault(u.Reboot, true)})
		}
		c.Nodes = append(c.Nodes, ns)
	}
	for _, v := range fc.VMs {
		power := cluster.PowerState(v.Power)
		if v.Power == "" {
			power = cluster.PowerRunning
		}
		c.VMs = append(c.VMs, VMSpec{
			Name: v.Name, Node: v.Node, MemoryMiB: v.MemoryMiB, VCPUs: orDefault(v.VCPUs, 1),
			DirtyMiBs: v.DirtyMiBs, Migratable: orDefault(v.Migratable, true),
			NotMigratableReason: v.NotMigratableReason, AntiAffinity: v.AntiAffinity,
			AntiAffinityHard: v.AntiAffinityHard, Networks: networks(v.Networks), Power: power,
			PreferredNode: v.PreferredNode, Disks: disks(v.Disks),
		})
	}
	for _, f := range fc.Faults {
		c.Faults = append(c.Faults, Fault{
			Kind: FaultKind(f.Kind), VM: f.VM, Node: f.Node, Update: f.Update, Path: f.Path,
			Times: f.Times, Always: f.Always, Probability: f.Probability, Status: f.Status,
			Burst: f.Burst, AfterRequests: f.AfterRequests, DelayMs: f.DelayMs,
			AtSeconds: f.AtSeconds, AfterApply: f.AfterApply,
		})
	}
	return c
}

func orDefault[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func disks(in []fileDisk) []cluster.Disk {
	var out []cluster.Disk
	for _, d := range in {
		out = append(out, cluster.Disk{Name: d.Name, SizeMiB: d.SizeMiB, Local: d.Local})
	}
	return out
}

func networks(in []fileNetwork) []cluster.Network {
	var out []cluster.Network
	for _, n := range in {
		out = append(out, cluster.Network{Name: n.Name, VLAN: n.VLAN})
	}
	return out
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

const nameFix = "use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"

// validName reports whether s can name a node or VM (it appears in URL paths).
func validName(s string) bool { return nameRE.MatchString(s) }

// finite reports whether x is a usable number (YAML accepts .nan and .inf).
func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// Validate checks a cluster (also one built in Go rather than parsed) and returns
// every problem found, each a *drivers.FieldError, joined.
func (c *Cluster) Validate() error {
	var errs []error
	add := func(field, fix, problem string, args ...any) {
		errs = append(errs, drivers.Fieldf(field, fix, problem, args...))
	}
	m := c.Model
	if !finite(m.SetupSeconds) || m.SetupSeconds < 0 || m.SetupSeconds > 3600 {
		add("model.setup_seconds", "give 0..3600 seconds, e.g. 2", "must be between 0 and 3600, got %v", m.SetupSeconds)
	}
	if !finite(m.MaxDowntimeMs) || m.MaxDowntimeMs <= 0 || m.MaxDowntimeMs > 600000 {
		add("model.max_downtime_ms", "give a positive number of milliseconds, e.g. 300", "must be > 0 and <= 600000, got %v", m.MaxDowntimeMs)
	}
	if !finite(m.ProgressTimeoutSeconds) || m.ProgressTimeoutSeconds <= 0 || m.ProgressTimeoutSeconds > 86400 {
		add("model.progress_timeout_seconds", "give a positive number of seconds, e.g. 150", "must be > 0 and <= 86400, got %v", m.ProgressTimeoutSeconds)
	}
	if m.MaxRounds < 1 || m.MaxRounds > 10000 {
		add("model.max_rounds", "give a round count, e.g. 30", "must be between 1 and 10000, got %d", m.MaxRounds)
	}
	if len(c.Nodes) == 0 {
		add("nodes", "list at least one node", "is empty")
	}
	nodes := map[string]*NodeSpec{}
	for i := range c.Nodes {
		n := &c.Nodes[i]
		f := fmt.Sprintf("nodes[%d]", i)
		switch {
		case !validName(n.Name):
			add(f+".name", nameFix, "invalid name %q", n.Name)
		case nodes[n.Name] != nil:
			add(f+".name", "give every node its own name", "duplicate node %q", n.Name)
		default:
			nodes[n.Name] = n
		}
		if n.MemoryMiB <= 0 || n.MemoryMiB > 1<<40 {
			add(f+".memory_mib", "give the node's memory in MiB, e.g. 262144", "must be between 1 and 2^40, got %d", n.MemoryMiB)
		}
		if n.CPUs <= 0 || n.CPUs > 1<<16 {
			add(f+".cpus", "give the node's CPU count, e.g. 32", "must be between 1 and 65536, got %d", n.CPUs)
		}
		if !finite(n.NICMbps) || n.NICMbps <= 0 || n.NICMbps > 1e7 {
			add(f+".nic_mbps", "give the migration NIC bandwidth in megabits/s, e.g. 10000", "must be > 0 and <= 1e7, got %v", n.NICMbps)
		}
		if !finite(n.StreamMbps) || n.StreamMbps <= 0 || n.StreamMbps > 1e7 {
			add(f+".stream_mbps", "give the per-stream cap in megabits/s, e.g. 3000", "must be > 0 and <= 1e7, got %v", n.StreamMbps)
		}
		if !finite(n.RebootSeconds) || n.RebootSeconds < 0 || n.RebootSeconds > 86400 {
			add(f+".reboot_seconds", "give 0..86400 seconds, e.g. 120", "must be between 0 and 86400, got %v", n.RebootSeconds)
		}
		if n.StorageMiB < 0 || n.StorageMiB > 1<<50 {
			add(f+".storage_mib", "give the free space for local disks in MiB, e.g. 1048576 (0 = none)", "must be between 0 and 2^50, got %d", n.StorageMiB)
		}
		errs = append(errs, validateNetworks(f+".networks", n.Networks)...)
		seen := map[string]bool{}
		for j, u := range n.Updates {
			uf := fmt.Sprintf("%s.updates[%d]", f, j)
			if strings.TrimSpace(u.Name) == "" {
				add(uf+".name", "name the update, e.g. kernel", "is empty")
			} else if fe := cluster.CheckName(uf+".name", u.Name); fe != nil {
				errs = append(errs, fe)
			} else if seen[u.Name] {
				add(uf+".name", "list each update once per node", "duplicate update %q", u.Name)
			}
			seen[u.Name] = true
		}
	}
	vms := map[string]bool{}
	used := map[string]int64{}
	for i := range c.VMs {
		v := &c.VMs[i]
		f := fmt.Sprintf("vms[%d]", i)
		switch {
		case !validName(v.Name):
			add(f+".name", nameFix, "invalid name %q", v.Name)
		case vms[v.Name]:
			add(f+".name", "give every vm its own name", "duplicate vm %q", v.Name)
		default:
			vms[v.Name] = true
		}
		if v.MemoryMiB <= 0 || v.MemoryMiB > 1<<40 {
			add(f+".memory_mib", "give the vm's memory in MiB, e.g. 4096", "must be between 1 and 2^40, got %d", v.MemoryMiB)
		}
		if v.VCPUs <= 0 {
			add(f+".vcpus", "give the vm's vCPU count, e.g. 2", "must be > 0, got %d", v.VCPUs)
		}
		if !finite(v.DirtyMiBs) || v.DirtyMiBs < 0 || v.DirtyMiBs > 1e6 {
			add(f+".dirty_mib_s", "give the page-dirtying rate in MiB/s, e.g. 20 (0 = idle)", "must be between 0 and 1e6, got %v", v.DirtyMiBs)
		}
		switch v.Power {
		case cluster.PowerRunning, cluster.PowerStopped, cluster.PowerSuspended:
		default:
			add(f+".power", "use running, stopped or suspended", "unknown power state %q", v.Power)
		}
		if v.AntiAffinityHard && v.AntiAffinity == "" {
			add(f+".anti_affinity_hard", "name the group in anti_affinity", "set without anti_affinity")
		}
		if v.Migratable && v.NotMigratableReason != "" {
			add(f+".not_migratable_reason", "set migratable: false or remove the reason", "given for a migratable vm")
		}
		errs = append(errs, validateNetworks(f+".networks", v.Networks)...)
		errs = append(errs, validateDisks(f+".disks", v.Disks)...)
		if v.PreferredNode != "" && nodes[v.PreferredNode] == nil {
			add(f+".preferred_node", "name a node of nodes:", "unknown node %q", v.PreferredNode)
		}
		n := nodes[v.Node]
		if n == nil {
			add(f+".node", "name a node of nodes:", "unknown node %q", v.Node)
			continue
		}
		if v.VCPUs > n.CPUs {
			add(f+".vcpus", "give the vm at most as many vCPUs as its node has CPUs", "%d vCPUs on node %s with %d CPUs", v.VCPUs, n.Name, n.CPUs)
		}
		for _, net := range v.Networks {
			if !slices.ContainsFunc(n.Networks, net.SameAs) {
				add(f+".networks", "add the network to the node or remove it from the vm", "network %s/%d is not offered by node %s", net.Name, net.VLAN, n.Name)
			}
		}
		if v.Power == cluster.PowerRunning {
			if n.Down {
				add(f+".power", "make the vm stopped or its node not down", "running on node %s which is down", n.Name)
			}
			used[n.Name] += v.MemoryMiB
			if used[n.Name] > n.MemoryMiB && used[n.Name]-v.MemoryMiB <= n.MemoryMiB {
				add(f+".node", "move vms to another node or give the node more memory_mib",
					"running vms on node %s need more than its %d MiB", n.Name, n.MemoryMiB)
			}
		}
	}
	for i := range c.Faults {
		errs = append(errs, c.Faults[i].validate(fmt.Sprintf("faults[%d]", i), nodes, vms)...)
	}
	return errors.Join(errs...)
}

func validateDisks(field string, ds []cluster.Disk) []error {
	var errs []error
	seen := map[string]bool{}
	for j, d := range ds {
		f := fmt.Sprintf("%s[%d]", field, j)
		switch {
		case !validName(d.Name):
			errs = append(errs, drivers.Fieldf(f+".name", nameFix, "invalid disk name %q", d.Name))
		case seen[d.Name]:
			errs = append(errs, drivers.Fieldf(f+".name", "give every disk of a vm its own name", "duplicate disk %q", d.Name))
		}
		seen[d.Name] = true
		if d.SizeMiB <= 0 || d.SizeMiB > 1<<40 {
			errs = append(errs, drivers.Fieldf(f+".size_mib", "give the disk's size in MiB, e.g. 20480", "must be between 1 and 2^40, got %d", d.SizeMiB))
		}
	}
	return errs
}

func validateNetworks(field string, nets []cluster.Network) []error {
	var errs []error
	for j, n := range nets {
		f := fmt.Sprintf("%s[%d]", field, j)
		if strings.TrimSpace(n.Name) == "" {
			errs = append(errs, drivers.Fieldf(f+".name", "name the network, e.g. prod", "is empty"))
		}
		if n.VLAN < 0 || n.VLAN > 4094 {
			errs = append(errs, drivers.Fieldf(f+".vlan", "give a VLAN tag 0..4094 (0 = untagged)", "out of range: %d", n.VLAN))
		}
		for _, o := range nets[:j] {
			if o.SameAs(n) {
				errs = append(errs, drivers.Fieldf(f, "list each network once", "duplicate network %s/%d", n.Name, n.VLAN))
			}
		}
	}
	return errs
}
