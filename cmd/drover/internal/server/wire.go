package server

import (
	"net/http"
	"time"

	"github.com/droverhq/drover/cmd/drover/internal/wire"
	"github.com/droverhq/drover/orchestrator"
)

// Wire types of the API (package wire), named here as the server uses them.
type (
	ErrorBody       = wire.ErrorBody
	RunSummary      = wire.RunSummary
	ClusterInfo     = wire.ClusterInfo
	PolicyOverrides = wire.PolicyOverrides
	StartRequest    = wire.StartRequest
	RunAction       = wire.RunAction
	PauseState      = wire.PauseState
	Preview         = wire.Preview
	NodeSlot        = wire.NodeSlot
)

// APIPrefix is the API's path prefix.
const APIPrefix = wire.APIPrefix

// apply sets the given keys on p; a bad duration is a BodyError naming its field.
func applyOverrides(o wire.PolicyOverrides, p *orchestrator.Policy) error {
	set := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	setS := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&p.MaxParallelMigrations, o.MaxParallelMigrations)
	set(&p.MaxMigrationsPerNode, o.MaxMigrationsPerNode)
	set(&p.MaxParallelNodes, o.MaxParallelNodes)
	setS(&p.DrainScheduler, o.DrainScheduler)
	set(&p.RetriesPerNode, o.RetriesPerNode)
	set(&p.MaxFailedNodes, o.MaxFailedNodes)
	set(&p.ReserveNodes, o.ReserveNodes)
	setS(&p.Failback, o.Failback)
	setS(&p.NodeOrder, o.NodeOrder)
	setS(&p.OrderLabel, o.OrderLabel)
	setS(&p.NonMigratable, o.NonMigratable)
	for _, d := range []struct {
		field string
		v     *string
		dst   *orchestrator.Duration
	}{{"policy.reboot_timeout", o.RebootTimeout, &p.RebootTimeout}, {"policy.drain_timeout", o.DrainTimeout, &p.DrainTimeout}} {
		if d.v == nil {
			continue
		}
		v, err := time.ParseDuration(*d.v)
		if err != nil {
			return &BodyError{Status: http.StatusBadRequest, Field: d.field, Msg: `want a duration such as "15m" or "1h30m"`}
		}
		*d.dst = orchestrator.Duration(v)
	}
	if o.Nodes != nil {
		p.Nodes = o.Nodes
	}
	if o.OverrideReserve != nil {
		p.OverrideReserve = *o.OverrideReserve
	}
	if o.Force != nil {
		p.Force = *o.Force
	}
	if o.Canary != nil {
		p.Canary = *o.Canary
	}
	return nil
}
