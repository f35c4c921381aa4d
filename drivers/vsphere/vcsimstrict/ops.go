package vcsimstrict

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	vimxml "github.com/vmware/govmomi/vim25/xml"
)

const tick = 25 * time.Millisecond

// relocate answers RelocateVM_Task with a host in the spec: refused as vCenter
// refuses, or run as a task that takes RelocateDuration, reports progress, honours
// CancelTask, and then lets vcsim move the VM.
func (s *Sim) relocate(w http.ResponseWriter, r *http.Request, body []byte, method *simulator.Method, req *types.RelocateVM_Task) bool {
	if req.Spec.Host == nil {
		return false
	}
	ctx := s.ctx()
	vmObj, ok := s.model.Map().Get(req.This).(*simulator.VirtualMachine)
	if !ok {
		return false
	}
	if f := s.injected(method, vmObj); f != nil {
		writeTask(w, "RelocateVM_Task", s.failedTask(req.This, "relocateVm", f))
		return true
	}
	target := *req.Spec.Host
	hf, ok := s.readHost(ctx, target)
	if !ok {
		return false
	}
	vm := s.readVM(ctx, vmObj)

	s.mu.Lock()
	fault, reason := s.checkRelocate(ctx, vm, target, hf)
	if fault == nil {
		s.moving[vm.ref.Value] = true
		s.incoming[target.Value] += vm.memMiB
		s.addInFlight(vm.host, target.Value, 1)
	}
	s.mu.Unlock()
	if fault != nil {
		s.refuse("RelocateVM_Task", vm.name, fault, reason)
		writeTask(w, "RelocateVM_Task", s.failedTask(vm.ref, "relocateVm", fault))
		return true
	}

	header := r.Header.Clone()
	src := vm.host
	release := func(done bool) {
		s.mu.Lock()
		delete(s.moving, vm.ref.Value)
		s.incoming[target.Value] -= vm.memMiB
		s.addInFlight(src, target.Value, -1)
		if done && src != target.Value {
			s.stats.Relocations[vm.name]++
		}
		s.mu.Unlock()
	}
	s.wg.Add(1)
	ref := s.runTask(vm.ref, vm.name, "relocateVm", func(t *simulator.Task) (types.AnyType, types.BaseMethodFault) {
		defer s.wg.Done()
		tctx := s.ctx()
		start := time.Now()
		for time.Since(start) < s.opts.RelocateDuration {
			if s.cancelled(tctx, t) {
				release(false)
				return nil, &types.RequestCanceled{}
			}
			p := int32(100 * time.Since(start) / s.opts.RelocateDuration)
			tctx.Map.AtomicUpdate(tctx, t, []types.PropertyChange{{Name: "info.progress", Val: p}})
			if !s.sleep(tick) {
				release(false)
				return nil, &types.RequestCanceled{}
			}
		}
		fault := s.forwardAndWait(tctx, header, body)
		release(fault == nil)
		return nil, fault
	})
	writeTask(w, "RelocateVM_Task", ref)
	return true
}

// checkRelocate is vCenter's admission of a vMotion; s.mu is held.
func (s *Sim) checkRelocate(ctx *simulator.Context, vm vmFacts, target types.ManagedObjectReference, hf hostFacts) (types.BaseMethodFault, string) {
	hs := s.hosts[target.Value]
	switch {
	case s.moving[vm.ref.Value]:
		return &types.TaskInProgress{}, fmt.Sprintf("vm %s already has a relocation in flight", vm.name)
	case !hf.connected || (hs != nil && hs.rebooting):
		return &types.HostNotConnected{}, fmt.Sprintf("host %s is not connected", hf.name)
	case hf.maintenance:
		return &types.InvalidHostState{Host: &target}, fmt.Sprintf("host %s is in maintenance mode", hf.name)
	case hs != nil && hs.entering:
		return &types.InvalidHostState{Host: &target}, fmt.Sprintf("host %s is entering maintenance mode", hf.name)
	case vm.on && vm.hostDevice != "" && vm.host != target.Value:
		return &types.DisallowedMigrationDeviceAttached{}, fmt.Sprintf("vm %s has the %s connected", vm.name, vm.hostDevice)
	}
	if vm.host == target.Value || !vm.on {
		return nil, ""
	}
	used := s.incoming[target.Value]
	for _, o := range s.poweredOnAt(ctx, target.Value) {
		used += o.memMiB
	}
	if free := hf.memMiB - used; free < vm.memMiB {
		return &types.InsufficientMemoryResourcesFault{Unreserved: free << 20, Requested: vm.memMiB << 20},
			fmt.Sprintf("host %s has %d MiB free, vm %s needs %d MiB", hf.name, free, vm.name, vm.memMiB)
	}
	return nil, ""
}

