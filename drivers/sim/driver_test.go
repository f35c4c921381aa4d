package sim

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
)

const testCluster = `
seed: 3
nodes:
  - {name: n1, memory_mib: 131072, cpus: 16, reboot_seconds: 120, updates: [{name: kernel, version: 6.1.0-31}, {name: tzdata, reboot: false}]}
  - {name: n2, memory_mib: 131072, cpus: 16}
  - {name: n3, memory_mib: 131072, cpus: 16, paused: true}
vms:
  - {name: web-1, node: n1, memory_mib: 4096, dirty_mib_s: 20}
  - {name: big, node: n1, memory_mib: 65536, dirty_mib_s: 10}
  - {name: off, node: n2, memory_mib: 1024, power: stopped}
`

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func newEmbedded(t *testing.T, scale float64) *Driver {
	t.Helper()
	d, err := NewEmbedded(t.Context(), EmbeddedOptions{
		Cluster: mustParse(t, testCluster), TimeScale: scale,
		ClientOptions: ClientOptions{Logger: testLogger(t), RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// counter counts requests per "METHOD path" in front of a handler.
type counter struct {
	h  http.Handler
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.n[r.Method+" "+r.URL.Path]++
	c.mu.Unlock()
	c.h.ServeHTTP(w, r)
}

func (c *counter) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

// loopback serves a sim on 127.0.0.1 behind a request counter.
func loopback(t *testing.T, scale float64) (*Driver, *counter) {
	t.Helper()
	srv, err := NewServer(mustParse(t, testCluster), ServerOptions{TimeScale: scale, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { srv.Run(ctx) })
	cnt := &counter{h: srv.Handler(), n: map[string]int{}}
	hs := httptest.NewServer(cnt)
	t.Cleanup(func() { hs.Close(); cancel(); wg.Wait() })
	d, err := Dial(t.Context(), hs.URL, ClientOptions{Retries: 3, RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, cnt
}

func TestServe_Lifecycle(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	addrc := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- Serve(ctx, ServeOptions{
			Cluster: mustParse(t, testCluster), Listen: "127.0.0.1:0", TimeScale: 1000,
			Logger: testLogger(t), Ready: func(addr string) { addrc <- addr },
		})
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-errc:
		t.Fatalf("Serve: %v", err)
	}
	// No retries: after the shutdown below, requests must fail fast.
	d, err := Dial(ctx, "http://"+addr, ClientOptions{Retries: -1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	inv, err := d.Inventory(ctx)
	if err != nil || len(inv.Nodes) != 3 || len(inv.VMs) != 3 {
		t.Fatalf("Inventory = %d nodes, %d vms, %v", len(inv.Nodes), len(inv.VMs), err)
	}
	res, err := d.Migrate(ctx, drivers.MigrateRequest{VM: "web-1", From: "n1", To: "n2"}, nil)
	if err != nil || res.Duration <= 2*time.Second || res.TransferredMiB < 4096 {
		t.Fatalf("Migrate = %+v, %v", res, err)
	}
	// A long-poll in flight must not hold up the shutdown.
	pollDone := make(chan error, 1)
	go func() {
		_, err := d.Migrate(ctx, drivers.MigrateRequest{VM: "big", To: "n2"}, nil)
		pollDone <- err
	}()
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("Serve returned %v after cancel, want nil", err)
	}
	if err := <-pollDone; err == nil {
		t.Errorf("Migrate of big succeeded across a shutdown")
	}
}

func TestCheckListen(t *testing.T) {
	tests := []struct {
		addr    string
		allow   bool
		wantErr bool
	}{
		{"127.0.0.1:0", false, false},
		{"127.0.0.2:8090", false, false},
		{"[::1]:8090", false, false},
		{"localhost:8090", false, false},
		{"0.0.0.0:8090", false, true},
		{":8090", false, true},
		{"10.1.2.3:8090", false, true},
		{"example.com:80", false, true},
		{"127.0.0.1", false, true},
		{"0.0.0.0:8090", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if err := checkListen(tt.addr, tt.allow); (err != nil) != tt.wantErr {
				t.Errorf("checkListen(%q, %t) = %v, want error %t", tt.addr, tt.allow, err, tt.wantErr)
			}
		})
	}
	if err := Serve(t.Context(), ServeOptions{Cluster: mustParse(t, testCluster), Listen: "0.0.0.0:0"}); err == nil || !strings.Contains(err.Error(), "not a loopback") {
		t.Errorf("Serve on 0.0.0.0 = %v, want refusal", err)
	}
}

func TestDriver_RetriesServerErrors(t *testing.T) {
	tests := []struct {
		name      string
		fault     Fault
		call      func(ctx context.Context, d *Driver) error
		key       string
		wantCalls int
		wantErr   error
	}{
		{
			name:  "burst-shorter-than-retries-succeeds",
			fault: Fault{Kind: FaultAPIErrors, Burst: 2, Path: "/v1/inventory"},
			call: func(ctx context.Context, d *Driver) error {
				_, err := d.Inventory(ctx)
				return err
			},
			key: "GET /v1/inventory", wantCalls: 3,
		},
		{
			name:  "burst-longer-than-retries-is-unavailable",
			fault: Fault{Kind: FaultAPIErrors, Burst: 10, Status: 502, Path: "/v1/inventory"},
			call: func(ctx context.Context, d *Driver) error {
				_, err := d.Inventory(ctx)
				return err
			},
			key: "GET /v1/inventory", wantCalls: 4, wantErr: drivers.ErrUnavailable,
		},
		{
			name:  "error-after-apply-is-retried-idempotently",
			fault: Fault{Kind: FaultAPIErrors, Burst: 1, AfterApply: true, Path: "/v1/nodes/n1/pause"},
			call:  func(ctx context.Context, d *Driver) error { return d.PauseNode(ctx, "n1", "") },
			key:   "POST /v1/nodes/n1/pause", wantCalls: 2,
		},
		{
			name:  "not-found-is-not-retried",
			fault: Fault{Kind: FaultAPIErrors, Burst: 1, Path: "/v1/other"},
			call:  func(ctx context.Context, d *Driver) error { return d.PauseNode(ctx, "ghost", "") },
			key:   "POST /v1/nodes/ghost/pause", wantCalls: 1, wantErr: drivers.ErrNotFound,
		},
		{
			name:  "rejection-is-not-retried",
			fault: Fault{Kind: FaultAPIErrors, Burst: 1, Path: "/v1/other"},
			call: func(ctx context.Context, d *Driver) error {
				_, err := d.Migrate(ctx, drivers.MigrateRequest{VM: "web-1", To: "n3"}, nil)
				return err
			},
			key: "POST /v1/migrations", wantCalls: 1, wantErr: drivers.ErrRejected,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, cnt := loopback(t, 1)
			if err := d.InjectFault(t.Context(), tt.fault); err != nil {
				t.Fatal(err)
			}
			err := tt.call(t.Context(), d)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got := cnt.get(tt.key); got != tt.wantCalls {
				t.Errorf("%s sent %d times, want %d", tt.key, got, tt.wantCalls)
			}
		})
	}
}

func TestDriver_ErrorsNameTheCause(t *testing.T) {
	d, _ := loopback(t, 1)
	_, err := d.Migrate(t.Context(), drivers.MigrateRequest{VM: "web-1", From: "n1", To: "n3"}, nil)
	apiErr, ok := errors.AsType[*APIError](err)
	if !ok || apiErr.Reason != ReasonTargetPaused || !errors.Is(err, drivers.ErrRejected) {
		t.Fatalf("err = %v, want *APIError target_paused wrapping ErrRejected", err)
	}
	if want := "migrate vm web-1 to n3: rejected by the platform: target node n3 is paused"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message %q, want prefix %q", err, want)
	}
	s, err := d.Stats(t.Context())
	if err != nil || len(s.Rejections) != 1 || s.Rejections[0].Reason != ReasonTargetPaused {
		t.Errorf("stats rejections = %+v, %v", s.Rejections, err)
	}
}

// TestDriver_MigrateInBubble runs a migration through the embedded driver in
// fake time: zero wall time, and results equal to the pure model's.
func TestDriver_MigrateInBubble(t *testing.T) {
	// What the pure model says.
	m := mustModel(t, mustParse(t, testCluster))
	want := runUntilDone(t, m, startAll(t, m, [2]string{"web-1", "n2"})[0])

	synctest.Test(t, func(t *testing.T) {
		const scale = 60
		d := newEmbedded(t, scale)
		var phases []string
		start := time.Now()
		res, err := d.Migrate(t.Context(), drivers.MigrateRequest{VM: "web-1", From: "n1", To: "n2"}, func(p drivers.MigrationProgress) {
			if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
				phases = append(phases, p.Phase)
			}
		})
		wall := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		if res.Duration != want.Elapsed || res.TransferredMiB != want.TransferredMiB || res.Downtime != want.Downtime {
			t.Errorf("result %+v, want the model's %v / %.3f MiB / %v", res, want.Elapsed, want.TransferredMiB, want.Downtime)
		}
		if wantWall := want.Elapsed / scale; wall < wantWall || wall > wantWall+time.Millisecond {
			t.Errorf("took %v of (fake) wall time, want %v", wall, wantWall)
		}
		if strings.Join(phases, ",") != "setup,precopy,stopcopy" {
			t.Errorf("progress phases %v, want setup, precopy, stopcopy", phases)
		}
		if got := d.Clock().Now().Sub(start); got != wall*scale {
			t.Errorf("clock moved %v, want %v", got, wall*scale)
		}
		inv, _ := d.Inventory(t.Context())
		if v, _ := inv.VM("web-1"); v.Node != "n2" {
			t.Errorf("web-1 on %s, want n2", v.Node)
		}
		res, err = d.Migrate(t.Context(), drivers.MigrateRequest{VM: "web-1", From: "n1", To: "n2"}, nil)
		if err != nil || !res.AlreadyThere {
			t.Errorf("second Migrate = %+v, %v; want AlreadyThere", res, err)
		}
	})
}

func TestDriver_MigrateJoinsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newEmbedded(t, 1)
		req := drivers.MigrateRequest{VM: "web-1", From: "n1", To: "n2"}
		results := make(chan drivers.MigrationResult, 2)
		var wg sync.WaitGroup
		for range 2 { // e.g. a killed Drover's call and its successor's
			wg.Go(func() {
				res, err := d.Migrate(t.Context(), req, nil)
				if err != nil {
					t.Error(err)
				}
				results <- res
			})
		}
		wg.Wait()
		a, b := <-results, <-results
		if a != b || a.Duration == 0 {
			t.Errorf("results %+v and %+v, want one shared migration", a, b)
		}
		s, _ := d.Stats(t.Context())
		if len(s.Migrations) != 1 || s.SuccessfulMigrations["web-1"] != 1 {
			t.Errorf("stats: %d migrations logged, %d successful; want 1", len(s.Migrations), s.SuccessfulMigrations["web-1"])
		}
	})
}

