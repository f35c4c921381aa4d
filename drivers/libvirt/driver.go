// Long file, one reason: the driver's connection handling, inventory and node operations share one host table and its locking rules.

package libvirt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/updaters"
)

// Driver is the libvirt driver. It is safe for concurrent use.
type Driver struct {
	cfg    Config
	hosts  []host
	byName map[string]*hostState
	pause  *pauseStore
	run    updaters.Runner
	log    *slog.Logger
	now    func() time.Time

	// flights are the migrations this driver runs, by VM: a second Migrate of the same
	// VM to the same target joins the first.
	flights drivers.Flights
}

// hostState is the driver's view of one host.
type hostState struct {
	host
	conn *hostConn

	mu sync.Mutex
	// reboot is set by RebootNode and cleared once the host is ready again.
	reboot *pendingReboot
	// bootIDv was read while bootConn was connected: a host cannot reboot without its
	// libvirtd going away, so the ID holds as long as that connection lives, and an
	// inventory does not run the boot id command (an SSH login) on every host.
	bootConn *conn
	bootIDv  string
}

// pendingReboot remembers what the host looked like when its reboot was started, so
// that readiness means "came back", not "has not gone down yet".
type pendingReboot struct {
	// gone is closed once the connection held before the reboot is lost (nil when there
	// was none).
	gone   <-chan struct{}
	bootID string
}

var (
	_ drivers.Driver = (*Driver)(nil)
	_ drivers.Config = (*Config)(nil)
)

func newDriver(_ context.Context, cfg Config, env drivers.Env) (*Driver, error) {
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pausePath := cfg.PauseFile
	if pausePath == "" {
		pausePath = filepath.Join(cfg.StateDir, "paused.json")
	}
	if !filepath.IsAbs(pausePath) && env.BaseDir != "" {
		pausePath = filepath.Join(env.BaseDir, pausePath)
	}
	ps, err := newPauseStore(pausePath)
	if err != nil {
		return nil, err
	}
	var run updaters.Runner = updaters.LocalRunner{}
	if cfg.SSH != nil {
		r, err := updaters.NewSSHRunner(*cfg.SSH, env.BaseDir)
		if err != nil {
			return nil, drivers.PrefixFields("ssh", err)
		}
		run = r
	}
	d := &Driver{
		cfg:    cfg,
		hosts:  cfg.resolvedHosts(),
		byName: map[string]*hostState{},
		pause:  ps,
		run:    run,
		log:    log, // the caller's logger already names the driver
		now:    time.Now,
	}
	for i, h := range d.hosts {
		if cfg.SSH == nil {
			// Local commands like ../lab/lab.sh are relative to the config file.
			h.RebootCommand = resolveProgram(env.BaseDir, h.RebootCommand)
			h.ReadyCommand = resolveProgram(env.BaseDir, h.ReadyCommand)
			h.BootIDCommand = resolveProgram(env.BaseDir, h.BootIDCommand)
			d.hosts[i] = h
		}
		d.byName[h.Name] = &hostState{host: h, conn: &hostConn{uri: h.uri, timeout: cfg.ConnectTimeout}}
	}
	return d, nil
}

// resolveProgram resolves a relative program path that names a folder (./x, ../x/y)
// against baseDir; bare names are left to $PATH.
func resolveProgram(baseDir string, argv []string) []string {
	if len(argv) == 0 || baseDir == "" || filepath.IsAbs(argv[0]) || !strings.Contains(argv[0], "/") {
		return argv
	}
	out := slices.Clone(argv)
	out[0] = filepath.Join(baseDir, argv[0])
	return out
}

func (d *Driver) host(name string) (*hostState, error) {
	h, ok := d.byName[name]
	if !ok {
		return nil, fmt.Errorf("host %q: %w (configured hosts: %s)", name, drivers.ErrNotFound, strings.Join(d.hostNames(), ", "))
	}
	return h, nil
}

