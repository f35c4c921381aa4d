// Package dashboard is the web dashboard of `drover serve`: server-rendered pages
// (html/template), a little hand-written JavaScript and CSS embedded with go:embed,
// and pictures drawn as SVG. There is no build step and nothing is loaded from
// anywhere but the daemon.
//
// The dashboard is a client of the daemon's own API, called in-process: every read
// and every action goes through the same handlers, roles and checks as a bearer
// token on /api/v1, so the dashboard cannot do what the token could not. A user
// signs in by pasting a token once; the daemon answers with a session cookie that
// holds the token sealed (AES-GCM) under a key derived from the configured token
// digests, so a session survives a daemon restart and ends when its token is
// removed from the config. Forms that change something carry a CSRF token bound to
// the session, and cross-origin requests are refused.
//
// Names that come from a driver (clusters, nodes, VMs) are untrusted: templates
// escape them by context, the JavaScript builds the DOM with textContent and
// setAttribute only, and a Content-Security-Policy forbids inline script.
package dashboard
