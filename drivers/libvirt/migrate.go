// Long file, one reason: a migration's start, join, progress, abort and the two-host completion check are one protocol and must be read together.

package libvirt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
)

// migrateFlags: live, driven by the source daemon (peer-to-peer: the migration goes
// on if Drover dies), persistent on the target and undefined on the source, so the VM
// is defined on exactly one host afterwards.
const migrateFlags = golibvirt.MigrateLive | golibvirt.MigratePeer2peer | golibvirt.MigratePersistDest | golibvirt.MigrateUndefineSource

// Migrate live-migrates req.VM to req.To and blocks until it is done. See
// drivers.Driver for the contract. The VM is looked up on every host: when it runs
// somewhere other than req.From it is migrated from where it runs.
func (d *Driver) Migrate(ctx context.Context, req drivers.MigrateRequest, progress func(drivers.MigrationProgress)) (drivers.MigrationResult, error) {
	fail := func(err error) (drivers.MigrationResult, error) {
		return drivers.MigrationResult{}, fmt.Errorf("migrate vm %s to %s: %w", req.VM, req.To, err)
	}
	if req.VM == "" {
		return fail(fmt.Errorf("%w: empty vm name", drivers.ErrNotFound))
	}
	to, err := d.host(req.To)
	if err != nil {
		return fail(err)
	}
	if req.From != "" {
		if _, err := d.host(req.From); err != nil {
			return fail(err)
		}
	}
	paused, err := d.pause.IsPaused(req.To)
	if err != nil {
		return fail(err)
	}
	if paused {
		return fail(fmt.Errorf("%w: target %s is paused (no placements during maintenance): resume it or choose another target", drivers.ErrRejected, req.To))
	}

	res, err := d.flights.Do(ctx, req, func() (drivers.MigrationResult, error) {
		return d.migrate(ctx, req, to, progress)
	})
	if err != nil {
		return fail(err)
	}
	return res, nil
}

// location is where a VM is, as all hosts report it.
type location struct {
	insts []domainInstance
	// unreachable are hosts that did not answer, with why.
	unreachable map[string]error
}

func (l location) on(host string) (domainInstance, bool) {
	for _, i := range l.insts {
		if i.host == host {
			return i, true
		}
	}
	return domainInstance{}, false
}

// runningOn reports whether the VM's CPUs run on host: not an incoming copy, not
// paused (an incoming copy is "paused (starting up)", then "paused (migrating)",
// until the migration ends).
func (l location) runningOn(host string) bool {
	i, ok := l.on(host)
	return ok && !i.incoming() && i.cpusRun()
}

// settledOn reports whether a migration to host is done: the VM runs there and no
// other host that answers still has it active. While it exists on both, the job on
// the source may still run (or be confirming), whatever the target says.
func (l location) settledOn(host string) bool {
	if !l.runningOn(host) {
		return false
	}
	for _, i := range l.insts {
		if i.host != host && i.active() {
			return false
		}
	}
	return true
}

// onTwo reports whether the VM is active on host and on another host ("" = on any
// two hosts).
func (l location) onTwo(host string) bool {
	n, onHost := 0, host == ""
	for _, i := range l.insts {
		if i.active() {
			n++
			onHost = onHost || i.host == host
		}
	}
	return n > 1 && onHost
}

// elsewhere returns the host, other than host, holding an active instance of the
// VM, preferring an incoming copy ("" = none).
func (l location) elsewhere(host string) string {
	dest := ""
	for _, o := range l.insts {
		if o.host == host || !o.active() {
			continue
		}
		if o.incoming() {
			return o.host
		}
		if dest == "" {
			dest = o.host
		}
	}
	return dest
}

