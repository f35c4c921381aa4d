package server

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	domain "github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/sim"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/orchestrator/schedule"
	"github.com/droverhq/drover/runs"
)

// countingUpdater counts scans per node and holds the first install until release
// is closed (the node stays "patching" meanwhile).
type countingUpdater struct {
	drivers.Updater
	mu         sync.Mutex
	scans      map[string]int
	installing chan string
	release    chan struct{}
	once       sync.Once
}

func (u *countingUpdater) Scan(ctx context.Context, node string) ([]domain.Update, error) {
	u.mu.Lock()
	u.scans[node]++
	u.mu.Unlock()
	return u.Updater.Scan(ctx, node)
}

func (u *countingUpdater) Install(ctx context.Context, node string) (drivers.InstallResult, error) {
	first := false
	u.once.Do(func() { first = true })
	if first {
		u.installing <- node
		select {
		case <-u.release:
		case <-ctx.Done():
			return drivers.InstallResult{}, ctx.Err()
		}
	}
	return u.Updater.Install(ctx, node)
}

func (u *countingUpdater) count() (map[string]int, int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	out, n := map[string]int{}, 0
	for k, v := range u.scans {
		out[k] = v
		n += v
	}
	return out, n
}

type limitsEnv struct {
	s   *Server
	upd *countingUpdater
	url string
}

// newLimitsEnv serves a daemon over the demo cluster on a loopback socket, with
// the scan cache ttl and at most maxStreams event streams; shorten applies to
// the server before it serves.
func newLimitsEnv(t *testing.T, ttl time.Duration, maxStreams int, shorten func(*Server)) *limitsEnv {
	t.Helper()
	drv, err := sim.NewEmbedded(context.Background(), sim.EmbeddedOptions{ClusterFile: demoCluster, TimeScale: 50})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { drv.Close() })
	st, err := runs.Open(filepath.Join(t.TempDir(), "state.db"), runs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	upd := &countingUpdater{Updater: drv, scans: map[string]int{}, installing: make(chan string, 1), release: make(chan struct{})}
	p := orchestrator.DefaultPolicy()
	p.PollInterval = orchestrator.Duration(time.Second)
	s, err := New(Config{
		Store: st, Owner: runs.Self("test", time.Now()), Tokens: testTokens(t), Logger: slog.New(slog.DiscardHandler),
		Clusters:  []ClusterConfig{{Name: "demo", DriverName: "sim", Driver: drv, Updater: upd, Policy: p, Schedule: &schedule.Schedule{}}},
		ScanCache: ttl, MaxEventClients: maxStreams,
	})
	if err != nil {
		t.Fatal(err)
	}
	if shorten != nil {
		shorten(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln, nil) }()
	t.Cleanup(func() {
		select {
		case <-upd.release:
		default:
			close(upd.release)
		}
		cancel()
		<-done
	})
	return &limitsEnv{s: s, upd: upd, url: "http://" + ln.Addr().String()}
}

func (e *limitsEnv) do(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, e.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+operatorSecret)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestLimits_ViewerScansAreCached: plan, preview and analyze scan the nodes once
// within server.scan_cache; without the cache every request scans (issue 10,
// item 9).
func TestLimits_ViewerScansAreCached(t *testing.T) {
	// The demo cluster has 4 nodes; preview and plan share one plan.
	for _, tt := range []struct {
		name string
		ttl  time.Duration
		want int
	}{{"cached", time.Minute, 4 + 4}, {"not-cached", -1, 3 * 3 * 4}} {
		t.Run(tt.name, func(t *testing.T) {
			e := newLimitsEnv(t, tt.ttl, 0, nil)
			for _, route := range []string{"plan", "preview", "analyze"} {
				for range 3 {
					if code, body := e.do(t, "GET", "/api/v1/clusters/demo/"+route, ""); code != http.StatusOK {
						t.Fatalf("%s: %d %s", route, code, body)
					}
				}
			}
			if _, n := e.upd.count(); n != tt.want {
				t.Errorf("plan, preview and analyze three times each: %d node scans, want %d", n, tt.want)
			}
		})
	}
}

// TestLimits_NoScanOfANodeInMaintenance: while a run patches a node, a viewer's
// preview scans every other node but answers for that one from the run's record.
func TestLimits_NoScanOfANodeInMaintenance(t *testing.T) {
	e := newLimitsEnv(t, -1, 0, nil)
	if code, body := e.do(t, "POST", "/api/v1/runs", "{}"); code != http.StatusAccepted {
		t.Fatalf("start: %d %s", code, body)
	}
	var patching string
	select {
	case patching = <-e.upd.installing:
	case <-time.After(60 * time.Second):
		t.Fatal("the run did not reach its first install")
	}
	before, _ := e.upd.count()
	for _, route := range []string{"preview", "plan", "analyze"} {
		if code, body := e.do(t, "GET", "/api/v1/clusters/demo/"+route, ""); code != http.StatusOK {
			t.Fatalf("%s during the run: %d %s", route, code, body)
		}
	}
	after, _ := e.upd.count()
	if after[patching] != before[patching] {
		t.Errorf("node %s was scanned %d times while the run patched it", patching, after[patching]-before[patching])
	}
	others := 0
	for n, c := range after {
		if n != patching {
			others += c - before[n]
		}
	}
	if others == 0 {
		t.Error("no other node was scanned: the test proves nothing")
	}
	close(e.upd.release)
}

// TestLimits_EventStreamsAreCapped: beyond server.max_event_clients a new stream
// is refused with 429; a stream outlives the write timeout of other answers.
func TestLimits_EventStreamsAreCapped(t *testing.T) {
	e := newLimitsEnv(t, -1, 1, func(s *Server) { s.timeouts.write = 300 * time.Millisecond })
	code, body := e.do(t, "POST", "/api/v1/runs", "{}")
	if code != http.StatusAccepted {
		t.Fatalf("start: %d %s", code, body)
	}
	select {
	case <-e.upd.installing:
	case <-time.After(60 * time.Second):
		t.Fatal("the run did not reach its first install")
	}
	req, _ := http.NewRequest("GET", e.url+"/api/v1/runs/last/events", nil)
	req.Header.Set("Authorization", "Bearer "+viewerSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("first stream: %d", resp.StatusCode)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	if code, body := e.do(t, "GET", "/api/v1/runs/last/events", ""); code != http.StatusTooManyRequests || !strings.Contains(body, "server.max_event_clients") {
		t.Errorf("second stream: %d %s, want 429", code, body)
	}
	// Past the write timeout of other answers, the stream still carries events.
	time.Sleep(3 * 300 * time.Millisecond) // outlast the write timeout
	close(e.upd.release)
	deadline := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the stream ended before an event after the write timeout")
			}
			if strings.HasPrefix(l, "event: ") {
				return
			}
		case <-deadline:
			t.Fatal("no event on the stream")
		}
	}
}

// TestLimits_SlowClientsAreCut: a request whose body never finishes is cut after
// the read timeout.
func TestLimits_SlowClientsAreCut(t *testing.T) {
	e := newLimitsEnv(t, -1, 0, func(s *Server) { s.timeouts.read = 300 * time.Millisecond })
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+operatorSecret+"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	_, err = io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server kept a stalled request open for %s", time.Since(start))
	}
}
