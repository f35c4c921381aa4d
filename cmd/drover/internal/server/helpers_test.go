package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/drivers/sim"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/orchestrator/schedule"
	"github.com/droverhq/drover/runs"
)

// Secrets of the test tokens; tests grep logs and answers for them.
const (
	viewerSecret   = "viewer-secret-7b1e9c1f4d"
	operatorSecret = "operator-secret-2f0c4d8a9e"
)

func digest(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func testTokens(t *testing.T) []Token {
	t.Helper()
	var out []Token
	for _, x := range []struct{ name, role, secret string }{{"ci-viewer", "viewer", viewerSecret}, {"ops", "operator", operatorSecret}} {
		tk, err := NewToken(x.name, x.role, digest(x.secret))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tk)
	}
	return out
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testEnv is a daemon over an embedded simulated cluster and a fresh state file.
// Requests go straight to the handler (no socket), so a test can run it inside a
// testing/synctest bubble, where the cluster's time is the bubble's fake clock.
type testEnv struct {
	t       *testing.T
	s       *Server
	drv     *sim.Driver
	store   *runs.Store
	logs    *syncBuffer
	answers *syncBuffer // every answer body, for the secrets check
	dir     string
	gen     uint64
}

type envOptions struct {
	schedule    *schedule.Spec
	windows     schedule.Windows
	webhooks    []WebhookConfig
	webhookHTTP *http.Client
	paused      bool
}

const demoCluster = "../../../../testdata/clusters/demo.yaml"

func newEnv(t *testing.T, opts envOptions) *testEnv {
	t.Helper()
	drv, err := sim.NewEmbedded(context.Background(), sim.EmbeddedOptions{ClusterFile: demoCluster, TimeScale: 1})
	if err != nil {
		t.Fatalf("NewEmbedded: %v", err)
	}
	t.Cleanup(func() { drv.Close() })
	e := &testEnv{t: t, drv: drv, logs: &syncBuffer{}, answers: &syncBuffer{}, dir: t.TempDir()}
	e.open(opts)
	return e
}

// open starts a daemon process (again) on the same cluster and state file.
func (e *testEnv) open(opts envOptions) {
	e.t.Helper()
	if e.store != nil {
		e.s.Shutdown()
		e.store.Close()
	}
	st, err := runs.Open(filepath.Join(e.dir, "state.db"), runs.Options{})
	if err != nil {
		e.t.Fatalf("open store: %v", err)
	}
	e.t.Cleanup(func() { st.Close() })
	e.store = st
	e.gen++
	owner := runs.Owner{PID: os.Getpid(), Host: "test", StartTicks: e.gen}
	spec := schedule.Spec{}
	if opts.schedule != nil {
		spec = *opts.schedule
	}
	sched, err := schedule.Parse(spec)
	if err != nil {
		e.t.Fatal(err)
	}
	p := orchestrator.DefaultPolicy()
	p.PollInterval = orchestrator.Duration(2 * time.Second)
	p.Failback = orchestrator.FailbackImmediate
	s, err := New(Config{
		Store: st, Owner: owner, Tokens: testTokens(e.t), Webhooks: opts.webhooks, WebhookHTTP: opts.webhookHTTP, WebhookRetryWait: time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Version: "test",
		Alive: func(o runs.Owner) runs.Liveness {
			if o == owner {
				return runs.Alive
			}
			return runs.Dead // earlier "processes" of the test are gone
		},
		Clusters: []ClusterConfig{{
			Name: "demo", DriverName: "sim", Driver: e.drv, Updater: e.drv, Policy: p,
			Schedule: sched, Paused: opts.paused, Windows: opts.windows,
		}},
	})
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.s = s
}

// do sends one request to the handler.
func (e *testEnv) do(method, path, secret, body string) *httptest.ResponseRecorder {
	e.t.Helper()
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, path, nil)
	} else {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	}
	if secret != "" {
		r.Header.Set("Authorization", "Bearer "+secret)
	}
	rec := httptest.NewRecorder()
	e.s.Handler().ServeHTTP(rec, r)
	_, _ = e.answers.Write(rec.Body.Bytes())
	return rec
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %T from %d %q: %v", v, rec.Code, rec.Body.String(), err)
	}
	return v
}

// sseEvent is one event of a Server-Sent Events stream.
type sseEvent struct {
	kind string
	ev   orchestrator.Event
}

func parseSSE(t *testing.T, body string) []sseEvent {
	t.Helper()
	var out []sseEvent
	sc := bufio.NewScanner(strings.NewReader(body))
	var cur sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			cur.kind = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.ev); err != nil {
				t.Fatalf("bad SSE data %q: %v", line, err)
			}
		case line == "" && cur.kind != "":
			out = append(out, cur)
			cur = sseEvent{}
		}
	}
	return out
}

// runsOf lists the runs in the state file.
func (e *testEnv) runsOf() []runs.Run {
	e.t.Helper()
	rs, err := e.store.Runs("")
	if err != nil {
		e.t.Fatal(err)
	}
	return rs
}

func newRequest(path, body, contentType string) *http.Request {
	r := httptest.NewRequest("POST", path, strings.NewReader(body))
	r.Header.Set("Content-Type", contentType)
	r.Header.Set("Authorization", "Bearer "+operatorSecret)
	return r
}

func (e *testEnv) serve(r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.s.Handler().ServeHTTP(rec, r)
	_, _ = e.answers.Write(rec.Body.Bytes())
	return rec
}

func testPolicyForFuzz() orchestrator.Policy { return orchestrator.DefaultPolicy() }
