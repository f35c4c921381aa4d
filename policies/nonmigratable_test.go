package policies

import (
	"fmt"
	"strings"
	"testing"

	"github.com/droverhq/drover/cluster"
)

func TestSplitVMs(t *testing.T) {
	vms := []cluster.VM{
		vm("small", "n1", 1024, 1),
		vm("big", "n1", 8192, 1),
		vm("saved", "n1", 2048, 1, power(cluster.PowerSuspended)),
		vm("off", "n1", 4096, 1, power(cluster.PowerStopped)),
		vm("gpu", "n1", 4096, 1, notMigratable("pass-through GPU")),
		vm("pinned", "n1", 4096, 1, notMigratable("")),
		vm("what", "n1", 4096, 1, power(cluster.PowerUnknown)),
		vm("moving", "n1", 512, 1, notMigratable("local disk"), migratingTo("n2")),
	}
	names := func(vs []cluster.VM) string {
		var s []string
		for _, v := range vs {
			s = append(s, v.Name)
		}
		return strings.Join(s, ",")
	}
	notes := func(ns []VMNote) string {
		var s []string
		for _, n := range ns {
			s = append(s, fmt.Sprintf("%s(%s)", n.VM, n.Reason))
		}
		return strings.Join(s, ",")
	}
	tests := []struct {
		mode                                    NonMigratableMode
		migrate, shutdown, skip, blocking, stay string
	}{
		{mode: NonMigratableFail, migrate: "big,saved,small,moving",
			blocking: "gpu(not migratable: pass-through GPU),pinned(not migratable),what(power state unknown)", stay: "off(stopped)"},
		{mode: NonMigratableShutdown, migrate: "big,saved,small,moving", shutdown: "gpu,pinned",
			blocking: "what(power state unknown)", stay: "off(stopped)"},
		{mode: NonMigratableSkip, migrate: "big,saved,small,moving",
			skip:     "gpu(not migratable: pass-through GPU; left running, goes down with the reboot),pinned(not migratable; left running, goes down with the reboot)",
			blocking: "what(power state unknown)", stay: "off(stopped)"},
		{mode: "bogus", migrate: "big,saved,small,moving",
			blocking: "gpu(not migratable: pass-through GPU),pinned(not migratable),what(power state unknown)", stay: "off(stopped)"},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode), func(t *testing.T) {
			s := SplitVMs(vms, tt.mode)
			for _, c := range []struct{ what, got, want string }{
				{"migrate", names(s.Migrate), tt.migrate}, {"shutdown", names(s.Shutdown), tt.shutdown},
				{"skip", notes(s.Skip), tt.skip}, {"blocking", notes(s.Blocking), tt.blocking}, {"stay", notes(s.Stay), tt.stay},
			} {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
				}
			}
			if s.Blocked() != (tt.blocking != "") {
				t.Errorf("Blocked = %v", s.Blocked())
			}
		})
	}
	if s := SplitVMs(vms[:2], NonMigratableFail); s.Blocked() {
		t.Error("migratable VMs block")
	}
}

func TestParseNonMigratableMode(t *testing.T) {
	for in, want := range map[string]NonMigratableMode{"": NonMigratableFail, "fail": NonMigratableFail, "shutdown": NonMigratableShutdown, "skip": NonMigratableSkip} {
		if got, err := ParseNonMigratableMode(in); err != nil || got != want {
			t.Errorf("ParseNonMigratableMode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseNonMigratableMode("save"); err == nil || !strings.Contains(err.Error(), "use fail, shutdown or skip") {
		t.Errorf("bad mode: %v", err)
	}
}
