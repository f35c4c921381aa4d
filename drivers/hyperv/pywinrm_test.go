package hyperv_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/drivers/hyperv"
	"github.com/droverhq/drover/drivers/hyperv/scripts"
	"github.com/droverhq/drover/drivers/hyperv/wsmantest"
)

// debianPython is Debian's interpreter, where apt's python3-winrm lives (a python3
// earlier on $PATH, e.g. pyenv's, does not see it).
const debianPython = "/usr/bin/python3"

type pyResult struct {
	Error     string `json:"error"`
	ShellID   string `json:"shell_id"`
	CommandID string `json:"command_id"`
	Stdout    string `json:"stdout"`
	Stderr    string `json:"stderr"`
	Code      int    `json:"code"`
}

func pywinrm(t *testing.T, c *wsmantest.Cluster, node, password, opTimeout, cmdline string) pyResult {
	return pywinrmWith(t, c, "basic", node, password, opTimeout, cmdline)
}

func pywinrmWith(t *testing.T, c *wsmantest.Cluster, transport, node, password, opTimeout, cmdline string) pyResult {
	t.Helper()
	ca, err := c.CA.WriteCAFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(debianPython, "testdata/pywinrm_run.py", "https://"+c.Endpoints[node].Addr()+"/wsman", testUser, ca, opTimeout, cmdline)
	cmd.Env = append(os.Environ(), "PYWINRM_PASSWORD="+password, "PYWINRM_TRANSPORT="+transport)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("pywinrm: %v\n%s", err, stderr)
	}
	var r pyResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("pywinrm output %q: %v", out, err)
	}
	return r
}

// TestPyWinRM drives the WS-Man server with pywinrm: shell creation, command, Receive
// long polls that time out (pywinrm retries on WSManFault 2150858793 only), signal,
// delete, and the 401 pywinrm turns into InvalidCredentialsError.
func TestPyWinRM(t *testing.T) {
	if os.Getenv("DROVER_HYPERV_PYWINRM") != "1" {
		if exec.Command(debianPython, "-c", "import winrm").Run() != nil {
			t.Skip("python3-winrm is not installed (apt-get install python3-winrm; .ci/run sets DROVER_HYPERV_PYWINRM=1)")
		}
	}
	m := threeNodes(2, wsmantest.Timing{Install: 2500 * time.Millisecond})
	c := startCluster(t, m)
	line, err := scripts.Command(scripts.WUInstall, map[string]string{"criteria": hyperv.DefaultCriteria})
	if err != nil {
		t.Fatal(err)
	}
	r := pywinrm(t, c, "HV1", testPW, "1", line)
	if r.Code != 0 || r.ShellID == "" || r.CommandID == "" || !strings.Contains(r.Stdout, `"reboot":true`) || !strings.HasPrefix(r.Stderr, "#< CLIXML") {
		t.Errorf("pywinrm run: %+v", r)
	}
	e := c.Endpoints["HV1"]
	if e.Count("w:TimedOut") < 2 || e.Count("Signal") != 1 || e.Count("Delete") != 1 {
		t.Errorf("server saw %d w:TimedOut, %d Signal, %d Delete; want >=2, 1, 1", e.Count("w:TimedOut"), e.Count("Signal"), e.Count("Delete"))
	}
	inv, _ := scripts.Command(scripts.Cluster, nil)
	r = pywinrm(t, c, "HV2", testPW, "5", inv)
	if r.Code != 0 || !strings.Contains(r.Stdout, `"name":"HVCLUSTER01"`) {
		t.Errorf("pywinrm cluster script: %+v", r)
	}
	if r := pywinrm(t, c, "HV1", "wrong", "5", inv); r.Error != "InvalidCredentialsError" {
		t.Errorf("pywinrm with a wrong password: %+v", r)
	}
	// NTLMv2 (requests_ntlm), with Basic refused: the server verifies pywinrm's
	// AUTHENTICATE message against the password.
	c.Endpoints["HV3"].SetAuth(true, true)
	r = pywinrmWith(t, c, "ntlm", "HV3", testPW, "5", inv)
	if r.Code != 0 || !strings.Contains(r.Stdout, `"name":"HVCLUSTER01"`) || c.Endpoints["HV3"].Count("ntlm-ok") == 0 {
		t.Errorf("pywinrm over NTLM: %+v, %d verified", r, c.Endpoints["HV3"].Count("ntlm-ok"))
	}
	if r := pywinrmWith(t, c, "ntlm", "HV3", "wrong", "5", inv); r.Error != "InvalidCredentialsError" {
		t.Errorf("pywinrm over NTLM with a wrong password: %+v", r)
	}
	noRejected(t, m)
}
