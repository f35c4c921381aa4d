package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/cmd/internal/chaos"
	"github.com/droverhq/drover/ha"
	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/etcdtest"
	"github.com/droverhq/drover/runs/report"
)

// haEnv reads a count of the HA test from the environment (make e2e-ha sets them).
func haEnv(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a count", name, v)
	}
	return n
}

const haTTL = 3 * time.Second

// haReplicas is the test's set of `drover serve` replicas by name.
type haReplicas struct {
	t     *testing.T
	procs *chaos.Procs
	bin   string
	dir   string
	live  map[string]*daemon
	logs  map[string][]string
	start map[string]int
}

func (h *haReplicas) conf(name, simURL string, endpoints []string) string {
	return fmt.Sprintf(`log: {level: info, format: json}
cluster:
  name: e2e
  driver: sim
  sim: {url: %q}
policy: {failback: none, max_parallel_migrations: 4, max_migrations_per_node: 2}
server:
  listen: 127.0.0.1:0
  tokens:
    - {name: e2e-viewer, role: viewer, sha256: %s}
    - {name: e2e-operator, role: operator, sha256: %s}
ha:
  etcd: {endpoints: [%s], prefix: /drover-e2e-ha}
  lease_ttl: %s
  replica: %s
`, simURL, sha(e2eViewer), sha(e2eOperator), strings.Join(endpoints, ", "), haTTL, name)
}

func (h *haReplicas) run(name, conf string) {
	h.t.Helper()
	cfg := filepath.Join(h.dir, name+".yaml")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		h.t.Fatal(err)
	}
	h.start[name]++
	log := filepath.Join(h.dir, fmt.Sprintf("%s-%d.log", name, h.start[name]))
	h.logs[name] = append(h.logs[name], log)
	h.live[name] = startDaemon(h.t, h.procs, h.bin, cfg, log)
}

// status asks every live replica for /api/v1/ha; the leader is the replica that
// says it leads.
func (h *haReplicas) leader(except string) (string, bool) {
	for name, d := range h.live {
		if name == except {
			continue
		}
		var st ha.Status
		if d.get(h.t, "/api/v1/ha", e2eViewer, &st) == http.StatusOK && st.IsLeader {
			return name, true
		}
	}
	return "", false
}

func (h *haReplicas) runReport(id string) (report.Report, bool) {
	for _, d := range h.live {
		var rep report.Report
		if d.get(h.t, "/api/v1/runs/"+id, e2eViewer, &rep) == http.StatusOK {
			return rep, true
		}
	}
	return report.Report{}, false
}

