package dashboard

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/runs"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config wires a Dashboard.
type Config struct {
	// API is the daemon's API handler (/api/v1/...); the dashboard calls it
	// in-process with the signed-in user's token.
	API http.Handler
	// Store is the daemon's state file, read for a run's plan, node records and
	// journal (the live page's history).
	Store *runs.Store
	// Identify checks a token: its name and role ("viewer" or "operator").
	Identify func(token string) (name, role string, ok bool)
	// Clock is a cluster's clock (nil: the run page moves "now" with events only).
	Clock func(cluster string) drivers.Clock
	// SessionKey seals session cookies (32 bytes). Sessions survive a restart
	// while it stays the same.
	SessionKey []byte
	Logger     *slog.Logger
	Version    string
}

// Dashboard serves the web dashboard.
type Dashboard struct {
	cfg    Config
	log    *slog.Logger
	sealer *sealer
	origin *http.CrossOriginProtection
	pages  map[string]*template.Template
	mux    *http.ServeMux
}

// New builds the dashboard.
func New(cfg Config) (*Dashboard, error) {
	if cfg.API == nil || cfg.Store == nil || cfg.Identify == nil {
		return nil, errors.New("dashboard: API, Store and Identify are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := newSealer(cfg.SessionKey)
	if err != nil {
		return nil, err
	}
	d := &Dashboard{cfg: cfg, log: cfg.Logger.With("component", "dashboard"), sealer: s, origin: http.NewCrossOriginProtection()}
	if d.pages, err = parsePages(); err != nil {
		return nil, err
	}
	d.routes()
	return d, nil
}

func (d *Dashboard) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /signin", d.handleSignInPage)
	m.HandleFunc("POST /signin", d.handleSignIn)
	m.HandleFunc("POST /signout", d.page(false, d.handleSignOut))
	m.HandleFunc("GET /{$}", d.page(false, d.handleClusters))
	m.HandleFunc("GET /runs", d.page(false, d.handleHistory))
	m.HandleFunc("GET /runs/{id}", d.page(false, d.handleRun))
	m.HandleFunc("GET /runs/{id}/state", d.data(d.handleRunState))
	m.HandleFunc("GET /runs/{id}/events", d.data(d.handleEvents))
	m.HandleFunc("GET /runs/{id}/report", d.data(d.handleReport))
	m.HandleFunc("POST /runs/{id}/{action}", d.page(true, d.handleRunAction))
	m.HandleFunc("GET /clusters/{cluster}/plan", d.page(false, d.handlePlan))
	m.HandleFunc("POST /clusters/{cluster}/start", d.page(true, d.handleStart))
	m.HandleFunc("POST /clusters/{cluster}/pause", d.page(true, d.handlePause))
	m.HandleFunc("/", d.page(false, func(w http.ResponseWriter, r *http.Request, u user) {
		d.fail(w, r, u, http.StatusNotFound, "No such page.")
	}))
	d.mux = m
}

// ServeHTTP serves the dashboard with headers that keep the browser strict: no
// inline script, nothing from elsewhere, no framing, no caching of pages.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	if !strings.HasPrefix(r.URL.Path, "/static/") {
		h.Set("Cache-Control", "no-store")
	}
	d.mux.ServeHTTP(w, r)
}

// page wraps a page handler: without a session the visitor is sent to sign in;
// a state-changing one (change) needs an operator and passes the CSRF check.
func (d *Dashboard) page(change bool, h func(http.ResponseWriter, *http.Request, user)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, ok := d.user(r)
		if !ok {
			if change || r.Method != http.MethodGet {
				http.Error(w, "sign in first", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
			if err := d.checkCSRF(r, u); err != nil {
				d.log.Warn("refused a request that failed the CSRF check", "path", r.URL.Path, "token", u.Name, "error", err)
				d.fail(w, r, u, http.StatusForbidden, "Refused: "+err.Error())
				return
			}
		}
		if change && !u.Operator {
			d.fail(w, r, u, http.StatusForbidden, fmt.Sprintf("Token %s is a viewer: this needs an operator token.", u.Name))
			return
		}
		h(w, r, u)
	}
}

// data wraps an endpoint the page's script reads: 401 without a session.
func (d *Dashboard) data(h func(http.ResponseWriter, *http.Request, user)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, ok := d.user(r)
		if !ok {
			http.Error(w, "sign in first", http.StatusUnauthorized)
			return
		}
		h(w, r, u)
	}
}

// bufferWriter collects an in-process API answer.
type bufferWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferWriter) Header() http.Header { return b.header }
func (b *bufferWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}
func (b *bufferWriter) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

// apiError is an error answer of the API.
type apiError struct {
	Status int
	Msg    string
}

func (e *apiError) Error() string { return e.Msg }

// apiRequest is a request to the API on behalf of u, made from r (its context,
// and with it the access log's slot for the token's name).
func apiRequest(ctx context.Context, r *http.Request, u user, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, path, body)
	if err != nil {
		return nil, fmt.Errorf("call the API: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+u.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.RemoteAddr = r.RemoteAddr
	req.Host = r.Host
	return req, nil
}

// proxy passes the API's answer to path straight to w (event streams, reports).
func (d *Dashboard) proxy(w http.ResponseWriter, r *http.Request, u user, path string) {
	req, err := apiRequest(r.Context(), r, u, "GET", path, nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	d.cfg.API.ServeHTTP(w, req)
}

// call calls the API on behalf of u and decodes its JSON answer into out (nil: do
// not decode). A non-2xx answer is an *apiError with the API's message.
func (d *Dashboard) call(r *http.Request, u user, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := apiRequest(r.Context(), r, u, method, path, body)
	if err != nil {
		return &apiError{Status: http.StatusBadRequest, Msg: err.Error()}
	}
	bw := &bufferWriter{header: http.Header{}}
	d.cfg.API.ServeHTTP(bw, req)
	if bw.status < 200 || bw.status > 299 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(bw.body.String())
		if json.Unmarshal(bw.body.Bytes(), &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return &apiError{Status: bw.status, Msg: msg}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(bw.body.Bytes(), out); err != nil {
		return fmt.Errorf("read the API's answer to %s %s: %w", method, path, err)
	}
	return nil
}

func apiPath(format string, parts ...string) string {
	esc := make([]any, len(parts))
	for i, p := range parts {
		esc[i] = url.PathEscape(p)
	}
	return fmt.Sprintf(format, esc...)
}

// errorStatus is the status to answer for err (the API's, else 502).
func errorStatus(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return http.StatusBadGateway
}
