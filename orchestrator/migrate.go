package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/policies"
	"github.com/droverhq/drover/runs"
)

// migJob is one VM to move.
type migJob struct {
	vm   cluster.VM
	from string
	// to is a fixed target; "" lets the placer choose.
	to   string
	kind string
	// seq is the journal intent this job continues (a migration found in flight
	// after a restart); 0 writes a new intent.
	seq     uint64
	attempt int
}

type migResult struct {
	job     migJob
	to      string
	seq     uint64
	res     drivers.MigrationResult
	err     error
	started time.Time
	// timedOut: cancelled by policy.migration_timeout; where the VM ended is what
	// the platform says (the cancel can lose the race with completion).
	timedOut bool
	// streams is the most migrations through its ends at once (limiter.done).
	streams int
}

// chooser picks targets for jobs without a fixed one.
type chooser interface {
	Place(vm cluster.VM, avoid map[string]bool) (string, error)
	Cancel(vm cluster.VM, target string)
}

// migrate moves the jobs' VMs under the run's drain scheduler (policy.drain_scheduler
// within max_parallel_migrations and max_migrations_per_node, shared by every drain
// of the run), retrying each failed VM up to policy.retries_per_node times. It
// returns the VMs that could not be moved, with why. Once a VM has failed for good,
// no new migration starts (the node will fail), but those in flight finish. An error
// return means the run cannot go on (journal not writable) or was interrupted.
func (e *Engine) migrate(ctx context.Context, rs *runState, node string, jobs []migJob, placer chooser) (map[string]error, error) {
	if !rs.limiter.hasLinks() {
		// A resumed run that starts with a failback has not read the links yet.
		if inv, err := e.cfg.Driver.Inventory(ctx); err == nil {
			rs.limiter.setLinks(policies.LinksOf(inv))
		}
	}
	// Fixed targets (failback) reserve their room in the run's placement model, so
	// that drains running meanwhile see it.
	reserver, release := rs.placer.hold()
	defer release()
	if placer == nil {
		placer = noChooser{}
	}
	queue := jobs
	failed := map[string]error{}
	results := make(chan migResult)
	cancels := map[string]context.CancelFunc{}
	migCtx, cancelAll := context.WithCancel(ctx)
	defer cancelAll()
	giveUp := false
	var fatal error
	stopCh, doneCh := rs.stop, ctx.Done()
	var recheck *time.Timer
	defer func() {
		if recheck != nil {
			recheck.Stop()
		}
	}()
	// Migrations we aborted: their outcome is what the platform says afterwards
	// (an abort can lose the race with completion).
	var aborted []migResult
	// boardChanged is closed by the first change of the run's migration board after
	// the last decision (handed out with it, so no release in between is missed).
	boardChanged := rs.limiter.wait()
	reserved := map[string]bool{}
	// Outcomes received and not written yet: they go with the intents of the next
	// decision (one write instead of two), or alone before the loop waits or ends.
	// Nothing is started, and no record is read, between an outcome and its write.
	var unwritten []migrationOutcome
	flush := func() {
		if len(unwritten) == 0 {
			return
		}
		if _, err := e.writeOutcomes(rs, node, unwritten, nil); err != nil && fatal == nil {
			fatal = err
			cancelAll()
		}
		unwritten = nil
	}

	start := func(j migJob, to string) error {
		seq := j.seq
		if seq == 0 {
			seqs, err := e.journal(rs, runs.Entry{Op: runs.OpMigrate, Status: runs.StatusIntent, Node: node, VM: j.vm.Name, From: j.from, To: to, Detail: j.kind})
			if err != nil {
				return err
			}
			seq = seqs[0]
		}
		mctx, cancel := context.WithCancel(migCtx)
		if d := rs.policy.MigrationTimeout.D(); d > 0 {
			// This migration's own limit: when it fires only this one is cancelled.
			mctx, cancel = context.WithTimeout(migCtx, e.clock.WallDuration(d))
		}
		cancels[j.vm.Name] = cancel
		e.emit(Event{Kind: EventMigrationStarted, RunID: rs.id, Node: node, VM: j.vm.Name, From: j.from, To: to})
		e.log.Info("migration started", "run_id", rs.id, "node", node, "vm", j.vm.Name, "from", j.from, "to", to, "attempt", j.attempt+1)
		go func() {
			started := e.clock.Now()
			res, err := e.cfg.Driver.Migrate(mctx, drivers.MigrateRequest{VM: j.vm.Name, From: j.from, To: to}, func(p drivers.MigrationProgress) {
				rs.limiter.progress(e.clock.Now(), j.vm.Name, p)
				e.emit(Event{Kind: EventMigrationProgress, RunID: rs.id, Node: node, VM: j.vm.Name, From: j.from, To: to, Progress: &p})
			})
			timedOut := err != nil && migCtx.Err() == nil && errors.Is(mctx.Err(), context.DeadlineExceeded)
			if timedOut {
				err = fmt.Errorf("cancelled after policy.migration_timeout (%s): %w", rs.policy.MigrationTimeout.D(), err)
			}
			results <- migResult{job: j, to: to, seq: seq, res: res, err: err, started: started, timedOut: timedOut}
		}()
		return nil
	}
	// undo takes back the placement of a migration that will not happen or failed.
	undo := func(j migJob, to string) {
		switch {
		case j.to == "":
			placer.Cancel(j.vm, to)
		case reserved[j.vm.Name]:
			reserver.Cancel(j.vm, to)
		}
		delete(reserved, j.vm.Name)
	}

	for len(queue) > 0 || len(cancels) > 0 {
		stopping := rs.stopped() || ctx.Err() != nil
		if !giveUp && !stopping && fatal == nil && len(queue) > 0 {
			var secs float64
			queue, secs, fatal = e.startJobs(rs, node, queue, placer, reserver, reserved, failed, start, &giveUp, &boardChanged, &unwritten)
			if recheck != nil {
				recheck.Stop()
				recheck = nil
			}
			if secs > 0 && len(queue) > 0 {
				recheck = time.NewTimer(e.clock.WallDuration(time.Duration(max(secs, 0.1) * float64(time.Second))))
			}
		}
		flush()
		var recheckC <-chan time.Time
		if recheck != nil {
			recheckC = recheck.C
		}
		if len(cancels) == 0 {
			if giveUp || stopping || fatal != nil || len(queue) == 0 {
				break
			}
			// Nothing of ours in flight, yet nothing could start: other drains'
			// migrations hold the links. Wait for one of them to finish.
			select {
			case <-boardChanged:
				boardChanged = rs.limiter.wait()
			case <-recheckC:
				recheck = nil
			case <-stopCh:
			case <-doneCh:
			}
			continue
		}
		select {
		case r := <-results:
			delete(cancels, r.job.vm.Name)
			if r.err == nil && !r.res.AlreadyThere {
				// A storage migration's time is mostly its disk copy, another
				// use of the link: it teaches nothing about memory streams.
				mib := r.res.TransferredMiB
				if r.res.DiskMiB > 0 {
					mib = 0
				}
				r.streams = rs.limiter.done(r.job.vm.Name, mib, r.res.Duration.Seconds(), r.started)
			} else {
				rs.limiter.release(r.job.vm.Name)
			}
			if r.err != nil && migCtx.Err() != nil && (errors.Is(r.err, context.Canceled) || errors.Is(r.err, context.DeadlineExceeded)) {
				undo(r.job, r.to)
				aborted = append(aborted, r)
				continue
			}
			if r.timedOut {
				r.err = e.settleTimedOut(ctx, r)
			}
			unwritten = append(unwritten, e.outcomeOf(node, r))
			if r.err == nil {
				delete(reserved, r.job.vm.Name)
				continue
			}
			undo(r.job, r.to)
			if ctx.Err() != nil || rs.stopped() {
				continue
			}
			if why := e.afterFailure(ctx, rs, r); why != nil {
				failed[r.job.vm.Name] = why
				giveUp = true
				continue
			}
			r.job.attempt++
			r.job.seq = 0
			if r.job.attempt > rs.policy.RetriesPerNode {
				failed[r.job.vm.Name] = fmt.Errorf("migrate vm %s: %d attempts failed, last: %w", r.job.vm.Name, r.job.attempt, r.err)
				giveUp = true
				continue
			}
			queue = append(queue, r.job)
		case <-boardChanged:
			// Another migration of the run ended: its bandwidth may be ours now.
			boardChanged = rs.limiter.wait()
		case <-recheckC:
			recheck = nil
		case <-stopCh:
			// Abort what is in flight: each VM stays on its source.
			cancelAll()
			stopCh = nil // a nil channel blocks: do not spin on the closed one
		case <-doneCh:
			cancelAll()
			doneCh = nil
		}
	}
	flush()
	if len(aborted) > 0 && fatal == nil {
		fatal = e.settleAborted(ctx, rs, node, aborted)
	}
	if fatal != nil {
		return failed, fatal
	}
	if err := ctx.Err(); err != nil {
		return failed, fmt.Errorf("%w: %v", ErrInterrupted, err)
	}
	return failed, nil
}