// locate asks every host about vm in parallel.
func (d *Driver) locate(ctx context.Context, vm string) location {
	type answer struct {
		inst  domainInstance
		found bool
		err   error
	}
	answers := make([]answer, len(d.hosts))
	var wg sync.WaitGroup
	for i, h := range d.hosts {
		wg.Go(func() {
			hs := d.byName[h.Name]
			cctx, cancel := context.WithTimeout(ctx, d.cfg.CallTimeout)
			defer cancel()
			answers[i].err = hs.conn.do(cctx, func(lv *golibvirt.Libvirt) error {
				dom, err := lv.DomainLookupByName(vm)
				if golibvirt.IsNotFound(err) {
					return nil
				}
				if err != nil {
					return err
				}
				inst, err := d.readDomain(lv, h.Name, dom)
				if golibvirt.IsNotFound(err) {
					return nil
				}
				answers[i].inst, answers[i].found = inst, err == nil
				return err
			})
		})
	}
	wg.Wait()
	loc := location{unreachable: map[string]error{}}
	for i, a := range answers {
		switch {
		case a.err != nil:
			loc.unreachable[d.hosts[i].Name] = a.err
		case a.found:
			loc.insts = append(loc.insts, a.inst)
		}
	}
	return loc
}

func (d *Driver) migrate(ctx context.Context, req drivers.MigrateRequest, to *hostState, progress func(drivers.MigrationProgress)) (drivers.MigrationResult, error) {
	loc := d.locate(ctx, req.VM)
	if err := ctx.Err(); err != nil {
		return drivers.MigrationResult{}, err
	}
	if loc.settledOn(req.To) {
		d.dropSourceDisks(ctx, req.VM, loc, req.To, req.From)
		return drivers.MigrationResult{AlreadyThere: true}, nil
	}
	if err, down := loc.unreachable[req.To]; down {
		return drivers.MigrationResult{}, fmt.Errorf("%w: target %s does not answer: %v", drivers.ErrUnavailable, req.To, err)
	}

	// A migration of this VM already in flight (started by an earlier Drover process
	// that died, or by an operator): join it when it goes to our target. Its copy on
	// the target may look running already (the finish phase): only the job on the
	// source says it is over.
	for _, i := range loc.insts {
		if !i.outgoing() {
			continue
		}
		if dest := loc.elsewhere(i.host); dest != req.To {
			return drivers.MigrationResult{}, fmt.Errorf("%w: vm is migrating from %s to %s right now (wait for it or abort it with virsh domjobabort)", drivers.ErrRejected, i.host, orUnknown(dest))
		}
		d.log.Info("joining migration in flight", "vm", req.VM, "from", i.host, "to", req.To)
		return d.joinWithDisks(ctx, req, d.byName[i.host], to, progress)
	}
	if tgt, ok := loc.on(req.To); ok && tgt.active() && loc.elsewhere(req.To) != "" {
		res, retry, err := d.onBoth(ctx, req, loc, to)
		if !retry {
			return res, err
		}
		if loc = d.locate(ctx, req.VM); ctx.Err() != nil {
			return drivers.MigrationResult{}, ctx.Err()
		}
	}

	var src *domainInstance
	for k, i := range loc.insts {
		if !i.incoming() && powerState(i) == cluster.PowerRunning && (src == nil || i.host == req.From) {
			src = &loc.insts[k]
		}
	}
	if src == nil {
		if len(loc.insts) > 0 {
			i := loc.insts[0]
			return drivers.MigrationResult{}, fmt.Errorf("%w: vm is %s on %s: live migration needs a running vm", drivers.ErrRejected, powerState(i), i.host)
		}
		if len(loc.unreachable) > 0 {
			return drivers.MigrationResult{}, fmt.Errorf("%w: vm not found on the hosts that answer; not answering: %s", drivers.ErrUnavailable, joinKeys(loc.unreachable))
		}
		return drivers.MigrationResult{}, fmt.Errorf("%w: no host has a domain called %s", drivers.ErrNotFound, req.VM)
	}
	if req.From != "" && src.host != req.From {
		d.log.Warn("vm is not where the caller thinks", "vm", req.VM, "expected_node", req.From, "node", src.host)
	}
	switch {
	case src.infoErr != nil:
		return drivers.MigrationResult{}, fmt.Errorf("%w: cannot read the domain xml: %v", drivers.ErrRejected, src.infoErr)
	case slices.Contains(d.cfg.PinnedVMs, req.VM):
		return drivers.MigrationResult{}, fmt.Errorf("%w: vm is listed in pinned_vms", drivers.ErrRejected)
	case src.info.NotMigratable != "":
		return drivers.MigrationResult{}, fmt.Errorf("%w: vm %s", drivers.ErrRejected, src.info.NotMigratable)
	}
	return d.performWithDisks(ctx, req, d.byName[src.host], to, localOnly(src.disks), progress)
}

