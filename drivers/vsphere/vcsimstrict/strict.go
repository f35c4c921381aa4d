package vcsimstrict

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// Options shape the simulated cluster: one datacenter (DC0) with one cluster (DC0_C0).
type Options struct {
	// Hosts in the cluster (default 4) and VMs (default 16, spread evenly, powered on).
	Hosts int
	VMs   int
	// VMMemoryMiB is every VM's memory (default 512); hosts have vcsim's 4 GiB.
	VMMemoryMiB int32
	// RelocateDuration is how long one relocation takes (default 500ms).
	RelocateDuration time.Duration
	// RebootDuration is how long a rebooting host is notResponding (default 1s).
	RebootDuration time.Duration
	// Listen is host:port (default 127.0.0.1:0).
	Listen string
	// Username and Password are the only login accepted (default
	// drover@vsphere.local / vcsim-pass).
	Username, Password string
	// TLS serves https with a self-signed certificate for 127.0.0.1 (CertificatePEM).
	TLS bool
	// Build is every host's product build before patching; TargetBuild the build of
	// Profile in Depot, which every host has pending.
	Build, TargetBuild, Profile, Depot string
}

func (o *Options) defaults() {
	if o.Hosts == 0 {
		o.Hosts = 4
	}
	if o.VMs == 0 {
		o.VMs = 16
	}
	if o.VMMemoryMiB == 0 {
		o.VMMemoryMiB = 512
	}
	if o.RelocateDuration == 0 {
		o.RelocateDuration = 500 * time.Millisecond
	}
	if o.RebootDuration == 0 {
		o.RebootDuration = time.Second
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Username == "" {
		o.Username = "drover@vsphere.local"
	}
	if o.Password == "" {
		o.Password = "vcsim-pass"
	}
	if o.Build == "" {
		o.Build = "24022510"
	}
	if o.TargetBuild == "" {
		o.TargetBuild = "24280767"
	}
	if o.Profile == "" {
		o.Profile = "ESXi-8.0U3c-24280767-standard"
	}
	if o.Depot == "" {
		o.Depot = "https://depot.example.com/esxi8/index.xml"
	}
}

// Refusal is one call the strict simulator refused.
type Refusal struct {
	Method string `json:"method"`
	Object string `json:"object"`
	Fault  string `json:"fault"`
	Reason string `json:"reason"`
}

// Stats are the strict simulator's counters.
type Stats struct {
	Refused []Refusal `json:"refused"`
	// Relocations counts relocations that completed, per VM name.
	Relocations map[string]int `json:"relocations"`
	// MaxInFlight is the most relocations in flight at once per host name (as source
	// or target); MaxInFlightTotal across the cluster.
	MaxInFlight      map[string]int `json:"max_in_flight"`
	MaxInFlightTotal int            `json:"max_in_flight_total"`
	// InFlight is the number of relocations in flight now.
	InFlight int `json:"in_flight"`
	// DrainSeconds per host: from EnterMaintenanceMode_Task to maintenance reached.
	DrainSeconds map[string][]float64 `json:"drain_seconds"`
	// Reboots, Installs per host name; PowerOffs per VM name (API calls and lost).
	Reboots   map[string]int `json:"reboots"`
	Installs  map[string]int `json:"installs"`
	PowerOffs map[string]int `json:"power_offs"`
	// Injected counts faults injected by AddFaultRule.
	Injected int `json:"injected"`
	// LostVMs were powered on on a host when it rebooted.
	LostVMs []string `json:"lost_vms"`
}

type hostState struct {
	entering   bool
	enterStart time.Time
	exitReq    int // bumps on ExitMaintenanceMode_Task: a waiting enter is cancelled
	rebooting  bool
	build      string
	staged     bool // an install ran; the new build shows after the reboot
	inFlight   int
}

// Sim is a running strict simulator.
type Sim struct {
	opts  Options
	model *simulator.Model
	inner *simulator.Server
	front *httptest.Server
	mux   http.Handler
	// URL is the SDK endpoint (https://127.0.0.1:PORT/sdk), without user info.
	URL *url.URL

	mu       sync.Mutex
	hosts    map[string]*hostState // by host moid
	moving   map[string]bool       // VM moids with a relocation in flight
	incoming map[string]int64      // MiB on the way to a host moid
	inFlight int
	stats    Stats
	// faults are rules injected into the calls answered here. vcsim's own injector
	// counts hits under a read lock (a data race under concurrent calls), so these are
	// evaluated under faultMu.
	faults    *simulator.FaultInjector
	faultMu   sync.Mutex
	wg        sync.WaitGroup
	closed    chan struct{}
	closeOnce sync.Once
}

// Start builds the cluster and serves it.
func Start(opts Options) (*Sim, error) {
	opts.defaults()
	m := simulator.VPX()
	m.Datacenter = 1
	m.Cluster = 1
	m.Host = 0
	m.ClusterHost = opts.Hosts
	m.Machine = opts.VMs
	m.Portgroup = 1
	if err := m.Create(); err != nil {
		return nil, fmt.Errorf("create vcsim model: %w", err)
	}
	m.Service.Listen = &url.URL{Host: "127.0.0.1:0", User: url.UserPassword(opts.Username, opts.Password)}
	inner := m.Service.NewServer()
	s := &Sim{
		opts:     opts,
		model:    m,
		inner:    inner,
		mux:      m.Service.ServeMux,
		hosts:    map[string]*hostState{},
		moving:   map[string]bool{},
		incoming: map[string]int64{},
		closed:   make(chan struct{}),
		faults:   simulator.NewFaultInjector(),
		stats: Stats{
			Relocations: map[string]int{}, MaxInFlight: map[string]int{}, DrainSeconds: map[string][]float64{},
			Reboots: map[string]int{}, Installs: map[string]int{}, PowerOffs: map[string]int{},
		},
	}
	if err := s.arrange(); err != nil {
		s.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("listen %s: %w", opts.Listen, err)
	}
	s.front = httptest.NewUnstartedServer(s)
	s.front.Config.ErrorLog = log.New(io.Discard, "", 0) // refused TLS handshakes are tested on purpose
	s.front.Listener.Close()
	s.front.Listener = ln
	scheme := "http"
	if opts.TLS {
		s.front.StartTLS()
		scheme = "https"
	} else {
		s.front.Start()
	}
	s.URL = &url.URL{Scheme: scheme, Host: ln.Addr().String(), Path: "/sdk"}
	return s, nil
}

// Model is vcsim's model (its registry: Model().Map()).
func (s *Sim) Model() *simulator.Model { return s.model }

// Options returns the options in effect (defaults filled in).
func (s *Sim) Options() Options { return s.opts }

// CertificatePEM is the TLS certificate clients must trust (TLS only).
func (s *Sim) CertificatePEM() []byte {
	if s.front.TLS == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.front.Certificate().Raw})
}

