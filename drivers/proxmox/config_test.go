package proxmox

import (
	"errors"
	"strings"
	"testing"

	"github.com/droverhq/drover/drivers"
)

func TestConfig_EndpointErrorsNameTheCauseNotTheURL(t *testing.T) {
	tests := []struct {
		endpoint, want string
	}{
		{"https://pve1.example:8006", ""},
		{"https://pve1.example:8006/", ""},
		{"http://pve1.example:8006", "not an https URL"},
		{"https://root:hunter22@pve1.example:8006", "user info"},
		{"https://root:hunter22/", "not a port number"},
		{"https://pve1.example:8006/api2/json", "a path after the host"},
		{"https://pve1.example:8006/?x=1", "a query"},
		{"pve1.example:8006", "not an https URL"},
		{"https://pve 1:8006", "not a URL"},
	}
	t.Setenv("DROVER_TEST_PVE_TOKEN", "s")
	for _, tt := range tests {
		c := NewConfig()
		c.Endpoints, c.TokenID, c.TokenSecretEnv = []string{tt.endpoint}, "drover@pve!rolling", "DROVER_TEST_PVE_TOKEN"
		c.Nodes = map[string]string{"pve1": "pve1.example"}
		err := c.Validate()
		var fe *drivers.FieldError
		for _, e := range unjoin(err) {
			if errors.As(e, &fe) && fe.Field == "endpoints[0]" {
				break
			}
			fe = nil
		}
		switch {
		case tt.want == "" && fe != nil:
			t.Errorf("%s: refused: %v", tt.endpoint, fe)
		case tt.want != "" && (fe == nil || !strings.Contains(fe.Problem, tt.want)):
			t.Errorf("%s: err = %v, want endpoints[0] to say %q", tt.endpoint, err, tt.want)
		case err != nil && strings.Contains(err.Error(), "hunter22"):
			t.Errorf("%s: the error repeats the password: %v", tt.endpoint, err)
		}
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