func TestDriver_CancelAbortsOnServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newEmbedded(t, 1)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		// big needs ~3 model minutes; the caller gives up after 30 s.
		_, err := d.Migrate(ctx, drivers.MigrateRequest{VM: "big", From: "n1", To: "n2"}, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want deadline exceeded", err)
		}
		s, _ := d.Stats(t.Context())
		if s.ActiveMigrations != 0 || len(s.Migrations) != 1 || s.Migrations[0].ErrorKind != KindCancelled {
			t.Fatalf("after cancel: %d active, log %+v; want one cancelled", s.ActiveMigrations, s.Migrations)
		}
		if got := s.Migrations[0].Duration; got != 30*time.Second {
			t.Errorf("cancelled after %v of model time, want 30s", got)
		}
		inv, _ := d.Inventory(t.Context())
		if v, _ := inv.VM("big"); v.Node != "n1" || v.MigratingTo != "" {
			t.Errorf("big on %s migrating to %q, want on n1", v.Node, v.MigratingTo)
		}
	})
}

func TestDriver_MigrationFailuresMapToSentinels(t *testing.T) {
	tests := []struct {
		name  string
		fault Fault
		dirty float64
		want  error
	}{
		{name: "injected-failure", fault: Fault{Kind: FaultMigrationFail, VM: "web-1", Times: 1}, want: drivers.ErrMigrationFailed},
		{name: "not-converged", dirty: 1000, want: drivers.ErrNotConverged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := mustParse(t, testCluster)
				if tt.dirty > 0 {
					c.VMs[0].DirtyMiBs = tt.dirty
				}
				if tt.fault.Kind != "" {
					c.Faults = []Fault{tt.fault}
				}
				d, err := NewEmbedded(t.Context(), EmbeddedOptions{Cluster: c, TimeScale: 100})
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				_, err = d.Migrate(t.Context(), drivers.MigrateRequest{VM: "web-1", To: "n2"}, nil)
				if !errors.Is(err, tt.want) || !strings.HasPrefix(err.Error(), "migrate vm web-1 to n2: ") {
					t.Errorf("err = %v, want %v with operation prefix", err, tt.want)
				}
			})
		})
	}
}

