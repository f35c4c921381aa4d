package vsphere

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
)

func ref(kind, v string) types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: kind, Value: v}
}

func testHost(moid, name string) mo.HostSystem {
	boot := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	h := mo.HostSystem{}
	h.Self, h.Name = ref("HostSystem", moid), name
	h.Summary.Runtime = &types.HostRuntimeInfo{ConnectionState: types.HostSystemConnectionStateConnected, PowerState: types.HostSystemPowerStatePoweredOn, BootTime: &boot}
	h.Summary.Hardware = &types.HostHardwareSummary{MemorySize: 64 << 30, NumCpuThreads: 16, CpuModel: "Xeon"}
	h.Summary.Config.Product = &types.AboutInfo{Build: "24022510", Version: "8.0.3"}
	return h
}

func testVM(moid, host string, devices ...types.BaseVirtualDevice) mo.VirtualMachine {
	vm := mo.VirtualMachine{}
	vm.Self, vm.Name = ref("VirtualMachine", moid), moid
	vm.Runtime.Host = types.NewReference(ref("HostSystem", host))
	vm.Runtime.PowerState = types.VirtualMachinePowerStatePoweredOn
	vm.Config = &types.VirtualMachineConfigInfo{Hardware: types.VirtualHardware{MemoryMB: 2048, NumCPU: 2, Device: devices}}
	return vm
}

func disk(ds string) *types.VirtualDisk {
	return &types.VirtualDisk{VirtualDevice: types.VirtualDevice{Backing: &types.VirtualDiskFlatVer2BackingInfo{
		VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: "[" + ds + "] x.vmdk", Datastore: types.NewReference(ref("Datastore", ds))},
	}}}
}

func connected(on bool) *types.VirtualDeviceConnectInfo {
	return &types.VirtualDeviceConnectInfo{Connected: on}
}

func TestMapInventory_VMs(t *testing.T) {
	datastores := map[string]mo.Datastore{
		"shared": {ManagedEntity: mo.ManagedEntity{Name: "shared"}, Host: []types.DatastoreHostMount{{Key: ref("HostSystem", "h1")}, {Key: ref("HostSystem", "h2")}}},
		"local1": {ManagedEntity: mo.ManagedEntity{Name: "local1"}, Host: []types.DatastoreHostMount{{Key: ref("HostSystem", "h1")}}},
	}
	cases := []struct {
		name       string
		vm         mo.VirtualMachine
		migratable bool
		reason     string
	}{
		{"shared-disk", testVM("v", "h1", disk("shared")), true, ""},
		{"local-disk", testVM("v", "h1", disk("local1")), false, "disk on local datastore local1"},
		{"host-cd-connected", testVM("v", "h1", &types.VirtualCdrom{VirtualDevice: types.VirtualDevice{Backing: &types.VirtualCdromAtapiBackingInfo{}, Connectable: connected(true)}}), false, "CD/DVD drive of the host"},
		{"host-cd-disconnected", testVM("v", "h1", &types.VirtualCdrom{VirtualDevice: types.VirtualDevice{Backing: &types.VirtualCdromAtapiBackingInfo{}, Connectable: connected(false)}}), true, ""},
		{"iso-on-local-datastore", testVM("v", "h1", &types.VirtualCdrom{VirtualDevice: types.VirtualDevice{Backing: &types.VirtualCdromIsoBackingInfo{VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{Datastore: types.NewReference(ref("Datastore", "local1"))}}, Connectable: connected(true)}}), false, "ISO on local datastore local1"},
		{"host-usb", testVM("v", "h1", &types.VirtualUSB{VirtualDevice: types.VirtualDevice{Backing: &types.VirtualUSBUSBBackingInfo{}, Connectable: connected(true)}}), false, "USB device of the host"},
		{"host-serial", testVM("v", "h1", &types.VirtualSerialPort{VirtualDevice: types.VirtualDevice{Backing: &types.VirtualSerialPortDeviceBackingInfo{}, Connectable: connected(true)}}), false, "serial port of the host"},
		{"network-serial", testVM("v", "h1", &types.VirtualSerialPort{VirtualDevice: types.VirtualDevice{Backing: &types.VirtualSerialPortURIBackingInfo{}, Connectable: connected(true)}}), true, ""},
		{"pci-passthrough", testVM("v", "h1", &types.VirtualPCIPassthrough{}), false, "PCI passthrough device"},
		{"two-reasons", testVM("v", "h1", disk("local1"), &types.VirtualPCIPassthrough{}), false, "disk on local datastore local1; PCI passthrough device"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			inv := mapInventory(snapshot{hosts: []mo.HostSystem{testHost("h1", "esx1")}, vms: []mo.VirtualMachine{tt.vm}, datastores: datastores, pauseKey: noField})
			if len(inv.VMs) != 1 {
				t.Fatalf("%d VMs", len(inv.VMs))
			}
			v := inv.VMs[0]
			if v.Migratable != tt.migratable || !strings.Contains(v.NotMigratableReason, tt.reason) || (tt.reason == "" && v.NotMigratableReason != "") {
				t.Fatalf("migratable %v (%q), want %v (%q)", v.Migratable, v.NotMigratableReason, tt.migratable, tt.reason)
			}
			if v.Node != "esx1" || v.MemoryMiB != 2048 || v.VCPUs != 2 || v.Power != cluster.PowerRunning {
				t.Fatalf("vm %+v", v)
			}
		})
	}
}