// afterFailure looks at the cluster after a failed migration: the placer learns the
// nodes' states (a target that went down is not chosen again), and a VM that no
// longer runs on its source is not retried (its node went down, or someone stopped
// or moved it): the error says why.
func (e *Engine) afterFailure(ctx context.Context, rs *runState, r migResult) error {
	inv, err := e.cfg.Driver.Inventory(ctx)
	if err != nil {
		return nil // cannot tell: retry as usual
	}
	if p := rs.placer.current(); p != nil {
		for _, n := range inv.Nodes {
			p.SetState(n.Name, n.State, n.Paused)
		}
	}
	vm, ok := inv.VM(r.job.vm.Name)
	switch {
	case !ok:
		return fmt.Errorf("migrate vm %s: the vm is gone from the inventory after: %w", r.job.vm.Name, r.err)
	case !policies.Classify(vm).HoldsState():
		src, _ := inv.Node(r.job.from)
		return fmt.Errorf("migrate vm %s: the vm is %s now (node %s is %s), not retried after: %w", vm.Name, vm.Power, r.job.from, src.State, r.err)
	}
	return nil
}

// startJobs starts what the drain scheduler says may start now and returns the jobs
// left waiting and when to decide again (seconds of cluster time, 0 = when a
// migration ends). Joins (migrations already moving on the platform) start at once.
func (e *Engine) startJobs(rs *runState, node string, queue []migJob, placer chooser, reserver *policies.Placer, reserved map[string]bool, failed map[string]error, start func(migJob, string) error, giveUp *bool, boardChanged *<-chan struct{}, unwritten *[]migrationOutcome) ([]migJob, float64, error) {
	now := e.clock.Now()
	var rest []migJob
	for i, j := range queue {
		if j.seq == 0 {
			rest = append(rest, j)
			continue
		}
		rs.limiter.join(now, j.vm, j.from, j.to)
		if err := start(j, j.to); err != nil {
			rs.limiter.release(j.vm.Name)
			return append(rest, queue[i:]...), 0, err
		}
	}
	if len(rest) == 0 {
		return nil, 0, nil
	}
	byVM := make(map[string]migJob, len(rest))
	djobs := make([]policies.DrainJob, 0, len(rest))
	for _, j := range rest {
		vm := j.vm
		vm.Node = j.from
		byVM[vm.Name] = j
		djobs = append(djobs, policies.DrainJob{VM: vm, To: j.to})
	}
	dec, changed := rs.limiter.decide(now, djobs, placer, rs.limiter.claimedNodes(rs))
	*boardChanged = changed
	done := map[string]bool{}
	var fatal error
	if len(dec.Start) > 0 {
		// The intents of one decision in one write, with the outcomes received
		// since the last write: fewer commits, same order (every intent is on disk
		// before its migration starts, every outcome with its record).
		entries := make([]runs.Entry, 0, len(dec.Start))
		for _, s := range dec.Start {
			j := byVM[s.Job.VM.Name]
			entries = append(entries, runs.Entry{Op: runs.OpMigrate, Status: runs.StatusIntent, Node: node, VM: j.vm.Name, From: j.from, To: s.To, Detail: j.kind})
		}
		seqs, err := e.writeOutcomes(rs, node, *unwritten, entries)
		*unwritten = nil
		if err != nil {
			fatal = err
		}
		for i, s := range dec.Start {
			if err == nil {
				j := byVM[s.Job.VM.Name]
				j.seq = seqs[i]
				byVM[s.Job.VM.Name] = j
			}
		}
	}
	for _, s := range dec.Start {
		j := byVM[s.Job.VM.Name]
		done[j.vm.Name] = true
		if fatal != nil {
			// The journal failed: take back what was decided and not started.
			rs.limiter.release(j.vm.Name)
			if j.to == "" {
				placer.Cancel(j.vm, s.To)
			}
			done[j.vm.Name] = false
			continue
		}
		if j.to != "" && reserver != nil && reserver.PlaceOn(s.Job.VM, j.to) == nil {
			reserved[j.vm.Name] = true
		}
		if s.Hopeless {
			e.log.Warn("vm is not predicted to converge even alone on the link; starting it with the link to itself",
				"run_id", rs.id, "vm", j.vm.Name, "from", j.from, "to", s.To, "dirty_mib_s", j.vm.DirtyMiBs)
		}
		if err := start(j, s.To); err != nil {
			rs.limiter.release(j.vm.Name)
			if j.to == "" {
				placer.Cancel(j.vm, s.To)
			} else if reserved[j.vm.Name] {
				reserver.Cancel(s.Job.VM, j.to)
				delete(reserved, j.vm.Name)
			}
			done[j.vm.Name] = false
			fatal = err
		}
	}
	for _, nt := range dec.NoTarget {
		failed[nt.Job.VM.Name] = fmt.Errorf("no target for vm %s: %w", nt.Job.VM.Name, nt.Err)
		done[nt.Job.VM.Name] = true
		*giveUp = true
	}
	left := rest[:0]
	for _, j := range rest {
		if !done[j.vm.Name] {
			left = append(left, j)
		}
	}
	return left, dec.RecheckSeconds, fatal
}