// perform runs a peer-to-peer live migration from src to to, copying disks (the
// local ones: storage migration) along: the blocking perform call on a connection of
// its own, progress polled on the host's shared connection, abort on ctx end or
// migration_timeout.
func (d *Driver) perform(ctx context.Context, req drivers.MigrateRequest, src, to *hostState, disks []diskSource, progress func(drivers.MigrationProgress)) (drivers.MigrationResult, error) {
	log := d.log.With("vm", req.VM, "from", src.Name, "to", to.Name)
	c, err := dialConn(ctx, src.uri, d.cfg.ConnectTimeout)
	if err != nil {
		return drivers.MigrationResult{}, fmt.Errorf("%w: source %s: %v", drivers.ErrUnavailable, src.Name, err)
	}
	defer c.close()
	var dom golibvirt.Domain
	if err := c.do(ctx, func(lv *golibvirt.Libvirt) (err error) { dom, err = lv.DomainLookupByName(req.VM); return err }); err != nil {
		return drivers.MigrationResult{}, d.mapError(err, src, to)
	}

	mctx, cancel := context.WithTimeout(ctx, d.cfg.MigrationTimeout)
	defer cancel()
	start := d.now()
	params := []golibvirt.TypedParam{{Field: golibvirt.MigrateParamURI, Value: *golibvirt.NewTypedParamValueString(to.migrationURI)}}
	params, flags := withDisks(params, disks)
	done := make(chan error, 1)
	go func() {
		_, err := c.lv.DomainMigratePerform3Params(dom, golibvirt.OptString{to.peerURI}, params, nil, flags)
		done <- err
	}()
	log.Info("migration started", "peer_uri", to.peerURI, "migration_uri", to.migrationURI)

	var perr error
	aborted := false
	tick := time.NewTicker(d.cfg.PollInterval)
	defer tick.Stop()
	polls := make(chan jobPoll, 1)
	polling := false
wait:
	for {
		select {
		case perr = <-done:
			break wait
		case <-tick.C:
			if !polling {
				polling = true
				d.pollJob(ctx, src, dom, req, start, polls)
			}
		case r := <-polls:
			polling = false
			if r.err == nil && r.active && progress != nil && mctx.Err() == nil {
				progress(r.p)
			}
		case <-mctx.Done():
			aborted = true
			perr = d.abort(src, c, dom, done, log)
			break wait
		}
	}
	wall := d.now().Sub(start)

	// Whatever the perform call said, the truth is where the VM runs now: done
	// when it runs on the target and the source has let go of it.
	vctx, vcancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.CallTimeout)
	defer vcancel()
	loc := d.settle(vctx, req.VM, to.Name)
	if loc.settledOn(to.Name) {
		res, job := d.completedStats(vctx, to, req.VM, wall)
		log.Info("migration done", "duration", res.Duration, "job_time", job, "downtime", res.Downtime, "transferred_mib", res.TransferredMiB)
		return res, nil
	}
	if loc.runningOn(to.Name) {
		return drivers.MigrationResult{}, fmt.Errorf("%w: the vm runs on %s but %s still has it %s after %s: check which one is live",
			drivers.ErrMigrationFailed, to.Name, src.Name, instState(loc, src.Name), d.cfg.CallTimeout)
	}
	if perr == nil {
		return drivers.MigrationResult{}, fmt.Errorf("%w: libvirt reported success but the vm does not run on %s", drivers.ErrMigrationFailed, to.Name)
	}
	stays := fmt.Sprintf("vm stays on %s", src.Name)
	if !loc.runningOn(src.Name) {
		stays = fmt.Sprintf("vm runs on neither %s nor %s now: check it", src.Name, to.Name)
	}
	if aborted {
		if ctx.Err() != nil {
			return drivers.MigrationResult{}, fmt.Errorf("aborted (%s): %w", stays, ctx.Err())
		}
		return drivers.MigrationResult{}, fmt.Errorf("%w: no result after migration_timeout %s, aborted (%s)", drivers.ErrNotConverged, d.cfg.MigrationTimeout, stays)
	}
	return drivers.MigrationResult{}, fmt.Errorf("%w (%s)", d.mapError(perr, src, to), stays)
}

