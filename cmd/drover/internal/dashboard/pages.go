package dashboard

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/droverhq/drover/cmd/drover/internal/wire"
	"github.com/droverhq/drover/runs"
)

// pageNames are the pages; each is templates/NAME.html inside templates/layout.html.
var pageNames = []string{"signin", "clusters", "run", "plan", "history", "error"}

var funcs = template.FuncMap{
	"stamp": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"ago":  ago,
	"dur":  humanDuration,
	"secs": func(s float64) string { return humanDuration(time.Duration(s * float64(time.Second))) },
	"join": strings.Join,
	"inc":  func(i int) int { return i + 1 },
	// short cuts a name to the label column of a chart.
	"short": func(s string) string {
		if r := []rune(s); len(r) > 18 {
			return string(r[:17]) + "…"
		}
		return s
	},
	"terminal": func(s runs.State) bool {
		return s.Terminal()
	},
}

func parsePages() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("dashboard: parse page %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// pageData is what every page gets; Data is the page's own.
type pageData struct {
	Title   string
	Nav     string
	User    *user
	Version string
	Flash   string
	Error   string
	Data    any
}

func (d *Dashboard) render(w http.ResponseWriter, status int, name string, pd pageData) {
	pd.Version = d.cfg.Version
	var buf bytes.Buffer
	if err := d.pages[name].Execute(&buf, pd); err != nil {
		d.log.Error("cannot render page", "page", name, "error", err)
		http.Error(w, "cannot render the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail renders an error page.
func (d *Dashboard) fail(w http.ResponseWriter, _ *http.Request, u user, status int, msg string) {
	d.render(w, status, "error", pageData{Title: http.StatusText(status), User: &u, Error: msg})
}

func ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := time.Since(t)
	if d < 0 {
		return "in " + humanDuration(-d)
	}
	return humanDuration(d) + " ago"
}

func humanDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()+0.5))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

// localPath is next if it is a path on this site, else "/".
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	return next
}