func TestServer_LongPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newEmbedded(t, 1)
		var st StartMigrationResponse
		if err := d.call(t.Context(), http.MethodPost, "/v1/migrations", StartMigrationRequest{VM: "web-1", To: "n2"}, &st); err != nil {
			t.Fatal(err)
		}
		path := "/v1/migrations/" + st.Migration.ID
		tests := []struct {
			name      string
			query     string
			wantPhase Phase
			wantAfter time.Duration
		}{
			{name: "returns-at-next-change", query: "?wait=30s&version=" + itoa(st.Migration.Version), wantPhase: PhasePrecopy, wantAfter: 2 * time.Second},
			{name: "returns-after-wait-without-change", query: "?wait=3s&version=", wantPhase: PhasePrecopy, wantAfter: 3 * time.Second},
			{name: "no-version-answers-at-once", query: "?wait=30s", wantPhase: PhasePrecopy},
		}
		for _, tt := range tests {
			var cur MigrationStatus
			d.call(t.Context(), http.MethodGet, path, nil, &cur)
			if strings.HasSuffix(tt.query, "version=") {
				tt.query += itoa(cur.Version)
			}
			start := time.Now()
			var got MigrationStatus
			if err := d.call(t.Context(), http.MethodGet, path+tt.query, nil, &got); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if el := time.Since(start); got.Phase != tt.wantPhase || el != tt.wantAfter {
				t.Errorf("%s: phase %s after %v, want %s after %v", tt.name, got.Phase, el, tt.wantPhase, tt.wantAfter)
			}
		}
		err := d.call(t.Context(), http.MethodGet, path+"?wait=2h", nil, nil)
		if !errors.Is(err, ErrBadRequest) {
			t.Errorf("wait=2h: %v, want bad request", err)
		}
	})
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