func (d *Driver) hostNames() []string {
	out := make([]string, len(d.hosts))
	for i, h := range d.hosts {
		out[i] = h.Name
	}
	return out
}

// Capabilities: no native drain, no power control yet; boot IDs when every host has a
// boot_id_command; storage migration (copy-storage of local disks, storage.go).
func (d *Driver) Capabilities() drivers.Capabilities {
	bootID := len(d.hosts) > 0
	for _, h := range d.hosts {
		if len(h.BootIDCommand) == 0 {
			bootID = false
		}
	}
	return drivers.Capabilities{BootID: bootID, PauseOwner: true, StorageMigration: true}
}

// PauseNode marks host as accepting no placements. The mark is Drover's own (a file);
// Migrate refuses a paused target.
func (d *Driver) PauseNode(_ context.Context, node, owner string) error {
	if _, err := d.host(node); err != nil {
		return fmt.Errorf("pause node: %w", err)
	}
	if err := d.pause.Set(node, true, owner, d.now()); err != nil {
		return fmt.Errorf("pause node %s: %w", node, err)
	}
	d.log.Info("node paused", "node", node)
	return nil
}

// ResumeNode clears the pause mark.
func (d *Driver) ResumeNode(_ context.Context, node string) error {
	if _, err := d.host(node); err != nil {
		return fmt.Errorf("resume node: %w", err)
	}
	if err := d.pause.Set(node, false, "", d.now()); err != nil {
		return fmt.Errorf("resume node %s: %w", node, err)
	}
	d.log.Info("node resumed", "node", node)
	return nil
}

// Close drops every connection.
func (d *Driver) Close() error {
	var wg sync.WaitGroup
	for _, h := range d.byName {
		wg.Go(h.conn.close)
	}
	wg.Wait()
	return nil
}

// command runs argv for host h with the command timeout.
func (d *Driver) command(ctx context.Context, h *hostState, argv []string) (updaters.Output, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.CommandTimeout)
	defer cancel()
	return d.run.Run(ctx, h.sshAddr, argv)
}

// bootID runs the host's boot id command ("" when it has none).
func (d *Driver) bootID(ctx context.Context, h *hostState) (string, error) {
	if len(h.BootIDCommand) == 0 {
		return "", nil
	}
	out, err := d.command(ctx, h, h.BootIDCommand)
	if err != nil {
		return "", fmt.Errorf("boot id of %s: %w", h.Name, err)
	}
	return strings.TrimSpace(out.Stdout), nil
}

// RebootNode runs the host's reboot command and returns once it has run. The host is
// reported rebooting (and not ready) until its libvirtd answers on a new connection,
// its boot id changed (when known) and its ready command passes.
func (d *Driver) RebootNode(ctx context.Context, node string) error {
	h, err := d.host(node)
	if err != nil {
		return fmt.Errorf("reboot node: %w", err)
	}
	if len(h.RebootCommand) == 0 {
		return fmt.Errorf("reboot node %s: %w: no reboot_command configured for it", node, drivers.ErrRejected)
	}
	pr := &pendingReboot{}
	// Hold a connection across the reboot: its loss proves libvirtd went away.
	if c, err := h.conn.get(ctx); err == nil {
		pr.gone = c.disconnected()
	}
	if pr.bootID, err = d.bootID(ctx, h); err != nil {
		d.log.Warn("boot id unknown before reboot", "node", node, "error", err)
	}
	h.mu.Lock()
	h.reboot = pr
	h.mu.Unlock()
	d.log.Info("rebooting node", "node", node, "command", h.RebootCommand)
	out, err := d.command(ctx, h, h.RebootCommand)
	if err != nil && !errors.Is(err, updaters.ErrNoExitStatus) {
		// The reboot may or may not have started; keep the pending state so that the
		// host is only reported ready once it is back.
		return fmt.Errorf("reboot node %s: %w (output: %s)", node, err, strings.TrimSpace(out.Stdout+out.Stderr))
	}
	return nil
}