// Close stops serving and waits for the simulator's own goroutines.
func (s *Sim) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
	if s.front != nil {
		s.front.CloseClientConnections()
		s.front.Close()
	}
	s.wg.Wait()
	s.inner.Close()
	s.model.Remove()
}

// ctx is a vcsim context of our own: vcsim's locks are held per context.
func (s *Sim) ctx() *simulator.Context {
	c := *s.model.Service.Context
	c.Context = context.Background()
	return &c
}

// arrange gives every VM the same memory, powers all on and spreads them evenly over
// the hosts (vcsim places them at random).
func (s *Sim) arrange() error {
	ctx := s.ctx()
	hosts := s.hostObjs()
	if len(hosts) != s.opts.Hosts {
		return fmt.Errorf("vcsim made %d hosts, want %d", len(hosts), s.opts.Hosts)
	}
	for _, h := range hosts {
		s.hosts[h.Self.Value] = &hostState{build: s.opts.Build}
		ctx.WithLock(h, func() {
			p := h.Config.Product
			p.Build = s.opts.Build
			ctx.Update(h, []types.PropertyChange{{Name: "config.product", Val: p}, {Name: "summary.config.product", Val: &p}})
		})
	}
	vms := s.vmObjs()
	for i, vm := range vms {
		host := hosts[i%len(hosts)].Self
		ctx.WithLock(vm, func() {
			// vcsim gives every VM the host's CD drive, connected; admins disconnect it
			// before vMotion (the strict checks refuse it connected).
			for _, dev := range vm.Config.Hardware.Device {
				if cd, ok := dev.(*types.VirtualCdrom); ok && cd.Connectable != nil {
					cd.Connectable.Connected = false
				}
			}
			ctx.Update(vm, []types.PropertyChange{
				{Name: "runtime.host", Val: host},
				{Name: "summary.runtime.host", Val: host},
				{Name: "config.hardware.memoryMB", Val: s.opts.VMMemoryMiB},
				{Name: "summary.config.memorySizeMB", Val: s.opts.VMMemoryMiB},
				{Name: "runtime.powerState", Val: types.VirtualMachinePowerStatePoweredOn},
				{Name: "summary.runtime.powerState", Val: types.VirtualMachinePowerStatePoweredOn},
			})
		})
	}
	return nil
}