func TestDriver_NodeLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newEmbedded(t, 1)
		ctx := t.Context()
		u, err := (&UpdaterConfig{}).Open(ctx, drivers.Env{Driver: d})
		if err != nil {
			t.Fatal(err)
		}
		// Move web-1 away, stop big: nothing running is left on n1.
		if _, err := d.Migrate(ctx, drivers.MigrateRequest{VM: "web-1", From: "n1", To: "n2"}, nil); err != nil {
			t.Fatal(err)
		}
		if err := d.ShutdownVM(ctx, "big"); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := d.PauseNode(ctx, "n1", ""); err != nil {
				t.Fatal(err)
			}
		}
		pending, err := u.Scan(ctx, "n1")
		if err != nil || len(pending) != 2 {
			t.Fatalf("Scan = %v, %v", pending, err)
		}
		res, err := u.Install(ctx, "n1")
		if err != nil || len(res.Installed) != 2 || !res.RebootRequired {
			t.Fatalf("Install = %+v, %v", res, err)
		}
		before, _ := d.Node(ctx, "n1")
		if err := d.RebootNode(ctx, "n1"); err != nil {
			t.Fatal(err)
		}
		if ready, _ := d.NodeReady(ctx, "n1"); ready {
			t.Errorf("n1 ready right after the reboot started")
		}
		time.Sleep(120 * time.Second) // the reboot takes 120 model s at scale 1
		synctest.Wait()
		ready, err := d.NodeReady(ctx, "n1")
		after, _ := d.Node(ctx, "n1")
		if err != nil || !ready || after.BootID == before.BootID || after.State != cluster.NodePaused {
			t.Errorf("after reboot: ready %t state %s boot %s (before %s), %v", ready, after.State, after.BootID, before.BootID, err)
		}
		if err := d.ResumeNode(ctx, "n1"); err != nil {
			t.Fatal(err)
		}
		if err := d.StartVM(ctx, "big"); err != nil {
			t.Fatal(err)
		}
		s, _ := d.Stats(ctx)
		if s.VMsKilledByReboot != 0 || s.Reboots["n1"] != 1 {
			t.Errorf("killed %d, reboots %d; want 0, 1", s.VMsKilledByReboot, s.Reboots["n1"])
		}
		if err := d.CrashNode(ctx, "n2"); err != nil {
			t.Fatal(err)
		}
		s, _ = d.Stats(ctx)
		if s.VMsLostByCrash != 1 {
			t.Errorf("lost by crash %d, want 1 (web-1)", s.VMsLostByCrash)
		}
		if err := d.RecoverNode(ctx, "n2"); err != nil {
			t.Fatal(err)
		}
		if err := d.InjectFault(ctx, Fault{Kind: "meteor"}); !errors.Is(err, ErrBadRequest) {
			t.Errorf("inject unknown fault: %v, want bad request", err)
		}
	})
}