// NodeReady reports whether node's libvirtd answers (after a reboot: on a new
// connection, with a new boot id when known) and its ready command passes. A host that
// does not answer is not ready; that is not an error.
func (d *Driver) NodeReady(ctx context.Context, node string) (bool, error) {
	h, err := d.host(node)
	if err != nil {
		return false, fmt.Errorf("node ready: %w", err)
	}
	h.mu.Lock()
	pr := h.reboot
	h.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, d.cfg.CallTimeout)
	defer cancel()
	// Probe before looking at the pre-reboot connection: a host reset hard leaves that
	// connection open on our side; the failing call closes it and pr.gone fires.
	if err := h.conn.do(cctx, func(lv *golibvirt.Libvirt) error {
		_, err := lv.ConnectGetLibVersion()
		return err
	}); err != nil {
		d.log.Debug("node not answering", "node", node, "error", err)
		return false, nil
	}
	if pr != nil && pr.gone != nil {
		select {
		case <-pr.gone:
		default:
			return false, nil // the daemon from before the reboot still answers: not through yet
		}
	}
	if pr != nil && pr.bootID != "" {
		id, err := d.bootID(ctx, h)
		if err != nil || id == pr.bootID {
			return false, nil
		}
	}
	if len(h.ReadyCommand) > 0 {
		if _, err := d.command(ctx, h, h.ReadyCommand); err != nil {
			d.log.Debug("ready command failed", "node", node, "error", err)
			return false, nil
		}
	}
	if pr != nil {
		h.mu.Lock()
		if h.reboot == pr {
			h.reboot = nil
		}
		h.mu.Unlock()
	}
	return true, nil
}

func (h *hostState) rebooting() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reboot != nil
}

// domainInstance is one domain as one host reports it.
type domainInstance struct {
	host      string
	name      string
	state     golibvirt.DomainState
	reason    int32
	memKiB    uint64
	vcpus     int
	jobOp     golibvirt.DomainJobOperation // operation of the active job; 0 = none/unknown
	jobActive bool
	info      domainInfo
	infoErr   error
	disks     []diskSource
	// dirtyMiBs is the measured dirty rate when dirtyKnown (dirtyrate.go).
	dirtyMiBs  float64
	dirtyKnown bool
}

// incoming reports whether this instance is the destination side of a migration.
func (i domainInstance) incoming() bool {
	if i.jobOp == golibvirt.DomainJobOperationStrMigrationIn {
		return true
	}
	return i.state == golibvirt.DomainPaused && golibvirt.DomainPausedReason(i.reason) == golibvirt.DomainPausedMigration &&
		!(i.jobActive && i.jobOp == golibvirt.DomainJobOperationStrMigrationOut)
}

// outgoing reports whether this instance is the source side of a migration in flight.
func (i domainInstance) outgoing() bool {
	return i.jobActive && i.jobOp == golibvirt.DomainJobOperationStrMigrationOut
}

// cpusRun reports whether the instance's CPUs run: not paused for any reason (an
// incoming copy is "paused (starting up)", then "paused (migrating)").
func (i domainInstance) cpusRun() bool {
	return i.state == golibvirt.DomainRunning || i.state == golibvirt.DomainBlocked || i.state == golibvirt.DomainShutdown
}

// active reports whether the instance has a QEMU process (running or paused), as
// opposed to a definition that is shut off.
func (i domainInstance) active() bool {
	return i.state != golibvirt.DomainShutoff && i.state != golibvirt.DomainCrashed && i.state != golibvirt.DomainNostate
}