func TestMapInventory_Rules(t *testing.T) {
	mandatory, enabled, disabled := types.NewBool(true), types.NewBool(true), types.NewBool(false)
	cl := mo.ClusterComputeResource{}
	cl.ConfigurationEx = &types.ClusterConfigInfoEx{
		Group: []types.BaseClusterGroupInfo{
			&types.ClusterVmGroup{ClusterGroupInfo: types.ClusterGroupInfo{Name: "db-vms"}, Vm: []types.ManagedObjectReference{ref("VirtualMachine", "db1")}},
			&types.ClusterVmGroup{ClusterGroupInfo: types.ClusterGroupInfo{Name: "web-vms"}, Vm: []types.ManagedObjectReference{ref("VirtualMachine", "web1")}},
		},
		Rule: []types.BaseClusterRuleInfo{
			&types.ClusterAntiAffinityRuleSpec{ClusterRuleInfo: types.ClusterRuleInfo{Name: "dc-apart", Enabled: enabled, Mandatory: mandatory}, Vm: []types.ManagedObjectReference{ref("VirtualMachine", "dc1"), ref("VirtualMachine", "dc2")}},
			&types.ClusterAntiAffinityRuleSpec{ClusterRuleInfo: types.ClusterRuleInfo{Name: "web-apart", Enabled: enabled}, Vm: []types.ManagedObjectReference{ref("VirtualMachine", "web1"), ref("VirtualMachine", "web2")}},
			&types.ClusterAntiAffinityRuleSpec{ClusterRuleInfo: types.ClusterRuleInfo{Name: "off", Enabled: disabled, Mandatory: mandatory}, Vm: []types.ManagedObjectReference{ref("VirtualMachine", "free")}},
			&types.ClusterVmHostRuleInfo{ClusterRuleInfo: types.ClusterRuleInfo{Name: "db-on-licensed", Enabled: enabled, Mandatory: mandatory}, VmGroupName: "db-vms", AffineHostGroupName: "licensed"},
			&types.ClusterVmHostRuleInfo{ClusterRuleInfo: types.ClusterRuleInfo{Name: "web-prefers", Enabled: enabled}, VmGroupName: "web-vms", AffineHostGroupName: "fast"},
		},
	}
	var vms []mo.VirtualMachine
	for _, n := range []string{"dc1", "dc2", "web1", "web2", "db1", "free"} {
		vms = append(vms, testVM(n, "h1"))
	}
	inv := mapInventory(snapshot{cluster: cl, hosts: []mo.HostSystem{testHost("h1", "esx1")}, vms: vms, pauseKey: noField})
	want := map[string]struct {
		group      string
		hard       bool
		migratable bool
		reason     string
	}{
		"dc1":  {"dc-apart", true, true, ""},
		"dc2":  {"dc-apart", true, true, ""},
		"web1": {"web-apart", false, true, ""}, // a "should" VM-host rule does not pin
		"web2": {"web-apart", false, true, ""},
		"db1":  {"", false, false, `pinned by DRS rule "db-on-licensed": must run on host group licensed`},
		"free": {"", false, true, ""}, // the disabled rule counts for nothing
	}
	for _, v := range inv.VMs {
		w := want[v.Name]
		if v.AntiAffinity != w.group || v.AntiAffinityHard != w.hard || v.Migratable != w.migratable || v.NotMigratableReason != w.reason {
			t.Errorf("vm %s: group %q hard %v migratable %v %q; want %+v", v.Name, v.AntiAffinity, v.AntiAffinityHard, v.Migratable, v.NotMigratableReason, w)
		}
	}
}