// addInFlight counts relocations in flight per host; s.mu is held.
func (s *Sim) addInFlight(src, dst string, d int) {
	s.inFlight += d
	s.stats.MaxInFlightTotal = max(s.stats.MaxInFlightTotal, s.inFlight)
	for _, h := range []string{src, dst} {
		hs := s.hosts[h]
		if hs == nil {
			continue
		}
		hs.inFlight += d
		name := s.hostName(h)
		s.stats.MaxInFlight[name] = max(s.stats.MaxInFlight[name], hs.inFlight)
		if src == dst {
			break
		}
	}
}

func (s *Sim) hostName(moid string) string {
	if h, ok := s.model.Map().Get(types.ManagedObjectReference{Type: "HostSystem", Value: moid}).(mo.Entity); ok {
		return h.Entity().Name // names never change in the simulator
	}
	return moid
}

var returnvalRE = regexp.MustCompile(`<returnval type="Task">([^<]+)</returnval>`)

// forwardAndWait sends the original request to vcsim (which moves the VM at once)
// and waits for vcsim's task.
func (s *Sim) forwardAndWait(ctx *simulator.Context, header http.Header, body []byte) types.BaseMethodFault {
	req := httptest.NewRequest(http.MethodPost, "/sdk", bytes.NewReader(body))
	req.Header = header
	rec := httptest.NewRecorder()
	s.mux.ServeHTTP(rec, req)
	m := returnvalRE.FindSubmatch(rec.Body.Bytes())
	if f := soapFault(rec.Body.Bytes()); f != nil {
		return f
	}
	if rec.Code != http.StatusOK || m == nil {
		return &types.SystemError{Reason: fmt.Sprintf("vcsim answered the relocation with %d", rec.Code)}
	}
	t, ok := s.model.Map().Get(types.ManagedObjectReference{Type: "Task", Value: string(m[1])}).(*simulator.Task)
	if !ok {
		return &types.SystemError{Reason: "vcsim's relocation task vanished"}
	}
	for {
		var info types.TaskInfo
		ctx.WithLock(t, func() { info = t.Info })
		switch info.State {
		case types.TaskInfoStateSuccess:
			return nil
		case types.TaskInfoStateError:
			if info.Error != nil {
				return info.Error.Fault
			}
			return &types.SystemError{Reason: "relocation failed"}
		}
		if !s.sleep(5 * time.Millisecond) {
			return &types.RequestCanceled{}
		}
	}
}

// enterMaintenance starts a task that completes when no powered-on VM is left on the
// host, as vCenter's does without DRS moving them.
func (s *Sim) enterMaintenance(req *types.EnterMaintenanceMode_Task) types.ManagedObjectReference {
	ctx := s.ctx()
	host := req.This
	hf, ok := s.readHost(ctx, host)
	if !ok {
		return s.failedTask(host, "enterMaintenanceMode", &types.ManagedObjectNotFound{Obj: host})
	}
	if !hf.connected {
		s.refuse("EnterMaintenanceMode_Task", hf.name, &types.InvalidHostState{Host: &host}, "host not connected")
		return s.failedTask(host, "enterMaintenanceMode", &types.InvalidHostState{Host: &host})
	}
	s.mu.Lock()
	hs := s.hosts[host.Value]
	exitGen := hs.exitReq
	if !hs.entering && !hf.maintenance {
		hs.entering = true
		hs.enterStart = time.Now()
	}
	started := hs.enterStart
	s.mu.Unlock()
	timeout := time.Duration(req.Timeout) * time.Second
	s.wg.Add(1)
	return s.runTask(host, hf.name, "enterMaintenanceMode", func(t *simulator.Task) (types.AnyType, types.BaseMethodFault) {
		defer s.wg.Done()
		tctx := s.ctx()
		begun := time.Now()
		for {
			s.mu.Lock()
			exited := hs.exitReq != exitGen
			s.mu.Unlock()
			if exited || s.cancelled(tctx, t) {
				s.mu.Lock()
				hs.entering = false
				s.mu.Unlock()
				return nil, &types.RequestCanceled{}
			}
			if len(s.poweredOnAt(tctx, host.Value)) == 0 {
				break
			}
			if timeout > 0 && time.Since(begun) > timeout {
				return nil, &types.Timedout{}
			}
			if !s.sleep(tick) {
				return nil, &types.RequestCanceled{}
			}
		}
		h := tctx.Map.Get(host).(*simulator.HostSystem)
		already := false
		tctx.WithLock(h, func() {
			already = h.Runtime.InMaintenanceMode
			tctx.Update(h, []types.PropertyChange{{Name: "runtime.inMaintenanceMode", Val: true}})
		})
		s.mu.Lock()
		if hs.entering {
			hs.entering = false
			if !already {
				s.stats.DrainSeconds[hf.name] = append(s.stats.DrainSeconds[hf.name], time.Since(started).Seconds())
			}
		}
		s.mu.Unlock()
		return nil, nil
	})
}

