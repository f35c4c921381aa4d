package hyperv_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/masterzen/winrm"

	"github.com/droverhq/drover/drivers"
	"github.com/droverhq/drover/drivers/hyperv"
	"github.com/droverhq/drover/drivers/hyperv/scripts"
	"github.com/droverhq/drover/drivers/hyperv/wsmantest"
)

// rawClient is masterzen/winrm pointed at one endpoint, Basic over HTTPS.
func rawClient(t *testing.T, c *wsmantest.Cluster, node, password, opTimeout string) *winrm.Client {
	t.Helper()
	host, port, _ := net.SplitHostPort(c.Endpoints[node].Addr())
	p, _ := strconv.Atoi(port)
	params := *winrm.DefaultParameters
	params.Timeout = opTimeout
	cl, err := winrm.NewClientWithParameters(&winrm.Endpoint{Host: host, Port: p, HTTPS: true, CACert: c.CA.PEM, Timeout: 30 * time.Second}, testUser, password, &params)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func TestWSManLongPollTimesOutAndClientPollsAgain(t *testing.T) {
	m := threeNodes(2, wsmantest.Timing{Install: 2500 * time.Millisecond})
	c := startCluster(t, m)
	cl := rawClient(t, c, "HV1", testPW, "PT1S")
	line, err := scripts.Command(scripts.WUInstall, map[string]string{"criteria": hyperv.DefaultCriteria})
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code, err := cl.RunWithContextWithInput(t.Context(), line, &stdout, &stderr, nil)
	if err != nil || code != 0 {
		t.Fatalf("run: exit %d, %v, stderr %q", code, err, stderr.String())
	}
	e := c.Endpoints["HV1"]
	if n := e.Count("w:TimedOut"); n < 2 {
		t.Errorf("the server answered w:TimedOut %d times to a command running 2.5s with OperationTimeout 1s; want at least 2", n)
	}
	if e.Count("Delete") != 1 || e.Count("Create") != 1 {
		t.Errorf("shells: %d created, %d deleted; want 1, 1", e.Count("Create"), e.Count("Delete"))
	}
	var env struct {
		OK   bool `json:"ok"`
		Data struct {
			Installed []map[string]string `json:"installed"`
			Reboot    bool                `json:"reboot"`
		} `json:"data"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &env); err != nil || !env.OK || len(env.Data.Installed) != 1 || !env.Data.Reboot {
		t.Errorf("stdout %q: %+v, %v", stdout.String(), env, err)
	}
	if !strings.HasPrefix(stderr.String(), "#< CLIXML") {
		t.Errorf("stderr %q: want the CLIXML progress record the filter must drop", stderr.String())
	}
}

func TestWSManRefusesBadCredentialsAndUntrustedTLS(t *testing.T) {
	m := threeNodes(1, wsmantest.Timing{})
	c := startCluster(t, m)
	_, _, _, err := rawClient(t, c, "HV1", "wrong", "PT5S").RunWithContextWithString(t.Context(), "powershell.exe", "")
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong password: %v; want HTTP 401", err)
	}
	if c.Endpoints["HV1"].Count("401") == 0 {
		t.Error("the server counted no 401")
	}

	// Through the driver: the errors name the key to fix and never the password.
	cfg := hyperv.NewConfig()
	if err := drivers.Decode(winrmSection(t, c, nil), cfg); err != nil {
		t.Fatal(err)
	}
	t.Setenv(pwEnv, "wrong-"+testPW)
	wrong, err := cfg.Open(t.Context(), drivers.Env{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = wrong.Inventory(t.Context())
	var fe *drivers.FieldError
	if !errors.As(err, &fe) || fe.Field != "cluster.hyperv.winrm.username" || strings.Contains(err.Error(), testPW) {
		t.Errorf("wrong password through the driver: %v; want a field error naming cluster.hyperv.winrm.username, no password", err)
	}

	noCA := winrmSection(t, c, func(_, w map[string]any) { delete(w, "ca_file") })
	t.Setenv(pwEnv, testPW)
	dc := hyperv.NewConfig()
	if err := drivers.Decode(noCA, dc); err != nil {
		t.Fatal(err)
	}
	untrusted, err := dc.Open(t.Context(), drivers.Env{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = untrusted.Inventory(t.Context())
	if !errors.As(err, &fe) || fe.Field != "cluster.hyperv.winrm.ca_file" {
		t.Errorf("TLS with an unknown CA: %v; want a field error naming cluster.hyperv.winrm.ca_file", err)
	}
}

// post sends one raw envelope to the endpoint with Basic auth.
func post(t *testing.T, c *wsmantest.Cluster, node, body string) (int, string) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CA.PEM)
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest(http.MethodPost, "https://"+c.Endpoints[node].Addr()+"/wsman", strings.NewReader(body))
	req.SetBasicAuth(testUser, testPW)
	req.Header.Set("Content-Type", "application/soap+xml;charset=UTF-8")
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const receiveUnknown = `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Header><a:Action>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive</a:Action><a:MessageID>uuid:1</a:MessageID><w:SelectorSet><w:Selector Name="ShellId">DEAD-BEEF</w:Selector></w:SelectorSet><w:OperationTimeout>PT1S</w:OperationTimeout></s:Header><s:Body><rsp:Receive><rsp:DesiredStream CommandId="X">stdout stderr</rsp:DesiredStream></rsp:Receive></s:Body></s:Envelope>`

func TestWSManFaults(t *testing.T) {
	m := threeNodes(1, wsmantest.Timing{})
	c := startCluster(t, m)
	code, body := post(t, c, "HV1", receiveUnknown)
	if code != 500 || !strings.Contains(body, "w:InvalidSelectors") || !strings.Contains(body, "DEAD-BEEF") || !strings.Contains(body, `Code="2150858843"`) {
		t.Errorf("receive on an unknown shell: %d %s", code, body)
	}
	big := strings.Replace(receiveUnknown, "<s:Body>", "<s:Body><!--"+strings.Repeat("x", wsmantest.DefaultMaxEnvelope)+"-->", 1)
	code, body = post(t, c, "HV1", big)
	if code != 500 || !strings.Contains(body, "w:EncodingLimit") {
		t.Errorf("oversized envelope: %d %.300s", code, body)
	}
	// A command line over the Windows limit is refused the way Windows refuses it.
	cl := rawClient(t, c, "HV1", testPW, "PT5S")
	_, _, _, err := cl.RunWithContextWithString(t.Context(), "powershell.exe -EncodedCommand "+strings.Repeat("A", 8200), "")
	if !faultSays(err, "The filename or extension is too long") {
		t.Errorf("command over 8191 characters: %v", err)
	}
}

func TestServerRefusesScriptsThatAreNotShipped(t *testing.T) {
	m := threeNodes(1, wsmantest.Timing{})
	c := startCluster(t, m)
	s, err := scripts.Script(scripts.Cluster, nil)
	if err != nil {
		t.Fatal(err)
	}
	tampered := strings.Replace(s, "Get-ClusterNode", "Get-ClusterNode -Cluster X", 1)
	stdout, stderr, code, err := rawClient(t, c, "HV1", testPW, "PT5S").RunWithContextWithString(t.Context(), scripts.Program+scripts.Encode(tampered), "")
	if err != nil {
		t.Fatal(err)
	}
	if code != 1 || !strings.Contains(stderr, "not one Drover ships") || stdout != "" {
		t.Errorf("tampered script: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if len(m.Stats().Rejected) != 1 {
		t.Errorf("rejected: %q; want the one tampered script", m.Stats().Rejected)
	}
}

func TestRebootDropsOpenShells(t *testing.T) {
	m := threeNodes(1, wsmantest.Timing{Down: 500 * time.Millisecond, Install: 10 * time.Second})
	c := startCluster(t, m)
	cl := rawClient(t, c, "HV2", testPW, "PT20S")
	shell, err := cl.CreateShell()
	if err != nil {
		t.Fatal(err)
	}
	line, _ := scripts.Command(scripts.WUInstall, map[string]string{"criteria": hyperv.DefaultCriteria})
	done := make(chan error, 1)
	go func() {
		_, _, code, err := cl.RunWithContextWithString(context.Background(), line, "")
		if err == nil && code == 0 {
			err = errors.New("install finished although the host went down")
		}
		done <- err
	}()
	waitFor(t, 5*time.Second, "install running", func() bool { return c.Endpoints["HV2"].Count("Receive") > 0 })
	d := mustDriver(t, c, nil)
	if err := d.RebootNode(t.Context(), "HV2"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Logf("command in flight when the host went down: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("a command in flight survived the reboot")
	}
	waitFor(t, 10*time.Second, "HV2 back", func() bool { return m.Nodes()[1].Reboots == 1 && m.Nodes()[1].ClusterService == "Running" })
	if _, err := shell.ExecuteWithContext(t.Context(), "powershell.exe"); !faultSays(err, "w:InvalidSelectors") {
		t.Errorf("command in a shell opened before the reboot: %v; want the unknown-shell fault", err)
	}
}

// The longest realistic parameters stay under the Windows command-line limit, for
// every script.
func TestEveryScriptFitsTheCommandLine(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	node := "hv-node-" + long(55) // a 63-character NetBIOS/DNS label
	vm := "vm-" + long(97)        // 100-character VM role name
	mark := drivers.PauseMark("20261205T143000Z-" + long(32))
	criteria := hyperv.DefaultCriteria + " and CategoryIDs contains '0FA1201D-4330-4FA8-8AE9-B877473B6441'"
	inner, err := scripts.Bind(scripts.WUInstall, map[string]string{"criteria": criteria})
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]any{
		scripts.Cluster: nil, scripts.Host: nil, scripts.Ready: nil,
		scripts.Pause:     map[string]string{"node": node, "owner": mark},
		scripts.Drain:     map[string]string{"node": node, "owner": mark},
		scripts.Resume:    map[string]string{"node": node, "failback": "NoFailback"},
		scripts.Migrate:   map[string]string{"vm": vm, "node": node},
		scripts.MigStatus: map[string]string{"vm": vm},
		scripts.Cancel:    map[string]string{"vm": vm},
		scripts.Reboot:    map[string]int{"delay_seconds": 600},
		scripts.WUScan:    map[string]string{"criteria": criteria},
		scripts.WUInstall: map[string]string{"criteria": criteria},
		scripts.WUTask:    map[string]string{"id": long(16), "script": inner},
		scripts.WUResult:  map[string]string{"id": long(16)},
	}
	for _, op := range scripts.Names() {
		p, ok := params[op]
		if !ok {
			t.Errorf("script %s has no realistic parameters in this test", op)
			continue
		}
		line, err := scripts.Command(op, p)
		if err != nil {
			t.Errorf("%s: %v", op, err)
			continue
		}
		t.Logf("%-9s %5d characters (limit %d)", op, len(line), scripts.MaxCommandLine)
		got, _, err := scripts.Parse(line)
		if err != nil || got != op {
			t.Errorf("%s: parsed back as %q, %v", op, got, err)
		}
	}
	if _, err := scripts.Command(scripts.WUScan, map[string]string{"criteria": long(4000)}); !errors.Is(err, scripts.ErrTooLong) {
		t.Errorf("a 4000-character criteria: %v; want ErrTooLong", err)
	}
}

// faultSays reports whether err is masterzen/winrm's answer to a SOAP fault whose body
// contains want. (masterzen hands the body of an HTTP 500 fault to its parser, which
// then reports the fault action as unsupported; the body is in the error.)
func faultSays(err error, want string) bool {
	var ce *winrm.ExecuteCommandError
	if errors.As(err, &ce) {
		return strings.Contains(ce.Body, want)
	}
	return err != nil && strings.Contains(err.Error(), want)
}
