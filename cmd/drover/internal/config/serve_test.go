package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/drivers"
)

func TestConfig_ServeSample(t *testing.T) {
	cfg, err := Load(LoadOptions{File: "../../../../testdata/serve.yaml"})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	sc, err := cfg.Serve()
	if err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if sc.Server.Listen != "127.0.0.1:8086" || len(sc.Server.Tokens) != 2 || sc.TLS != nil {
		t.Errorf("server = %+v", sc.Server)
	}
	if len(sc.Clusters) != 2 {
		t.Fatalf("%d clusters, want 2", len(sc.Clusters))
	}
	demo, medium := sc.Clusters[0], sc.Clusters[1]
	if demo.Name != "demo" || demo.Policy.MaxParallelMigrations != 4 || demo.Policy.Canary {
		t.Errorf("demo policy = %+v", demo.Policy)
	}
	if medium.Policy.MaxParallelMigrations != 8 || !medium.Policy.Canary || medium.Policy.Failback != "immediate" || medium.Policy.RebootTimeout.D() != 15*time.Minute {
		t.Errorf("medium policy: overrides on top of the shared policy expected, got %+v", medium.Policy)
	}
	// demo has no windows of its own: it inherits the top-level ones.
	if len(demo.Windows) != 1 || len(medium.Windows) != 1 || medium.WindowSpecs[0].Days[0] != "sat" {
		t.Errorf("windows: demo %v, medium %v", demo.WindowSpecs, medium.WindowSpecs)
	}
	if got := demo.Schedule.String(); got != "3rd tue at 22:00 Europe/Berlin" {
		t.Errorf("demo schedule = %q", got)
	}
	if got := medium.Schedule.String(); !strings.HasPrefix(got, "last sat at 23:00") {
		t.Errorf("medium schedule = %q", got)
	}
	// CLI commands on a multi-cluster config work on the first cluster, or the named one.
	if cfg.Cluster.Name != "demo" {
		t.Errorf("CLI cluster = %q, want the first one", cfg.Cluster.Name)
	}
	named, err := Load(LoadOptions{File: "../../../../testdata/serve.yaml", Sets: []string{"cluster.name=medium"}})
	if err != nil || named.Cluster.Name != "medium" || named.Policy.MaxParallelMigrations != 8 {
		t.Errorf("cluster.name=medium: %v, %+v", err, named)
	}
}

func TestConfig_ServeSingleClusterForm(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "drover.yaml", baseFile+`
schedule: {cron: "@every 2s"}
windows: [{days: [all], start: "00:00", end: "24:00"}]
`)
	writeFile(t, dir, "c.yaml", "nodes: [{name: n1, memory_mib: 1024, cpus: 2}]\n")
	cfg, err := Load(LoadOptions{File: file})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	sc, err := cfg.Serve()
	if err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if len(sc.Clusters) != 1 || sc.Clusters[0].Name != "file-cluster" || !sc.Clusters[0].Schedule.Enabled() || len(sc.Clusters[0].Windows) != 1 {
		t.Errorf("clusters = %+v", sc.Clusters)
	}
	if sc.Server.Listen != DefaultListen {
		t.Errorf("listen = %q, want the default %s", sc.Server.Listen, DefaultListen)
	}
}

func TestLoad_ServeKeysFromTheEnvironment(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "drover.yaml", baseFile)
	t.Setenv("DROVER_SERVER_LISTEN", "127.0.0.1:9999")
	t.Setenv("DROVER_SCHEDULE_CRON", "CRON_TZ=Europe/Berlin 0 3 * * *")
	t.Setenv("DROVER_SCHEDULE_PAUSED", "true")
	cfg, err := Load(LoadOptions{File: file})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Listen != "127.0.0.1:9999" || cfg.Schedule.Cron != "CRON_TZ=Europe/Berlin 0 3 * * *" || !cfg.Schedule.Paused {
		t.Errorf("env keys not read: server %+v schedule %+v", cfg.Server, cfg.Schedule)
	}
}

