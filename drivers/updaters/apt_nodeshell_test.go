package updaters

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/droverhq/drover/drivers"
)

// shellDriver is a driver that lends its SSH to the apt plug-in.
type shellDriver struct {
	drivers.Driver
	run Runner
}

func (s shellDriver) NodeShell() (Runner, func(string) string) {
	return s.run, func(node string) string { return "addr-of-" + node }
}

type recordRunner struct{ got []string }

func (r *recordRunner) Run(_ context.Context, target string, argv []string) (Output, error) {
	r.got = append(r.got, target+": "+ShellJoin(argv))
	return Output{}, &ExitError{Code: 1}
}

func TestAptConfig_OpenNodeShell(t *testing.T) {
	c := NewAptConfig()
	if _, err := c.Open(context.Background(), drivers.Env{}); err == nil {
		t.Fatal("Open without ssh and without a NodeShell driver succeeded")
	} else if fe := (*drivers.FieldError)(nil); !errors.As(err, &fe) || fe.Field != "ssh" {
		t.Fatalf("Open error %v does not name ssh", err)
	}
	rec := &recordRunner{}
	u, err := c.Open(context.Background(), drivers.Env{Driver: shellDriver{run: rec}})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = u.Scan(context.Background(), "pve1")
	if want := "addr-of-pve1: env LC_ALL=C apt-get update -qq"; !slices.Contains(rec.got, want) {
		t.Errorf("commands %q, want %q through the driver's shell", rec.got, want)
	}
}