func (s *Sim) hostObjs() []*simulator.HostSystem {
	var out []*simulator.HostSystem
	for _, e := range s.model.Map().All("HostSystem") {
		if h, ok := e.(*simulator.HostSystem); ok {
			out = append(out, h)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *Sim) vmObjs() []*simulator.VirtualMachine {
	var out []*simulator.VirtualMachine
	for _, e := range s.model.Map().All("VirtualMachine") {
		if v, ok := e.(*simulator.VirtualMachine); ok {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// vmFacts is what the strict checks read of a VM, under its lock.
type vmFacts struct {
	ref    types.ManagedObjectReference
	name   string
	host   string
	on     bool
	memMiB int64
	// hostDevice names a connected device backed by the host (blocks vMotion).
	hostDevice string
}

func (s *Sim) readVM(ctx *simulator.Context, vm *simulator.VirtualMachine) vmFacts {
	var f vmFacts
	ctx.WithLock(vm, func() {
		f = vmFacts{ref: vm.Self, name: vm.Name, on: vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn}
		if vm.Runtime.Host != nil {
			f.host = vm.Runtime.Host.Value
		}
		if vm.Config != nil {
			f.memMiB = int64(vm.Config.Hardware.MemoryMB)
			for _, dev := range vm.Config.Hardware.Device {
				cd, ok := dev.(*types.VirtualCdrom)
				if !ok || cd.Connectable == nil || !cd.Connectable.Connected {
					continue
				}
				if _, host := cd.Backing.(*types.VirtualCdromAtapiBackingInfo); host {
					f.hostDevice = "CD/DVD drive of the host"
				}
			}
		}
	})
	return f
}

type hostFacts struct {
	name        string
	maintenance bool
	connected   bool
	memMiB      int64
}

func (s *Sim) readHost(ctx *simulator.Context, ref types.ManagedObjectReference) (hostFacts, bool) {
	h, ok := s.model.Map().Get(ref).(*simulator.HostSystem)
	if !ok {
		return hostFacts{}, false
	}
	var f hostFacts
	ctx.WithLock(h, func() {
		f = hostFacts{
			name:        h.Name,
			maintenance: h.Runtime.InMaintenanceMode,
			connected:   h.Runtime.ConnectionState == types.HostSystemConnectionStateConnected,
			memMiB:      h.Summary.Hardware.MemorySize >> 20,
		}
	})
	return f, true
}

// poweredOnAt lists the powered-on VMs whose runtime.host is host.
func (s *Sim) poweredOnAt(ctx *simulator.Context, host string) []vmFacts {
	var out []vmFacts
	for _, vm := range s.vmObjs() {
		if f := s.readVM(ctx, vm); f.on && f.host == host {
			out = append(out, f)
		}
	}
	return out
}

func (s *Sim) refuse(method, object string, fault types.BaseMethodFault, reason string) types.BaseMethodFault {
	s.mu.Lock()
	s.stats.Refused = append(s.stats.Refused, Refusal{Method: method, Object: object, Fault: strings.TrimPrefix(fmt.Sprintf("%T", fault), "*types."), Reason: reason})
	s.mu.Unlock()
	return fault
}

// AddFaultRule injects faults into RelocateVM_Task (answered by the strict
// simulator): a matching call returns a task that fails with the rule's fault.
func (s *Sim) AddFaultRule(rule *simulator.FaultInjectionRule) { s.faults.AddRule(rule) }

// injected is the fault a rule injects into method, or nil.
func (s *Sim) injected(method *simulator.Method, obj mo.Reference) types.BaseMethodFault {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	rule := s.faults.ShouldInjectFault(method, obj)
	if rule == nil {
		return nil
	}
	s.mu.Lock()
	s.stats.Injected++
	s.mu.Unlock()
	if f := asFault(s.faults.CreateFault(rule, method).Fault().Detail.Fault); f != nil {
		return f
	}
	return &types.SystemError{Reason: "injected fault"}
}

// Stats returns a copy of the counters.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.InFlight = s.inFlight
	b, _ := json.Marshal(s.stats)
	var out Stats
	_ = json.Unmarshal(b, &out)
	return out
}

// ServeHTTP answers the strict extensions and passes everything else to vcsim.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/strict/stats" {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.Stats())
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/sdk" {
		s.mux.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if _, err := r.Cookie("vmware_soap_session"); err == nil {
		if s.intercept(w, r, body) {
			return
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	s.mux.ServeHTTP(w, r)
}

// intercept answers the methods the strict simulator owns; false passes the call on.
func (s *Sim) intercept(w http.ResponseWriter, r *http.Request, body []byte) bool {
	name := methodName(body)
	switch name {
	case "RelocateVM_Task", "EnterMaintenanceMode_Task", "ExitMaintenanceMode_Task", "RebootHost_Task",
		"ExecuteSoap", "PowerOffVM_Task", "ShutdownGuest", "SuspendVM_Task":
	default:
		return false
	}
	method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
	if err != nil {
		return false
	}
	switch req := method.Body.(type) {
	case *types.RelocateVM_Task:
		return s.relocate(w, r, body, method, req)
	case *types.EnterMaintenanceMode_Task:
		writeTask(w, name, s.enterMaintenance(req))
		return true
	case *types.ExitMaintenanceMode_Task:
		s.mu.Lock()
		if h := s.hosts[req.This.Value]; h != nil {
			h.exitReq++
		}
		s.mu.Unlock()
		return false
	case *types.RebootHost_Task:
		writeTask(w, name, s.reboot(req))
		return true
	case *types.PowerOffVM_Task, *types.ShutdownGuest, *types.SuspendVM_Task:
		s.countPowerOff(method.This)
		return false
	}
	if name == "ExecuteSoap" {
		return s.esxcli(w, method)
	}
	return false
}

func (s *Sim) countPowerOff(ref types.ManagedObjectReference) {
	if vm, ok := s.model.Map().Get(ref).(*simulator.VirtualMachine); ok {
		f := s.readVM(s.ctx(), vm)
		s.mu.Lock()
		s.stats.PowerOffs[f.name]++
		s.mu.Unlock()
	}
}

// methodName is the first element inside the SOAP body.
func methodName(body []byte) string {
	i := bytes.Index(body, []byte("Body"))
	if i < 0 {
		return ""
	}
	rest := body[i:]
	j := bytes.IndexByte(rest, '<')
	if j < 0 {
		return ""
	}
	rest = rest[j+1:]
	end := bytes.IndexAny(rest, " >/")
	if end < 0 {
		return ""
	}
	n := string(rest[:end])
	if k := strings.IndexByte(n, ':'); k >= 0 {
		n = n[k+1:]
	}
	return n
}

// writeTask answers a *_Task method with the task's reference.
func writeTask(w http.ResponseWriter, method string, ref types.ManagedObjectReference) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+
		`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">`+
		`<soapenv:Body><%sResponse xmlns="urn:vim25"><returnval type="%s">%s</returnval></%sResponse></soapenv:Body></soapenv:Envelope>`,
		method, xmlEscape(ref.Type), xmlEscape(ref.Value), method)
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// runTask runs body as a vcsim task shown on entity. The task's lock is taken on a
// reference of its own: a task that waits must not hold the entity's lock, or every
// read of the entity would block meanwhile.
func (s *Sim) runTask(entity types.ManagedObjectReference, entityName, name string, body func(*simulator.Task) (types.AnyType, types.BaseMethodFault)) types.ManagedObjectReference {
	ctx := s.ctx()
	own := types.ManagedObjectReference{Type: entity.Type, Value: entity.Value + "-strict-task"}
	t := simulator.CreateTask(own, name, body)
	ref := t.Run(ctx)
	ctx.Map.AtomicUpdate(ctx, t, []types.PropertyChange{
		{Name: "info.entity", Val: entity},
		{Name: "info.entityName", Val: entityName},
		{Name: "info.descriptionId", Val: entity.Type + "." + name},
	})
	// Show the task in the entity's recentTask, as vCenter does (clients find a
	// relocation in flight there).
	if e, ok := ctx.Map.Get(entity).(mo.Entity); ok {
		ctx.WithLock(e, func() {
			recent := append(append([]types.ManagedObjectReference(nil), e.Entity().RecentTask...), ref)
			if len(recent) > 50 {
				recent = recent[len(recent)-50:]
			}
			ctx.Update(e, []types.PropertyChange{{Name: "recentTask", Val: recent}})
		})
	}
	return ref
}

// failedTask is a task that fails at once with fault (vCenter validates a request
// inside its task: the call returns a task, the task fails).
func (s *Sim) failedTask(entity types.ManagedObjectReference, name string, fault types.BaseMethodFault) types.ManagedObjectReference {
	return s.runTask(entity, entity.Value, name, func(*simulator.Task) (types.AnyType, types.BaseMethodFault) { return nil, fault })
}

// cancelled reports whether CancelTask was called on t.
func (s *Sim) cancelled(ctx *simulator.Context, t *simulator.Task) bool {
	var c bool
	ctx.WithLock(t, func() { c = t.Info.Cancelled })
	return c
}

// sleep waits d or until the simulator closes.
func (s *Sim) sleep(d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-s.closed:
		return false
	}
}
