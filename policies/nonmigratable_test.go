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
	const savedStuck = "saved(suspended with its memory state on the node, and the driver cannot migrate saved state"
	tests := []struct {
		name                                    string
		mode                                    NonMigratableMode
		noSaved                                 bool // the driver cannot migrate suspended VMs
		migrate, shutdown, skip, blocking, stay string
	}{
		{name: "suspended-stays-without-capability-fail", mode: NonMigratableFail, noSaved: true, migrate: "big,small,moving",
			blocking: savedStuck + "),gpu(not migratable: pass-through GPU),pinned(not migratable),what(power state unknown)", stay: "off(stopped)"},
		{name: "suspended-shut-down-without-capability", mode: NonMigratableShutdown, noSaved: true, migrate: "big,small,moving", shutdown: "saved,gpu,pinned",
			blocking: "what(power state unknown)", stay: "off(stopped)"},
		{name: "suspended-left-without-capability", mode: NonMigratableSkip, noSaved: true, migrate: "big,small,moving",
			skip:     savedStuck + "; left suspended, the reboot loses its saved state),gpu(not migratable: pass-through GPU; left running, goes down with the reboot),pinned(not migratable; left running, goes down with the reboot)",
			blocking: "what(power state unknown)", stay: "off(stopped)"},
		{name: "fail", mode: NonMigratableFail, migrate: "big,saved,small,moving",
			blocking: "gpu(not migratable: pass-through GPU),pinned(not migratable),what(power state unknown)", stay: "off(stopped)"},
		{name: "shutdown", mode: NonMigratableShutdown, migrate: "big,saved,small,moving", shutdown: "gpu,pinned",
			blocking: "what(power state unknown)", stay: "off(stopped)"},
		{name: "skip", mode: NonMigratableSkip, migrate: "big,saved,small,moving",
			skip:     "gpu(not migratable: pass-through GPU; left running, goes down with the reboot),pinned(not migratable; left running, goes down with the reboot)",
			blocking: "what(power state unknown)", stay: "off(stopped)"},
		{name: "unknown-mode-fails-closed", mode: "bogus", migrate: "big,saved,small,moving",
			blocking: "gpu(not migratable: pass-through GPU),pinned(not migratable),what(power state unknown)", stay: "off(stopped)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := SplitVMs(vms, SplitOptions{Mode: tt.mode, MigrateSuspended: !tt.noSaved})
			for _, c := range []struct{ what, got, want string }{
				{"migrate", names(s.Migrate), tt.migrate}, {"shutdown", names(s.Shutdown), tt.shutdown},
				{"skip", notes(s.Skip), tt.skip}, {"blocking", notes(s.Blocking), tt.blocking}, {"stay", notes(s.Stay), tt.stay},
			} {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
				}
			}
		})
	}
	if s := SplitVMs(vms[:2], SplitOptions{Mode: NonMigratableFail}); len(s.Blocking) > 0 {
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
