// Package server is `drover serve`: the daemon that runs the clusters of one config
// file on their schedules and inside their maintenance windows, resumes interrupted
// runs at start-up, and serves the HTTP API (/api/v1, JSON), live run events
// (Server-Sent Events), Prometheus metrics (/metrics) and webhook notifications.
//
// It is an adapter: decisions come from orchestrator/schedule (when a run is due,
// whether a node fits into its window) and runs are executed by orchestrator.Engine,
// exactly as the CLI executes them. The package owns the per-cluster "one active run"
// rule, authentication (bearer tokens stored as SHA-256 digests, roles viewer and
// operator) and graceful shutdown. Wire types of the API are in wire.go; the CLI's
// client is cmd/drover/internal/apiclient.
package server
