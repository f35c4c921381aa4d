package runs

import (
	"fmt"
	"time"
)

// ScheduleSwitch is the daemon's pause switch of one cluster's schedule, as last set
// through its API. It lives in the state file so that a restart of the daemon (or of
// its host) does not silently re-arm a paused schedule.
type ScheduleSwitch struct {
	Paused bool      `json:"paused"`
	At     time.Time `json:"at"`
}

// ScheduleSwitch returns the cluster's stored pause switch; ok is false when the API
// never set it (the config's schedule.paused applies).
func (t *Tx) ScheduleSwitch(cluster string) (sw ScheduleSwitch, ok bool, err error) {
	ok, err = getJSON(t.kv, bk(bucketSettings), "schedule/"+cluster, &sw)
	if err != nil {
		return sw, ok, fmt.Errorf("read the schedule switch of cluster %s: %w", cluster, err)
	}
	return sw, ok, nil
}

// SetScheduleSwitch stores the cluster's pause switch.
func (t *Tx) SetScheduleSwitch(cluster string, sw ScheduleSwitch) error {
	if err := putJSON(t.kv, bk(bucketSettings), "schedule/"+cluster, sw); err != nil {
		return fmt.Errorf("write the schedule switch of cluster %s: %w", cluster, err)
	}
	return nil
}

// ScheduleSwitch returns the cluster's stored pause switch (see Tx.ScheduleSwitch).
func (s *Store) ScheduleSwitch(cluster string) (sw ScheduleSwitch, ok bool, err error) {
	err = s.View(func(tx *Tx) error { sw, ok, err = tx.ScheduleSwitch(cluster); return err })
	return sw, ok, err
}

// SetScheduleSwitch stores the cluster's pause switch in its own transaction.
func (s *Store) SetScheduleSwitch(cluster string, sw ScheduleSwitch) error {
	return s.Update(func(tx *Tx) error { return tx.SetScheduleSwitch(cluster, sw) })
}
