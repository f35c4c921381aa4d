package dashboard_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/cmd/drover/internal/server"
	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/sim"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/runs"
)

// Secrets of the test tokens; the tests grep the daemon's log for them.
const (
	viewerToken   = "dash-viewer-5e1f0c2b7a"
	operatorToken = "dash-operator-9d3a6b4c1e"
)

// xssName is what the driver wrapper calls VM xss-1, and xssNode node n3: if any
// page put them into the DOM as markup, the browser would run alert().
const (
	xssName = `<img src=x onerror=alert(1)>`
	xssNode = `n3"><svg onload=alert(2)>`
)

// renamed is the simulator with VM xss-1 and node n3 shown by hostile names: the
// names a driver reports are untrusted, and the simulator itself allows only plain
// ones. It renames on the way out (inventory, progress) and back on the way in
// (every call naming a node or a VM).
type renamed struct {
	*sim.Driver
	// names maps the simulator's names to the ones shown (nil: none renamed).
	names map[string]string
}

var hostileNames = map[string]string{"xss-1": xssName, "n3": xssNode}

func (d renamed) outside(name string) string {
	if o, ok := d.names[name]; ok {
		return o
	}
	return name
}

func (d renamed) inside(name string) string {
	for in, o := range d.names {
		if name == o {
			return in
		}
	}
	return name
}

func (d renamed) Inventory(ctx context.Context) (cluster.Inventory, error) {
	inv, err := d.Driver.Inventory(ctx)
	for i := range inv.Nodes {
		inv.Nodes[i].Name = d.outside(inv.Nodes[i].Name)
	}
	for i := range inv.VMs {
		v := &inv.VMs[i]
		v.Name, v.Node, v.PreferredNode, v.MigratingTo = d.outside(v.Name), d.outside(v.Node), d.outside(v.PreferredNode), d.outside(v.MigratingTo)
	}
	return inv, err
}

func (d renamed) PauseNode(ctx context.Context, node, owner string) error {
	return d.Driver.PauseNode(ctx, d.inside(node), owner)
}

func (d renamed) ResumeNode(ctx context.Context, node string) error {
	return d.Driver.ResumeNode(ctx, d.inside(node))
}

func (d renamed) RebootNode(ctx context.Context, node string) error {
	return d.Driver.RebootNode(ctx, d.inside(node))
}

func (d renamed) NodeReady(ctx context.Context, node string) (bool, error) {
	return d.Driver.NodeReady(ctx, d.inside(node))
}

func (d renamed) Scan(ctx context.Context, node string) ([]cluster.Update, error) {
	return d.Driver.Scan(ctx, d.inside(node))
}

func (d renamed) Install(ctx context.Context, node string) (drivers.InstallResult, error) {
	return d.Driver.Install(ctx, d.inside(node))
}

func (d renamed) Migrate(ctx context.Context, req drivers.MigrateRequest, progress func(drivers.MigrationProgress)) (drivers.MigrationResult, error) {
	req.VM, req.From, req.To = d.inside(req.VM), d.inside(req.From), d.inside(req.To)
	var wrapped func(drivers.MigrationProgress)
	if progress != nil {
		wrapped = func(p drivers.MigrationProgress) {
			p.VM, p.From, p.To = d.outside(p.VM), d.outside(p.From), d.outside(p.To)
			progress(p)
		}
	}
	return d.Driver.Migrate(ctx, req, wrapped)
}

var (
	_ drivers.Driver  = renamed{}
	_ drivers.Updater = renamed{}
)

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// syncBuffer collects the daemon's log.
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

// daemon is `drover serve` in-process: the real server over an embedded simulator
// and a state file, listening on 127.0.0.1.
type daemon struct {
	t     *testing.T
	name  string
	names map[string]string
	drv   *sim.Driver
	// cluster changes the cluster's config (schedule, windows).
	cluster func(*server.ClusterConfig)
	// cert: serve HTTPS with it (nil: HTTP).
	cert  *tls.Certificate
	dir   string
	addr  string
	URL   string
	logs  *syncBuffer
	gen   uint64
	srv   *server.Server
	store *runs.Store
	stop  func()
}