// noChooser is the chooser of migrations whose targets are all fixed.
type noChooser struct{}

func (noChooser) Place(vm cluster.VM, _ map[string]bool) (string, error) {
	return "", fmt.Errorf("place vm %s: no placement for this migration", vm.Name)
}

func (noChooser) Cancel(cluster.VM, string) {}

// settleAborted records the outcome of aborted migrations as the platform reports
// it. What it cannot tell (the platform does not answer, or the migration still
// runs) stays an open intent, for the next run to reconcile.
func (e *Engine) settleAborted(ctx context.Context, rs *runState, node string, aborted []migResult) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	inv, err := e.cfg.Driver.Inventory(sctx)
	if err != nil {
		e.log.Warn("cannot tell where aborted migrations ended; the next run reconciles them", "run_id", rs.id, "error", err)
		return nil
	}
	for _, r := range aborted {
		vm, ok := inv.VM(r.job.vm.Name)
		switch {
		case ok && vm.Node == r.to:
			r.err = nil
		case ok && vm.Node == r.job.from && vm.MigratingTo == "":
			r.err = fmt.Errorf("aborted: %w", r.err)
		default:
			continue
		}
		if _, err := e.writeOutcomes(rs, node, []migrationOutcome{e.outcomeOf(node, r)}, nil); err != nil {
			return err
		}
	}
	return nil
}

