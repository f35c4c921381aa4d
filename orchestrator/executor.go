package orchestrator

import (
	"context"
	"errors"
	"fmt"

	"github.com/droverhq/drover/runs"
)

// This file is the executor: the only code that writes a run's state. An action is
// journaled as an intent, performed, and its outcome written together with the node
// record change it implies, in one transaction (act); a state change is written with
// its journal entry, through the node's machine (transition).

// act is the executor of one action: it journals the intent, runs do, and writes the
// outcome together with the change of the node record it implies (record, may be nil)
// in one transaction, so that no crash can separate them. An intent for the same
// action left open by an interrupted run is reused rather than written again. A
// non-empty key names an action that must never run twice (a reboot, a hook): its
// outcome is kept in the node record, and a resumed run finds it there and returns it
// without acting again.
func (e *Engine) act(ctx context.Context, rs *runState, intent runs.Entry, key string, do func(context.Context) error, record func(r *runs.NodeRecord, actErr error)) error {
	if key != "" {
		if o, ok := rs.node(intent.Node).Outcomes[key]; ok {
			if o.Error != "" {
				return errors.New(o.Error)
			}
			return nil
		}
	}
	seq, err := e.openIntent(rs, intent)
	if err != nil {
		return err
	}
	if seq == 0 {
		intent.Status = runs.StatusIntent
		seqs, err := e.journal(rs, intent)
		if err != nil {
			return err
		}
		seq = seqs[0]
	}
	actErr := do(ctx)
	if ctx.Err() != nil {
		// Leave the intent open: the next run reconciles it.
		return fmt.Errorf("%w: %v", ErrInterrupted, ctx.Err())
	}
	if err := e.closeIntent(rs, intent, seq, key, actErr, "", record); err != nil {
		return err
	}
	return actErr
}

// closeIntent writes the outcome of intent seq (actErr nil: done) with its record
// change in one transaction; detail overrides the outcome's detail when not empty.
func (e *Engine) closeIntent(rs *runState, intent runs.Entry, seq uint64, key string, actErr error, detail string, record func(*runs.NodeRecord, error)) error {
	out := intent
	out.Ref, out.Status = seq, runs.StatusDone
	if actErr != nil {
		out.Status, out.Detail = runs.StatusFailed, actErr.Error()
	}
	if detail != "" {
		out.Detail = detail
	}
	_, err := e.persist(rs, intent.Node, func(r *runs.NodeRecord) {
		if key != "" {
			if r.Outcomes == nil {
				r.Outcomes = map[string]runs.Outcome{}
			}
			o := runs.Outcome{Seq: seq}
			if actErr != nil {
				o.Error = actErr.Error()
			}
			r.Outcomes[key] = o
		}
		if record != nil {
			record(r, actErr)
		}
	}, out)
	return err
}

// openIntent finds an open intent of the same op on the same node (and VM).
func (e *Engine) openIntent(rs *runState, want runs.Entry) (uint64, error) {
	open, err := e.cfg.Store.OpenIntents(rs.id)
	if err != nil {
		return 0, fmt.Errorf("read journal: %w", err)
	}
	for _, in := range open {
		if in.Op == want.Op && in.Node == want.Node && in.VM == want.VM {
			return in.Seq, nil
		}
	}
	return 0, nil
}

// settleIntent closes an open intent whose action is found done after a restart
// (the process died between the action and its outcome), with its record change, so
// that the journal says what happened and no later step mistakes it for an action
// still to do.
func (e *Engine) settleIntent(rs *runState, want runs.Entry, key, detail string, record func(*runs.NodeRecord, error)) error {
	seq, err := e.openIntent(rs, want)
	if err != nil || seq == 0 {
		return err
	}
	return e.closeIntent(rs, want, seq, key, nil, detail, record)
}