// abort cancels the running migration job on the source and waits for the perform
// call to return. If it does not within call_timeout, its connection is closed (the
// daemon finishes or fails the job on its own).
func (d *Driver) abort(src *hostState, c *conn, dom golibvirt.Domain, done <-chan error, log *slog.Logger) error {
	actx, cancel := context.WithTimeout(context.Background(), d.cfg.CallTimeout)
	defer cancel()
	aerr := src.conn.do(actx, func(lv *golibvirt.Libvirt) error { return lv.DomainAbortJob(dom) })
	log.Info("migration abort requested", "error", aerr)
	select {
	case err := <-done:
		return err
	case <-actx.Done():
		c.nc.Close()
		return <-done
	}
}

// join waits for a migration in flight from src to to (started elsewhere), reporting
// its progress; on ctx end it aborts it.
func (d *Driver) join(ctx context.Context, req drivers.MigrateRequest, src, to *hostState, progress func(drivers.MigrationProgress)) (drivers.MigrationResult, error) {
	start := d.now()
	var dom golibvirt.Domain
	if err := src.conn.do(ctx, func(lv *golibvirt.Libvirt) (err error) { dom, err = lv.DomainLookupByName(req.VM); return err }); err != nil {
		return drivers.MigrationResult{}, d.mapError(err, src, to)
	}
	tick := time.NewTicker(d.cfg.PollInterval)
	defer tick.Stop()
	polls := make(chan jobPoll, 1)
	polling := false
	for {
		var r jobPoll
		select {
		case <-ctx.Done():
			actx, cancel := context.WithTimeout(context.Background(), d.cfg.CallTimeout)
			_ = src.conn.do(actx, func(lv *golibvirt.Libvirt) error { return lv.DomainAbortJob(dom) })
			cancel()
			return drivers.MigrationResult{}, fmt.Errorf("aborted joined migration: %w", ctx.Err())
		case <-tick.C:
			if !polling {
				polling = true
				d.pollJob(ctx, src, dom, req, start, polls)
			}
			continue
		case r = <-polls:
			polling = false
		}
		if r.err == nil && r.active {
			if progress != nil {
				progress(r.p)
			}
			continue
		}
		// A source that answered, even "no such domain", has ended the job; only one
		// that cannot be reached leaves the outcome open.
		reachable := r.err == nil || !errors.Is(r.err, errConnLost) && !errors.Is(r.err, context.DeadlineExceeded)
		loc := d.settle(ctx, req.VM, to.Name)
		if loc.settledOn(to.Name) {
			res, job := d.completedStats(ctx, to, req.VM, d.now().Sub(start))
			// Joined late: libvirt's job time is then the better lower bound.
			res.Duration = max(res.Duration, job)
			d.dropSourceDisks(ctx, req.VM, loc, to.Name, src.Name)
			d.log.Info("joined migration done", "vm", req.VM, "from", src.Name, "to", to.Name, "duration", res.Duration, "job_time", job)
			return res, nil
		}
		if loc.runningOn(to.Name) {
			return drivers.MigrationResult{}, fmt.Errorf("%w: the vm runs on %s but %s still has it %s: check which one is live",
				drivers.ErrMigrationFailed, to.Name, src.Name, instState(loc, src.Name))
		}
		if reachable || loc.runningOn(src.Name) {
			return drivers.MigrationResult{}, fmt.Errorf("%w: the migration in flight from %s ended without moving the vm", drivers.ErrMigrationFailed, src.Name)
		}
		// Source unreachable and the VM not on the target yet: keep waiting.
	}
}

// jobPoll is one reading of a migration's job on its source host.
type jobPoll struct {
	p drivers.MigrationProgress
	// active: the job still runs (p is its progress).
	active bool
	err    error
}

// pollJob reads dom's job on src in a goroutine of its own and sends the reading to
// out (buffered: the goroutine never blocks). libvirt holds such a query until the
// migration's finish phase is over (1.4 s of a 2 s migration in the lab), so the
// waiting loop must not block on it: an abort or a timeout would wait. The read is
// detached from ctx's cancellation because ending a call by context closes the host's
// shared connection under every other caller (an inventory would see the host down);
// call_timeout still bounds it.
func (d *Driver) pollJob(ctx context.Context, src *hostState, dom golibvirt.Domain, req drivers.MigrateRequest, start time.Time, out chan<- jobPoll) {
	ctx = context.WithoutCancel(ctx)
	go func() { out <- d.readJob(ctx, src, dom, req, start) }()
}