// settleTimedOut asks the platform where a migration cancelled by
// policy.migration_timeout left its VM: on the target, the migration completed after
// all (nil); otherwise it failed with the timeout's error.
func (e *Engine) settleTimedOut(ctx context.Context, r migResult) error {
	inv, err := e.cfg.Driver.Inventory(ctx)
	if err != nil {
		return r.err
	}
	if vm, ok := inv.VM(r.job.vm.Name); ok && vm.Node == r.to && vm.MigratingTo == "" {
		return nil
	}
	return r.err
}

// migrationOutcome is a migration's outcome as it is written: its journal entry, its
// record, and the error noted on the node (none for a success or a cancel).
type migrationOutcome struct {
	r     migResult
	m     runs.Migration
	entry runs.Entry
	note  string
}

func (e *Engine) outcomeOf(node string, r migResult) migrationOutcome {
	status, detail := runs.StatusDone, r.job.kind
	m := runs.Migration{
		VM: r.job.vm.Name, From: r.job.from, To: r.to, Kind: r.job.kind,
		OK: r.err == nil, Attempt: r.job.attempt + 1, StartedAt: r.started,
		Aborted:        r.err != nil && errors.Is(r.err, context.Canceled),
		TransferredMiB: r.res.TransferredMiB, DiskMiB: r.res.DiskMiB, Streams: r.streams,
	}
	m.Seconds = r.res.Duration.Seconds()
	if m.Seconds == 0 {
		m.Seconds = max(0, e.clock.Now().Sub(r.started).Seconds())
	}
	o := migrationOutcome{r: r}
	if r.err != nil {
		status, detail = runs.StatusFailed, r.err.Error()
		m.Error = r.err.Error()
		m.Seconds = max(0, e.clock.Now().Sub(r.started).Seconds())
		if !errors.Is(r.err, context.Canceled) {
			o.note = m.Error
		}
	}
	o.m = m
	o.entry = runs.Entry{Op: runs.OpMigrate, Status: status, Ref: r.seq, Node: node, VM: m.VM, From: m.From, To: m.To, Detail: detail}
	return o
}