func (d *Dashboard) handleSignInPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := d.user(r); ok {
		http.Redirect(w, r, localPath(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	d.render(w, http.StatusOK, "signin", pageData{Title: "Sign in", Data: localPath(r.URL.Query().Get("next"))})
}

// handleSignIn trades a pasted token for a session cookie. The token is never
// logged; its name is.
func (d *Dashboard) handleSignIn(w http.ResponseWriter, r *http.Request) {
	if err := d.origin.Check(r); err != nil {
		http.Error(w, "refused: cross-origin sign-in", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	token := strings.TrimSpace(r.PostFormValue("token"))
	next := localPath(r.PostFormValue("next"))
	name, _, ok := d.cfg.Identify(token)
	if token == "" || !ok {
		d.log.Warn("dashboard sign-in refused: unknown token", "remote", r.RemoteAddr)
		d.render(w, http.StatusUnauthorized, "signin", pageData{Title: "Sign in", Error: "That token is not one of this daemon's (server.tokens).", Data: next})
		return
	}
	v, err := d.sealer.seal(session{Token: token, Expires: time.Now().Add(sessionTTL).Unix(), CSRF: newCSRF()})
	if err != nil {
		http.Error(w, "cannot make a session", http.StatusInternalServerError)
		return
	}
	http.SetCookie(w, sessionCookie(r, v, int(sessionTTL.Seconds())))
	d.log.Info("dashboard sign-in", "token", name, "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (d *Dashboard) handleSignOut(w http.ResponseWriter, r *http.Request, u user) {
	http.SetCookie(w, sessionCookie(r, "", -1))
	d.log.Info("dashboard sign-out", "token", u.Name)
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

// clusterRow is one cluster on the clusters page.
type clusterRow struct {
	Info     wire.ClusterInfo
	Nodes    int
	Pending  []pendingNode
	LastRun  *wire.RunSummary
	Problem  string
	Unfinish string
}

type pendingNode struct {
	Name    string
	Updates []string
	Skipped string
}

func (d *Dashboard) handleClusters(w http.ResponseWriter, r *http.Request, u user) {
	var infos []wire.ClusterInfo
	if err := d.call(r, u, "GET", "/api/v1/clusters", nil, &infos); err != nil {
		d.fail(w, r, u, errorStatus(err), err.Error())
		return
	}
	var rows []clusterRow
	for _, ci := range infos {
		row := clusterRow{Info: ci}
		var pv wire.Preview
		if err := d.call(r, u, "GET", apiPath("/api/v1/clusters/%s/preview", ci.Name), nil, &pv); err != nil {
			row.Problem = err.Error()
		} else {
			row.Nodes = len(pv.Nodes)
			row.Unfinish = pv.UnfinishedRun
			for _, n := range pv.Nodes {
				if len(n.Pending) == 0 {
					continue
				}
				p := pendingNode{Name: n.Name, Skipped: n.SkipReason}
				for _, up := range n.Pending {
					p.Updates = append(p.Updates, strings.TrimSpace(up.Name+" "+up.Version))
				}
				row.Pending = append(row.Pending, p)
			}
		}
		var last []wire.RunSummary
		if err := d.call(r, u, "GET", "/api/v1/runs?"+url.Values{"limit": {"1"}, "cluster": {ci.Name}}.Encode(), nil, &last); err == nil && len(last) > 0 {
			row.LastRun = &last[0]
		}
		rows = append(rows, row)
	}
	d.render(w, http.StatusOK, "clusters", pageData{Title: "Clusters", Nav: "clusters", User: &u, Flash: r.URL.Query().Get("msg"), Data: rows})
}

// historyData is the history page.
type historyData struct {
	Runs     []wire.RunSummary
	Clusters []string
	States   []string
	Cluster  string
	State    string
}

func (d *Dashboard) handleHistory(w http.ResponseWriter, r *http.Request, u user) {
	q := r.URL.Query()
	hd := historyData{Cluster: q.Get("cluster"), State: q.Get("state"),
		States: []string{"running", "waiting_approval", "succeeded", "partially_failed", "failed", "stopped"}}
	var infos []wire.ClusterInfo
	if err := d.call(r, u, "GET", "/api/v1/clusters", nil, &infos); err != nil {
		d.fail(w, r, u, errorStatus(err), err.Error())
		return
	}
	for _, ci := range infos {
		hd.Clusters = append(hd.Clusters, ci.Name)
	}
	sort.Strings(hd.Clusters)
	v := url.Values{"limit": {"500"}}
	if hd.Cluster != "" {
		v.Set("cluster", hd.Cluster)
	}
	if hd.State != "" {
		v.Set("state", hd.State)
	}
	if err := d.call(r, u, "GET", "/api/v1/runs?"+v.Encode(), nil, &hd.Runs); err != nil {
		d.fail(w, r, u, errorStatus(err), err.Error())
		return
	}
	d.render(w, http.StatusOK, "history", pageData{Title: "History", Nav: "history", User: &u, Data: hd})
}

// runPage is the run page's frame; the script fills it from /runs/{id}/state.
type runPage struct {
	ID      string
	Cluster string
	State   string
}

func (d *Dashboard) handleRun(w http.ResponseWriter, r *http.Request, u user) {
	var rep struct {
		ID      string `json:"id"`
		Cluster string `json:"cluster"`
		State   string `json:"state"`
	}
	if err := d.call(r, u, "GET", apiPath("/api/v1/runs/%s", r.PathValue("id")), nil, &rep); err != nil {
		d.fail(w, r, u, errorStatus(err), err.Error())
		return
	}
	q := r.URL.Query()
	d.render(w, http.StatusOK, "run", pageData{Title: "Run " + rep.ID, Nav: "run", User: &u, Flash: q.Get("msg"), Error: q.Get("err"),
		Data: runPage{ID: rep.ID, Cluster: rep.Cluster, State: rep.State}})
}

// handleEvents passes the API's event stream of the run through to the page.
func (d *Dashboard) handleEvents(w http.ResponseWriter, r *http.Request, u user) {
	d.proxy(w, r, u, apiPath("/api/v1/runs/%s/events", r.PathValue("id")))
}

// handleReport passes the run's HTML report through (one self-contained file).
func (d *Dashboard) handleReport(w http.ResponseWriter, r *http.Request, u user) {
	d.proxy(w, r, u, apiPath("/api/v1/runs/%s/report?format=html", r.PathValue("id")))
}

// handleRunAction stops, resumes or approves a run, then shows it again.
func (d *Dashboard) handleRunAction(w http.ResponseWriter, r *http.Request, u user) {
	id, action := r.PathValue("id"), r.PathValue("action")
	switch action {
	case "stop", "resume", "approve":
	default:
		d.fail(w, r, u, http.StatusNotFound, "No such action: use stop, resume or approve.")
		return
	}
	var out wire.RunAction
	back := "/runs/" + url.PathEscape(id)
	if err := d.call(r, u, "POST", apiPath("/api/v1/runs/%s/"+action, id), struct{}{}, &out); err != nil {
		http.Redirect(w, r, back+"?err="+url.QueryEscape(err.Error()), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, back+"?msg="+url.QueryEscape("Run "+out.ID+": "+out.Action+"."), http.StatusSeeOther)
}

// startRequest is the body of POST /api/v1/runs the dashboard sends.
type startRequest struct {
	Cluster string `json:"cluster"`
	Policy  *struct {
		Canary *bool `json:"canary,omitempty"`
	} `json:"policy,omitempty"`
}

func (d *Dashboard) handleStart(w http.ResponseWriter, r *http.Request, u user) {
	req := startRequest{Cluster: r.PathValue("cluster")}
	if r.PostFormValue("canary") == "on" {
		yes := true
		req.Policy = &struct {
			Canary *bool `json:"canary,omitempty"`
		}{Canary: &yes}
	}
	var out wire.RunAction
	if err := d.call(r, u, "POST", "/api/v1/runs", req, &out); err != nil {
		d.fail(w, r, u, errorStatus(err), "The run did not start: "+err.Error())
		return
	}
	http.Redirect(w, r, "/runs/"+url.PathEscape(out.ID), http.StatusSeeOther)
}

func (d *Dashboard) handlePause(w http.ResponseWriter, r *http.Request, u user) {
	c := r.PathValue("cluster")
	op := "unpause"
	if r.PostFormValue("paused") == "true" {
		op = "pause"
	}
	if err := d.call(r, u, "POST", apiPath("/api/v1/clusters/%s/"+op, c), struct{}{}, nil); err != nil {
		d.fail(w, r, u, errorStatus(err), err.Error())
		return
	}
	http.Redirect(w, r, "/?msg="+url.QueryEscape("Cluster "+c+": schedule "+op+"d."), http.StatusSeeOther)
}