func TestConfig_ServeErrors(t *testing.T) {
	const secretURL = "https://hooks.example.com/services/T000/SECRETPATH?sig=SECRETQUERY"
	const pastedToken = "this-is-the-token-itself-not-a-digest"
	okDigest := strings.Repeat("ab", 32)
	tests := []struct {
		name   string
		extra  string // appended to the single-cluster base config
		multi  string // replaces the cluster section with clusters
		fields []string
		never  []string // must not appear in the errors
	}{
		{name: "non-loopback-without-tls", extra: "server: {listen: 0.0.0.0:8086, tokens: [{name: a, role: viewer, sha256: " + okDigest + "}]}", fields: []string{"server.listen"}},
		{name: "hostname-is-not-loopback", extra: "server: {listen: \"drover.example.com:8086\"}", fields: []string{"server.listen"}},
		{name: "bad-listen", extra: "server: {listen: nonsense}", fields: []string{"server.listen"}},
		{name: "token-not-a-digest", extra: "server: {tokens: [{name: a, role: viewer, sha256: " + pastedToken + "}]}", fields: []string{"server.tokens[0].sha256"}, never: []string{pastedToken}},
		{name: "token-bad-role", extra: "server: {tokens: [{name: a, role: admin, sha256: " + okDigest + "}]}", fields: []string{"server.tokens[0].role"}},
		{name: "token-names-and-digests-unique", extra: "server: {tokens: [{name: a, role: viewer, sha256: " + okDigest + "}, {name: a, role: operator, sha256: " + strings.ToUpper(okDigest) + "}]}", fields: []string{"server.tokens[1].name", "server.tokens[1].sha256"}},
		{name: "tls-cert-without-key", extra: "server: {tls: {cert: c.pem}}", fields: []string{"server.tls"}},
		{name: "tls-files-missing", extra: "server: {tls: {cert: c.pem, key: k.pem}}", fields: []string{"server.tls.cert"}},
		{name: "bad-schedule", extra: "schedule: {cron: \"0 3 * * TUE#3\"}", fields: []string{"schedule.cron"}},
		{name: "bad-window", extra: "windows: [{days: [funday], start: \"22:00\", end: \"04:00\"}]", fields: []string{"windows[0].days[0]"}},
		{name: "webhook-bad-url", extra: "webhooks: [{url: \"ftp://x/" + "SECRETPATH\"}]", fields: []string{"webhooks[0].url"}, never: []string{"SECRETPATH"}},
		{name: "webhook-unknown-event", extra: "webhooks: [{url: \"" + secretURL + "\", events: [run_exploded]}]", fields: []string{"webhooks[0].events[0]"}, never: []string{"SECRETPATH", "SECRETQUERY"}},
		{name: "webhook-retries", extra: "webhooks: [{url: \"" + secretURL + "\", retries: 99}]", fields: []string{"webhooks[0].retries"}},
		{name: "webhook-unknown-format", extra: "webhooks: [{url: \"" + secretURL + "\", format: discord}]", fields: []string{"webhooks[0].format"}, never: []string{"SECRETPATH", "SECRETQUERY"}},
		{name: "cluster-policy-override-invalid", multi: "clusters: [{name: a, driver: sim, sim: {cluster_file: c.yaml}}, {name: b, driver: sim, sim: {cluster_file: c.yaml}, policy: {max_parallel_migrations: 0}}]", fields: []string{"clusters[1].policy.max_parallel_migrations"}},
		{name: "cluster-schedule-invalid", multi: "clusters: [{name: a, driver: sim, sim: {cluster_file: c.yaml}, schedule: {days: [tue], weeks: [7], at: \"03:00\"}}]", fields: []string{"clusters[0].schedule.weeks[0]"}},
		{name: "cluster-window-invalid", multi: "clusters: [{name: a, driver: sim, sim: {cluster_file: c.yaml}, windows: [{days: [mon], start: \"25:00\", end: \"02:00\"}]}]", fields: []string{"clusters[0].windows[0].start"}},
		{name: "cluster-driver-section-invalid", multi: "clusters: [{name: a, driver: sim, sim: {time_scale: 0}}]", fields: []string{"clusters[0].sim.cluster_file"}},
		{name: "cluster-names-unique", multi: "clusters: [{name: a, driver: sim, sim: {cluster_file: c.yaml}}, {name: a, driver: sim, sim: {cluster_file: c.yaml}}]", fields: []string{"clusters[1].name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			body := baseFile
			if tt.multi != "" {
				body = "state: state.db\npolicy: {max_parallel_migrations: 3}\n" + tt.multi
			}
			file := writeFile(t, dir, "drover.yaml", body+"\n"+tt.extra+"\n")
			writeFile(t, dir, "c.yaml", "nodes: [{name: n1, memory_mib: 1024, cpus: 2}]\n")
			cfg, err := Load(LoadOptions{File: file})
			if err == nil {
				_, err = cfg.Serve()
			}
			if err == nil {
				t.Fatal("no error")
			}
			var got []string
			for _, e := range flattenErr(err) {
				fe, ok := errors.AsType[*drivers.FieldError](e)
				if !ok {
					t.Fatalf("%v is not a FieldError", e)
				}
				got = append(got, fe.Field)
			}
			for _, f := range tt.fields {
				if !contains(got, f) {
					t.Errorf("errors on %v, want one on %s (%v)", got, f, err)
				}
			}
			for _, s := range tt.never {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error shows %q: %v", s, err)
				}
			}
		})
	}
}

func TestLoad_MultiClusterRefusals(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		sets  []string
		field string
	}{
		{"cluster-and-clusters", "cluster: {name: x, driver: sim, sim: {cluster_file: c.yaml}}\nclusters: [{name: a, driver: sim, sim: {cluster_file: c.yaml}}]", nil, "cluster"},
		{"unknown-cluster-name", "clusters: [{name: a, driver: sim, sim: {cluster_file: c.yaml}}]", []string{"cluster.name=b"}, "cluster.name"},
		{"unnamed-cluster", "clusters: [{driver: sim, sim: {cluster_file: c.yaml}}]", nil, "clusters[0].name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := writeFile(t, dir, "drover.yaml", tt.body+"\n")
			_, err := Load(LoadOptions{File: file, Sets: tt.sets})
			fe, ok := errors.AsType[*drivers.FieldError](err)
			if !ok || fe.Field != tt.field {
				t.Errorf("err = %v, want a FieldError on %s", err, tt.field)
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:8086", true}, {"127.8.9.1:1", true}, {"[::1]:8086", true}, {"localhost:8086", true},
		{"0.0.0.0:8086", false}, {":8086", false}, {"[::]:8086", false}, {"10.0.0.5:8086", false}, {"drover.example.com:8086", false}, {"nonsense", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := IsLoopback(tt.addr); got != tt.want {
				t.Errorf("IsLoopback(%q) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
}

func flattenErr(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flattenErr(e)...)
		}
		return out
	}
	return []error{err}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