// readJob reads the job statistics of dom on src.
func (d *Driver) readJob(ctx context.Context, src *hostState, dom golibvirt.Domain, req drivers.MigrateRequest, start time.Time) jobPoll {
	cctx, cancel := context.WithTimeout(ctx, d.cfg.CallTimeout)
	defer cancel()
	var r jobPoll
	p := drivers.MigrationProgress{VM: req.VM, From: src.Name, To: req.To, Phase: "setup", Elapsed: d.now().Sub(start)}
	r.err = src.conn.do(cctx, func(lv *golibvirt.Libvirt) error {
		typ, params, err := lv.DomainGetJobStats(dom, 0)
		if err != nil {
			return err
		}
		if r.active = jobProgress(typ, params, &p); !r.active {
			return nil
		}
		state, reason, err := lv.DomainGetState(dom, 0)
		if err == nil && golibvirt.DomainState(state) == golibvirt.DomainPaused && golibvirt.DomainPausedReason(reason) == golibvirt.DomainPausedMigration {
			p.Phase = "stopcopy"
		}
		return nil
	})
	r.p = p
	return r
}

// completedStats reads the statistics of the finished incoming migration on the
// target. The result's Duration is wall, the time the migration took as the caller
// waited for it: libvirt's job time on the target (returned as job, 0 when unknown)
// leaves out the target QEMU's start and the finish phase, most of a small VM's
// migration (0.3-1 s of 2 s in the lab), and would make estimates far too hopeful.
func (d *Driver) completedStats(ctx context.Context, to *hostState, vm string, wall time.Duration) (res drivers.MigrationResult, job time.Duration) {
	res.Duration = wall
	_ = to.conn.do(ctx, func(lv *golibvirt.Libvirt) error {
		dom, err := lv.DomainLookupByName(vm)
		if err != nil {
			return err
		}
		// KeepCompleted: reading them must not take them away from the operator's
		// `virsh domjobinfo --completed`.
		typ, params, err := lv.DomainGetJobStats(dom, golibvirt.DomainJobStatsCompleted|golibvirt.DomainJobStatsKeepCompleted)
		if err != nil {
			return err
		}
		job, res.Downtime, res.TransferredMiB, _ = completedJob(typ, params)
		res.DiskMiB = diskMiB(params)
		res.TransferredMiB = max(res.TransferredMiB, res.DiskMiB)
		return nil
	})
	return res, job
}

// mapError turns a libvirt or connection error into a drivers sentinel with a hint.
func (d *Driver) mapError(err error, src, to *hostState) error {
	if errors.Is(err, errConnLost) {
		return fmt.Errorf("%w: lost the connection to %s's libvirtd: %v", drivers.ErrUnavailable, src.Name, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var le golibvirt.Error
	if !errors.As(err, &le) {
		return fmt.Errorf("%w: %v", drivers.ErrMigrationFailed, err)
	}
	msg := strings.TrimSpace(le.Message)
	switch golibvirt.ErrorNumber(le.Code) {
	case golibvirt.ErrNoDomain:
		return fmt.Errorf("%w: libvirt: %s", drivers.ErrNotFound, msg)
	case golibvirt.ErrOperationInvalid, golibvirt.ErrOperationUnsupported, golibvirt.ErrConfigUnsupported,
		golibvirt.ErrArgumentUnsupported, golibvirt.ErrMigrateUnsafe:
		return fmt.Errorf("%w: libvirt: %s", drivers.ErrRejected, msg)
	case golibvirt.ErrOperationAborted:
		return fmt.Errorf("%w: aborted on the host: %s", drivers.ErrMigrationFailed, msg)
	case golibvirt.ErrOperationTimeout:
		return fmt.Errorf("%w: libvirt: %s", drivers.ErrNotConverged, msg)
	case golibvirt.ErrSystemError, golibvirt.ErrRPC, golibvirt.ErrNoConnect, golibvirt.ErrAuthFailed:
		return fmt.Errorf("%w: libvirt: %s (check that %s's libvirtd reaches %s at %s and that its migration port is open: %s)",
			drivers.ErrMigrationFailed, msg, src.Name, to.Name, to.peerURI, to.migrationURI)
	}
	return fmt.Errorf("%w: libvirt: %s", drivers.ErrMigrationFailed, msg)
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown host"
	}
	return s
}

func joinKeys(m map[string]error) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return strings.Join(ks, ", ")
}