func TestMapInventory_Hosts(t *testing.T) {
	const key = 7
	marked := testHost("h2", "esx2")
	marked.CustomValue = []types.BaseCustomFieldValue{&types.CustomFieldStringValue{CustomFieldValue: types.CustomFieldValue{Key: key}, Value: "drover-run:r1"}}
	maint := testHost("h3", "esx3")
	maint.Summary.Runtime.InMaintenanceMode = true
	down := testHost("h4", "esx4")
	down.Summary.Runtime.ConnectionState = types.HostSystemConnectionStateNotResponding
	cl := mo.ClusterComputeResource{}
	cl.Summary = &types.ClusterComputeResourceSummary{CurrentEVCModeKey: "intel-icelake"}
	elsewhere := testVM("v-other", "h9")
	inv := mapInventory(snapshot{cluster: cl, hosts: []mo.HostSystem{testHost("h1", "esx1"), marked, maint, down}, vms: []mo.VirtualMachine{elsewhere}, pauseKey: key})
	want := map[string]struct {
		state    cluster.NodeState
		paused   bool
		pausedBy string
	}{
		"esx1": {cluster.NodeUp, false, ""},
		"esx2": {cluster.NodePaused, true, "drover-run:r1"},
		"esx3": {cluster.NodePaused, true, ""},
		"esx4": {cluster.NodeDown, false, ""},
	}
	for _, n := range inv.Nodes {
		w := want[n.Name]
		if n.State != w.state || n.Paused != w.paused || n.PausedBy != w.pausedBy {
			t.Errorf("node %s: %s paused=%v by %q; want %+v", n.Name, n.State, n.Paused, n.PausedBy, w)
		}
		if n.CPUGroup != "evc:intel-icelake" || n.MemoryMiB != 64<<10 || n.CPUs != 16 || n.BootID != "2026-01-02T03:04:05Z" || n.Labels["vsphere.build"] != "24022510" {
			t.Errorf("node %+v", n)
		}
	}
	if len(inv.VMs) != 0 {
		t.Errorf("a VM on a host outside the cluster was listed: %+v", inv.VMs)
	}
}

func TestConfigValidate(t *testing.T) {
	good := func() *Config {
		c := NewConfig()
		c.URL, c.Username, c.PasswordEnv, c.Datacenter, c.Cluster = "https://vc.example.com/sdk", "drover@vsphere.local", "DROVER_VSPHERE_PASSWORD", "DC0", "C0"
		return c
	}
	cases := []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"ok", func(*Config) {}, ""},
		{"no-url", func(c *Config) { c.URL = "" }, "url"},
		{"ftp-url", func(c *Config) { c.URL = "ftp://vc/sdk" }, "url"},
		{"user-in-url", func(c *Config) { c.URL = "https://u:secret@vc/sdk" }, "url"},
		{"no-username", func(c *Config) { c.Username = " " }, "username"},
		{"password-instead-of-env", func(c *Config) { c.PasswordEnv = "hunter2!" }, "password_env"},
		{"tls-conflict", func(c *Config) { c.Insecure = true; c.CAFile = "/ca.pem" }, "insecure"},
		{"bad-thumbprint", func(c *Config) { c.Thumbprint = "abc" }, "thumbprint"},
		{"no-cluster", func(c *Config) { c.Cluster = "" }, "cluster"},
		{"no-datacenter", func(c *Config) { c.Datacenter = "" }, "datacenter"},
		{"zero-timeout", func(c *Config) { c.MigrationTimeout = 0 }, "migration_timeout"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.edit(c)
			err := c.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var fe *drivers.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("validate: %v, want a field error on %s", err, tt.field)
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the error repeats a secret: %v", err)
			}
		})
	}
}

func TestParseVIBID(t *testing.T) {
	cases := []struct {
		id      string
		name    string
		version string
		ok      bool
	}{
		{"VMware_bootbank_esx-base_8.0.3-0.55.24280767", "esx-base", "8.0.3-0.55.24280767", true},
		{"VMW_bootbank_intel_gpio_0.1-1vmw", "intel_gpio", "0.1-1vmw", true},
		{"esx-base", "", "", false},
		{"a__b_c", "", "", false},
	}
	for _, tt := range cases {
		u, ok := ParseVIBID(tt.id)
		if ok != tt.ok || u.Name != tt.name || u.Version != tt.version {
			t.Errorf("ParseVIBID(%q) = %+v %v", tt.id, u, ok)
		}
	}
}

func FuzzParseVIBID(f *testing.F) {
	f.Add("VMware_bootbank_esx-base_8.0.3-0.55.24280767")
	f.Add("___")
	f.Fuzz(func(t *testing.T, id string) {
		u, ok := ParseVIBID(id)
		if ok && (u.Name == "" || u.Version == "" || strings.Contains(u.Version, "_")) {
			t.Fatalf("ParseVIBID(%q) = %+v", id, u)
		}
	})
}

func FuzzConfigValidate(f *testing.F) {
	f.Add("https://vc.example.com/sdk", "DROVER_VSPHERE_PASSWORD", "AB:CD")
	f.Add("https://u:p@vc/sdk", "x y", "")
	f.Add("%/@", "x y", "")
	f.Add("https://admin:s3cret/sdk", "DROVER_VSPHERE_PASSWORD", "")
	f.Fuzz(func(t *testing.T, u, env, thumb string) {
		c := NewConfig()
		c.URL, c.Username, c.PasswordEnv, c.Thumbprint, c.Datacenter, c.Cluster = u, "u", env, thumb, "DC0", "C0"
		err := c.Validate()
		if err == nil {
			if _, perr := c.parseURL(); perr != nil {
				t.Fatalf("valid config with an unusable url: %v", perr)
			}
			return
		}
		var fe *drivers.FieldError
		if !errors.As(err, &fe) {
			t.Fatalf("not a field error: %v", err)
		}
		if strings.Contains(u, "@") && strings.Contains(err.Error(), u) {
			t.Fatalf("the error repeats the url with its user info: %v", err)
		}
	})
}
