package sim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/droverhq/drover/drivers"
)

// answerTransport answers every request with a status and body chosen by the
// fuzzer: first (the first request) and then (every later one), up to a few
// requests, then fails like a dead server.
type answerTransport struct {
	first, then []byte
	status      int
	n           atomic.Int32
}

func (a *answerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	n := a.n.Add(1)
	if n > 8 {
		return nil, errors.New("connection refused")
	}
	body := a.then
	if n == 1 {
		body = a.first
	}
	return &http.Response{StatusCode: a.status, Header: http.Header{"X-Sim-Time": {"not a time"}}, Body: io.NopCloser(bytes.NewReader(body)), Request: req}, nil
}

// FuzzDriver_Answers gives the sim driver arbitrary answers from its server, for
// every call the orchestrator makes: the driver must not panic, must fail with one of
// the drivers sentinels (or a context error) rather than anything else, and what it
// returns on success must be sane (a validated inventory, a migration and its
// progress reports without negative or NaN time and memory).
func FuzzDriver_Answers(f *testing.F) {
	ok := func(s string) []byte { return []byte(s) }
	f.Add(uint8(0), uint8(0), ok(`{"nodes":[{"name":"n1","state":"up"}],"vms":[{"name":"v","node":"n1","power":"running"}]}`), ok(``))
	f.Add(uint8(0), uint8(0), ok(`{"nodes":[{"name":"n1","state":"up"}],"vms":[{"name":"v","node":"n2"}]}`), ok(``))
	f.Add(uint8(5), uint8(0), ok(`{"outcome":"started","migration":{"id":"m-1","vm":"v","from":"a","to":"b","phase":"setup","version":1}}`),
		ok(`{"id":"m-1","vm":"v","from":"a","to":"b","phase":"completed","elapsed_ns":-5,"transferred_mib":-1}`))
	f.Add(uint8(5), uint8(0), ok(`{"outcome":"already_there"}`), ok(``))
	f.Add(uint8(5), uint8(0), ok(`{"outcome":"started","migration":{"id":"m-1","vm":"v","from":"a","to":"b","phase":"precopy","version":1}}`),
		ok(`{"id":"m-1","vm":"v","from":"a","to":"b","phase":"failed","error_kind":"not_converged","error":"x"}`))
	f.Add(uint8(4), uint8(0), ok(`{"installed":[{"name":"k","version":"1"}],"reboot_required":true}`), ok(``))
	f.Add(uint8(1), uint8(0), ok(`{"ready":true,"state":"up","boot_id":"b"}`), ok(``))
	f.Add(uint8(3), uint8(6), ok(`{"error":"boom","kind":"unavailable"}`), ok(``))
	f.Add(uint8(7), uint8(4), ok(`{"error":"paused","kind":"rejected","reason":"target_paused"}`), ok(``))
	f.Add(uint8(6), uint8(0), ok(`{"migrations":null,"reboots":{"n1":-1}}`), ok(`[]`))
	statuses := []int{200, 200, 200, 201, 404, 409, 400, 500, 503, 501, 302}
	f.Fuzz(func(t *testing.T, op, status uint8, first, then []byte) {
		tr := &answerTransport{first: first, then: then, status: statuses[int(status)%len(statuses)]}
		d := newDriver("http://sim.test", tr, ClientOptions{Retries: -1})
		defer d.Close()
		ctx := context.Background()
		var err error
		switch op % 11 {
		case 0:
			_, err = d.Inventory(ctx)
		case 1:
			_, err = d.NodeReady(ctx, "n1")
		case 2:
			_, err = d.Node(ctx, "n1")
		case 3:
			_, err = d.Scan(ctx, "n1")
		case 4:
			_, err = d.Install(ctx, "n1")
		case 5:
			var res drivers.MigrationResult
			res, err = d.Migrate(ctx, drivers.MigrateRequest{VM: "v", From: "a", To: "b"}, func(p drivers.MigrationProgress) {
				// The drain scheduler computes rates from these.
				for name, v := range map[string]float64{"transferred": p.TransferredMiB, "remaining": p.RemainingMiB, "elapsed": p.Elapsed.Seconds()} {
					if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
						t.Fatalf("progress with %s %v", name, v)
					}
				}
			})
			if err == nil && !res.AlreadyThere {
				for name, v := range map[string]float64{"duration": res.Duration.Seconds(), "transferred": res.TransferredMiB, "downtime": res.Downtime.Seconds()} {
					if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
						t.Fatalf("migration succeeded with %s %v", name, v)
					}
				}
			}
		case 6:
			_, err = d.Stats(ctx)
		case 7:
			err = d.PauseNode(ctx, "n1", "")
		case 8:
			_, err = d.Migrations(ctx, "v")
		case 9:
			err = d.ShutdownVM(ctx, "v")
		case 10:
			err = d.syncClock(ctx, nil)
		}
		if err == nil {
			return
		}
		for _, s := range []error{drivers.ErrUnavailable, drivers.ErrNotFound, drivers.ErrRejected, ErrBadRequest,
			drivers.ErrMigrationFailed, drivers.ErrNotConverged, context.Canceled, context.DeadlineExceeded} {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("op %d: error maps to no driver sentinel: %v", op%11, err)
	})
}
