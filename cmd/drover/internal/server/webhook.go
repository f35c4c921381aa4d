package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/droverhq/drover/orchestrator"
)

// WebhookConfig is one notification target.
type WebhookConfig struct {
	// URL may hold a secret (path or query): only its scheme and host are ever
	// logged.
	URL     string
	Events  []string
	Timeout time.Duration
	Retries int
	// Format of the body: generic (the Notification, default), slack or teams.
	Format string
}

// Notification is the JSON body POSTed to webhooks. ID is unique per notification
// (the same in every retry), for receivers that deduplicate.
type Notification struct {
	ID      string `json:"id"`
	Event   string `json:"event"`
	Cluster string `json:"cluster"`
	RunID   string `json:"run_id"`
	Node    string `json:"node,omitempty"`
	State   string `json:"state,omitempty"`
	Message string `json:"message,omitempty"`
	// Time is when Drover sent the event, on the wall clock (UTC), as every
	// timestamp Drover shows; ClusterTime is the cluster's clock at the event (a
	// simulator may run faster), the clock of durations and deadlines.
	Time        time.Time `json:"time"`
	ClusterTime time.Time `json:"cluster_time,omitzero"`
	Version     string    `json:"drover_version,omitempty"`
	// Text is the event in one sentence, for chat tools that show only text.
	Text string `json:"text"`
}

// notificationName maps an engine event to a webhook event name ("" = none).
func notificationName(ev orchestrator.Event) string {
	switch ev.Kind {
	case orchestrator.EventRunStarted:
		return "run_started"
	case orchestrator.EventRunResumed:
		return "run_resumed"
	case orchestrator.EventRunFinished:
		return "run_finished"
	case orchestrator.EventApprovalNeeded:
		return "approval_needed"
	case orchestrator.EventWaiting:
		return "waiting"
	case orchestrator.EventNodeState:
		if ev.State == orchestrator.NodeFailed {
			return "node_failed"
		}
	}
	return ""
}

type webhook struct {
	target string // scheme://host, for logs
	format string
	events []string
	client *retryablehttp.Client
	url    string
}

type delivery struct {
	hook *webhook
	n    Notification
}

// notifier sends notifications from one goroutine, so Observe never blocks a run.
type notifier struct {
	hooks   []*webhook
	queue   chan delivery
	version string
	log     *slog.Logger
}

// queueSize bounds the notifications waiting to be sent; more are dropped (logged).
const queueSize = 256

func newNotifier(cfgs []WebhookConfig, hc *http.Client, wait time.Duration, version string, log *slog.Logger) *notifier {
	n := &notifier{queue: make(chan delivery, queueSize), version: version, log: log.With("component", "webhooks")}
	if wait <= 0 {
		wait = time.Second
	}
	for _, c := range cfgs {
		client := retryablehttp.NewClient()
		client.Logger = nil // its log lines would print the URL, secrets included
		client.RetryMax = c.Retries
		client.RetryWaitMin = wait
		client.RetryWaitMax = max(wait, 30*time.Second)
		client.CheckRetry = checkRetry
		client.ErrorHandler = retryablehttp.PassthroughErrorHandler
		if hc != nil {
			client.HTTPClient = hc
		} else {
			client.HTTPClient = &http.Client{Timeout: c.Timeout}
		}
		n.hooks = append(n.hooks, &webhook{target: redact(c.URL), format: c.Format, events: c.Events, client: client, url: c.URL})
	}
	return n
}

// redact keeps a URL's scheme and host: paths and queries of webhook URLs often are
// the secret (Slack, Teams, chat bridges).
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid url)"
	}
	return u.Scheme + "://" + u.Host
}

// checkRetry retries what may pass on a second attempt: transport errors (except
// certificate problems), 429 and 5xx other than 501. Webhook POSTs are not
// idempotent, but a notification delivered twice (same id) is better than none.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		var (
			unknownCA *x509.UnknownAuthorityError
			hostname  x509.HostnameError
			invalid   x509.CertificateInvalidError
			verify    *tls.CertificateVerificationError
		)
		if errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verify) {
			return false, nil
		}
		return true, nil
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return true, nil
	case resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented:
		return true, nil
	}
	return false, nil
}

// observer queues the notifications of one cluster's events. A run continued in the
// same process (after its approval) starts again in the engine's eyes; receivers
// get its run_started once.
func (n *notifier) observer(cluster string) orchestrator.Observer {
	var mu sync.Mutex
	started := map[string]bool{}
	return orchestrator.ObserverFunc(func(ev orchestrator.Event) {
		name := notificationName(ev)
		if name == "" || len(n.hooks) == 0 {
			return
		}
		mu.Lock()
		switch name {
		case "run_started":
			if started[ev.RunID] {
				mu.Unlock()
				return
			}
			started[ev.RunID] = true
		case "run_finished":
			delete(started, ev.RunID)
		}
		mu.Unlock()
		note := Notification{ID: newID(), Event: name, Cluster: cluster, RunID: ev.RunID, Node: ev.Node, State: ev.State, Message: ev.Message,
			Time: time.Now().UTC().Truncate(time.Millisecond), ClusterTime: ev.Time.UTC(), Version: n.version}
		note.Text = notificationText(note)
		for _, h := range n.hooks {
			if !slices.Contains(h.events, name) {
				continue
			}
			select {
			case n.queue <- delivery{hook: h, n: note}:
			default:
				n.log.Warn("webhook queue full; notification dropped", "target", h.target, "event", name, "run_id", ev.RunID)
			}
		}
	})
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// run sends queued notifications until closing is closed; what is queued then is
// still sent within grace (0 = each delivery bounded by its own retries only).
func (n *notifier) run(closing <-chan struct{}, grace time.Duration) {
	ctx := context.Background()
	for {
		select {
		case d := <-n.queue:
			n.send(ctx, d)
		case <-closing:
			if grace > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, grace)
				defer cancel()
			}
			for {
				select {
				case d := <-n.queue:
					n.send(ctx, d)
				default:
					return
				}
			}
		}
	}
}

func (n *notifier) send(ctx context.Context, d delivery) {
	body, err := json.Marshal(webhookBody(d.hook.format, d.n))
	if err != nil {
		n.log.Error("encode notification", "error", err)
		return
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, d.hook.url, bytes.NewReader(body))
	if err != nil {
		n.log.Error("webhook request", "target", d.hook.target, "error", "invalid url")
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "drover/"+n.version)
	req.Header.Set("X-Drover-Event", d.n.Event)
	req.Header.Set("X-Drover-Delivery", d.n.ID)
	resp, err := d.hook.client.Do(req)
	if err != nil {
		n.log.Warn("webhook not delivered", "target", d.hook.target, "event", d.n.Event, "run_id", d.n.RunID, "error", safeError(err))
		return
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		n.log.Warn("webhook refused", "target", d.hook.target, "event", d.n.Event, "run_id", d.n.RunID, "status", resp.StatusCode)
		return
	}
	n.log.Debug("webhook delivered", "target", d.hook.target, "event", d.n.Event, "run_id", d.n.RunID)
}

// safeError drops the URL that *url.Error (and retryablehttp) put into messages.
func safeError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Sprintf("%s: %v", ue.Op, safeCause(ue.Err))
	}
	return "request failed"
}

func safeCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return safeCause(ue.Err)
	}
	return err
}