// persist applies fn to a node's record and writes it, with optional journal
// entries, in one transaction; the in-memory copy changes only if the write
// succeeds. With node "" it writes the entries alone.
func (e *Engine) persist(rs *runState, node string, fn func(*runs.NodeRecord), entries ...runs.Entry) ([]uint64, error) {
	return e.write(rs, node, fn, nil, entries...)
}

// write is persist that also adds migrations to the node (migs), in the same
// transaction. The store keeps a run's migrations apart from its node record (a
// record then stays small however many VMs its node moves); the in-memory record
// keeps them all.
func (e *Engine) write(rs *runState, node string, fn func(*runs.NodeRecord), migs []runs.Migration, entries ...runs.Entry) ([]uint64, error) {
	var seqs []uint64
	var updated runs.NodeRecord
	var apart, recordAsIs bool
	err := e.cfg.Store.Update(func(tx *runs.Tx) error {
		seqs = seqs[:0]
		for _, en := range entries {
			if en.At.IsZero() {
				en.At = e.clock.Now()
			}
			seq, err := tx.Append(rs.id, en)
			if err != nil {
				return err
			}
			seqs = append(seqs, seq)
		}
		if node == "" {
			return nil
		}
		for _, m := range migs {
			if err := tx.AppendMigration(rs.id, node, m); err != nil {
				return err
			}
		}
		apart = tx.MigrationsApart(rs.id)
		if recordAsIs = apart && fn == nil && len(migs) > 0; recordAsIs {
			// Only migrations added: the record itself is not rewritten.
			return nil
		}
		return tx.UpdateNode(rs.id, node, func(r *runs.NodeRecord) error {
			if fn != nil {
				fn(r)
			}
			updated = *r
			return nil
		})
	})
	if err != nil && node == "" {
		return nil, fmt.Errorf("write journal: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("write state of node %s: %w", node, err)
	}
	if node != "" {
		rs.mu.Lock()
		if recordAsIs {
			updated = rs.nodes[node]
		}
		if apart {
			prev := rs.nodes[node].Migrations
			updated.Migrations = append(prev[:len(prev):len(prev)], migs...)
		}
		rs.nodes[node] = updated
		rs.mu.Unlock()
	}
	return seqs, nil
}

// journal writes entries without changing a node record.
func (e *Engine) journal(rs *runState, entries ...runs.Entry) ([]uint64, error) {
	return e.persist(rs, "", nil, entries...)
}

// transition moves a node to its next state, closing the phase it leaves and
// opening the next one, in one write.
func (e *Engine) transition(rs *runState, node, event string, fn func(*runs.NodeRecord)) error {
	now := e.clock.Now()
	cur := rs.machine(node).current()
	next, err := rs.machine(node).fire(event, func(next string) error {
		_, err := e.persist(rs, node, func(r *runs.NodeRecord) {
			if k := len(r.Phases); k > 0 && r.Phases[k-1].Name == r.State {
				// The start comes back from the state file without its monotonic
				// reading: a stepped wall clock can make the span negative, which
				// readers of timings take as "not measured".
				r.Phases[k-1].Seconds = max(0, now.Sub(r.Phases[k-1].Start).Seconds())
			}
			if r.State == NodeQueued && r.StartedAt.IsZero() && !NodeTerminal(next) {
				r.StartedAt = now
			}
			r.State = next
			if NodeTerminal(next) {
				r.FinishedAt = now
			} else {
				r.Phases = append(r.Phases, runs.Phase{Name: next, Start: now})
			}
			if fn != nil {
				fn(r)
			}
		}, runs.Entry{Op: runs.OpState, Status: runs.StatusEvent, Node: node, Detail: cur + " -> " + next})
		return err
	})
	if err != nil {
		return err
	}
	e.log.Info("node state", "run_id", rs.id, "node", node, "from", cur, "to", next)
	e.emit(Event{Kind: EventNodeState, RunID: rs.id, Node: node, State: next, Message: rs.node(node).Failure})
	return nil
}
