package server

import (
	"fmt"
	"strings"
)

// Webhook body formats (webhooks[].format). Slack's and Teams' incoming webhooks
// refuse a body without a "text" field; generic is Drover's own Notification,
// which carries one too.
const (
	FormatGeneric = "generic"
	FormatSlack   = "slack"
	FormatTeams   = "teams"
)

// WebhookFormats are the values webhooks[].format accepts.
func WebhookFormats() []string { return []string{FormatGeneric, FormatSlack, FormatTeams} }

// slackBody is an incoming-webhook message: text is what Slack shows.
type slackBody struct {
	Text string `json:"text"`
}

// teamsBody is a legacy connector MessageCard: Teams needs text (and shows summary
// in notifications).
type teamsBody struct {
	Type    string `json:"@type"`
	Context string `json:"@context"`
	Summary string `json:"summary"`
	Title   string `json:"title"`
	Text    string `json:"text"`
}

func webhookBody(format string, n Notification) any {
	switch format {
	case FormatSlack:
		return slackBody{Text: n.Text}
	case FormatTeams:
		return teamsBody{Type: "MessageCard", Context: "https://schema.org/extensions", Summary: n.Text, Title: "Drover: " + n.Event, Text: n.Text}
	}
	return n
}

// notificationText is the notification in one line; its timestamp is wall time,
// labelled, as every timestamp Drover shows.
func notificationText(n Notification) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Drover, cluster %s, run %s: ", n.Cluster, n.RunID)
	what := strings.ReplaceAll(n.Event, "_", " ")
	if n.Node != "" {
		what = "node " + n.Node + " " + strings.TrimPrefix(what, "node ")
	}
	b.WriteString(what)
	if n.State != "" && n.Event == "run_finished" {
		b.WriteString(" (" + n.State + ")")
	}
	if n.Message != "" {
		b.WriteString(": " + n.Message)
	}
	fmt.Fprintf(&b, " [%s wall, UTC]", n.Time.UTC().Format("2006-01-02 15:04:05"))
	return b.String()
}