// startDaemon starts a daemon running cluster name from clusterFile at a time scale;
// names renames the simulator's nodes and VMs (nil: none).
func startDaemon(t *testing.T, name, clusterFile string, scale float64, names map[string]string, opts ...option) *daemon {
	t.Helper()
	drv, err := sim.NewEmbedded(context.Background(), sim.EmbeddedOptions{ClusterFile: clusterFile, TimeScale: scale})
	if err != nil {
		t.Fatalf("start the simulator: %v", err)
	}
	t.Cleanup(func() { drv.Close() })
	d := &daemon{t: t, name: name, names: names, drv: drv, dir: t.TempDir(), addr: "127.0.0.1:0", logs: &syncBuffer{}}
	for _, o := range opts {
		o(d)
	}
	d.open(true)
	t.Cleanup(d.close)
	return d
}

// open starts a daemon process (again) on the same cluster, state file and
// address. start=false serves the API without starting the daemon's loops, so an
// interrupted run is not resumed at start-up but waits for its Resume button.
func (d *daemon) open(start bool) {
	t := d.t
	t.Helper()
	st, err := runs.Open(filepath.Join(d.dir, "state.db"), runs.Options{})
	if err != nil {
		t.Fatalf("open the state file: %v", err)
	}
	d.store = st
	d.gen++
	owner := runs.Owner{PID: os.Getpid(), Host: "dashboard-test", StartTicks: d.gen}
	var tokens []server.Token
	for _, x := range []struct{ name, role, secret string }{{"wall", "viewer", viewerToken}, {"ops", "operator", operatorToken}} {
		tk, err := server.NewToken(x.name, x.role, digest(x.secret))
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, tk)
	}
	p := orchestrator.DefaultPolicy()
	p.PollInterval = orchestrator.Duration(2 * time.Second)
	cc := server.ClusterConfig{Name: d.name, DriverName: "sim", Driver: renamed{d.drv, d.names}, Updater: renamed{d.drv, d.names}, Policy: p}
	if d.cluster != nil {
		d.cluster(&cc)
	}
	srv, err := server.New(server.Config{
		Store: st, Owner: owner, Tokens: tokens, Version: "test",
		Logger: slog.New(slog.NewJSONHandler(d.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Alive: func(o runs.Owner) runs.Liveness {
			if o == owner {
				return runs.Alive
			}
			return runs.Dead // the earlier "processes" of the test are gone
		},
		ShutdownGrace: 2 * time.Second,
		Clusters:      []server.ClusterConfig{cc},
	})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	d.srv = srv
	ln, err := net.Listen("tcp", d.addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", d.addr, err)
	}
	d.addr = ln.Addr().String()
	d.URL = "http://" + d.addr
	if d.cert != nil {
		d.URL = "https://" + d.addr
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	if start {
		go func() {
			defer close(done)
			if err := srv.Serve(ctx, ln, d.cert); err != nil {
				t.Errorf("Serve: %v", err)
			}
		}()
	} else {
		hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			defer close(done)
			_ = hs.Serve(ln)
		}()
		go func() {
			<-ctx.Done()
			srv.Shutdown()
			sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
			defer c()
			_ = hs.Shutdown(sctx)
		}()
	}
	d.stop = func() {
		cancel()
		<-done
		st.Close()
	}
}

// option sets up a daemon before it starts.
type option func(*daemon)

func withCluster(f func(*server.ClusterConfig)) option { return func(d *daemon) { d.cluster = f } }

func withTLS(cert *tls.Certificate) option { return func(d *daemon) { d.cert = cert } }

func (d *daemon) close() {
	if d.stop != nil {
		d.stop()
		d.stop = nil
	}
}

// restart stops the daemon (its run is interrupted and journaled) and starts it
// again on the same address.
func (d *daemon) restart(start bool) {
	d.t.Helper()
	d.close()
	d.open(start)
}

// api calls the daemon's API with a bearer token, as the CLI does.
func (d *daemon) api(method, path, token, body string, out any) int {
	d.t.Helper()
	req, err := http.NewRequest(method, d.URL+path, strings.NewReader(body))
	if err != nil {
		d.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			d.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

// chromium finds the browser. Without one the browser tests skip, except in CI.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed, and CI=true: .ci/run installs it (apt-get install -y chromium)")
	}
	t.Skip("chromium is not installed: apt-get install -y chromium (or set CHROMIUM=/path) to run the browser tests")
	return ""
}

// browser is one headless chromium with a fresh profile, a 1440x900 window, and a
// record of every JavaScript error and dialog of its pages.
type browser struct {
	t      *testing.T
	ctx    context.Context
	mu     sync.Mutex
	errors []string
	dialog []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx}
	t.Cleanup(func() {
		cancelC()
		cancelA()
	})
	// Start the browser with the first call, without a deadline (it would end the
	// browser), then follow its console and dialogs.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1440, 900)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			// Errors of scripts, the console and security (CSP) count; the
			// browser's notes on HTTP answers (a refused sign-in is a 401, a
			// daemon restarting refuses connections) are not JavaScript errors.
			if (m.Type != chromedp.ConsoleError && !m.IsException()) || m.Source == "network" {
				continue
			}
			b.mu.Lock()
			b.errors = append(b.errors, fmt.Sprintf("%s (%s:%d)", m.String(), m.URL, m.Line))
			b.mu.Unlock()
		}
	}()
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.dialog = append(b.dialog, ev.Message)
			b.mu.Unlock()
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	return b
}

