package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/runs"
)

func TestBuild_VMsAway(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	drain := func(vm, from, to string, at int) runs.Migration {
		return runs.Migration{VM: vm, From: from, To: to, Kind: runs.KindDrain, OK: true, StartedAt: t0.Add(time.Duration(at) * time.Minute)}
	}
	back := func(vm, from, to string, at int) runs.Migration {
		m := drain(vm, from, to, at)
		m.Kind = runs.KindFailback
		return m
	}
	tests := []struct {
		name     string
		failback string
		nodes    []runs.NodeRecord
		want     string
	}{
		{name: "failed-node-its-vms-are-away", failback: "none", nodes: []runs.NodeRecord{
			{Name: "a", State: "done", Migrations: []runs.Migration{drain("v1", "a", "b", 0)}},
			{Name: "b", State: "failed", Migrations: []runs.Migration{drain("v2", "b", "c", 5), drain("v1", "b", "c", 6)}},
		}, want: "v2:b->c(failed)"},
		{name: "done-node-without-failback-is-by-design", failback: "none", nodes: []runs.NodeRecord{
			{Name: "a", State: "done", Migrations: []runs.Migration{drain("v1", "a", "b", 0)}},
		}, want: ""},
		{name: "failback-brought-it-home", failback: "immediate", nodes: []runs.NodeRecord{
			{Name: "a", State: "done", Migrations: []runs.Migration{drain("v1", "a", "b", 0), back("v1", "b", "a", 3)}},
		}, want: ""},
		{name: "failback-that-did-not-happen", failback: "immediate", nodes: []runs.NodeRecord{
			{Name: "a", State: "done", Migrations: []runs.Migration{drain("v1", "a", "b", 0), drain("v2", "a", "b", 0), back("v2", "b", "a", 3)}},
		}, want: "v1:a->b(done)"},
		{name: "stopped-node-last-move-counts", failback: "none", nodes: []runs.NodeRecord{
			{Name: "a", State: "skipped", Migrations: []runs.Migration{drain("v1", "a", "b", 0)}},
			{Name: "b", State: "skipped", Migrations: []runs.Migration{drain("v1", "b", "c", 2)}},
		}, want: "v1:a->c(skipped)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := Build(runs.Run{ID: "r", Options: []byte(`{"failback":"` + tt.failback + `"}`)}, tt.nodes)
			var got []string
			for _, a := range rep.Summary.VMsAway {
				got = append(got, a.VM+":"+a.Home+"->"+a.Now+"("+a.HomeState+")")
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("away = %q, want %q", strings.Join(got, " "), tt.want)
			}
			if tt.want == "" {
				return
			}
			var b bytes.Buffer
			if err := Render(&b, rep, "md"); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), "is away from its home node") {
				t.Errorf("markdown report does not name the VM away from home:\n%s", b.String())
			}
		})
	}
}
