package pvesim

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	testToken  = "drover@pve!rolling"
	testSecret = "0b3c1f9e-5d2a-4c1b-9f7e-8a6d5c4b3a21"
)

func testModel() Options {
	return Options{
		Nodes: []Node{{Name: "pve1", MemoryMiB: 65536, CPUs: 16, HasCeph: true}, {Name: "pve2", MemoryMiB: 65536, CPUs: 16, HasCeph: true}, {Name: "pve3", MemoryMiB: 65536, CPUs: 16, HasCeph: true}},
		Guests: []Guest{
			{VMID: 101, Name: "web1", Type: "qemu", Node: "pve1", MaxMemMiB: 2048, CPUs: 2, HA: true},
			{VMID: 102, Name: "db1", Type: "qemu", Node: "pve1", MaxMemMiB: 4096, CPUs: 4, Disks: []Disk{{Key: "scsi0", VolID: "local-lvm:vm-102-disk-0", Size: 8 << 30}}},
			{VMID: 200, Name: "ct1", Type: "lxc", Node: "pve2", MaxMemMiB: 512, CPUs: 1, HA: true},
		},
		Ceph: true,
	}
}

func startTest(t *testing.T) (*Cluster, *http.Client) {
	t.Helper()
	c, err := Start(StartOptions{Model: testModel(), TokenID: testToken, Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.API.CAPEM)
	return c, &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

type answer struct {
	status int
	Data   json.RawMessage   `json:"data"`
	Errors map[string]string `json:"errors"`
}

func call(t *testing.T, hc *http.Client, method, u, auth string, form url.Values) answer {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Authorization", auth)
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var a answer
	if err := json.NewDecoder(res.Body).Decode(&a); err != nil {
		t.Fatalf("%s %s: decode: %v", method, u, err)
	}
	a.status = res.StatusCode
	return a
}

// TestServer_ValidatesEveryRequest: requests the schema refuses get PVE's 400 with an
// errors body naming the parameter, and are recorded as violations; valid ones pass.
func TestServer_ValidatesEveryRequest(t *testing.T) {
	c, hc := startTest(t)
	base := c.Endpoints["pve1"] + APIPrefix
	auth := "PVEAPIToken=" + testToken + "=" + testSecret
	for _, tc := range []struct {
		name, method, path string
		form               url.Values
		wantStatus         int
		wantErrKey         string
	}{
		{name: "unknown-path", method: "GET", path: "/nodes/pve1/maintenance", wantStatus: 400, wantErrKey: "path"},
		{name: "unknown-method", method: "DELETE", path: "/nodes/pve1/status", wantStatus: 400, wantErrKey: "method"},
		{name: "missing-required", method: "POST", path: "/nodes/pve1/qemu/101/migrate", form: url.Values{"online": {"1"}}, wantStatus: 400, wantErrKey: "target"},
		{name: "mistyped-boolean", method: "POST", path: "/nodes/pve1/qemu/101/migrate", form: url.Values{"target": {"pve2"}, "online": {"maybe"}}, wantStatus: 400, wantErrKey: "online"},
		{name: "enum", method: "POST", path: "/nodes/pve1/status", form: url.Values{"command": {"restart"}}, wantStatus: 400, wantErrKey: "command"},
		{name: "bounds", method: "GET", path: "/nodes/pve1/qemu/99/migrate", wantStatus: 400, wantErrKey: "vmid"},
		{name: "format", method: "GET", path: "/nodes/pve_1/status", wantStatus: 400, wantErrKey: "node"},
		{name: "additional-property", method: "GET", path: "/cluster/resources?kind=vm", wantStatus: 400, wantErrKey: "kind"},
		{name: "enum-query", method: "GET", path: "/cluster/resources?type=guest", wantStatus: 400, wantErrKey: "type"},
		{name: "valid-get", method: "GET", path: "/cluster/resources?type=vm", wantStatus: 200},
		{name: "valid-post", method: "POST", path: "/nodes/pve1/qemu/102/migrate", form: url.Values{"target": {"pve2"}, "online": {"1"}, "with-local-disks": {"1"}}, wantStatus: 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(c.Model.Violations())
			a := call(t, hc, tc.method, base+tc.path, auth, tc.form)
			if a.status != tc.wantStatus {
				t.Fatalf("status %d, want %d (errors %v)", a.status, tc.wantStatus, a.Errors)
			}
			if tc.wantErrKey != "" {
				if _, ok := a.Errors[tc.wantErrKey]; !ok {
					t.Errorf("errors %v do not name %q", a.Errors, tc.wantErrKey)
				}
				if len(c.Model.Violations()) != before+1 {
					t.Errorf("refused request not recorded as a violation")
				}
			} else if v := c.Model.Violations(); len(v) != before {
				t.Errorf("valid request recorded: %v", v[before:])
			}
		})
	}
}

func TestServer_TokenCheck(t *testing.T) {
	c, hc := startTest(t)
	u := c.Endpoints["pve2"] + APIPrefix + "/version"
	for _, auth := range []string{"", "PVEAPIToken=" + testToken + "=wrong", "PVEAPIToken=root@pam!rolling=" + testSecret, "Bearer " + testSecret} {
		if a := call(t, hc, "GET", u, auth, nil); a.status != 401 {
			t.Errorf("auth %q: status %d, want 401", auth, a.status)
		}
	}
	if a := call(t, hc, "GET", u, "PVEAPIToken="+testToken+"="+testSecret, nil); a.status != 200 {
		t.Errorf("good token: status %d", a.status)
	}
}

// TestModel_RebootVanishesAndResetsUptime: the reboot answers null, the node's API
// goes away, and comes back with a small uptime.
func TestModel_RebootVanishesAndResetsUptime(t *testing.T) {
	c, hc := startTest(t)
	auth := "PVEAPIToken=" + testToken + "=" + testSecret
	a := call(t, hc, "POST", c.Endpoints["pve3"]+APIPrefix+"/nodes/pve3/status", auth, url.Values{"command": {"reboot"}})
	if a.status != 200 || string(a.Data) != "null" {
		t.Fatalf("reboot answered %d %s, want 200 null", a.status, a.Data)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Model.Online("pve3") {
		if time.Now().After(deadline) {
			t.Fatal("pve3 never went down")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := hc.Get(c.Endpoints["pve3"] + APIPrefix + "/version"); err == nil {
		t.Error("pve3's API answered while it was down")
	}
	if a := call(t, hc, "GET", c.Endpoints["pve1"]+APIPrefix+"/nodes/pve3/status", auth, nil); a.status != 595 {
		t.Errorf("status of a down node through pve1: %d, want 595", a.status)
	}
	for !c.Model.Online("pve3") {
		if time.Now().After(deadline) {
			t.Fatal("pve3 never came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var st struct {
		Uptime int64 `json:"uptime"`
	}
	for {
		a = call(t, hc, "GET", c.Endpoints["pve1"]+APIPrefix+"/nodes/pve3/status", auth, nil)
		if a.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status after reboot: %d", a.status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := json.Unmarshal(a.Data, &st); err != nil || st.Uptime > 5 {
		t.Errorf("uptime after reboot = %d (%v), want a fresh boot", st.Uptime, err)
	}
	if v := c.Model.Violations(); len(v) > 0 {
		t.Errorf("violations: %v", v)
	}
}

// TestModel_MaintenanceMovesHAGuestsAndBack: maintenance moves only HA guests, is
// kept across a reboot, and the guests return when it is disabled.
func TestModel_MaintenanceMovesHAGuestsAndBack(t *testing.T) {
	c, _ := startTest(t)
	m := c.Model
	if err := m.SetMaintenance("pve1", true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func(s Snapshot) bool { return guestNode(s, 101) != "pve1" && s.Nodes[0].LRMMaint }, m)
	if s := m.Snapshot(); guestNode(s, 102) != "pve1" {
		t.Errorf("non-HA guest 102 moved to %s", guestNode(s, 102))
	}
	m.mu.Lock()
	m.reboot(m.nodes["pve1"])
	m.mu.Unlock()
	waitFor(t, func(s Snapshot) bool { return s.Nodes[0].Reboots == 1 && s.Nodes[0].LRMMaint }, m)
	if s := m.Snapshot(); guestNode(s, 101) == "pve1" {
		t.Error("HA guest returned while the node is still in maintenance")
	}
	if err := m.SetMaintenance("pve1", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func(s Snapshot) bool { return guestNode(s, 101) == "pve1" }, m)
}

func guestNode(s Snapshot, vmid int) string {
	for _, g := range s.Guests {
		if g.VMID == vmid {
			return g.Node
		}
	}
	return ""
}

func waitFor(t *testing.T, cond func(Snapshot) bool, m *Model) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond(m.Snapshot()) {
		if time.Now().After(deadline) {
			t.Fatalf("condition not reached; state %+v", m.Snapshot())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestModel_MaxWorkers: HA moves at most max_workers guests at a time off a node.
func TestModel_MaxWorkers(t *testing.T) {
	opts := testModel()
	opts.MaxWorkers = 2
	opts.Timing = DefaultTiming()
	opts.Timing.MigrationMiBs = 1024
	for id := 110; id < 115; id++ {
		opts.Guests = append(opts.Guests, Guest{VMID: id, Name: "ha", Type: "qemu", Node: "pve1", MaxMemMiB: 1024, CPUs: 1, HA: true})
	}
	c, err := Start(StartOptions{Model: opts, TokenID: testToken, Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.Model.SetMaintenance("pve1", true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func(s Snapshot) bool {
		for _, g := range s.Guests {
			if g.HA && g.Node == "pve1" {
				return false
			}
		}
		return true
	}, c.Model)
	if peak := c.Model.Snapshot().Stats.PeakHAMoves; peak != 2 {
		t.Errorf("peak HA moves at once = %d, want max_workers = 2", peak)
	}
}

// TestModel_HAMigrateIsAsync: an HA guest's migrate answers an hamigrate task that is
// already done while the guest has not moved yet.
func TestModel_HAMigrateIsAsync(t *testing.T) {
	c, hc := startTest(t)
	auth := "PVEAPIToken=" + testToken + "=" + testSecret
	a := call(t, hc, "POST", c.Endpoints["pve1"]+APIPrefix+"/nodes/pve1/qemu/101/migrate", auth, url.Values{"target": {"pve3"}, "online": {"1"}})
	var upid string
	if err := json.Unmarshal(a.Data, &upid); err != nil || !strings.Contains(upid, ":hamigrate:101:") {
		t.Fatalf("answer %d %s, want an hamigrate UPID", a.status, a.Data)
	}
	st := call(t, hc, "GET", c.Endpoints["pve1"]+APIPrefix+"/nodes/pve1/tasks/"+upid+"/status", auth, nil)
	if !strings.Contains(string(st.Data), `"stopped"`) || guestNode(c.Model.Snapshot(), 101) != "pve1" {
		t.Fatalf("hamigrate task %s; guest on %s: want a finished request and the guest not moved yet", st.Data, guestNode(c.Model.Snapshot(), 101))
	}
	waitFor(t, func(s Snapshot) bool { return guestNode(s, 101) == "pve3" }, c.Model)
}

func TestCheckReturn_FindsWrongShapes(t *testing.T) {
	s, err := LoadSchema()
	if err != nil {
		t.Fatal(err)
	}
	_, _, methods, ok := s.Lookup("/nodes/pve1/tasks/UPID:x/status")
	if !ok {
		t.Fatal("task status path not found")
	}
	ret := methods["GET"].Returns
	good := map[string]any{"upid": "u", "node": "n", "pid": 1.0, "pstart": 1.0, "starttime": 1.0, "type": "t", "id": "i", "user": "u", "status": "running"}
	if p := CheckReturn(ret, good); len(p) > 0 {
		t.Fatalf("good answer refused: %v", p)
	}
	bad := map[string]any{"upid": "u", "node": "n", "pid": "1", "starttime": 1.0, "type": "t", "id": "i", "user": "u", "status": "done"}
	p := CheckReturn(ret, bad)
	if len(p) != 3 {
		t.Errorf("problems %v, want pid mistyped, pstart missing, status not in enum", p)
	}
}
