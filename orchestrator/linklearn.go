package orchestrator

import (
	"github.com/droverhq/drover/policies"
	"github.com/droverhq/drover/runs"
)

// linkHistory is the link samples of the cluster's past migrations (the state
// file's timings); none when they cannot be read: the scheduler then starts as it
// would on a new cluster.
func (e *Engine) linkHistory() []policies.LinkSample {
	ts, err := e.cfg.Store.Timings(e.cfg.Cluster)
	if err != nil {
		e.log.Warn("past migration timings unreadable, the drain scheduler starts without them", "error", err)
		return nil
	}
	return LinkSamples(ts)
}

// LinkSamples reads the link samples out of timings: the migrations recorded with
// their target and concurrency.
func LinkSamples(ts []runs.Timing) []policies.LinkSample {
	var out []policies.LinkSample
	for _, t := range ts {
		if t.Kind == "migration" && t.To != "" && t.Streams > 0 && t.MiB > 0 && t.Seconds > 0 {
			out = append(out, policies.LinkSample{From: t.Node, To: t.To, MiB: t.MiB, Seconds: t.Seconds, Streams: t.Streams, At: t.At})
		}
	}
	return out
}