// stateWords is the instance's state as virsh domstate --reason puts it, roughly.
func stateWords(i domainInstance) string {
	switch i.state {
	case golibvirt.DomainRunning:
		return "running"
	case golibvirt.DomainBlocked:
		return "blocked"
	case golibvirt.DomainShutdown:
		return "shutting down"
	case golibvirt.DomainShutoff:
		return "shut off"
	case golibvirt.DomainCrashed:
		return "crashed"
	case golibvirt.DomainPmsuspended:
		return "pmsuspended"
	case golibvirt.DomainPaused:
		switch golibvirt.DomainPausedReason(i.reason) {
		case golibvirt.DomainPausedMigration:
			return "paused (migrating)"
		case golibvirt.DomainPausedStartingUp:
			return "paused (starting up)"
		}
		return "paused"
	}
	return fmt.Sprintf("in state %d", i.state)
}

// hostReport is what one host answered for an inventory.
type hostReport struct {
	bootID string
	memKiB uint64
	cpus   int
	// storageMiB is the free space of the host's largest local storage pool.
	storageMiB int64
	domains    []domainInstance
	err        error
}

// Inventory asks every host in parallel; a host that does not answer within
// call_timeout is reported down (or rebooting) and its VMs are absent.
func (d *Driver) Inventory(ctx context.Context) (cluster.Inventory, error) {
	marks, err := d.pause.Marks()
	if err != nil {
		return cluster.Inventory{}, fmt.Errorf("inventory: %w", err)
	}
	reports := make([]hostReport, len(d.hosts))
	var wg sync.WaitGroup
	for i, h := range d.hosts {
		wg.Go(func() { reports[i] = d.queryHost(ctx, d.byName[h.Name]) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return cluster.Inventory{}, fmt.Errorf("inventory: %w", err)
	}
	var inv cluster.Inventory
	var all []domainInstance
	for i, h := range d.hosts {
		hs := d.byName[h.Name]
		r := reports[i]
		owner, paused := marks[h.Name]
		n := cluster.Node{Name: h.Name, Paused: paused, PausedBy: owner}
		switch {
		case r.err != nil && hs.rebooting():
			n.State = cluster.NodeRebooting
		case r.err != nil:
			n.State = cluster.NodeDown
			n.Problem = r.err.Error()
			d.log.Warn("host unreachable", "node", h.Name, "error", r.err)
		case n.Paused:
			n.State = cluster.NodePaused
		default:
			n.State = cluster.NodeUp
		}
		if h.NICMbps > 0 {
			n.NICMbps, n.NICSource = h.NICMbps, "configured"
		}
		if r.err == nil {
			n.MemoryMiB = int64(r.memKiB / 1024)
			n.CPUs = r.cpus
			n.BootID = r.bootID
			n.StorageMiB = r.storageMiB
		}
		inv.Nodes = append(inv.Nodes, n)
		all = append(all, r.domains...)
	}
	inv.VMs = d.mergeDomains(all)
	return inv, nil
}

// queryHost reads node info and every domain of one host.
func (d *Driver) queryHost(ctx context.Context, h *hostState) hostReport {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.CallTimeout)
	defer cancel()
	var r hostReport
	r.err = h.conn.do(ctx, func(lv *golibvirt.Libvirt) error {
		_, mem, cpus, _, _, _, _, _, err := lv.NodeGetInfo()
		if err != nil {
			return fmt.Errorf("node info: %w", err)
		}
		r.memKiB, r.cpus = mem, int(cpus)
		r.storageMiB = d.localPoolFreeMiB(lv, h.Name)
		doms, _, err := lv.ConnectListAllDomains(1, 0)
		if err != nil {
			return fmt.Errorf("list domains: %w", err)
		}
		var running []golibvirt.Domain
		for _, dom := range doms {
			inst, err := d.readDomain(lv, h.Name, dom)
			if golibvirt.IsNotFound(err) {
				continue // gone meanwhile (migrated away, undefined)
			}
			if err != nil {
				return err
			}
			r.domains = append(r.domains, inst)
			if inst.state == golibvirt.DomainRunning && !inst.jobActive {
				running = append(running, dom)
			}
		}
		if d.cfg.DirtyRate {
			rates := dirtyRates(lv, running, d.cfg.DirtyRateSeconds)
			for i := range r.domains {
				r.domains[i].dirtyMiBs, r.domains[i].dirtyKnown = rates[r.domains[i].name]
			}
		}
		return nil
	})
	if r.err == nil {
		var err error
		if r.bootID, err = d.cachedBootID(ctx, h); err != nil {
			d.log.Warn("boot id unknown", "node", h.Name, "error", err)
		}
	}
	return r
}

// cachedBootID returns the host's boot ID, running the boot id command only once per
// libvirt connection (see hostState.bootConn).
func (d *Driver) cachedBootID(ctx context.Context, h *hostState) (string, error) {
	c := h.conn.current()
	if c == nil || !c.alive() {
		return d.bootID(ctx, h)
	}
	h.mu.Lock()
	if h.bootConn == c {
		id := h.bootIDv
		h.mu.Unlock()
		return id, nil
	}
	h.mu.Unlock()
	id, err := d.bootID(ctx, h)
	if err == nil && id != "" && c.alive() {
		h.mu.Lock()
		h.bootConn, h.bootIDv = c, id
		h.mu.Unlock()
	}
	return id, err
}

func (d *Driver) readDomain(lv *golibvirt.Libvirt, hostName string, dom golibvirt.Domain) (domainInstance, error) {
	inst := domainInstance{host: hostName, name: dom.Name}
	state, reason, err := lv.DomainGetState(dom, 0)
	if err != nil {
		return inst, fmt.Errorf("state of %s: %w", dom.Name, err)
	}
	inst.state, inst.reason = golibvirt.DomainState(state), reason
	_, maxMem, mem, nvcpu, _, err := lv.DomainGetInfo(dom)
	if err != nil {
		return inst, fmt.Errorf("info of %s: %w", dom.Name, err)
	}
	inst.memKiB = maxMem
	if maxMem == 0 {
		inst.memKiB = mem
	}
	inst.vcpus = int(nvcpu)
	if inst.state == golibvirt.DomainRunning || inst.state == golibvirt.DomainPaused || inst.state == golibvirt.DomainBlocked {
		inst.jobActive, inst.jobOp = jobState(lv, dom)
	}
	xmlDesc, err := lv.DomainGetXMLDesc(dom, 0)
	if err != nil {
		return inst, fmt.Errorf("xml of %s: %w", dom.Name, err)
	}
	inst.info, inst.infoErr = parseDomainXML(xmlDesc)
	// Sizes only outside jobs: during a migration libvirt makes the size query wait
	// for the job (up to 30 s on an incoming copy), which would stall the inventory.
	sizes := !inst.jobActive && !inst.incoming()
	inst.disks = d.readDisks(lv, dom, xmlDesc, sizes) // unreadable XML: infoErr says so
	return inst, nil
}

// jobState returns whether dom has an active job and its operation.
func jobState(lv *golibvirt.Libvirt, dom golibvirt.Domain) (bool, golibvirt.DomainJobOperation) {
	typ, params, err := lv.DomainGetJobStats(dom, 0)
	if err != nil {
		return false, 0
	}
	active := golibvirt.DomainJobType(typ) == golibvirt.DomainJobBounded || golibvirt.DomainJobType(typ) == golibvirt.DomainJobUnbounded
	var op golibvirt.DomainJobOperation
	if v, ok := paramInt(params, golibvirt.DomainJobOperationStr); ok {
		op = golibvirt.DomainJobOperation(v)
	}
	return active, op
}

// mergeDomains reports each VM once. A VM seen on several hosts is mid-migration (the
// destination holds a paused incoming copy) or defined on several hosts: the instance
// that actually runs wins, and MigratingTo names the destination of an outgoing
// migration when it is visible.
func (d *Driver) mergeDomains(all []domainInstance) []cluster.VM {
	byName := map[string][]domainInstance{}
	var order []string
	for _, inst := range all {
		if _, seen := byName[inst.name]; !seen {
			order = append(order, inst.name)
		}
		byName[inst.name] = append(byName[inst.name], inst)
	}
	vms := make([]cluster.VM, 0, len(order))
	for _, name := range order {
		insts := byName[name]
		best := pickInstance(insts)
		vm := cluster.VM{
			Name:       name,
			Node:       best.host,
			MemoryMiB:  int64(best.memKiB / 1024),
			VCPUs:      best.vcpus,
			Power:      powerState(best),
			Migratable: true,
		}
		if best.outgoing() {
			vm.MigratingTo = location{insts: insts}.elsewhere(best.host)
		}
		switch {
		case best.infoErr != nil:
			vm.Migratable, vm.NotMigratableReason = false, "domain XML unreadable: "+best.infoErr.Error()
		case slices.Contains(d.cfg.PinnedVMs, name):
			vm.Migratable, vm.NotMigratableReason = false, "listed in pinned_vms"
		case best.info.NotMigratable != "":
			vm.Migratable, vm.NotMigratableReason = false, best.info.NotMigratable
		}
		vm.AntiAffinity = best.info.AntiAffinity
		vm.AntiAffinityHard = best.info.AntiAffinityHard
		vm.PreferredNode = best.info.PreferredNode
		vm.Disks = inventoryDisks(best.disks)
		if best.dirtyKnown {
			vm.DirtyMiBs, vm.DirtySource = best.dirtyMiBs, "measured"
		}
		vms = append(vms, vm)
	}
	return vms
}

// pickInstance prefers, in order: the source of a migration in flight, an instance
// whose CPUs run and that is not an incoming copy, any instance that is not an
// incoming copy, and finally the first instance. A copy "paused (starting up)" on a
// migration's target is no candidate before the ones that run: the VM is where it
// runs until the migration is over.
func pickInstance(insts []domainInstance) domainInstance {
	rank := func(i domainInstance) int {
		switch {
		case i.outgoing():
			return 0
		case !i.incoming() && i.cpusRun():
			return 1
		case !i.incoming() && i.state != golibvirt.DomainShutoff:
			return 2
		case !i.incoming():
			return 3
		}
		return 4
	}
	best := insts[0]
	for _, i := range insts[1:] {
		if rank(i) < rank(best) {
			best = i
		}
	}
	return best
}

// powerState maps libvirt's domain state. A domain paused by a migration is running as
// far as the cluster is concerned (it resumes on one side); a domain paused by a user
// or suspended to RAM is suspended.
func powerState(i domainInstance) cluster.PowerState {
	switch i.state {
	case golibvirt.DomainRunning, golibvirt.DomainBlocked, golibvirt.DomainShutdown:
		return cluster.PowerRunning
	case golibvirt.DomainPaused:
		switch golibvirt.DomainPausedReason(i.reason) {
		case golibvirt.DomainPausedMigration, golibvirt.DomainPausedPostcopy, golibvirt.DomainPausedStartingUp:
			return cluster.PowerRunning
		}
		return cluster.PowerSuspended
	case golibvirt.DomainPmsuspended:
		return cluster.PowerSuspended
	case golibvirt.DomainShutoff, golibvirt.DomainCrashed:
		return cluster.PowerStopped
	}
	return cluster.PowerUnknown
}

// paramInt reads an integer typed parameter.
func paramInt(params []golibvirt.TypedParam, field string) (int64, bool) {
	for _, p := range params {
		if p.Field != field {
			continue
		}
		switch v := p.Value.I.(type) {
		case int32:
			return int64(v), true
		case uint32:
			return int64(v), true
		case int64:
			return v, true
		case uint64:
			return int64(v), true
		}
	}
	return 0, false
}