// TestServe_HA is `make e2e-ha`: three `drover serve` replicas on a 3-member etcd
// cluster and a separate `drover sim serve`; a run starts through the API; the
// leader is killed with kill -9 (DROVER_HA_KILLS times) and frozen with SIGSTOP past
// its lease (DROVER_HA_FREEZES times); one etcd member is stopped. It prints the
// counts and the takeover times, and fails on any lost VM, double action, node
// left paused, write by a deposed leader, or a takeover slower than 2 x lease_ttl.
func TestServe_HA(t *testing.T) {
	if os.Getenv("DROVER_HA_E2E") == "" {
		t.Skip("make e2e-ha runs it (DROVER_HA_E2E=1): 3 etcd members, 4 processes, a minute or more")
	}
	kills, freezes := haEnv(t, "DROVER_HA_KILLS", 3), haEnv(t, "DROVER_HA_FREEZES", 1)
	scale := haEnv(t, "DROVER_HA_TIME_SCALE", 20)
	rng := rand.New(rand.NewPCG(uint64(haEnv(t, "DROVER_HA_SEED", 1)), 7))
	bin := droverBinary(t)
	procs := &chaos.Procs{}
	t.Cleanup(procs.KillAll)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	etcd := etcdtest.Start(t, 3)
	cli := etcd.Client()
	sim, err := chaos.StartSim(ctx, procs, bin, filepath.Join(moduleRoot(t), "testdata", "clusters", "demo.yaml"), float64(scale), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	before, err := sim.Client.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := &haReplicas{t: t, procs: procs, bin: bin, dir: dir, live: map[string]*daemon{}, logs: map[string][]string{}, start: map[string]int{}}
	names := []string{"r1", "r2", "r3"}
	for _, n := range names {
		h.run(n, h.conf(n, sim.URL, etcd.Endpoints()))
	}
	var leader string
	waitFor(t, "a leader", 3*haTTL, func() bool { var ok bool; leader, ok = h.leader(""); return ok })

	// A follower answers a mutation with the leader's address; the leader starts.
	follower := names[(slices.Index(names, leader)+1)%len(names)]
	resp := h.live[follower].post(t, "/api/v1/runs", `{"cluster":"e2e"}`)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("X-Drover-Leader") != h.live[leader].url {
		t.Fatalf("POST /runs on follower %s: %d, X-Drover-Leader %q; want 503 and %s", follower, resp.StatusCode, resp.Header.Get("X-Drover-Leader"), h.live[leader].url)
	}
	resp = h.live[leader].post(t, "/api/v1/runs", `{"cluster":"e2e"}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /runs on leader %s: %d %s", leader, resp.StatusCode, resp.body)
	}
	var started struct{ ID string }
	if err := json.Unmarshal([]byte(resp.body), &started); err != nil || started.ID == "" {
		t.Fatalf("start answer %s: %v", resp.body, err)
	}
	runID := started.ID

	var takeovers []time.Duration
	midRun := 0
	measure := func(old string, stopped time.Time) string {
		t.Helper()
		prev, _ := h.runReport(runID)
		if !runs.State(prev.State).Terminal() {
			midRun++
		}
		var next string
		waitFor(t, "a new leader after "+old, 3*haTTL, func() bool { var ok bool; next, ok = h.leader(old); return ok })
		// The run is resumed when its resume count grows (or it already ended).
		waitFor(t, "the run resumed by "+next, 3*haTTL, func() bool {
			rep, ok := h.runReport(runID)
			return ok && (runs.State(rep.State).Terminal() || rep.Resumes > prev.Resumes)
		})
		d := time.Since(stopped)
		takeovers = append(takeovers, d)
		t.Logf("leader %s lost, %s took over and resumed the run after %s (run %s before)", old, next, d.Round(time.Millisecond), prev.State)
		return next
	}
	steps := make([]string, 0, kills+freezes)
	for range kills {
		steps = append(steps, "kill")
	}
	for range freezes {
		steps = append(steps, "freeze")
	}
	rng.Shuffle(len(steps), func(i, j int) { steps[i], steps[j] = steps[j], steps[i] })
	stoppedMember := false
	for i, step := range steps {
		time.Sleep(time.Duration(300+rng.IntN(1700)) * time.Millisecond) // a random moment of the run
		if i == len(steps)/2 && !stoppedMember {
			etcd.StopMember(2)
			stoppedMember = true
			t.Logf("stopped etcd member m2")
		}
		old, ok := h.leader("")
		if !ok {
			waitFor(t, "a leader", 3*haTTL, func() bool { old, ok = h.leader(""); return ok })
		}
		d := h.live[old]
		switch step {
		case "kill":
			if err := d.proc.Kill(); err != nil {
				t.Fatal(err)
			}
			at := time.Now()
			<-d.proc.Done()
			delete(h.live, old)
			measure(old, at)
		case "freeze":
			if err := d.proc.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			at := time.Now()
			delete(h.live, old)
			measure(old, at)
			time.Sleep(haTTL / 2) // frozen well past its lease, while the new leader acts
			if err := d.proc.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			code, err := d.proc.Wait(3 * haTTL)
			if err != nil || code != 1 {
				t.Fatalf("thawed stale leader %s: exit %d, %v; want exit 1 (it lost its lease)", old, code, err)
			}
			if log := readFile(h.logs[old][len(h.logs[old])-1]); !strings.Contains(log, "lost its etcd lease") {
				t.Errorf("thawed stale leader %s does not say it lost its lease; log:\n%s", old, log)
			}
		}
		h.run(old, h.conf(old, sim.URL, etcd.Endpoints()[:2])) // the replacement, same name
	}

	waitFor(t, "the run to end", 5*time.Minute, func() bool {
		rep, ok := h.runReport(runID)
		return ok && runs.State(rep.State).Terminal()
	})
	if last, ok := h.leader(""); ok {
		req, _ := http.NewRequest(http.MethodGet, h.live[last].url+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+e2eViewer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		_, _ = io.Copy(&sb, resp.Body)
		resp.Body.Close()
		for _, want := range []string{"drover_ha_is_leader 1", "drover_ha_replicas 3", fmt.Sprintf("drover_ha_takeovers %d", len(takeovers))} {
			if !strings.Contains(sb.String(), want+"\n") {
				t.Errorf("metrics of leader %s lack %q", last, want)
			}
		}
	}
	for name, d := range h.live {
		if err := d.proc.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code, err := d.proc.Wait(30 * time.Second); err != nil || code != 0 {
			log := readFile(h.logs[name][len(h.logs[name])-1])
			t.Errorf("replica %s after SIGTERM: exit %d, %v; log tail:\n%s", name, code, err, log[max(0, len(log)-3000):])
		}
	}

	// The cluster, the run and the store.
	st, err := runs.OpenEtcd(ctx, cli, "/drover-e2e-ha", runs.EtcdOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.Run(runID)
	if err != nil {
		t.Fatal(err)
	}
	nodes, _ := st.Nodes(runID)
	journal, _ := st.Journal(runID)
	rep := report.Build(r, nodes)
	after, err := sim.Client.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stats, err := sim.Client.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pending := map[string][]cluster.Update{}
	for _, n := range after.Nodes {
		if pending[n.Name], err = sim.Client.Scan(ctx, n.Name); err != nil {
			t.Fatal(err)
		}
	}
	f := chaos.Check(chaos.CheckInput{Before: before, After: after, Stats: stats, Report: rep, Pending: pending,
		Failback: "none", OpenIntents: runs.OpenIntents(journal)})
	for _, s := range f.All() {
		t.Error(s)
	}
	deposedWrites, audited := auditWrites(t, cli, "/drover-e2e-ha")
	slices.Sort(takeovers)
	var median, worst time.Duration
	if n := len(takeovers); n > 0 {
		median, worst = takeovers[n/2], takeovers[n-1]
	}
	line := fmt.Sprintf("ha: %d leader kills, %d freezes, %d takeovers, %d lost VMs, %d double migrations, %d double reboots, %d nodes left paused, %d writes by a deposed leader (of %d fenced writes audited), actions by a deposed leader not counted (the simulator does not record its caller)",
		kills, freezes, len(takeovers), len(f.LostVMs), len(f.DoubleMigrations), len(f.DoubleReboots), len(f.LeftPaused), deposedWrites, audited)
	fmt.Println(line)
	fmt.Printf("ha: takeover (leader lost -> run resumed by another replica): median %s, worst %s, limit 2 x lease_ttl = %s; %d of %d takeovers during the run\n",
		median.Round(time.Millisecond), worst.Round(time.Millisecond), 2*haTTL, midRun, len(takeovers))
	if deposedWrites != 0 {
		t.Errorf("%d writes committed by a replica that was not the leader", deposedWrites)
	}
	if worst >= 2*haTTL {
		t.Errorf("worst takeover %s, want under 2 x lease_ttl = %s", worst, 2*haTTL)
	}
	if rep.Resumes < len(takeovers) && !runs.State(r.State).Terminal() {
		t.Errorf("run resumed %d times for %d takeovers", rep.Resumes, len(takeovers))
	}
	for name, logs := range h.logs {
		for _, p := range logs {
			if text := readFile(p); strings.Contains(text, e2eViewer) || strings.Contains(text, e2eOperator) {
				t.Errorf("log of %s shows a token", name)
			}
		}
	}
}

// auditWrites walks etcd's history of the audit key: every fenced write rewrote it
// in its own transaction, naming its fence. A write is by a deposed leader when, at
// its revision, its fence key was not the election's first key (the leader).
func auditWrites(t *testing.T, cli *clientv3.Client, prefix string) (deposed, total int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cur, err := cli.Get(ctx, prefix+runs.AuditKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(cur.Kvs) == 0 {
		return 0, 0
	}
	last := cur.Kvs[0].ModRevision
	for resp := range cli.Watch(ctx, prefix+runs.AuditKey, clientv3.WithRev(1)) {
		if err := resp.Err(); err != nil {
			t.Fatal(err)
		}
		for _, ev := range resp.Events {
			total++
			var f struct {
				Key string `json:"fence_key"`
				Rev int64  `json:"fence_rev"`
			}
			if err := json.Unmarshal(ev.Kv.Value, &f); err != nil {
				t.Fatalf("audit record %s: %v", ev.Kv.Value, err)
			}
			lead, err := cli.Get(ctx, prefix+"/ha/election/", clientv3.WithPrefix(), clientv3.WithRev(ev.Kv.ModRevision),
				clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(1))
			if err != nil {
				t.Fatal(err)
			}
			if len(lead.Kvs) == 0 || string(lead.Kvs[0].Key) != f.Key || lead.Kvs[0].CreateRevision != f.Rev {
				deposed++
			}
			if ev.Kv.ModRevision >= last {
				return deposed, total
			}
		}
	}
	t.Fatal("the audit history ended early")
	return deposed, total
}

type postResp struct {
	StatusCode int
	Header     http.Header
	body       string
}

// post calls the API as an operator.
func (d *daemon) post(t *testing.T, path, body string) postResp {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, d.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e2eOperator)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return postResp{StatusCode: resp.StatusCode, Header: resp.Header, body: sb.String()}
}