// writeOutcomes writes migration outcomes, each with its migration record (and the
// error noted on the node), followed by intents (the next decision's, may be none),
// in one transaction; it returns the intents' sequence numbers. An outcome is never
// separated from its record; an intent is on disk before its migration starts.
func (e *Engine) writeOutcomes(rs *runState, node string, outs []migrationOutcome, intents []runs.Entry) ([]uint64, error) {
	if len(outs) == 0 {
		return e.journal(rs, intents...)
	}
	entries := make([]runs.Entry, 0, len(outs)+len(intents))
	migs := make([]runs.Migration, 0, len(outs))
	var notes []string
	for _, o := range outs {
		entries = append(entries, o.entry)
		migs = append(migs, o.m)
		if o.note != "" {
			notes = append(notes, o.note)
		}
	}
	var fn func(*runs.NodeRecord)
	if len(notes) > 0 {
		fn = func(rec *runs.NodeRecord) { rec.Errors = append(rec.Errors, notes...) }
	}
	seqs, err := e.write(rs, node, fn, migs, append(entries, intents...)...)
	if err != nil {
		return nil, err
	}
	for _, o := range outs {
		m := o.m
		switch {
		case m.Aborted:
			e.log.Info("migration aborted", "run_id", rs.id, "node", node, "vm", m.VM, "from", m.From, "to", m.To, "error", o.r.err)
			e.emit(Event{Kind: EventMigrationAborted, RunID: rs.id, Node: node, VM: m.VM, From: m.From, To: m.To, Message: m.Error, Seconds: m.Seconds})
		case o.r.err != nil:
			e.log.Warn("migration failed", "run_id", rs.id, "node", node, "vm", m.VM, "from", m.From, "to", m.To, "attempt", m.Attempt, "error", o.r.err)
			e.emit(Event{Kind: EventMigrationFailed, RunID: rs.id, Node: node, VM: m.VM, From: m.From, To: m.To, Message: m.Error, Seconds: m.Seconds})
		default:
			e.log.Info("migration done", "run_id", rs.id, "node", node, "vm", m.VM, "from", m.From, "to", m.To, "seconds", m.Seconds)
			e.emit(Event{Kind: EventMigrationDone, RunID: rs.id, Node: node, VM: m.VM, From: m.From, To: m.To, Seconds: m.Seconds})
		}
	}
	return seqs[len(outs):], nil
}

// reconcileMigrations settles the migration intents of node that have no outcome,
// against the live inventory: done if the VM is on the target, joined if it is still
// moving there, failed if it is still on its source and not moving. It returns jobs
// that join migrations in flight.
func (e *Engine) reconcileMigrations(rs *runState, inv cluster.Inventory, node string) ([]migJob, error) {
	open, err := e.cfg.Store.OpenIntents(rs.id)
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	var joins []migJob
	for _, in := range open {
		if in.Op != runs.OpMigrate || in.Node != node {
			continue
		}
		vm, ok := inv.VM(in.VM)
		switch {
		case ok && vm.Node == in.To:
			e.log.Info("migration finished while drover was away", "run_id", rs.id, "vm", in.VM, "to", in.To)
			m := runs.Migration{VM: in.VM, From: in.From, To: in.To, Kind: in.Detail, OK: true, Attempt: 1, StartedAt: in.At,
				Seconds: max(0, e.clock.Now().Sub(in.At).Seconds())}
			if _, err := e.write(rs, node, func(r *runs.NodeRecord) {
				r.Notes = append(r.Notes, fmt.Sprintf("migration of %s to %s completed while drover was not running; its time is an upper bound", in.VM, in.To))
			}, []runs.Migration{m}, runs.Entry{Op: runs.OpMigrate, Status: runs.StatusDone, Ref: in.Seq, Node: node, VM: in.VM, From: in.From, To: in.To, Detail: "completed while drover was away"}); err != nil {
				return nil, err
			}
		case ok && vm.Node == in.From && vm.MigratingTo == in.To:
			joins = append(joins, migJob{vm: vm, from: in.From, to: in.To, kind: in.Detail, seq: in.Seq})
		default:
			where := "gone from the inventory"
			if ok {
				where = "on " + vm.Node
			}
			if _, err := e.journal(rs, runs.Entry{Op: runs.OpMigrate, Status: runs.StatusFailed, Ref: in.Seq, Node: node, VM: in.VM, From: in.From, To: in.To,
				Detail: "interrupted: vm is " + where + " and not moving"}); err != nil {
				return nil, err
			}
		}
	}
	return joins, nil
}
