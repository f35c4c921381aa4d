// Package apiclient is the CLI's client of the daemon's HTTP API (`drover ... --server
// URL`): typed calls for the runs and clusters routes and a reader of a run's live
// events (Server-Sent Events). Wire types are package wire's.
package apiclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/droverhq/drover/cmd/drover/internal/wire"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/orchestrator/readiness"
	"github.com/droverhq/drover/runs/report"
)

// Client talks to one daemon with one token.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
	// Timeout bounds each call except event streams.
	Timeout time.Duration
}

// New checks the server URL and the token. The token is only ever sent in the
// Authorization header.
func New(serverURL, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(serverURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server: give the daemon's URL, e.g. http://127.0.0.1:8086")
	}
	if u.User != nil || u.RawQuery != "" {
		return nil, fmt.Errorf("--server: give scheme, host and port only; the token goes in --token or DROVER_TOKEN")
	}
	if token == "" {
		return nil, errors.New("--token: the daemon needs a token: pass --token or set DROVER_TOKEN")
	}
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: u, token: token, hc: hc, Timeout: time.Minute}, nil
}

// APIError is an error answer of the daemon.
type APIError struct {
	Status int
	Body   wire.ErrorBody
}

func (e *APIError) Error() string {
	msg := e.Body.Error
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("daemon answered %d: %s", e.Status, msg)
}

func (c *Client) url(path string, q url.Values) string {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawQuery = q.Encode()
	return u.String()
}

// request sends one call; out (when not nil) receives the JSON answer.
func (c *Client) request(ctx context.Context, method, path string, q url.Values, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, q), rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach the daemon: %w", err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		ae := &APIError{Status: resp.StatusCode}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &ae.Body) != nil {
			ae.Body.Error = strings.TrimSpace(string(b))
		}
		return nil, ae
	}
	return resp, nil
}

func (c *Client) call(ctx context.Context, method, path string, q url.Values, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	resp, err := c.request(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("read the daemon's answer: %w", err)
	}
	return nil
}

// Runs lists the runs, newest first (of cluster when given).
func (c *Client) Runs(ctx context.Context, cluster string) ([]wire.RunSummary, error) {
	q := url.Values{}
	if cluster != "" {
		q.Set("cluster", cluster)
	}
	var out []wire.RunSummary
	err := c.call(ctx, http.MethodGet, wire.APIPrefix+"/runs", q, nil, &out)
	return out, err
}

// clusterQuery names the cluster a run must belong to ("" = any).
func clusterQuery(cluster string) url.Values {
	q := url.Values{}
	if cluster != "" {
		q.Set("cluster", cluster)
	}
	return q
}

// Report returns the report of a run (an ID, a unique prefix, or "last": the
// newest run of cluster). A run of another cluster than cluster (when given) is
// refused.
func (c *Client) Report(ctx context.Context, cluster, id string) (report.Report, error) {
	var out report.Report
	err := c.call(ctx, http.MethodGet, wire.APIPrefix+"/runs/"+url.PathEscape(id), clusterQuery(cluster), nil, &out)
	return out, err
}

// RenderReport copies a run's report in format (json, html, csv, md) to w.
func (c *Client) RenderReport(ctx context.Context, cluster, id, format string, w io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	q := clusterQuery(cluster)
	q.Set("format", format)
	resp, err := c.request(ctx, http.MethodGet, wire.APIPrefix+"/runs/"+url.PathEscape(id)+"/report", q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	return err
}

// Preview returns what a new run of cluster would do now.
func (c *Client) Preview(ctx context.Context, cluster string) (wire.Preview, error) {
	var out wire.Preview
	err := c.call(ctx, http.MethodGet, wire.APIPrefix+"/clusters/"+url.PathEscape(cluster)+"/preview", nil, nil, &out)
	return out, err
}

// Analyze returns the readiness checks of cluster (`drover analyze --json`).
func (c *Client) Analyze(ctx context.Context, cluster string) (readiness.Analysis, error) {
	var out readiness.Analysis
	err := c.call(ctx, http.MethodGet, wire.APIPrefix+"/clusters/"+url.PathEscape(cluster)+"/analyze", nil, nil, &out)
	return out, err
}

// Plan returns the plan of a run of cluster started now (`drover plan --json`).
func (c *Client) Plan(ctx context.Context, cluster string) (*orchestrator.RunPlan, error) {
	var out orchestrator.RunPlan
	if err := c.call(ctx, http.MethodGet, wire.APIPrefix+"/clusters/"+url.PathEscape(cluster)+"/plan", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Clusters lists the daemon's clusters.
func (c *Client) Clusters(ctx context.Context) ([]wire.ClusterInfo, error) {
	var out []wire.ClusterInfo
	err := c.call(ctx, http.MethodGet, wire.APIPrefix+"/clusters", nil, nil, &out)
	return out, err
}

// Cluster returns one of the daemon's clusters, its effective policy included.
func (c *Client) Cluster(ctx context.Context, name string) (wire.ClusterInfo, error) {
	var out wire.ClusterInfo
	err := c.call(ctx, http.MethodGet, wire.APIPrefix+"/clusters/"+url.PathEscape(name), nil, nil, &out)
	return out, err
}

// Start starts a run now.
func (c *Client) Start(ctx context.Context, req wire.StartRequest) (wire.RunAction, error) {
	var out wire.RunAction
	err := c.call(ctx, http.MethodPost, wire.APIPrefix+"/runs", nil, req, &out)
	return out, err
}

// Act asks for a run action: stop, resume or approve. The daemon refuses a run of
// another cluster than cluster (when given).
func (c *Client) Act(ctx context.Context, cluster, id, action string) (wire.RunAction, error) {
	var out wire.RunAction
	err := c.call(ctx, http.MethodPost, wire.APIPrefix+"/runs/"+url.PathEscape(id)+"/"+action, clusterQuery(cluster), struct{}{}, &out)
	return out, err
}

// ErrStreamEnded: the daemon closed the event stream before the run finished (it
// shut down; the run resumes when it starts again).
var ErrStreamEnded = errors.New("the daemon closed the event stream before the run finished")

// Events follows a run's live events until fn returns an error or stop, the run
// finishes (after fn saw run_finished, Events returns nil), or ctx is done.
func (c *Client) Events(ctx context.Context, id string, fn func(orchestrator.Event) (stop bool, err error)) error {
	resp, err := c.request(ctx, http.MethodGet, wire.APIPrefix+"/runs/"+url.PathEscape(id)+"/events", nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "data: "):
			data.WriteString(strings.TrimPrefix(line, "data: "))
		case line == "" && data.Len() > 0:
			var ev orchestrator.Event
			if err := json.Unmarshal([]byte(data.String()), &ev); err != nil {
				return fmt.Errorf("read event: %w", err)
			}
			data.Reset()
			stop, err := fn(ev)
			if err != nil || stop {
				return err
			}
			if ev.Kind == orchestrator.EventRunFinished {
				return nil
			}
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	return ErrStreamEnded
}