func TestDriver_ClockFollowsScale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newEmbedded(t, 60)
		c := drivers.ClockOf(d)
		t0 := c.Now()
		time.Sleep(10 * time.Second) // fake time: the clock under test
		if got := c.Now().Sub(t0); got != 600*time.Second {
			t.Errorf("10 wall s = %v of model time, want 10m", got)
		}
		if got := c.WallDuration(time.Hour); got != time.Minute {
			t.Errorf("WallDuration(1h) = %v, want 1m", got)
		}
	})
}

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name      string
		raw       map[string]any
		wantField string
	}{
		{name: "embedded", raw: map[string]any{"cluster_file": "c.yaml", "time_scale": 30}},
		{name: "remote", raw: map[string]any{"url": "http://127.0.0.1:8090"}},
		{name: "nothing", raw: map[string]any{}, wantField: "cluster_file"},
		{name: "url-wins-over-cluster-file", raw: map[string]any{"url": "http://127.0.0.1:1", "cluster_file": "c.yaml"}},
		{name: "bad-url", raw: map[string]any{"url": "127.0.0.1:8090"}, wantField: "url"},
		{name: "zero-scale", raw: map[string]any{"cluster_file": "c.yaml", "time_scale": 0}, wantField: "time_scale"},
		{name: "negative-scale", raw: map[string]any{"cluster_file": "c.yaml", "time_scale": "-2"}, wantField: "time_scale"},
		{name: "zero-timeout", raw: map[string]any{"cluster_file": "c.yaml", "timeout": "0s"}, wantField: "timeout"},
		{name: "unknown-key", raw: map[string]any{"cluster": "c.yaml"}, wantField: "cluster"},
	}
	info, ok := drivers.Lookup("sim")
	if !ok {
		t.Fatal("sim driver not registered")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := info.NewConfig()
			err := drivers.Decode(tt.raw, cfg)
			if err == nil {
				err = cfg.Validate()
			}
			fe, isField := errors.AsType[*drivers.FieldError](err)
			switch {
			case tt.wantField == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tt.wantField != "" && (!isField || fe.Field != tt.wantField || fe.Fix == ""):
				t.Errorf("err = %v, want a FieldError on %s with a fix", err, tt.wantField)
			}
		})
	}
}

func TestConfig_OpenEmbedded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		info, _ := drivers.Lookup("sim")
		cfg := info.NewConfig()
		if err := drivers.Decode(map[string]any{"cluster_file": "demo.yaml", "time_scale": "30"}, cfg); err != nil {
			t.Fatal(err)
		}
		env := drivers.Env{Logger: testLogger(t), BaseDir: filepath.Join("..", "..", "testdata", "clusters")}
		d, err := cfg.Open(t.Context(), env)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if c := d.Capabilities(); !c.BootID || !c.PowerControl || c.NativeDrain {
			t.Errorf("capabilities %+v", c)
		}
		inv, err := d.Inventory(t.Context())
		if err != nil || len(inv.Nodes) != 4 || len(inv.VMs) != 16 {
			t.Fatalf("demo inventory: %d nodes %d vms, %v", len(inv.Nodes), len(inv.VMs), err)
		}
		uinfo, ok := drivers.LookupUpdater("sim")
		if !ok {
			t.Fatal("sim updater not registered")
		}
		ucfg := uinfo.NewConfig()
		if _, err := ucfg.Open(t.Context(), drivers.Env{Driver: d}); err != nil {
			t.Errorf("sim updater on the sim driver: %v", err)
		}
		if _, err := ucfg.Open(t.Context(), drivers.Env{}); err == nil {
			t.Errorf("sim updater without the sim driver succeeded")
		}
		missing := info.NewConfig()
		drivers.Decode(map[string]any{"cluster_file": "nope.yaml"}, missing)
		if _, err := missing.Open(t.Context(), env); err == nil || !strings.Contains(err.Error(), "nope.yaml") {
			t.Errorf("open with a missing cluster file: %v", err)
		}
	})
}