// reboot answers RebootHost_Task: refused outside maintenance mode; otherwise the
// host goes notResponding, its powered-on VMs are lost, and it comes back connected
// with a new boot time (and the staged build) after RebootDuration.
func (s *Sim) reboot(req *types.RebootHost_Task) types.ManagedObjectReference {
	ctx := s.ctx()
	host := req.This
	hf, ok := s.readHost(ctx, host)
	if !ok {
		return s.failedTask(host, "reboot", &types.ManagedObjectNotFound{Obj: host})
	}
	s.mu.Lock()
	hs := s.hosts[host.Value]
	rebooting := hs.rebooting
	s.mu.Unlock()
	switch {
	case !hf.connected || rebooting:
		f := &types.InvalidHostState{Host: &host}
		s.refuse("RebootHost_Task", hf.name, f, "host not connected")
		return s.failedTask(host, "reboot", f)
	case !hf.maintenance && !req.Force:
		f := &types.InvalidState{}
		s.refuse("RebootHost_Task", hf.name, f, "host is not in maintenance mode")
		return s.failedTask(host, "reboot", f)
	}
	return s.runTask(host, hf.name, "reboot", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		tctx := s.ctx()
		lost := s.poweredOnAt(tctx, host.Value)
		for _, v := range lost {
			vmObj := tctx.Map.Get(v.ref).(*simulator.VirtualMachine)
			tctx.WithLock(vmObj, func() {
				tctx.Update(vmObj, []types.PropertyChange{
					{Name: "runtime.powerState", Val: types.VirtualMachinePowerStatePoweredOff},
					{Name: "summary.runtime.powerState", Val: types.VirtualMachinePowerStatePoweredOff},
				})
			})
		}
		h := tctx.Map.Get(host).(*simulator.HostSystem)
		tctx.WithLock(h, func() {
			tctx.Update(h, []types.PropertyChange{{Name: "runtime.connectionState", Val: types.HostSystemConnectionStateNotResponding}})
		})
		s.mu.Lock()
		hs.rebooting = true
		s.stats.Reboots[hf.name]++
		for _, v := range lost {
			s.stats.LostVMs = append(s.stats.LostVMs, v.name)
			s.stats.PowerOffs[v.name]++
		}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.sleep(s.opts.RebootDuration)
			s.mu.Lock()
			build := hs.build
			if hs.staged {
				build, hs.build, hs.staged = s.opts.TargetBuild, s.opts.TargetBuild, false
			}
			s.mu.Unlock()
			c := s.ctx()
			c.WithLock(h, func() {
				p := h.Config.Product
				p.Build = build
				now := time.Now()
				c.Update(h, []types.PropertyChange{
					{Name: "runtime.connectionState", Val: types.HostSystemConnectionStateConnected},
					{Name: "runtime.bootTime", Val: &now},
					{Name: "config.product", Val: p},
					{Name: "summary.config.product", Val: &p},
				})
			})
			s.mu.Lock()
			hs.rebooting = false
			s.mu.Unlock()
		}()
		return nil, nil
	})
}

// soapFault decodes the fault of a SOAP answer (fault injection answers the call
// itself); nil when the answer is no fault.
func soapFault(b []byte) types.BaseMethodFault {
	body := &methods.RelocateVM_TaskBody{}
	env := soap.Envelope{Body: body}
	dec := vimxml.NewDecoder(bytes.NewReader(b))
	dec.TypeFunc = types.TypeFunc()
	if err := dec.Decode(&env); err != nil || body.Fault_ == nil {
		return nil
	}
	if f := asFault(body.Fault_.VimFault()); f != nil {
		return f
	}
	return &types.SystemError{Reason: body.Fault_.String}
}

// asFault turns a decoded fault into a types.BaseMethodFault: the decoder gives some
// faults as values, whose methods are on the pointer.
func asFault(v any) types.BaseMethodFault {
	if f, ok := v.(types.BaseMethodFault); ok {
		return f
	}
	if rv := reflect.ValueOf(v); rv.IsValid() && rv.Kind() == reflect.Struct {
		p := reflect.New(rv.Type())
		p.Elem().Set(rv)
		if f, ok := p.Interface().(types.BaseMethodFault); ok {
			return f
		}
	}
	return nil
}
