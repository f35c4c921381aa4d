package orchestrator

import (
	"net/url"
	"sort"
	"strings"
)

// redactedValue replaces a secret in URLs shown or stored.
const redactedValue = "xxxxx"

// RedactURL returns raw with its password and every query value masked
// ("https://h/health?api_key=xxxxx"): health-check URLs often carry a key in the
// query, and the URL reaches logs, run errors, reports, the API and the state file.
// A URL that does not parse is masked whole.
func RedactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return redactedValue
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), redactedValue)
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		keys := make([]string, 0, len(q))
		for k := range q {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			for range q[k] {
				parts = append(parts, url.QueryEscape(k)+"="+redactedValue)
			}
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// storedPolicy is p as the state file keeps it: the health gate's URL without its
// secrets (withSecrets puts them back from the config on resume).
func storedPolicy(p Policy) Policy {
	p.HealthGate.URL = RedactURL(p.HealthGate.URL)
	return p
}

// withSecrets restores the health gate's URL of a stored policy from the config's
// (Config.HealthGateURL) when the two are the same URL but for the masked values.
// A stored URL whose secrets the config no longer has stays masked, and its check
// fails: it is never completed with a guess.
func (e *Engine) withSecrets(p Policy) Policy {
	if full := e.cfg.HealthGateURL; full != "" && p.HealthGate.URL == RedactURL(full) {
		p.HealthGate.URL = full
	}
	return p
}
