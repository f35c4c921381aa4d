package schedule

import (
	"encoding/json"
	"math"
	"slices"
	"time"

	"github.com/droverhq/drover/policies"
	"github.com/droverhq/drover/runs"
)

// Defaults of a node's phases when neither a plan nor measurements exist. Install and
// reboot are policies.EstimateOptions' defaults; a drain without any measurement is
// taken as 5 minutes.
const (
	DefaultDrain   = 5 * time.Minute
	DefaultInstall = 10 * time.Minute
	DefaultReboot  = 5 * time.Minute
)

// Prediction is how long a node is expected to take, in cluster time.
type Prediction struct {
	Duration time.Duration `json:"duration"`
	// Source is "plan" (the run's plan), "measured" (medians of earlier runs, at
	// least one phase measured) or "default".
	Source string `json:"source"`
}

// PredictNode predicts the maintenance time of node: its time in the run's plan
// (runs.Run.Plan, a policies.Plan) when the plan has it; else the sum of the medians of
// its drain, install and reboot times measured in earlier runs (the node's own, else
// the cluster's); else the defaults.
func PredictNode(node string, plan json.RawMessage, timings []runs.Timing) Prediction {
	if len(plan) > 0 {
		var p policies.Plan
		if json.Unmarshal(plan, &p) == nil {
			for _, np := range p.Nodes {
				if np.Node == node && np.Status == policies.NodePlanned && np.End > np.Start {
					return Prediction{Duration: np.End - np.Start, Source: "plan"}
				}
			}
		}
	}
	total, measured := time.Duration(0), false
	for _, k := range []struct {
		kind string
		def  time.Duration
	}{{"drain", DefaultDrain}, {"install", DefaultInstall}, {"reboot", DefaultReboot}} {
		var own, all []float64
		for _, t := range timings {
			if t.Kind != k.kind {
				continue
			}
			all = append(all, t.Seconds)
			if t.Node == node {
				own = append(own, t.Seconds)
			}
		}
		if m, ok := median(own); ok {
			total += seconds(m)
			measured = true
		} else if m, ok := median(all); ok {
			total += seconds(m)
			measured = true
		} else {
			total += k.def
		}
	}
	if measured {
		return Prediction{Duration: total, Source: "measured"}
	}
	return Prediction{Duration: total, Source: "default"}
}

// median of the positive finite values; false when there are none.
func median(vs []float64) (float64, bool) {
	var s []float64
	for _, v := range vs {
		if v > 0 && !math.IsInf(v, 0) && !math.IsNaN(v) {
			s = append(s, v)
		}
	}
	if len(s) == 0 {
		return 0, false
	}
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}

func seconds(s float64) time.Duration {
	if s > float64(math.MaxInt64/int64(time.Second)) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(s * float64(time.Second))
}
