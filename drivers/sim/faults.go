package sim

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/droverhq/drover/drivers"
)

// FaultKind names one kind of injected fault. See the package doc for each.
type FaultKind string

// The fault kinds.
const (
	FaultMigrationFail FaultKind = "migration_fail"
	FaultNodeNoReturn  FaultKind = "node_no_return"
	FaultInstallFail   FaultKind = "install_fail"
	FaultAPIErrors     FaultKind = "api_errors"
	FaultAPIHang       FaultKind = "api_hang"
	FaultNodeCrash     FaultKind = "node_crash"
)

// Fault is one entry of the cluster file's faults: list, also accepted at run
// time by Model.InjectFault and the admin endpoint. Which fields a kind uses is in
// the package doc; a field a kind does not use is an error.
type Fault struct {
	Kind FaultKind `json:"kind"`
	// VM limits migration_fail to one VM ("" = any VM).
	VM string `json:"vm,omitempty"`
	// Node is the node of node_no_return, install_fail and node_crash.
	Node string `json:"node,omitempty"`
	// Update limits install_fail to one update ("" = all pending updates).
	Update string `json:"update,omitempty"`
	// Path limits api_errors and api_hang to request paths with this prefix.
	Path string `json:"path,omitempty"`
	// Times: the fault hits the first Times matching operations.
	Times int `json:"times,omitempty"`
	// Always: the fault hits every matching operation.
	Always bool `json:"always,omitempty"`
	// Probability: the fault hits each matching operation with this probability,
	// drawn from the fault's own stream of the cluster seed.
	Probability float64 `json:"probability,omitempty"`
	// Status is the HTTP status of api_errors (default 503).
	Status int `json:"status,omitempty"`
	// Burst and AfterRequests: requests AfterRequests+1 .. AfterRequests+Burst
	// (counted among the matching ones) are hit.
	Burst         int `json:"burst,omitempty"`
	AfterRequests int `json:"after_requests,omitempty"`
	// DelayMs is the wall-clock delay of api_hang.
	DelayMs int `json:"delay_ms,omitempty"`
	// AtSeconds is the model time (seconds after the model start) of node_crash.
	AtSeconds float64 `json:"at_seconds,omitempty"`
	// AfterApply: api_errors answers 5xx after the request took effect (the
	// ambiguous failure that makes idempotency matter).
	AfterApply bool `json:"after_apply,omitempty"`
}

// faultFields lists the optional fields each kind accepts (kind is always used).
var faultFields = map[FaultKind][]string{
	FaultMigrationFail: {"vm", "times", "always", "probability"},
	FaultNodeNoReturn:  {"node", "times", "always"},
	FaultInstallFail:   {"node", "update", "times", "always"},
	FaultAPIErrors:     {"path", "probability", "status", "burst", "after_requests", "after_apply"},
	FaultAPIHang:       {"path", "probability", "burst", "after_requests", "delay_ms"},
	FaultNodeCrash:     {"node", "at_seconds"},
}

// setFields returns the keys of the non-zero fields of f.
func (f *Fault) setFields() []string {
	var out []string
	add := func(set bool, key string) {
		if set {
			out = append(out, key)
		}
	}
	add(f.VM != "", "vm")
	add(f.Node != "", "node")
	add(f.Update != "", "update")
	add(f.Path != "", "path")
	add(f.Times != 0, "times")
	add(f.Always, "always")
	add(f.Probability != 0, "probability")
	add(f.Status != 0, "status")
	add(f.Burst != 0, "burst")
	add(f.AfterRequests != 0, "after_requests")
	add(f.DelayMs != 0, "delay_ms")
	add(f.AtSeconds != 0, "at_seconds")
	add(f.AfterApply, "after_apply")
	return out
}