// do runs actions with a deadline.
func (b *browser) do(what string, within time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, within)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v\nJavaScript errors: %v", what, err, b.jsErrors())
	}
}

// eval evaluates a JavaScript expression.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// evalAwait evaluates a JavaScript expression that yields a promise.
func evalAwait[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS waits until the expression is truthy and returns its value.
func waitJS[T any](b *browser, what, expr string, within time.Duration) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, within+5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Poll[T](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(within)))
	if err != nil {
		b.t.Fatalf("waiting %s for %s (%s): %v\nJavaScript errors: %v", within, what, expr, err, b.jsErrors())
	}
	return v
}

func (b *browser) jsErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// checkClean fails the test on any JavaScript error or dialog so far.
func (b *browser) checkClean() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errors) > 0 {
		b.t.Errorf("the pages logged JavaScript errors: %q", b.errors)
	}
	if len(b.dialog) > 0 {
		b.t.Errorf("the pages opened JavaScript dialogs (injected script ran?): %q", b.dialog)
	}
}

// shot saves a PNG of the viewport as dir/name.
func (b *browser) shot(dir, name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return p
}

// signIn opens url signed out and signs in with token on the sign-in page.
func (b *browser) signIn(url, token string) {
	b.t.Helper()
	b.do("sign in", 20*time.Second,
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#who")),
	)
}

// submit clicks a button that submits a form and waits for the page it leads to.
func (b *browser) submit(button string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(button)))); err != nil {
		b.t.Fatalf("submit with %s: %v\nJavaScript errors: %v", button, err, b.jsErrors())
	}
}

// confirm clicks a button of a form that asks first, and confirms in the page's
// dialog.
func (b *browser) confirm(button string) {
	b.t.Helper()
	b.do("click "+button+" and confirm", 20*time.Second,
		chromedp.WaitVisible(chromedp.CSS(button)),
		chromedp.Click(chromedp.CSS(button)),
		chromedp.WaitVisible(chromedp.CSS("#confirm-ok")),
	)
	// Confirming submits the form: wait for the page it leads to.
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS("#confirm-ok")))); err != nil {
		b.t.Fatalf("confirm %s: %v\nJavaScript errors: %v", button, err, b.jsErrors())
	}
}

// outDir is where a test's screenshots go: $DROVER_SHOTS_DIR when set (make
// dashboard-shots), else the test's output folder.
func outDir(t *testing.T) string {
	if d := os.Getenv("DROVER_SHOTS_DIR"); d != "" {
		return d
	}
	return t.ArtifactDir()
}