// onBoth handles a VM found on the target and on another host with no migration job
// running (a resumed Drover finds what a killed one left). Two cases are certain:
//
//   - the VM runs on the target and the other copy is going away (the source
//     confirming a finished migration): wait until it is gone, then done;
//   - the VM runs on the other host and the target holds a copy that never ran (the
//     incoming domain of a migration that ended without it): destroy that copy and
//     retry (retry = true).
//
// Anything else (both running, neither running) is for a human: an error naming
// both states, and nothing touched.
func (d *Driver) onBoth(ctx context.Context, req drivers.MigrateRequest, loc location, to *hostState) (res drivers.MigrationResult, retry bool, err error) {
	other := loc.elsewhere(req.To)
	start := d.now()
	if loc.runningOn(req.To) {
		if loc = d.settle(ctx, req.VM, req.To); loc.settledOn(req.To) {
			res, _ = d.completedStats(ctx, to, req.VM, d.now().Sub(start))
			d.log.Info("migration found finished on the target", "vm", req.VM, "from", other, "to", req.To)
			d.dropSourceDisks(ctx, req.VM, loc, req.To, other)
			return res, false, nil
		}
		return res, false, fmt.Errorf("%w: the vm runs on %s and is %s on %s with no migration job: check which one is live",
			drivers.ErrMigrationFailed, req.To, instState(loc, other), other)
	}
	tgt, _ := loc.on(req.To)
	if !loc.runningOn(other) || tgt.cpusRun() {
		// The source's job may just be starting or ending: look again before
		// deciding.
		if loc = d.settle(ctx, req.VM, ""); loc.settledOn(req.To) {
			return drivers.MigrationResult{AlreadyThere: true}, false, nil
		}
		if tgt, ok := loc.on(req.To); !ok || !tgt.active() {
			return res, true, nil // the target's copy went away by itself
		}
		if !loc.runningOn(loc.elsewhere(req.To)) {
			return res, false, fmt.Errorf("%w: the vm is %s on %s and %s on %s with no migration job: check which one is live",
				drivers.ErrMigrationFailed, instState(loc, req.To), req.To, instState(loc, loc.elsewhere(req.To)), loc.elsewhere(req.To))
		}
		other = loc.elsewhere(req.To)
	}
	d.log.Warn("destroying the leftover incoming copy of the vm on the target", "vm", req.VM, "node", req.To, "runs_on", other, "state", instState(loc, req.To))
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.CallTimeout)
	defer cancel()
	err = to.conn.do(cctx, func(lv *golibvirt.Libvirt) error {
		dom, err := lv.DomainLookupByName(req.VM)
		if err != nil {
			return err
		}
		// Look once more on the target itself: only a copy that never ran goes.
		state, reason, err := lv.DomainGetState(dom, 0)
		if err != nil {
			return err
		}
		if inst := (domainInstance{state: golibvirt.DomainState(state), reason: reason}); inst.cpusRun() {
			return fmt.Errorf("%w: the copy on %s started running meanwhile", drivers.ErrRejected, req.To)
		}
		return lv.DomainDestroy(dom)
	})
	if err != nil && !golibvirt.IsNotFound(err) {
		return res, false, fmt.Errorf("clean up the leftover copy on %s: %w", req.To, d.mapError(err, d.byName[other], to))
	}
	return res, true, nil
}

// settle looks for the VM while it is active on host and on another host, up to
// call_timeout, and returns the last look ("" = any two hosts). A migration's source
// lets go of the VM a moment after the target runs it; a failed one's target drops
// its copy.
func (d *Driver) settle(ctx context.Context, vm, host string) location {
	deadline := d.now().Add(d.cfg.CallTimeout)
	for {
		loc := d.locate(ctx, vm)
		if !loc.onTwo(host) || ctx.Err() != nil || !d.now().Before(deadline) {
			return loc
		}
		t := time.NewTimer(d.cfg.PollInterval)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// instState describes the VM's instance on host for an error message.
func instState(loc location, host string) string {
	i, ok := loc.on(host)
	if !ok {
		return "absent"
	}
	return stateWords(i)
}