// validate checks f; field is its path ("faults[3]"). nodes and vms are the
// names that exist.
func (f *Fault) validate(field string, nodes map[string]*NodeSpec, vms map[string]bool) []error {
	var errs []error
	add := func(key, fix, problem string, args ...any) {
		errs = append(errs, drivers.Fieldf(field+"."+key, fix, problem, args...))
	}
	allowed, ok := faultFields[f.Kind]
	if !ok {
		kinds := make([]string, 0, len(faultFields))
		for k := range faultFields {
			kinds = append(kinds, string(k))
		}
		add("kind", "use one of "+strings.Join(sortedStrings(kinds), ", "), "unknown fault kind %q", f.Kind)
		return errs
	}
	for _, key := range f.setFields() {
		if !contains(allowed, key) {
			add(key, "remove it; kind "+string(f.Kind)+" uses "+strings.Join(allowed, ", "), "not used by kind %s", f.Kind)
		}
	}
	if f.Times < 0 || f.Times > 1<<20 {
		add("times", "give a count >= 1", "must be >= 0, got %d", f.Times)
	}
	if !finite(f.Probability) || f.Probability < 0 || f.Probability > 1 {
		add("probability", "give a probability between 0 and 1", "out of range: %v", f.Probability)
	}
	if f.Burst < 0 || f.AfterRequests < 0 || f.Burst > 1<<20 || f.AfterRequests > 1<<30 {
		add("burst", "give non-negative counts", "burst %d / after_requests %d out of range", f.Burst, f.AfterRequests)
	}
	if f.AfterRequests != 0 && f.Burst == 0 {
		add("after_requests", "give burst: N as well", "set without burst")
	}
	needNode := func() {
		if f.Node == "" {
			add("node", "name the node the fault hits", "is required for kind %s", f.Kind)
		} else if nodes != nil && nodes[f.Node] == nil {
			add("node", "name a node of nodes:", "unknown node %q", f.Node)
		}
	}
	switch f.Kind {
	case FaultMigrationFail:
		n := 0
		for _, set := range []bool{f.Times > 0, f.Always, f.Probability > 0} {
			if set {
				n++
			}
		}
		if n != 1 {
			add("times", "give exactly one of times: N, always: true or probability: P", "%d of times/always/probability set", n)
		}
		if f.VM != "" && vms != nil && !vms[f.VM] {
			add("vm", "name a vm of vms:", "unknown vm %q", f.VM)
		}
	case FaultNodeNoReturn, FaultInstallFail:
		needNode()
		if f.Times > 0 && f.Always {
			add("always", "give times: N or always: true, not both", "set with times")
		}
	case FaultAPIErrors, FaultAPIHang:
		if f.Probability == 0 && f.Burst == 0 {
			add("probability", "give probability: P and/or burst: N", "neither probability nor burst set")
		}
		if f.Path != "" && !strings.HasPrefix(f.Path, "/") {
			add("path", "give a path prefix such as /v1/migrations", "must start with /, got %q", f.Path)
		}
		if f.Kind == FaultAPIErrors && f.Status != 0 && (f.Status < 500 || f.Status > 599) {
			add("status", "give a 5xx status, e.g. 503", "must be 500..599, got %d", f.Status)
		}
		if f.Kind == FaultAPIHang && (f.DelayMs <= 0 || f.DelayMs > 600000) {
			add("delay_ms", "give the hang in wall-clock milliseconds, e.g. 5000", "must be 1..600000, got %d", f.DelayMs)
		}
	case FaultNodeCrash:
		needNode()
		if !finite(f.AtSeconds) || f.AtSeconds < 0 || f.AtSeconds > 1e9 {
			add("at_seconds", "give seconds after the model start, e.g. 300", "must be >= 0, got %v", f.AtSeconds)
		}
	}
	return errs
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// faultState is a fault plus what it has done so far.
type faultState struct {
	Fault
	// hits counts the operations the fault hit, matched the ones it saw.
	hits, matched int
	// fired is set once a node_crash has happened.
	fired bool
	// rng is the fault's own random stream, so that e.g. the number of API
	// requests does not change which migrations fail.
	rng *rand.Rand
}

func newFaultState(f Fault, seed uint64, index int) *faultState {
	if f.Kind == FaultAPIErrors && f.Status == 0 {
		f.Status = 503
	}
	if (f.Kind == FaultNodeNoReturn || f.Kind == FaultInstallFail) && f.Times == 0 && !f.Always {
		f.Times = 1
	}
	return &faultState{Fault: f, rng: rand.New(rand.NewPCG(seed, 0x5eed0000+uint64(index)))}
}

// countedHit decides a times/always/probability fault for one matching operation.
func (fs *faultState) countedHit() bool {
	fs.matched++
	hit := false
	switch {
	case fs.Always:
		hit = true
	case fs.Times > 0:
		hit = fs.hits < fs.Times
	case fs.Probability > 0:
		hit = fs.rng.Float64() < fs.Probability
	}
	if hit {
		fs.hits++
	}
	return hit
}

// requestHit decides an api_errors/api_hang fault for one matching request.
func (fs *faultState) requestHit() bool {
	fs.matched++
	hit := fs.Burst > 0 && fs.matched > fs.AfterRequests && fs.matched <= fs.AfterRequests+fs.Burst
	// Draw even when the burst already hit, so the stream does not depend on it.
	if fs.Probability > 0 && fs.rng.Float64() < fs.Probability {
		hit = true
	}
	if hit {
		fs.hits++
	}
	return hit
}

// RequestFault is what the API faults decided for one request.
type RequestFault struct {
	// Status is the 5xx to answer with, 0 for none.
	Status int
	// AfterApply: answer Status only after the request took effect.
	AfterApply bool
	// Delay is a wall-clock hang before the request is handled.
	Delay time.Duration
}

// String describes the fault for error bodies and logs.
func (r RequestFault) String() string {
	return fmt.Sprintf("injected api fault (status %d, delay %s, after_apply %t)", r.Status, r.Delay, r.AfterApply)
}
